//! Outgoing mail: verification, password reset and email-change messages.
//!
//! Messages are rendered from plain-text templates (built in, or `<kind>.txt` files in
//! `mail.templates_dir`; the first line is `Subject: …`, then a blank line, then the body,
//! with `{{email}}`, `{{token}}`, `{{link}}`, `{{duration}}` (in words: "24 hours"),
//! `{{minutes}}` and `{{pages}}` (the hosted pages' base URL) filled in). Links go to the
//! hosted pages (`/ui/verify`, `/ui/reset`, `/ui/confirm-email` under the public URL)
//! unless `[mail]` names the app's own; the code is always in the message too. With `[smtp]`
//! configured they are sent over SMTP (lettre; STARTTLS, implicit TLS, or plain for a
//! local relay); without it, each message is written as one `.eml` file to
//! `<data dir>/outbox/` — the zero-configuration default, so a fresh install can complete
//! every flow. The token always sits on a line of its own, so it survives any transfer
//! encoding.

pub mod config;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct MailConfig {
    pub from: String,
    /// Sign-in is refused until the address is verified.
    pub require_verification: bool,
    pub templates_dir: Option<PathBuf>,
    /// Links put in messages (`{token}` is replaced).
    pub verify_url: String,
    pub reset_url: String,
    pub email_change_url: String,
    /// `<public URL>/ui`, for links to the sign-in and reset pages.
    pub pages_url: String,
    pub smtp: Option<SmtpConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Upgrade with STARTTLS; refuse a server that does not offer it.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

/// A password that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct SmtpPassword(pub String);

impl std::fmt::Debug for SmtpPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SmtpPassword>,
    pub timeout: Duration,
}

/// Which message to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Verify,
    Reset,
    EmailChange,
    /// To the old address, after a change.
    EmailChanged,
    /// To an address someone tried to sign up with again (the sign-up page answers the
    /// same for new and known addresses).
    AccountExists,
    /// To the owner, after a change to the account's second factors (`{{change}}`).
    SecondFactors,
    /// To someone an administrator created an account for: a code to choose a password.
    Invitation,
}

impl Template {
    fn name(self) -> &'static str {
        match self {
            Template::Verify => "verify",
            Template::Reset => "reset",
            Template::EmailChange => "email_change",
            Template::EmailChanged => "email_changed",
            Template::AccountExists => "account_exists",
            Template::SecondFactors => "second_factors",
            Template::Invitation => "invitation",
        }
    }

    fn builtin(self) -> &'static str {
        match self {
            Template::Verify => include_str!("templates/verify.txt"),
            Template::Reset => include_str!("templates/reset.txt"),
            Template::EmailChange => include_str!("templates/email_change.txt"),
            Template::EmailChanged => include_str!("templates/email_changed.txt"),
            Template::AccountExists => include_str!("templates/account_exists.txt"),
            Template::SecondFactors => include_str!("templates/second_factors.txt"),
            Template::Invitation => include_str!("templates/invitation.txt"),
        }
    }
}

