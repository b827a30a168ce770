//! The domain error: what can go wrong in identity and session logic, free of HTTP.
//!
//! Each variant has a stable machine-readable [`Error::code`]; the HTTP layer
//! (`http::problem`) decides the status code and renders RFC 9457 problem+json.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that fails validation; `code` names the rule (e.g. `invalid_email`).
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    #[error("an account with this email already exists")]
    EmailTaken,
    /// Wrong password or unknown email: deliberately indistinguishable.
    #[error("the email or password is incorrect")]
    InvalidCredentials,
    #[error("the account is disabled")]
    AccountDisabled,
    /// Too many failed sign-ins: this account is locked for this client for a while.
    #[error("too many failed sign-in attempts; try again later")]
    Locked { retry_after_secs: i64 },
    /// `mail.require_verification` is on and the address is not verified yet.
    #[error("the email address is not verified yet")]
    EmailNotVerified,
    #[error("no credentials were presented")]
    Unauthenticated,
    #[error("the access token is invalid")]
    InvalidToken,
    #[error("the access token has expired")]
    TokenExpired,
    #[error("the session has been revoked")]
    SessionRevoked,
    #[error("the refresh token is invalid or expired")]
    InvalidRefreshToken,
    /// A spent refresh token came back after its grace window: the session was revoked.
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    /// The session must be raised first (RFC 9470): a second factor when `mfa`, within
    /// `max_age` seconds when given.
    #[error("a more recent or stronger sign-in is required")]
    StepUpRequired { mfa: bool, max_age: Option<u64> },
    /// `[admin] require_mfa`: an administrator must set up a second factor first.
    #[error("administrators must set up a second factor first (POST /auth/mfa/totp)")]
    MfaEnrolmentRequired,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Error {
        Error::Invalid {
            code,
            detail: detail.into(),
        }
    }

    /// The stable code clients and tests match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. } => code,
            Error::EmailTaken => "email_taken",
            Error::InvalidCredentials => "invalid_credentials",
            Error::AccountDisabled => "account_disabled",
            Error::Locked { .. } => "too_many_attempts",
            Error::EmailNotVerified => "email_not_verified",
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidToken => "invalid_token",
            Error::TokenExpired => "token_expired",
            Error::SessionRevoked => "session_revoked",
            Error::InvalidRefreshToken => "invalid_refresh_token",
            Error::RefreshTokenReused => "refresh_token_reused",
            Error::StepUpRequired { .. } => "mfa_required",
            Error::MfaEnrolmentRequired => "mfa_enrolment_required",
            Error::NotFound(_) => "not_found",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::Conflict => Error::Internal("unexpected uniqueness conflict".into()),
            other => Error::Unavailable(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
