//! The password policy (NIST SP 800-63B §5.1.1.2): length, not the account's own email,
//! not a commonly used password, and — when a breach corpus is configured — not a
//! password known from breaches. No composition rules.
//!
//! The common list ships in the binary (`data/common-passwords.txt`, compared without
//! regard to case). The breach check uses a k-anonymity range API (the Pwned Passwords
//! protocol): only the first five hex digits of the password's SHA-1 leave the process,
//! and the answer lists suffixes. If the service cannot be reached in time the check is
//! skipped and logged: an outage elsewhere must not stop people from choosing passwords.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use aws_lc_rs::digest;

use super::validate::check_password;
use crate::error::{Error, Result};
use crate::outbound::Outbound;

const COMMON: &str = include_str!("../../data/common-passwords.txt");
/// A range answer is a few hundred lines; more than this is not one.
const MAX_RANGE_BYTES: usize = 2 * 1024 * 1024;

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().filter(|l| !l.is_empty()).collect())
}

pub struct PasswordPolicy {
    refuse_common: bool,
    breach: Option<(String, Duration, Outbound)>,
}

impl PasswordPolicy {
    pub fn new(
        refuse_common: bool,
        breach_api: Option<String>,
        timeout: Duration,
        client: Outbound,
    ) -> PasswordPolicy {
        PasswordPolicy {
            refuse_common,
            breach: breach_api.map(|u| (u, timeout, client)),
        }
    }

    /// Checks a new password for the account `email`.
    pub async fn check(&self, password: &str, email: &str) -> Result<()> {
        check_password(password)?;
        if password.trim().eq_ignore_ascii_case(email.trim()) {
            return Err(Error::invalid(
                "password_equals_email",
                "the password must not be the account's email address",
            ));
        }
        if self.refuse_common && common().contains(password.to_lowercase().as_str()) {
            return Err(Error::invalid(
                "password_too_common",
                "this password is among the most commonly used ones; choose another",
            ));
        }
        if let Some((api, timeout, client)) = &self.breach {
            match tokio::time::timeout(*timeout, breached(api, client, password)).await {
                Ok(Ok(true)) => {
                    return Err(Error::invalid(
                        "password_breached",
                        "this password appears in known data breaches; choose another",
                    ));
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "breached-password check skipped"),
                Err(_) => tracing::warn!("breached-password check timed out; skipped"),
            }
        }
        Ok(())
    }
}

/// Asks the range API whether the password's SHA-1 is listed.
async fn breached(
    api: &str,
    client: &Outbound,
    password: &str,
) -> std::result::Result<bool, String> {
    let sha1: String = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let (prefix, suffix) = sha1.split_at(5);
    let uri = format!("{}{prefix}", api);
    let req = http::Request::get(uri)
        .header(http::header::USER_AGENT, "tollgate")
        .header("add-padding", "true")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let res = client
        .fetch(req, MAX_RANGE_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("range API answered {}", res.status()));
    }
    let body = res.into_body();
    let text = String::from_utf8_lossy(&body);
    Ok(text.lines().any(|line| {
        line.split_once(':').is_some_and(|(s, count)| {
            s.trim().eq_ignore_ascii_case(suffix)
                && count.trim().parse::<u64>().is_ok_and(|n| n > 0)
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn common_and_email_passwords_are_refused() {
        let client = Outbound::new(Default::default()).unwrap();
        let p = PasswordPolicy::new(true, None, Duration::from_secs(1), client);
        let code = |pw: &str| {
            let p = &p;
            let pw = pw.to_string();
            async move {
                p.check(&pw, "alice@example.com")
                    .await
                    .err()
                    .map(|e| e.code())
            }
        };
        assert_eq!(code("password").await, Some("password_too_common"));
        assert_eq!(
            code("PassWord").await,
            Some("password_too_common"),
            "any case"
        );
        assert_eq!(code("iloveyou").await, Some("password_too_common"));
        assert_eq!(
            code("Alice@Example.com").await,
            Some("password_equals_email")
        );
        assert_eq!(code("short").await, Some("password_too_short"));
        assert_eq!(code("correct horse battery staple").await, None);
        assert!(common().len() > 10_000);
    }
}
