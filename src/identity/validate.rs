//! Input rules for accounts: email normalisation and the NIST SP 800-63B password rule
//! (length only, no composition rules).
//!
//! One address must have one spelling, or look-alikes become separate accounts (a
//! fullwidth `ａdmin@example.com`, a zero-width space, a Cyrillic `а` in `admin`). So an
//! address is stripped of default-ignorable code points, case-folded and put in NFKC (the
//! PRECIS steps, RFC 8265), and a local part or domain label mixing scripts is refused
//! (UTS #39's "highly restrictive" level: one script, or Latin with the Han-based
//! combinations of Japanese, Chinese and Korean).

use unicode_normalization::UnicodeNormalization;
use unicode_security::{RestrictionLevel, RestrictionLevelDetection};

use crate::error::{Error, Result};
use crate::text;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Whether a piece of an address (a local part, a domain label) is at UTS #39's "highly
/// restrictive" level: every character allowed in identifiers (no symbols, no invisible
/// format characters), and one script, or Latin with the Han-based combinations of
/// Japanese, Chinese and Korean. ASCII punctuation (`.`, `-`, `+`, `_`) is left out of the
/// check: it belongs to no script and addresses use it.
fn highly_restrictive(part: &str) -> bool {
    let letters: String = part.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    letters.as_str().detect_restriction_level() <= RestrictionLevel::HighlyRestrictive
}

/// Trims, strips invisible characters, case-folds and NFKC-normalises an email, then
/// checks it has a plausible shape and no look-alike mixing of scripts. Deliverability is
/// what verification mail is for; this only keeps garbage and ambiguity out.
pub fn normalize_email(raw: &str) -> Result<String> {
    let visible = text::without_ignorables(raw);
    // NFKC first (ℂ, 𝐀 and ℌ become letters), then case-fold, then NFKC again (folding
    // can leave a string that is not in normal form).
    let compatible: String = visible.nfkc().collect();
    let email: String = compatible.to_lowercase().nfkc().collect();
    let email = email.trim().to_string();
    let bad = || {
        Error::invalid(
            "invalid_email",
            "email must look like name@domain (at most 254 characters)",
        )
    };
    if email.is_empty() || email.len() > 254 {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.is_empty()
        || domain.contains('@')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
        || email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c))
    {
        return Err(bad());
    }
    if !highly_restrictive(local) || !domain.split('.').all(highly_restrictive) {
        return Err(Error::invalid(
            "invalid_email",
            "email mixes writing systems (for example Latin and Cyrillic letters) or holds symbols or invisible characters, which makes look-alike addresses",
        ));
    }
    Ok(email)
}

/// 8 to 1024 characters (Unicode scalar values); anything else goes.
pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            "password_too_short",
            format!("password must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(Error::invalid(
            "password_too_long",
            format!("password must have at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_case_folded() {
        assert_eq!(
            normalize_email("  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
    }

    #[test]
    fn look_alikes_have_one_spelling_or_are_refused() {
        for (raw, want) in [
            ("ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "alice@example.com"),
            ("ali\u{200B}ce@example.com", "alice@example.com"),
            ("alice\u{00AD}@exam\u{FEFF}ple.com", "alice@example.com"),
            ("\u{2060}ALICE@EXAMPLE.COM", "alice@example.com"),
            ("ǆ@example.com", "dž@example.com"),
            ("zoë@example.com", "zoë@example.com"),
            ("zoe\u{0308}@example.com", "zoë@example.com"),
            ("иван@пример.рф", "иван@пример.рф"),
            ("ivan@пример.рф", "ivan@пример.рф"),
            ("田中tanaka@example.jp", "田中tanaka@example.jp"),
            ("たなか田中@例え.jp", "たなか田中@例え.jp"),
            // Compatibility letters become the letters they stand for, in lower case.
            ("admin@EXAMPLE.\u{2102}om", "admin@example.com"),
            ("\u{1D400}dmin@example.com", "admin@example.com"),
            ("\u{210C}ello@example.com", "hello@example.com"),
        ] {
            assert_eq!(normalize_email(raw).unwrap(), want, "{raw}");
        }
        for mixed in [
            "\u{0430}dmin@example.com",
            "admin@ex\u{0430}mple.com",
            "p\u{0430}ypal@example.com",
            "αlpha@example.com",
            "admin\u{FFF9}@example.com",
            "admin\u{2764}@example.com",
        ] {
            let e = normalize_email(mixed).unwrap_err();
            assert_eq!(e.code(), "invalid_email", "{mixed}");
        }
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "a b@c.d",
            "a@.com",
            "a@b..c",
            "a@b.",
            "<a>@b.c",
        ] {
            assert_eq!(
                normalize_email(bad).unwrap_err().code(),
                "invalid_email",
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_are_checked_by_length_only() {
        assert_eq!(
            check_password("short").unwrap_err().code(),
            "password_too_short"
        );
        assert!(check_password("eightchr").is_ok());
        assert!(check_password("пароль-пароль").is_ok());
        assert!(
            check_password("🔑🔑🔑🔑🔑🔑🔑🔑").is_ok(),
            "characters, not bytes"
        );
        assert!(check_password(&"x".repeat(1024)).is_ok());
        assert_eq!(
            check_password(&"x".repeat(1025)).unwrap_err().code(),
            "password_too_long"
        );
    }
}
