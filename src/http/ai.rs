//! `/ai/<provider>/…`: the AI proxy.
//!
//! authenticate (the provider's scope) → per-account rate limits → read the body (the
//! guard's size limit) → inspect (model, guards, output bound) → reserve the worst case
//! → forward with the provider key → relay the response while reading its usage →
//! settle and write the ledger row. Every refusal is audited as `ai.refused`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use super::BodyRefusal;
use super::extract::Client;
use super::gate::{Admission, SignIn, evaluate, upstream_failure, with_session_cookies};
use super::problem::Problem;
use crate::admission::Counted;
use crate::ai::charge::{Admitted, AiRefusal};
use crate::ai::exchange::{ExchangeFailure, Outgoing};
use crate::ai::request::Endpoint;
use crate::ai::{AiProvider, Payer};
use crate::app::AppState;
use crate::audit::Context;
use crate::authz::policy::{AuthMode, Clients, Policy};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ai/{provider}/{*rest}", any(invoke))
        // Bodies are read under each provider's own limit.
        .layer(DefaultBodyLimit::disable())
}

async fn invoke(
    State(app): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    Client(client): Client,
    req: Request,
) -> Response {
    let Ok(Path((provider_name, rest))) = path else {
        return Problem::bad_request("invalid_path", "the path is not valid UTF-8 once decoded")
            .into_response();
    };
    let Some(provider) = app.ai.provider(&provider_name) else {
        return Problem::not_found()
            .with_detail("no such AI provider")
            .into_response();
    };
    let kind = provider.config.kind;
    let res = admit_and_run(app, provider, rest, client, req).await;
    super::ai_error::in_provider_shape(kind, res)
}

async fn admit_and_run(
    app: AppState,
    provider: Arc<AiProvider>,
    rest: String,
    client: crate::session::ClientInfo,
    req: Request,
) -> Response {
    let path = rest.strip_prefix("v1/").unwrap_or(&rest).to_string();
    if !provider.config.endpoints.contains(&path) {
        return Problem::not_found()
            .with_detail("this provider endpoint is not enabled")
            .into_response();
    }
    // The provider's scope is checked below, so that refusals for it are audited.
    let policy = Policy {
        auth: AuthMode::Required,
        scopes: vec![],
        clients: Clients::Any,
        users: true,
        verified_email: false,
        mfa: provider.config.mfa,
        max_age: None,
        resource: None,
    };
    let mut req = req;
    accept_api_key_header(req.headers_mut());
    // Rules see the endpoint in one spelling, whichever the client used.
    let canonical = format!("/ai/{}/v1/{path}", provider.config.name);
    let counted = Counted {
        method: req.method().as_str(),
        path: &canonical,
    };
    let resolved = match evaluate(
        &app,
        &policy,
        true,
        req.method(),
        req.headers(),
        SignIn::Never,
        true,
        Some(counted),
    )
    .await
    {
        Admission::Allowed { resolved, .. } => resolved,
        Admission::Refused(res) => {
            // A rate limit is counted as such (`tollgate_rate_limited_total`).
            if res.status() != StatusCode::TOO_MANY_REQUESTS {
                metrics::counter!("tollgate_ai_refusals_total", "reason" => "unauthorized")
                    .increment(1);
            }
            return res;
        }
    };
    let Some(principal) = resolved.principal.clone() else {
        return Problem::unauthorized("unauthenticated", "Authentication required").into_response();
    };
    let roles = match principal.live_roles(&app.store).await {
        Ok(r) => r,
        Err(e) => {
            let res = Problem::from(e).into_response();
            return with_session_cookies(&app, res, &resolved);
        }
    };
    let call = Call {
        app: app.clone(),
        provider,
        caller: Payer::of(&principal, roles),
        audit: principal.audit_context(client),
    };
    let scope = &call.provider.config.scope;
    if !crate::oidc::scope::contains(principal.scope(), scope) {
        call.refused("insufficient_scope", None).await;
        let res = Problem::insufficient_scope(std::slice::from_ref(scope)).into_response();
        return with_session_cookies(&app, res, &resolved);
    }
    let res = call.run(path, req).await;
    with_session_cookies(&app, res, &resolved)
}

