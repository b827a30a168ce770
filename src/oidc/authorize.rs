//! The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1): its validation, the
//! decision of what the browser must do next, and the reply sent back to the client.
//!
//! Validation follows RFC 6749 §4.1.2.1: until the client and its exact redirect URI are
//! known, errors are shown to the user and never redirected (no open redirector); after
//! that they go back to the client, with `state` and `iss` (RFC 9207).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::clients::AUTHORIZATION_CODE;
use super::error::OAuthError;
use super::{pkce, scope};
use crate::store::ClientRecord;

/// The longest `state`/`nonce` accepted: they travel in URLs and signed flow tokens.
const MAX_OPAQUE: usize = 1024;

/// Where the client wants the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// A validated authorization request, waiting for the user to sign in or consent. It
/// travels between the hosted pages inside a signed flow token (`flow.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub client_id: String,
    pub redirect_uri: String,
    /// What the client asked for (all of it registered for the client).
    pub scope: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    pub response_mode: ResponseMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// When the request arrived: `prompt=login` and `max_age` are judged against it.
    pub requested_at: i64,
    /// The session the user signed in with during this very request, which satisfies
    /// `prompt=login` and `max_age` whatever the clock says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in_as: Option<String>,
    /// `acr_values` accepts only `2`: the session must have passed a second factor.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub second_factor: bool,
    /// The protected resource the tokens are for (RFC 8707), checked to be one of ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

impl Pending {
    fn prompts(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }
}

/// Why an authorization request is refused, and to whom it is told.
#[derive(Debug)]
pub enum AuthorizeRefusal {
    /// The client or redirect URI cannot be trusted: show the user, never redirect.
    Untrusted(OAuthError),
    /// Tell the client through its redirect URI.
    ToClient(Reply),
}

/// An answer to the client: its redirect URI, how to deliver, and the parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub params: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn code(p: &Pending, code: String, issuer: &str) -> Reply {
        Reply::to(p, vec![("code", code)], issuer)
    }

    pub fn error(p: &Pending, e: &OAuthError, issuer: &str) -> Reply {
        Reply::to(
            p,
            vec![
                ("error", e.code.to_string()),
                ("error_description", e.description.clone()),
            ],
            issuer,
        )
    }

    fn to(p: &Pending, mut params: Vec<(&'static str, String)>, issuer: &str) -> Reply {
        if let Some(s) = &p.state {
            params.push(("state", s.clone()));
        }
        params.push(("iss", issuer.to_string()));
        Reply {
            redirect_uri: p.redirect_uri.clone(),
            mode: p.response_mode,
            params,
        }
    }

    /// The redirect URI with the parameters added to its query (RFC 6749 §4.1.2).
    pub fn location(&self) -> String {
        let mut url = self.redirect_uri.clone();
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query);
        url
    }
}

/// `state` and `nonce`: RFC 6749 Appendix A VSCHARs (printable ASCII), bounded.
fn opaque_ok(value: &str) -> bool {
    value.len() <= MAX_OPAQUE && value.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Query or form parameters, each at most once (RFC 6749 §3.1); `Err` names a repeated
/// one when it is a plausible parameter name. The error is shown on a page of ours, so
/// a name that is really a sentence someone wants us to display is not echoed.
pub fn parse_params(raw: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            let plausible = (1..=MAX_PARAM_NAME).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            return Err(if plausible {
                format!("parameter '{k}' is repeated")
            } else {
                "a parameter is repeated".to_string()
            });
        }
    }
    Ok(out)
}

/// The longest parameter name an error message repeats (OAuth's are shorter).
const MAX_PARAM_NAME: usize = 32;

/// A `resource` parameter (RFC 8707 §2): an absolute URI without a fragment, naming one
/// of the protected resources (`known`); a trailing slash is not a different resource.
pub fn resource_indicator(raw: &str, known: &dyn Fn(&str) -> bool) -> Result<String, OAuthError> {
    let parsed = url::Url::parse(raw)
        .ok()
        .filter(|u| u.fragment().is_none() && u.has_host());
    if parsed.is_none() {
        return Err(OAuthError::invalid_target(
            "resource must be an absolute URI without a fragment",
        ));
    }
    let trimmed = raw.trim_end_matches('/');
    if known(trimmed) {
        Ok(trimmed.to_string())
    } else {
        Err(OAuthError::invalid_target(
            "resource is not a protected resource of this server",
        ))
    }
}

