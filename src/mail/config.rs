//! `[mail]` and `[smtp]` as written, and their resolution into [`MailConfig`].

use std::path::PathBuf;

use serde::Deserialize;

use super::{MailConfig, SmtpConfig, SmtpTls};
use crate::config::values::{ConfigError, DurationValue, SectionDuration, invalid, secret_from};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
    pub from: Option<String>,
    pub require_verification: Option<bool>,
    pub templates_dir: Option<String>,
    pub verify_url: Option<String>,
    pub reset_url: Option<String>,
    pub email_change_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    pub host: String,
    pub port: Option<u16>,
    pub tls: Option<SmtpTls>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub timeout: Option<DurationValue>,
}

pub fn resolve(
    m: MailSection,
    smtp: Option<SmtpSection>,
    public_url: &str,
    duration: SectionDuration<'_>,
) -> Result<MailConfig, ConfigError> {
    let from = m.from.unwrap_or("Tollgate <no-reply@localhost>".into());
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(invalid(
            "mail.from",
            "a mailbox like 'Name <addr@example.com>'",
            &from,
        ));
    }
    for (key, v) in [
        ("mail.verify_url", &m.verify_url),
        ("mail.reset_url", &m.reset_url),
        ("mail.email_change_url", &m.email_change_url),
    ] {
        if let Some(u) = v
            && (!u.contains("{token}") || url::Url::parse(&u.replace("{token}", "t")).is_err())
        {
            return Err(invalid(key, "an absolute URL containing {token}", u));
        }
    }
    let smtp = match smtp {
        None => None,
        Some(s) => {
            let password = secret_from(
                "smtp",
                "password",
                s.password_env.as_deref(),
                s.password_file.as_deref(),
                &|k: &str| std::env::var(k).ok(),
            )
            .map_err(ConfigError)?;
            if s.host.is_empty() {
                return Err(invalid("smtp.host", "a host name", ""));
            }
            let tls = s.tls.unwrap_or(SmtpTls::Starttls);
            Some(SmtpConfig {
                port: s.port.unwrap_or(match tls {
                    SmtpTls::Tls => 465,
                    SmtpTls::Starttls => 587,
                    SmtpTls::None => 25,
                }),
                host: s.host,
                tls,
                username: s.username,
                password: password.map(crate::mail::SmtpPassword),
                timeout: duration("smtp.timeout", s.timeout, "10s", false)?,
            })
        }
    };
    Ok(MailConfig {
        from,
        require_verification: m.require_verification.unwrap_or(false),
        templates_dir: m.templates_dir.map(PathBuf::from),
        // The hosted pages, unless the app has its own.
        verify_url: m
            .verify_url
            .unwrap_or_else(|| format!("{public_url}/ui/verify?token={{token}}")),
        reset_url: m
            .reset_url
            .unwrap_or_else(|| format!("{public_url}/ui/reset?token={{token}}")),
        email_change_url: m
            .email_change_url
            .unwrap_or_else(|| format!("{public_url}/ui/confirm-email?token={{token}}")),
        pages_url: format!("{public_url}/ui"),
        smtp,
    })
}
