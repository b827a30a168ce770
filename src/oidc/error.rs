//! OAuth 2.0 errors as the protocol names them (RFC 6749 §4.1.2.1 and §5.2, OIDC Core
//! §3.1.2.6, RFC 7009, RFC 7662), free of HTTP: the handlers choose the status and
//! whether the error goes back in a redirect or in a JSON body.

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The registered error code (`invalid_grant`, `login_required`, …).
    pub code: &'static str,
    /// Human-readable; never names a secret or tells which of several checks failed
    /// when that would help an attacker.
    pub description: String,
}

macro_rules! codes {
    ($($fn:ident => $code:literal),* $(,)?) => {
        impl OAuthError {
            $(
                pub fn $fn(description: impl Into<String>) -> OAuthError {
                    OAuthError { code: $code, description: description.into() }
                }
            )*
        }
    };
}

codes! {
    invalid_request => "invalid_request",
    invalid_client => "invalid_client",
    invalid_grant => "invalid_grant",
    unauthorized_client => "unauthorized_client",
    unsupported_grant_type => "unsupported_grant_type",
    invalid_scope => "invalid_scope",
    access_denied => "access_denied",
    unsupported_response_type => "unsupported_response_type",
    server_error => "server_error",
    temporarily_unavailable => "temporarily_unavailable",
    login_required => "login_required",
    consent_required => "consent_required",
    request_not_supported => "request_not_supported",
    request_uri_not_supported => "request_uri_not_supported",
    invalid_token => "invalid_token",
    insufficient_scope => "insufficient_scope",
    // OpenID Connect Core 1.0 errata set 2 §3.1.2.6: the acr the client requires cannot
    // be reached (the account has no second factor).
    unmet_authentication_requirements => "unmet_authentication_requirements",
    // RFC 8707 §2: the `resource` is not one this server issues tokens for.
    invalid_target => "invalid_target",
    // RFC 8628 §3.5: the device must keep polling, slow down, or start again.
    authorization_pending => "authorization_pending",
    slow_down => "slow_down",
    expired_token => "expired_token",
    // RFC 7591 §3.2.2.
    invalid_redirect_uri => "invalid_redirect_uri",
    invalid_client_metadata => "invalid_client_metadata",
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> OAuthError {
        match e {
            Error::Unavailable(source) => {
                tracing::error!(error = %source, "storage unavailable");
                OAuthError::temporarily_unavailable("the service is temporarily unavailable")
            }
            Error::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                OAuthError::server_error("internal error")
            }
            Error::Invalid { detail, .. } => OAuthError::invalid_request(detail),
            Error::InvalidRefreshToken | Error::RefreshTokenReused | Error::AccountDisabled => {
                OAuthError::invalid_grant(e.to_string())
            }
            other => OAuthError::invalid_grant(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> OAuthError {
        Error::from(e).into()
    }
}