/// Whether a `resource` parameter names `bound` (a trailing slash makes no difference).
pub fn same_resource(asked: &str, bound: Option<&str>) -> bool {
    Some(asked.trim_end_matches('/')) == bound
}

/// Validates an authorization request against its client (`None`: unknown client);
/// `known_resource` says whether a `resource` is one of the protected resources.
pub fn validate(
    params: &HashMap<String, String>,
    client: Option<&ClientRecord>,
    require_pkce: bool,
    issuer: &str,
    now: i64,
    known_resource: &dyn Fn(&str) -> bool,
) -> Result<Pending, AuthorizeRefusal> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let untrusted = |d: &str| Err(AuthorizeRefusal::Untrusted(OAuthError::invalid_request(d)));
    if get("client_id").is_none() {
        return untrusted("client_id is missing");
    }
    let Some(client) = client else {
        return Err(AuthorizeRefusal::Untrusted(OAuthError::invalid_client(
            "unknown client",
        )));
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return untrusted(
            "redirect_uri is missing (it is required, and must match a registered URI exactly)",
        );
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return untrusted("redirect_uri does not match any URI registered for this client");
    }

    // From here on the client is told, at its redirect URI, in the mode it asked for when
    // that mode is one we know.
    let response_mode = match get("response_mode") {
        None | Some("query") => Some(ResponseMode::Query),
        Some("form_post") => Some(ResponseMode::FormPost),
        Some(_) => None,
    };
    let mut pending = Pending {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_string(),
        scope: Vec::new(),
        state: get("state").map(str::to_string),
        nonce: get("nonce").map(str::to_string),
        code_challenge: None,
        response_mode: response_mode.unwrap_or(ResponseMode::Query),
        prompt: Vec::new(),
        max_age: None,
        requested_at: now,
        signed_in_as: None,
        second_factor: false,
        resource: None,
    };
    let refuse = |pending: &Pending, e: OAuthError| {
        Err(AuthorizeRefusal::ToClient(Reply::error(
            pending, &e, issuer,
        )))
    };
    if pending.state.as_deref().is_some_and(|s| !opaque_ok(s)) {
        pending.state = None;
        return refuse(
            &pending,
            OAuthError::invalid_request("state must be at most 1024 printable ASCII characters"),
        );
    }
    if response_mode.is_none() {
        return refuse(
            &pending,
            OAuthError::invalid_request("response_mode must be query or form_post"),
        );
    }
    if get("request").is_some() {
        return refuse(
            &pending,
            OAuthError::request_not_supported("request objects are not supported"),
        );
    }
    if get("request_uri").is_some() {
        return refuse(
            &pending,
            OAuthError::request_uri_not_supported("request_uri is not supported"),
        );
    }
    match get("response_type") {
        Some("code") => {}
        None => {
            return refuse(
                &pending,
                OAuthError::invalid_request("response_type is missing"),
            );
        }
        Some(_) => {
            return refuse(
                &pending,
                OAuthError::unsupported_response_type("only response_type=code is supported"),
            );
        }
    }
    if !client.allows_grant(AUTHORIZATION_CODE) {
        return refuse(
            &pending,
            OAuthError::unauthorized_client("this client may not use the authorization code flow"),
        );
    }
    let scopes = match scope::parse(get("scope")) {
        Ok(s) => s,
        Err(e) => return refuse(&pending, e),
    };
    if let Err(e) = scope::check_allowed(&scopes, &client.scopes) {
        return refuse(&pending, e);
    }
    pending.scope = scopes;
    if pending.nonce.as_deref().is_some_and(|n| !opaque_ok(n)) {
        return refuse(
            &pending,
            OAuthError::invalid_request("nonce must be at most 1024 printable ASCII characters"),
        );
    }
    match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) if client.is_public() || require_pkce => {
            return refuse(
                &pending,
                OAuthError::invalid_request(
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                ),
            );
        }
        (None, None) => {}
        (Some(c), Some("S256")) if pkce::valid_challenge(c) => {
            pending.code_challenge = Some(c.to_string());
        }
        (Some(_), Some("S256")) => {
            return refuse(
                &pending,
                OAuthError::invalid_request(
                    "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
                ),
            );
        }
        (Some(_), None) | (Some(_), Some(_)) | (None, Some(_)) => {
            return refuse(
                &pending,
                OAuthError::invalid_request(
                    "code_challenge_method must be S256, with a code_challenge",
                ),
            );
        }
    }
    let prompt: Vec<String> = get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = prompt
        .iter()
        .find(|p| !matches!(p.as_str(), "none" | "login" | "consent" | "select_account"))
    {
        let bad = bad.chars().take(32).collect::<String>();
        return refuse(
            &pending,
            OAuthError::invalid_request(format!("unknown prompt value '{bad}'")),
        );
    }
    if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
        return refuse(
            &pending,
            OAuthError::invalid_request("prompt=none cannot be combined with other values"),
        );
    }
    pending.prompt = prompt;
    if let Some(raw) = get("max_age") {
        match raw.parse::<i64>() {
            Ok(n) if n >= 0 => pending.max_age = Some(n),
            _ => {
                return refuse(
                    &pending,
                    OAuthError::invalid_request("max_age must be a non-negative integer"),
                );
            }
        }
    }
    if let Some(r) = get("resource") {
        match resource_indicator(r, known_resource) {
            Ok(r) => pending.resource = Some(r),
            Err(e) => return refuse(&pending, e),
        }
    }
    // The weakest level the client accepts decides, and is enforced (as Keycloak maps
    // acr values to levels of authentication): `2` alone asks for a second factor.
    // Values not in `acr_values_supported` are ignored.
    if let Some(raw) = get("acr_values") {
        let known: Vec<&str> = raw.split(' ').filter(|v| matches!(*v, "1" | "2")).collect();
        pending.second_factor = !known.is_empty() && known.iter().all(|v| *v == "2");
    }
    Ok(pending)
}

