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
use unicode_script::{Script, UnicodeScript};

use crate::error::{Error, Result};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties): invisible, so two
/// addresses differing only in them look identical.
const DEFAULT_IGNORABLE: [(char, char); 17] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

fn is_default_ignorable(c: char) -> bool {
    DEFAULT_IGNORABLE
        .iter()
        .any(|(lo, hi)| (*lo..=*hi).contains(&c))
}

/// Whether a piece of an address (a local part, a domain label) uses one script, Common
/// and Inherited characters (digits, punctuation, combining marks) aside, or one of the
/// combinations a single language writes with.
fn single_script(part: &str) -> bool {
    let mut scripts: Vec<Script> = Vec::new();
    for s in part.chars().map(|c| c.script()) {
        if !matches!(s, Script::Common | Script::Inherited | Script::Unknown)
            && !scripts.contains(&s)
        {
            scripts.push(s);
        }
    }
    if scripts.len() <= 1 {
        return true;
    }
    const LANGUAGES: [&[Script]; 3] = [
        &[
            Script::Latin,
            Script::Han,
            Script::Hiragana,
            Script::Katakana,
        ],
        &[Script::Latin, Script::Han, Script::Bopomofo],
        &[Script::Latin, Script::Han, Script::Hangul],
    ];
    LANGUAGES
        .iter()
        .any(|allowed| scripts.iter().all(|s| allowed.contains(s)))
}

/// Trims, strips invisible characters, case-folds and NFKC-normalises an email, then
/// checks it has a plausible shape and no look-alike mixing of scripts. Deliverability is
/// what verification mail is for; this only keeps garbage and ambiguity out.
pub fn normalize_email(raw: &str) -> Result<String> {
    let visible: String = raw.chars().filter(|c| !is_default_ignorable(*c)).collect();
    let email: String = visible.trim().to_lowercase().nfkc().collect();
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
    if !single_script(local) || !domain.split('.').all(single_script) {
        return Err(Error::invalid(
            "invalid_email",
            "email mixes writing systems (for example Latin and Cyrillic letters), which makes look-alike addresses",
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
        ] {
            assert_eq!(normalize_email(raw).unwrap(), want, "{raw}");
        }
        for mixed in [
            "\u{0430}dmin@example.com",
            "admin@ex\u{0430}mple.com",
            "p\u{0430}ypal@example.com",
            "αlpha@example.com",
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
