//! `POST /authz/check`: the deeper check a service asks for ("may this subject do X?"),
//! answered from the database's current state rather than from a token's snapshot.
//!
//! The caller is a service, authenticated by either
//! - the `X-Tollgate-Assertion` it received from the gateway (its `aud` must be one of
//!   the configured upstreams); the subject is then the assertion's, and its session
//!   must still be live; or
//! - an API key with scope `authz:check` (`Authorization: Bearer tg_…`); the subject is
//!   named in the body.
//!
//! The question is a list of scopes, a route (`method` + `path`, checked against that
//! route's policy), or both. The answer uses the user's current roles, so a role revoked
//! a second ago already counts, and a disabled account is refused.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use http::{HeaderMap, Method};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Body;
use super::problem::{ApiResult, Problem};
use crate::app::AppState;
use crate::authz::is_standard_scope;
use crate::authz::policy::{Authenticated, Decision, Presented, decide};
use crate::error::Error;
use crate::gateway::headers::ASSERTION;
use crate::gateway::path;
use crate::gateway::routes::Match;
use crate::session::FIRST_PARTY_CLIENT;
use crate::session::api_keys::ApiKeys;

/// The scope an API key needs to ask about other subjects.
pub const CHECK_SCOPE: &str = "authz:check";

pub fn router() -> Router<AppState> {
    Router::new().route("/authz/check", post(check))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Question {
    /// User id; required with an API key, optional (and fixed) with an assertion.
    subject: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    method: Option<String>,
    path: Option<String>,
}

/// Who is asking, and about whom.
struct Asker {
    subject: String,
    session: Option<String>,
    /// The application whose token the assertion was made from (not Tollgate's own
    /// sign-in), with the scopes that token carried: the answer never exceeds them.
    application: Option<(String, String)>,
    /// The protected resource that token was bound to.
    resource: Option<String>,
}

async fn authenticate(app: &AppState, headers: &HeaderMap, q: &Question) -> ApiResult<Asker> {
    if let Some(assertion) = headers.get(&ASSERTION).and_then(|v| v.to_str().ok()) {
        let audiences: Vec<&str> = app.gateway.routes.audiences().collect();
        let claims = app.assertions.verify(assertion, &audiences)?;
        if q.subject.as_ref().is_some_and(|s| *s != claims.sub) {
            return Err(Problem::new(
                http::StatusCode::FORBIDDEN,
                "subject_mismatch",
                "An assertion only answers for its own subject",
            ));
        }
        let application = (!claims.client_id.is_empty() && claims.client_id != FIRST_PARTY_CLIENT)
            .then(|| (claims.client_id.clone(), claims.scope.clone()));
        return Ok(Asker {
            subject: claims.sub,
            session: Some(claims.sid),
            application,
            resource: claims.resource,
        });
    }
    let key = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| ApiKeys::looks_like_key(k))
        .ok_or(Error::Unauthenticated)?;
    let principal = app.api_keys.verify(key).await?;
    if !principal
        .scope
        .split_ascii_whitespace()
        .any(|s| s == CHECK_SCOPE)
    {
        return Err(Problem::insufficient_scope(&[CHECK_SCOPE.to_string()]));
    }
    let subject = q.subject.clone().ok_or_else(|| {
        Problem::bad_request("invalid_request", "name the user to check in 'subject'")
    })?;
    Ok(Asker {
        subject,
        session: None,
        application: None,
        resource: None,
    })
}

async fn check(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(q): Body<Question>,
) -> ApiResult<Json<Value>> {
    let asker = authenticate(&app, &headers, &q).await?;
    let route_policy = match (&q.method, &q.path) {
        (None, None) if q.scopes.is_empty() => {
            return Err(Problem::bad_request(
                "invalid_request",
                "ask about 'scopes', a route ('method' and 'path'), or both",
            ));
        }
        (None, None) => None,
        (method, Some(raw_path)) => {
            let method = Method::from_bytes(method.as_deref().unwrap_or("GET").as_bytes())
                .map_err(|_| Problem::bad_request("invalid_request", "invalid method"))?;
            let path = path::normalize(raw_path.split('?').next().unwrap_or(""))
                .map_err(|_| Problem::bad_request("invalid_path", "invalid path"))?;
            Some(match app.gateway.routes.find(&method, &path) {
                Match::Found(m) => Some(m.policy.into_owned()),
                _ => None,
            })
        }
        (Some(_), None) => {
            return Err(Problem::bad_request(
                "invalid_request",
                "'method' needs a 'path'",
            ));
        }
    };

    let user = if uuid::Uuid::parse_str(&asker.subject).is_ok() {
        app.store
            .user_by_id(&asker.subject)
            .await
            .map_err(Error::from)?
    } else {
        None
    };
    let refuse = |reason: &str| {
        Json(json!({ "allowed": false, "subject": asker.subject, "reason": reason }))
    };
    let Some(user) = user else {
        return Ok(refuse("unknown_subject"));
    };
    if user.disabled {
        return Ok(refuse("account_disabled"));
    }
    match asker
        .session
        .as_deref()
        .map(|s| (s, s.strip_prefix("apikey:")))
    {
        Some((_, Some(key_id))) if !app.api_keys.is_live(key_id).await? => {
            return Ok(refuse("credential_revoked"));
        }
        Some((sid, None)) if app.revocations.set().is_revoked(sid) => {
            return Ok(refuse("session_revoked"));
        }
        _ => {}
    }
    let current = app
        .config
        .roles
        .scopes_for(user.roles.iter().map(String::as_str));
    // An application's token holds what the user granted it, less what the roles no
    // longer grant.
    let current: Vec<String> = match &asker.application {
        None => current,
        Some((_, granted)) => granted
            .split_ascii_whitespace()
            .filter(|s| is_standard_scope(s) || current.iter().any(|c| c == s))
            .map(str::to_string)
            .collect(),
    };
    let held: Vec<&str> = current.iter().map(String::as_str).collect();
    let mut missing: Vec<String> = q
        .scopes
        .iter()
        .filter(|s| !held.contains(&s.as_str()))
        .cloned()
        .collect();
    let mut reason = "ok";
    match route_policy {
        None => {}
        Some(None) => reason = "no_route",
        Some(Some(policy)) => {
            let presented = Presented::Verified {
                scopes: &held,
                audience: asker.resource.as_deref(),
                client: asker.application.as_ref().map(|(c, _)| c.as_str()),
                service: false,
                email_verified: user.email_verified,
                // The question is about a subject, not a request: step-up (`mfa`,
                // `max_age`) is a property of the session the gateway checks on every
                // request, so it is not part of this answer.
                authenticated: Authenticated {
                    second_factor: true,
                    age_secs: Some(0),
                },
            };
            match decide(&policy, presented) {
                Decision::InsufficientScope { missing: m } => missing.extend(m),
                // A token for another resource (or a client's token for none) is refused
                // there whatever its scopes.
                Decision::Forbidden { code } | Decision::Unauthenticated { code } => reason = code,
                Decision::Allow { .. } | Decision::StepUp { .. } => {}
            }
        }
    }
    missing.sort();
    missing.dedup();
    if reason == "ok" && !missing.is_empty() {
        reason = "insufficient_scope";
    }
    Ok(Json(json!({
        "allowed": reason == "ok",
        "subject": user.id,
        "scopes": current,
        "missing_scopes": missing,
        "reason": reason,
    })))
}