/// The signed-in browser, as its session cookie shows it.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub session_id: String,
    pub user_id: String,
    pub auth_time: i64,
    /// Space-separated (RFC 8176).
    pub amr: String,
    /// What the user's roles grant.
    pub scopes: Vec<String>,
}

/// What the browser must do next.
#[derive(Debug, PartialEq)]
pub enum Step {
    SignIn,
    /// Ask the user to allow these scopes.
    Consent {
        scopes: Vec<String>,
    },
    /// Issue a code for these scopes.
    Issue {
        scopes: Vec<String>,
    },
    /// Tell the client (`prompt=none` could not be honoured).
    Refuse(OAuthError),
}

/// Decides the next step of a pending authorization. `consent` is what the user allowed
/// the client before; `consented_now` says the user has just answered the consent page.
pub fn next_step(
    p: &Pending,
    client: &ClientRecord,
    session: Option<&BrowserSession>,
    consent: Option<&[String]>,
    consented_now: bool,
) -> Step {
    let silent = p.prompts("none");
    let strong_enough =
        |s: &BrowserSession| !p.second_factor || crate::oidc::id_token::acr_for(&s.amr) == "2";
    if let Some(s) = session
        && p.signed_in_as.as_deref() == Some(s.session_id.as_str())
        && !strong_enough(s)
    {
        // Signed in during this request and still no second factor: the account has
        // none (a sign-in of an account with one always asks for it).
        return Step::Refuse(OAuthError::unmet_authentication_requirements(
            "acr_values=2 asks for a second factor, and this account has none",
        ));
    }
    let session = session.filter(|s| {
        if !strong_enough(s) {
            return false;
        }
        if p.signed_in_as.as_deref() == Some(s.session_id.as_str()) {
            return true;
        }
        let reauth = p.prompts("login") || p.prompts("select_account");
        let fresh_enough = p
            .max_age
            .is_none_or(|max| s.auth_time >= p.requested_at - max);
        (!reauth || s.auth_time > p.requested_at) && fresh_enough
    });
    let Some(session) = session else {
        return if silent {
            Step::Refuse(OAuthError::login_required("the user must sign in"))
        } else {
            Step::SignIn
        };
    };
    let user_scopes: Vec<&str> = session.scopes.iter().map(String::as_str).collect();
    // The client as it is now: a request made before its scopes were narrowed gets less.
    let scopes = scope::still_allowed(&scope::grantable_by(&p.scope, &user_scopes), &client.scopes);
    let remembered = !p.prompts("consent")
        && (client.skip_consent || consent.is_some_and(|c| scope::is_subset(&scopes, c)));
    if consented_now || remembered {
        return Step::Issue { scopes };
    }
    if silent {
        Step::Refuse(OAuthError::consent_required(
            "the user has not allowed this client these scopes",
        ))
    } else {
        Step::Consent { scopes }
    }
}

#[cfg(test)]
mod tests;