/// Anthropic SDKs send their key as `x-api-key`: a Tollgate credential there counts as
/// `Authorization: Bearer` (the header itself never reaches the provider).
fn accept_api_key_header(headers: &mut http::HeaderMap) {
    if headers.contains_key(header::AUTHORIZATION) {
        return;
    }
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok())
        && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", key.trim()))
    {
        v.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, v);
    }
}

/// One authenticated call to one provider.
struct Call {
    app: AppState,
    provider: Arc<AiProvider>,
    caller: Payer,
    audit: Context,
}

impl Call {
    async fn run(self, path: String, req: Request) -> Response {
        let endpoint = Endpoint::of(self.provider.config.kind, &path);
        let (parts, body) = req.into_parts();
        let metered = endpoint != Endpoint::Unmetered;
        if metered && parts.method != Method::POST {
            return Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            )
            .with_header(header::ALLOW, HeaderValue::from_static("POST"))
            .into_response();
        }
        let max = self.provider.config.guard.max_request_bytes;
        let timeout = self.app.config.http.body_timeout;
        let raw = match super::read_body(&parts.headers, body, max, timeout).await {
            Ok(raw) => raw,
            Err(why) => {
                if matches!(why, BodyRefusal::TooLarge(_)) {
                    self.refused("payload_too_large", None).await;
                }
                return why.into_response();
            }
        };
        if !metered {
            // Model lists and the like: authenticated and recorded in the access log,
            // not metered.
            return self.forward(&path, &parts, raw.to_vec(), None, false).await;
        }
        let quota = self.app.ai.quota_for(&self.caller.roles);
        let request = match self
            .app
            .ai
            .inspect(&self.provider, endpoint, &raw, quota.as_ref())
        {
            Ok(r) => r,
            Err(why) => return self.refuse(why, None).await,
        };
        if let Some(prompt) = &request.logged_prompt {
            tracing::info!(target: "tollgate::ai::prompt", provider = %self.provider.config.name, model = %request.model, user = %self.caller.principal, prompt = %prompt, "prompt");
        }
        let admitted = match self
            .app
            .ai
            .admit(&self.caller, quota.as_ref(), &request, path.clone())
            .await
        {
            Ok(a) => a,
            Err(why) => return self.refuse(why, Some(&request.model)).await,
        };
        // The exchange runs on its own task: a client that hangs up before the answer
        // arrives must not cancel it half-way (the provider bills the call anyway), so
        // the relay still reads the usage and the reservation is settled.
        let body = request.bytes;
        let hide = request.hide_usage_chunk;
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(
                self.forward(&path, &parts, body, Some(admitted), hide)
                    .await,
            );
        });
        rx.await.unwrap_or_else(|_| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal server error",
            )
            .into_response()
        })
    }

    /// Audits a refusal and renders it.
    async fn refuse(&self, why: AiRefusal, model: Option<&str>) -> Response {
        if let Some(reason) = why.reason() {
            self.refused(reason, model).await;
        }
        Problem::from(why).into_response()
    }

    async fn refused(&self, reason: &'static str, model: Option<&str>) {
        self.app
            .ai
            .audit_refusal(
                &self.audit,
                &self.caller,
                &self.provider.config.name,
                reason,
                model,
            )
            .await;
    }

    /// Sends the call upstream and relays the answer. `admitted` is `None` for unmetered
    /// endpoints.
    async fn forward(
        &self,
        path: &str,
        parts: &http::request::Parts,
        body: Vec<u8>,
        admitted: Option<Admitted>,
        hide_usage_chunk: bool,
    ) -> Response {
        let out = Outgoing {
            path,
            query: parts.uri.query(),
            method: &parts.method,
            headers: &parts.headers,
            body,
            hide_usage_chunk,
        };
        let exchanged = self
            .app
            .ai
            .exchange(&self.provider, &self.caller, out, admitted)
            .await;
        match exchanged {
            Ok(res) => res.into_response(),
            Err(ExchangeFailure::Upstream(e)) => {
                upstream_failure(&format!("ai:{}", self.provider.config.name), e)
            }
            Err(failure) => Problem::from(failure).into_response(),
        }
    }
}
