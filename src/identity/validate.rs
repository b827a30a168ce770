//! Input rules for accounts: email normalisation and the NIST SP 800-63B password rule
//! (length only, no composition rules).

use crate::error::{Error, Result};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Trims and case-folds an email, then checks it has a plausible shape. Deliverability
/// is what verification mail is for; this only keeps garbage and ambiguity out.
pub fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
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
