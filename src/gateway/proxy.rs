//! The reverse proxy: a pooled hyper client that streams bodies both ways.
//!
//! Nothing is buffered: the request body is handed to hyper as it arrives and the
//! response body is passed back frame by frame, so a large upload or a server-sent-event
//! stream passes in constant memory. Three timeouts bound an exchange: connecting, waiting
//! for the response head once the request body has been sent (an upload takes as long as
//! it takes), and silence while a body streams, in either direction. Connection-scoped
//! (hop-by-hop) headers never cross the proxy, except the `Upgrade` handshake, which
//! turns the connection into a tunnel for WebSockets.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::{Instant, Sleep};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Upstream timeouts (`[gateway]` in the configuration).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub connect_timeout: Duration,
    /// From the end of the request body to receiving the response head.
    pub response_timeout: Duration,
    /// Longest silence while a request or response body streams.
    pub idle_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Why an upstream exchange failed; the gateway answers 502, 504, or 408 for a client
/// that stopped sending its body.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the upstream cannot be reached: {0}")]
    Unreachable(String),
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream broke the exchange: {0}")]
    Broken(String),
    #[error("the client stopped sending its request body")]
    ClientStalled,
}

/// A body that stayed silent for longer than the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("{0} body idle timeout")]
pub struct BodyIdle(&'static str);

pub struct Proxy {
    client: Client<Connector, axum::body::Body>,
    cfg: ProxyConfig,
}

impl Proxy {
    pub fn new(cfg: ProxyConfig) -> Result<Proxy, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("cannot set up TLS for upstreams: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Proxy { client, cfg })
    }

    /// Sends a prepared request (absolute URI, cleaned headers) and returns the response
    /// head with a body that fails after `idle_timeout` of silence. The request body fails
    /// the same way; the response timeout starts once it has been sent.
    pub async fn send(
        &self,
        req: Request<axum::body::Body>,
    ) -> Result<Response<IdleTimeout<Incoming>>, ProxyError> {
        let idle = self.cfg.idle_timeout;
        let (sent_tx, sent) = tokio::sync::oneshot::channel::<()>();
        let req = req.map(|body| {
            axum::body::Body::new(Sending::new(
                IdleTimeout::new(body, idle, "request"),
                sent_tx,
            ))
        });
        let exchange = self.client.request(req);
        tokio::pin!(exchange);
        let res = tokio::select! {
            res = &mut exchange => res,
            // Sent, or dropped by hyper: either way the upload is over.
            _ = sent => tokio::time::timeout(self.cfg.response_timeout, exchange)
                .await
                .map_err(|_| ProxyError::Timeout)?,
        };
        Ok(res
            .map_err(classify)?
            .map(|body| IdleTimeout::new(body, idle, "response")))
    }
}

impl Proxy {
    /// One buffered exchange for Tollgate's own outbound calls (identity providers, the
    /// breach range API): the whole response, up to `max_bytes` of body.
    pub async fn fetch(
        &self,
        req: Request<Vec<u8>>,
        max_bytes: usize,
    ) -> Result<Response<Vec<u8>>, ProxyError> {
        use http_body_util::BodyExt;
        let res = self.send(req.map(axum::body::Body::from)).await?;
        let (parts, body) = res.into_parts();
        let body = http_body_util::Limited::new(body, max_bytes)
            .collect()
            .await
            .map_err(|e| ProxyError::Broken(format!("reading the response: {e}")))?
            .to_bytes();
        Ok(Response::from_parts(parts, body.to_vec()))
    }
}

fn classify(e: hyper_util::client::legacy::Error) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if s.downcast_ref::<BodyIdle>().is_some() {
            return ProxyError::ClientStalled;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return ProxyError::Timeout;
        }
        source = s.source();
    }
    let detail = error_chain(&e);
    if e.is_connect() {
        ProxyError::Unreachable(detail)
    } else {
        ProxyError::Broken(detail)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
/// `HTTP2-Settings` belongs to the h2c upgrade, which is never passed through.
const HOP_BY_HOP: [HeaderName; 9] = [
    HeaderName::from_static("http2-settings"),
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether the message is a WebSocket handshake, the one protocol switch passed through
/// (an h2c upgrade would open an HTTP/2 connection to the upstream that no policy sees).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && connection_tokens(headers).any(|t| t == "upgrade")
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// What RFC 6455 §4.2.2 has the server answer to a handshake's `Sec-WebSocket-Key`.
pub fn websocket_accept(key: &[u8]) -> String {
    use base64::Engine;
    let mut input = key.to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Whether a `101 Switching Protocols` completes the WebSocket handshake the client asked
/// for (`Upgrade: websocket`, `Connection: upgrade`, and the `Sec-WebSocket-Accept` its key
/// calls for). Only then is the connection turned into a tunnel: any other 101 would hand
/// the client a raw connection to the upstream that no policy sees.
pub fn is_websocket_acceptance(client_key: Option<&HeaderValue>, response: &HeaderMap) -> bool {
    let Some(key) = client_key else {
        return false;
    };
    wants_upgrade(response)
        && response
            .get("sec-websocket-accept")
            .is_some_and(|accept| accept.as_bytes() == websocket_accept(key.as_bytes()).as_bytes())
}

/// Removes hop-by-hop headers, including those the `Connection` header names. With
/// `upgrade`, the handshake (`Connection: upgrade` and `Upgrade`) is kept.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let upgrade_to = upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    let named: Vec<String> = connection_tokens(headers).collect();
    for name in named {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(protocol) = upgrade_to {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// After a `101 Switching Protocols`, joins the client's and the upstream's upgraded
/// connections and copies bytes both ways until either side closes.
pub fn spawn_tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "tunnel closed with an error");
        }
    });
}