/// A duration in words, for people: "24 hours", "30 minutes", "1 hour", "2 days".
pub fn in_words(minutes: u64) -> String {
    let (n, unit) = if minutes >= 2 * 24 * 60 && minutes.is_multiple_of(24 * 60) {
        (minutes / (24 * 60), "day")
    } else if minutes >= 60 && minutes.is_multiple_of(60) {
        (minutes / 60, "hour")
    } else {
        (minutes, "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// What a template can say.
pub struct Vars<'a> {
    pub email: &'a str,
    pub token: &'a str,
    pub minutes: u64,
    /// What changed, in words (`second_factors`).
    pub change: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid address: {0}")]
    Address(String),
    #[error("template {0}: {1}")]
    Template(&'static str, String),
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("cannot write to the outbox: {0}")]
    Outbox(#[from] std::io::Error),
    #[error("SMTP: {0}")]
    Smtp(String),
}

enum Transport {
    Outbox(PathBuf),
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
}

pub struct Mailer {
    config: MailConfig,
    from: Mailbox,
    transport: Transport,
}

impl Mailer {
    pub fn new(config: MailConfig, data_dir: &Path) -> Result<Mailer, MailError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| MailError::Address(format!("{}: {e}", config.from)))?;
        let transport = match &config.smtp {
            None => Transport::Outbox(data_dir.join("outbox")),
            Some(s) => Transport::Smtp(Box::new(smtp_transport(s)?)),
        };
        Ok(Mailer {
            config,
            from,
            transport,
        })
    }

    /// Whether messages only go to the local outbox (no `[smtp]`).
    pub fn is_outbox(&self) -> bool {
        matches!(self.transport, Transport::Outbox(_))
    }

    /// Where messages go, for the start-up log.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Outbox(dir) => format!("outbox {}", dir.display()),
            Transport::Smtp(_) => {
                let s = self.config.smtp.as_ref().map(|s| (s.host.as_str(), s.port));
                format!("smtp {:?}", s.unwrap_or_default())
            }
        }
    }

    /// Renders and sends one message.
    pub async fn send(
        &self,
        template: Template,
        to: &str,
        vars: &Vars<'_>,
    ) -> Result<(), MailError> {
        let (subject, body) = self.render(template, vars)?;
        let to: Mailbox = to
            .parse()
            .map_err(|e| MailError::Address(format!("{to}: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.transport {
            Transport::Outbox(dir) => write_outbox(dir, &message.formatted()).await,
            Transport::Smtp(t) => t
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Smtp(e.to_string())),
        }
    }

    fn render(&self, template: Template, vars: &Vars<'_>) -> Result<(String, String), MailError> {
        let text = match &self.config.templates_dir {
            Some(dir) => {
                let path = dir.join(format!("{}.txt", template.name()));
                match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        template.builtin().to_string()
                    }
                    Err(e) => return Err(MailError::Template(template.name(), e.to_string())),
                }
            }
            None => template.builtin().to_string(),
        };
        let link_template = match template {
            Template::Verify => Some(&self.config.verify_url),
            Template::Reset | Template::Invitation => Some(&self.config.reset_url),
            Template::EmailChange => Some(&self.config.email_change_url),
            Template::EmailChanged | Template::AccountExists | Template::SecondFactors => None,
        };
        let link = link_template
            .map(|u| u.replace("{token}", vars.token))
            .unwrap_or_default();
        let filled = text
            .replace("{{email}}", vars.email)
            .replace("{{token}}", vars.token)
            .replace("{{minutes}}", &vars.minutes.to_string())
            .replace("{{duration}}", &in_words(vars.minutes))
            .replace("{{change}}", vars.change)
            .replace("{{pages}}", &self.config.pages_url)
            .replace("{{link}}", &link);
        let (first, body) = filled.split_once('\n').unwrap_or((&filled, ""));
        let subject = first.strip_prefix("Subject:").ok_or_else(|| {
            MailError::Template(
                template.name(),
                "the first line must be 'Subject: …'".into(),
            )
        })?;
        Ok((
            subject.trim().to_string(),
            body.trim_start_matches('\n').to_string(),
        ))
    }
}

fn smtp_transport(s: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let builder = match s.tls {
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &s.host,
        )),
    }
    .map_err(|e| MailError::Smtp(e.to_string()))?;
    let mut builder = builder.port(s.port).timeout(Some(s.timeout));
    if let (Some(user), Some(pass)) = (&s.username, &s.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.0.clone()));
    }
    Ok(builder.build())
}

/// One file per message, written under a temporary name and renamed, so a reader never
/// sees half a message. Messages carry live codes: only the owner may read them.
async fn write_outbox(dir: &Path, bytes: &[u8]) -> Result<(), MailError> {
    use tokio::io::AsyncWriteExt;
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await?;
    let name = format!("{}-{}.eml", crate::clock::now_ms(), uuid::Uuid::new_v4());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut file = opts.open(&tmp).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    tokio::fs::rename(&tmp, dir.join(name)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::in_words;

    #[test]
    fn durations_read_as_a_person_would_say_them() {
        for (minutes, words) in [
            (1, "1 minute"),
            (30, "30 minutes"),
            (60, "1 hour"),
            (90, "90 minutes"),
            (24 * 60, "24 hours"),
            (2 * 24 * 60, "2 days"),
            (7 * 24 * 60 + 60, "169 hours"),
        ] {
            assert_eq!(in_words(minutes), words, "{minutes}");
        }
    }
}
