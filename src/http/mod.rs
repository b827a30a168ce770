//! The HTTP edge: the router and the tower layers every response passes through.
//!
//! Layers, outermost first: request id (set, then echoed), a tracing span per request,
//! panic → 500 problem, metrics and the access log, security headers (skipped for proxied responses), the
//! header-size limit. Tollgate's own routes also get the body limits (their bodies are
//! read whole, within `http.max_body_bytes` and `http.body_timeout`, before the handler
//! runs); every other path falls through to the gateway (`gateway::handle`), which
//! streams bodies of any size. Unknown paths and methods answer problem+json like every
//! other error.

pub mod admin;
pub mod admin_audit;
pub mod admin_clients;
pub mod admin_export;
pub mod ai;
pub mod ai_error;
pub mod ai_usage;
pub mod auth;
pub mod authz;
pub mod browser;
pub mod consents;
pub mod my_access;
pub use crate::session::cookies;
pub mod credentials;
pub mod extract;
pub mod federation;
pub mod forward_auth;
pub mod gate;
pub mod gateway;
pub mod html;
pub mod limits;
pub mod mfa;
pub mod oauth;
pub mod oauth_agents;
pub mod ops;
pub mod pages;
pub mod problem;
pub mod recovery;
pub mod server;
pub mod webauthn;
pub mod wellknown;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use problem::Problem;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(app: AppState) -> Router {
    let max_body = app.config.http.max_body_bytes;
    let body_timeout = app.config.http.body_timeout;
    let max_headers = app.config.http.max_header_bytes;
    // HSTS only makes sense (and is only honoured) when users reach us over https.
    let hsts = app.config.secure_cookies();
    // Tollgate's own endpoints: small JSON bodies, limited before they are read. The
    // gateway (the fallback) streams bodies of any size to upstreams.
    let own = Router::new()
        .merge(auth::router())
        .merge(mfa::router())
        .merge(webauthn::router())
        .merge(recovery::router())
        .merge(admin::router())
        .merge(admin_audit::router())
        .merge(admin_clients::router())
        .merge(admin_export::router())
        .merge(authz::router())
        .merge(forward_auth::router())
        .merge(wellknown::router())
        .merge(oauth::router())
        .merge(oauth_agents::router())
        .merge(pages::router())
        .merge(federation::router())
        .merge(consents::router())
        .merge(my_access::router())
        .merge(ops::router())
        .merge(ai_usage::router())
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            (max_body, body_timeout),
            read_whole_body,
        ))
        .layer(middleware::from_fn(with_locale));
    Router::new()
        .merge(own)
        .merge(ai::router())
        .fallback(gateway::handle)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_| {
                    Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "Internal server error",
                    )
                    .into_response()
                }))
                .layer(middleware::from_fn(record_request))
                .layer(middleware::from_fn_with_state(hsts, security_headers))
                .layer(middleware::from_fn_with_state(app.clone(), html_errors))
                .layer(middleware::from_fn_with_state(
                    max_headers,
                    refuse_large_headers,
                ))
                .layer(middleware::from_fn_with_state(app.clone(), limits::edge)),
        )
        .with_state(app)
}

/// Headers on every response Tollgate makes itself. Proxied responses keep the
/// upstream's own (an app's pages need their own CSP and caching), except HSTS, which is
/// about the whole origin and always Tollgate's.
const OWN_RESPONSE_HEADERS: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    // Token and profile responses must never be cached (RFC 6749 §5.1).
    (header::CACHE_CONTROL, "no-store"),
];

async fn security_headers(
    axum::extract::State(hsts): axum::extract::State<bool>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let proxied = res.extensions().get::<gateway::Proxied>().is_some();
    let h = res.headers_mut();
    if !proxied {
        for (name, value) in OWN_RESPONSE_HEADERS {
            h.entry(name).or_insert(HeaderValue::from_static(value));
        }
    }
    // Ours, even over an upstream's: HSTS is about the whole origin, and an app must not
    // be able to switch it off (`max-age=0`) for Tollgate's pages and cookies.
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000"),
        );
    }
    res
}