/// A body that errors out when no frame arrives for `idle`: a hung upstream must not hold
/// a client connection for ever, nor a stalled client an upstream one.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Which body this is ("request", "response"), for the error.
    side: &'static str,
}

impl<B> IdleTimeout<B> {
    fn new(inner: B, idle: Duration, side: &'static str) -> Self {
        IdleTimeout {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            side,
        }
    }
}

/// A request body that says when it has been sent: at its end, or when hyper drops it.
struct Sending<B> {
    inner: B,
    sent: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<B: HttpBody> Sending<B> {
    fn new(inner: B, sent: tokio::sync::oneshot::Sender<()>) -> Self {
        let mut body = Sending {
            inner,
            sent: Some(sent),
        };
        // hyper may never poll a body it knows to be empty.
        if body.inner.is_end_stream() {
            body.sent.take();
        }
        body
    }
}

impl<B> HttpBody for Sending<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        // A body of known length may never be polled for its end.
        if frame.is_none() || this.inner.is_end_stream() {
            this.sent.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> HttpBody for IdleTimeout<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let idle = this.idle;
                this.deadline.as_mut().reset(Instant::now() + idle);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyIdle(this.side)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_including_named_ones() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn only_a_real_websocket_acceptance_opens_a_tunnel() {
        // RFC 6455 §1.3's example.
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        let mut ok = HeaderMap::new();
        ok.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        ok.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        ok.insert(
            "sec-websocket-accept",
            HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        );
        assert!(is_websocket_acceptance(Some(&key), &ok));
        assert!(!is_websocket_acceptance(None, &ok));
        let other = HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAA==");
        assert!(!is_websocket_acceptance(Some(&other), &ok));
        for (name, value) in [
            (header::UPGRADE, "h2c"),
            (header::CONNECTION, "keep-alive"),
            (HeaderName::from_static("sec-websocket-accept"), "x"),
        ] {
            let mut bad = ok.clone();
            bad.insert(name, HeaderValue::from_static(value));
            assert!(!is_websocket_acceptance(Some(&key), &bad), "{bad:?}");
        }
    }

    #[test]
    fn upgrade_handshake_survives_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(wants_upgrade(&h));
        let mut h2c = h.clone();
        h2c.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!wants_upgrade(&h2c));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
    }
}
