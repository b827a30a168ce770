//! The outbound HTTP client, built once: one connection pool for every call Tollgate
//! makes (the gateway's upstreams, AI providers, identity providers, the breach range
//! API), each use with its own timeouts.
//!
//! Nothing is buffered: the request body is handed to hyper as it arrives and the
//! response body is passed back frame by frame, so a large upload or a server-sent-event
//! stream passes in constant memory. Three timeouts bound an exchange: connecting (or
//! getting a pooled connection), waiting for the response head once the request body has
//! been sent (an upload takes as long as it takes), and silence while a body streams, in
//! either direction.

mod body;
mod headers;
mod socket;

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{HttpConnector, capture_connection};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use body::Sending;
pub use body::{BodyIdle, ClientBodyError, IdleTimeout};
pub use headers::{connection_tokens, remove_hop_by_hop};
use socket::{WatchedConnector, WriteWatch, watch_of};

type Connector = hyper_rustls::HttpsConnector<WatchedConnector>;

/// One use's timeouts (`[gateway]`, each `[ai.providers.*]`).
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect_timeout: Duration,
    /// From the end of the request body to receiving the response head.
    pub response_timeout: Duration,
    /// Longest silence while a request or response body streams.
    pub idle_timeout: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Why an outbound exchange failed; the gateway answers 502, 504, or 408 for a client
/// that stopped sending its body.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the upstream cannot be reached: {0}")]
    Unreachable(String),
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream broke the exchange: {0}")]
    Broken(String),
    #[error("the client stopped sending its request body")]
    ClientStalled,
    #[error("the client's request body could not be read")]
    ClientBody,
}

/// The pooled client with one use's timeouts; [`Outbound::with_timeouts`] gives another
/// use the same pool.
#[derive(Clone)]
pub struct Outbound {
    client: Client<Connector, axum::body::Body>,
    timeouts: Timeouts,
}

impl Outbound {
    /// Builds the pool. Connect timeouts are enforced per exchange, not by the connector,
    /// so that one pool serves uses with different timeouts.
    pub fn new(timeouts: Timeouts) -> Result<Outbound, String> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("cannot set up TLS for outbound calls: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(WatchedConnector(http));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Outbound { client, timeouts })
    }

    /// The same pool with other timeouts.
    pub fn with_timeouts(&self, timeouts: Timeouts) -> Outbound {
        Outbound {
            client: self.client.clone(),
            timeouts,
        }
    }

    /// Sends a prepared request (absolute URI, cleaned headers) and returns the response
    /// head with a body that fails after `idle_timeout` of silence. The request body fails
    /// the same way when the client falls silent, and the exchange times out when the
    /// upstream stops reading it; the response timeout starts once it has been sent.
    pub async fn send(
        &self,
        req: Request<axum::body::Body>,
    ) -> Result<Response<IdleTimeout<Incoming>>, SendError> {
        let idle = self.timeouts.idle_timeout;
        let (sent_tx, sent) = tokio::sync::oneshot::channel::<()>();
        // Only an upload can stall on the upstream's side (and most requests have none).
        let upload = !http_body::Body::is_end_stream(req.body());
        let mut req = req.map(|body| {
            axum::body::Body::new(Sending::new(
                IdleTimeout::new(body, idle, "request"),
                sent_tx,
            ))
        });
        let mut connection = capture_connection(&mut req);
        let exchange = self.client.request(req);
        tokio::pin!(exchange);
        // Until a connection is had (new or pooled), the connect timeout runs.
        let connected = tokio::time::timeout(self.timeouts.connect_timeout, async {
            connection.wait_for_connection_metadata().await;
        });
        let early = tokio::select! {
            biased;
            res = &mut exchange => Some(res),
            waited = connected => {
                waited.map_err(|_| SendError::Timeout)?;
                None
            }
        };
        let watch = if upload {
            connection.connection_metadata().as_ref().and_then(watch_of)
        } else {
            None
        };
        let res = match early {
            Some(res) => res,
            None => tokio::select! {
                res = &mut exchange => res,
                // Sent, or dropped by hyper: either way the upload is over.
                _ = sent => tokio::time::timeout(self.timeouts.response_timeout, exchange)
                    .await
                    .map_err(|_| SendError::Timeout)?,
                // The upstream stopped reading the upload: the connection is aborted.
                _ = WriteWatch::stalled(watch.as_deref(), idle) => return Err(SendError::Timeout),
            },
        };
        Ok(res
            .map_err(classify)?
            .map(|body| IdleTimeout::new(body, idle, "response")))
    }

    /// One buffered exchange for Tollgate's own outbound calls (identity providers, the
    /// breach range API): the whole response, up to `max_bytes` of body.
    pub async fn fetch(
        &self,
        req: Request<Vec<u8>>,
        max_bytes: usize,
    ) -> Result<Response<Vec<u8>>, SendError> {
        use http_body_util::BodyExt;
        let res = self.send(req.map(axum::body::Body::from)).await?;
        let (parts, body) = res.into_parts();
        let body = http_body_util::Limited::new(body, max_bytes)
            .collect()
            .await
            .map_err(|e| SendError::Broken(format!("reading the response: {e}")))?
            .to_bytes();
        Ok(Response::from_parts(parts, body.to_vec()))
    }
}

fn classify(e: hyper_util::client::legacy::Error) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if s.downcast_ref::<BodyIdle>().is_some() {
            return SendError::ClientStalled;
        }
        if s.downcast_ref::<ClientBodyError>().is_some() {
            return SendError::ClientBody;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return SendError::Timeout;
        }
        source = s.source();
    }
    let detail = error_chain(&e);
    if e.is_connect() {
        SendError::Unreachable(detail)
    } else {
        SendError::Broken(detail)
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
