//! `/ai/<provider>/…`: the AI proxy.
//!
//! authenticate (the provider's scope) → per-account rate limits → read the body (the
//! guard's size limit) → inspect (model, guards, output bound) → reserve the worst case
//! → forward with the provider key → relay the response while reading its usage →
//! settle and write the ledger row. Every refusal is audited as `ai.refused`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures_util::StreamExt;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::BodyExt;

use super::credentials::Principal;
use super::extract::Client;
use super::gate::{Admission, SignIn, evaluate, upstream_failure, with_session_cookies};
use super::problem::Problem;
use crate::admission::Counted;
use crate::ai::charge::{Admitted, AiRefusal, Ending};
use crate::ai::relay::{self, RelayEnd};
use crate::ai::request::Endpoint;
use crate::ai::scrub::{Scrubber, scrubbed};
use crate::ai::upstream;
use crate::ai::{AiProvider, Payer};
use crate::app::AppState;
use crate::audit::Context;
use crate::authz::policy::{AuthMode, Clients, Policy};
use crate::gateway::proxy::ProxyError;

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
    };
    let mut req = req;
    accept_api_key_header(req.headers_mut());
    // Rules see the endpoint in one spelling, whichever the client used.
    let canonical = format!("/ai/{provider_name}/v1/{path}");
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
        provider: provider.clone(),
        caller: caller_of(&principal, roles),
        audit: audit_context(&principal, client),
    };
    let scope = &provider.config.scope;
    if !principal
        .scope()
        .split_ascii_whitespace()
        .any(|s| s == scope)
    {
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

fn caller_of(p: &Principal, roles: Vec<String>) -> Payer {
    Payer {
        principal: p.user_id().to_string(),
        roles,
        api_key_id: match p {
            Principal::ApiKey(k) => Some(k.key_id.clone()),
            Principal::Token(_) => None,
        },
        client_id: p.oauth_client().map(str::to_string),
    }
}

fn audit_context(p: &Principal, client: crate::session::ClientInfo) -> Context {
    match p.service() {
        Some(id) => Context::client(id, client),
        None => Context::user(p.user_id(), client),
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
        let guard = &self.provider.config.guard;
        let body_timeout = self.app.config.http.body_timeout;
        let read = http_body_util::Limited::new(body, guard.max_request_bytes).collect();
        let raw = match tokio::time::timeout(body_timeout, read).await {
            Err(_) => return super::body_timed_out(body_timeout),
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => {
                self.refused("payload_too_large", None).await;
                return Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "Request body too large",
                )
                .with_detail(format!(
                    "the limit for this provider is {} bytes",
                    guard.max_request_bytes
                ))
                .into_response();
            }
        };
        if !metered {
            // Model lists and the like: authenticated and recorded in the access log,
            // not metered.
            return self
                .forward(&path, &parts, raw.to_vec(), None)
                .await
                .unwrap_or_else(|r| r);
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
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let res = self.forward(&path, &parts, body, Some(admitted)).await;
            let _ = tx.send(res.unwrap_or_else(|r| r));
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
    ) -> Result<Response, Response> {
        let cfg = &self.provider.config;
        // Listing endpoints page with query parameters; metered calls take none.
        let query = parts.uri.query().filter(|_| admitted.is_none());
        let built = upstream::request(
            cfg,
            path,
            query,
            &parts.method,
            &parts.headers,
            body.is_empty(),
        );
        let builder = match built {
            Some(b) => b,
            None => {
                if let Some(a) = admitted {
                    self.settle(
                        a,
                        Ending::Unsent {
                            status: 400,
                            outcome: "invalid_target",
                        },
                    )
                    .await;
                }
                return Err(
                    Problem::bad_request("invalid_path", "unusable request target").into_response(),
                );
            }
        };
        let upstream_req = match builder.body(Body::from(body)) {
            Ok(r) => r,
            Err(_) => {
                if let Some(a) = admitted {
                    self.settle(
                        a,
                        Ending::Unsent {
                            status: 400,
                            outcome: "invalid_target",
                        },
                    )
                    .await;
                }
                return Err(
                    Problem::bad_request("invalid_path", "unusable request target").into_response(),
                );
            }
        };
        let sent = Instant::now();
        let res = self.provider.proxy.send(upstream_req).await;
        metrics::histogram!("tollgate_ai_upstream_latency_seconds", "provider" => cfg.name.clone())
            .record(sent.elapsed().as_secs_f64());
        let res = match res {
            Ok(res) => res,
            Err(e) => {
                if let Some(a) = admitted {
                    let ending = match e {
                        // Nothing reached the provider: nothing to pay.
                        ProxyError::Unreachable(_) => Ending::Unsent {
                            status: 502,
                            outcome: "upstream_unreachable",
                        },
                        // The provider may be generating (and billing) still.
                        ProxyError::Timeout => Ending::Unknown { status: 504 },
                        // (A buffered body cannot stall; counted as broken to be safe.)
                        ProxyError::Broken(_) | ProxyError::ClientStalled => {
                            Ending::Unknown { status: 502 }
                        }
                    };
                    self.settle(a, ending).await;
                }
                return Err(upstream_failure(&format!("ai:{}", cfg.name), e));
            }
        };
        let status = res.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // The provider refused Tollgate's key: the client can do nothing about it,
            // and the provider's message may quote part of the key.
            tracing::error!(provider = %cfg.name, status = status.as_u16(), "the AI provider refused the configured key");
            if let Some(a) = admitted {
                let ending = Ending::Unsent {
                    status: i32::from(status.as_u16()),
                    outcome: "upstream_auth_failed",
                };
                self.settle(a, ending).await;
            }
            return Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "upstream_auth_failed",
                "The AI provider refused the gateway's credentials",
            )
            .into_response());
        }
        let encoded = res
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded {
            // Asked for `identity`: a compressed answer could not be read for its usage nor
            // scrubbed of the key. The provider may have billed it: charge the reservation.
            tracing::error!(provider = %cfg.name, "the AI provider answered with a compressed body although asked not to");
            if let Some(a) = admitted {
                self.settle(a, Ending::Unknown { status: 502 }).await;
            }
            return Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "upstream_invalid_response",
                "The AI provider answered in a form the gateway cannot check",
            )
            .into_response());
        }
        let (mut head, upstream_body) = res.into_parts();
        let key = cfg.api_key.as_ref().map_or("", |k| k.0.as_str());
        upstream::clean_response_head(&mut head, key);
        let content_type = head
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let Some(admitted) = admitted else {
            return Ok(Response::from_parts(
                head,
                scrubbed(upstream_body, Scrubber::new(key)),
            ));
        };
        let app = self.app.clone();
        let caller = self.caller.clone();
        let provider = cfg.name.clone();
        let ok = status.is_success();
        let rx = relay::spawn(
            upstream_body,
            &content_type,
            Scrubber::new(key),
            app.ai.config.drain_timeout,
            move |end: RelayEnd| async move {
                let status = i32::from(status.as_u16());
                app.ai
                    .settle(
                        &caller,
                        provider,
                        admitted,
                        Ending::Relayed { status, ok, end },
                    )
                    .await;
            },
        );
        let stream = receiver_stream(rx);
        Ok(Response::from_parts(head, Body::from_stream(stream)))
    }

    async fn settle(&self, a: Admitted, ending: Ending) {
        let provider = self.provider.config.name.clone();
        self.app.ai.settle(&self.caller, provider, a, ending).await;
    }
}

/// The relay's channel as a body stream.
fn receiver_stream(
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, crate::ai::BoxError>>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, crate::ai::BoxError>> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}