/// Runs the request in the language its `Accept-Language` prefers (the hosted pages read
/// it: `ui::current_locale`).
async fn with_locale(req: Request, next: Next) -> Response {
    let locale = crate::ui::Locale::negotiate(
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let mut res = crate::ui::LOCALE.scope(locale, next.run(req)).await;
    if is_html(&res) {
        vary_on_language(res.headers_mut());
    }
    res
}

fn is_html(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"))
}

/// A page's words depend on `Accept-Language`: caches must keep one copy per language.
fn vary_on_language(h: &mut http::HeaderMap) {
    h.append(header::VARY, HeaderValue::from_static("Accept-Language"));
}

/// A person's browser navigating to a page, or submitting one of the hosted pages' forms,
/// gets an error page, not problem+json: every error Tollgate answers them with (an
/// unknown page, a refused route of the gateway, a rate limit, a body over the limit) is
/// rendered in the person's language, keeping its status and headers. Fetches and API
/// clients (`Accept` without `text/html`, or preferring JSON) get the JSON as before;
/// proxied responses are the app's own, and forward-auth answers are for the proxy.
async fn html_errors(
    axum::extract::State(app): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let navigation = crate::gateway::redirect::is_browser_navigation(req.method(), req.headers())
        || pages::is_form_submission(req.method(), req.uri().path(), req.headers());
    // The language is worked out only for a page that may be rendered.
    let language = navigation
        .then(|| req.headers().get(header::ACCEPT_LANGUAGE).cloned())
        .flatten();
    let res = next.run(req).await;
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let not_ours = res.extensions().get::<gateway::Proxied>().is_some()
        || res.extensions().get::<forward_auth::ForProxy>().is_some();
    if !navigation || !is_problem || not_ours {
        return res;
    }
    let locale = crate::ui::Locale::negotiate(language.as_ref().and_then(|v| v.to_str().ok()));
    let (mut parts, body) = res.into_parts();
    let problem: serde_json::Value = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let status = parts.status;
    let heading_key = match status.as_u16() {
        400 => "error_400",
        401 => "error_401",
        403 => "error_403",
        404 => "error_404",
        405 => "error_405",
        408 => "error_408",
        429 => "error_429",
        500..=599 => "error_5xx",
        _ => "error_title",
    };
    // The specifics when the problem has them (in English: they come from deep inside);
    // otherwise the catalogue's words, or just the heading.
    let text = match problem["detail"].as_str() {
        Some(detail) => detail,
        None if status == StatusCode::NOT_FOUND => locale.text("error_404_text"),
        None => "",
    };
    let ctx = minijinja::context! {
        heading => locale.text(heading_key),
        text,
        code => problem["code"].as_str(),
        status => status.as_u16(),
    };
    let html = match app.pages.render_in(locale, "error.html", ctx) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, "error page rendering failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(app.pages.page_csp()) {
        parts.headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    parts.headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    vary_on_language(&mut parts.headers);
    Response::from_parts(parts, axum::body::Body::from(html))
}

/// 431 for requests whose header section exceeds the limit: they would otherwise be
/// forwarded to upstreams that may fail on them in less tidy ways.
async fn refuse_large_headers(
    axum::extract::State(max): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let size: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if size > max {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "Request header fields too large",
        )
        .with_detail(format!(
            "the limit is {max} bytes of request line and headers"
        ))
        .into_response();
    }
    next.run(req).await
}

/// One span per request, carrying its id. Only the path is recorded: query strings and
/// headers can hold credentials.
fn request_span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path(), user = tracing::field::Empty)
}

/// Reads the body of a request to Tollgate's own endpoints whole before the handler runs:
/// at most `max` bytes (a declared length over it is refused before anything is read) and
/// within `timeout`. A client that sends its headers and then trickles or stalls its body
/// (slow POST) would otherwise hold the request, and on HTTP/2 a hundred of them per
/// connection, for as long as it liked.
async fn read_whole_body(
    axum::extract::State((max, timeout)): axum::extract::State<(usize, std::time::Duration)>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    match read_body(&parts.headers, body, max, timeout).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(why) => why.into_response(),
    }
}

/// Why a request body could not be read whole.
pub(crate) enum BodyRefusal {
    /// Over `max` bytes (declared or sent): 413.
    TooLarge(usize),
    /// Malformed framing (a bad chunk size) or a connection lost mid-body: 400.
    Unreadable,
    /// Not all there within the timeout: 408.
    TimedOut(std::time::Duration),
}

/// Reads a request body whole: at most `max` bytes (a declared length over it is refused
/// before anything is read), within `timeout`.
pub(crate) async fn read_body(
    headers: &http::HeaderMap,
    body: axum::body::Body,
    max: usize,
    timeout: std::time::Duration,
) -> Result<bytes::Bytes, BodyRefusal> {
    use http_body_util::BodyExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyRefusal::TooLarge(max));
    }
    let read = http_body_util::Limited::new(body, max).collect();
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyRefusal::TooLarge(max)),
        Ok(Err(_)) => Err(BodyRefusal::Unreadable),
        Err(_) => Err(BodyRefusal::TimedOut(timeout)),
    }
}

impl IntoResponse for BodyRefusal {
    fn into_response(self) -> Response {
        match self {
            BodyRefusal::TooLarge(max) => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Request body too large",
            )
            .with_detail(format!("the limit is {max} bytes")),
            BodyRefusal::Unreadable => {
                Problem::bad_request("invalid_body", "the request body could not be read")
            }
            BodyRefusal::TimedOut(timeout) => Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "The request body did not arrive in time",
            )
            .with_detail(format!(
                "the whole body must arrive within {} s",
                timeout.as_secs()
            )),
        }
        .into_response()
    }
}

/// Counts and times every request (metrics labelled from bounded sets) and writes its
/// access log line.
async fn record_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    // Labels from bounded sets only: an unauthenticated caller must not mint series.
    let method = crate::telemetry::method_label(req.method());
    let res = next.run(req).await;
    let elapsed = start.elapsed();
    // The access log: the request span adds its id, method, path and user.
    tracing::info!(
        target: "tollgate::access",
        status = res.status().as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    let status = crate::telemetry::status_label(res.status());
    metrics::counter!("tollgate_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("tollgate_http_request_duration_seconds", "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    if res.status().is_server_error() {
        tracing::warn!(status = res.status().as_u16(), "server error response");
    }
    res
}
