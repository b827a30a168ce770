//! The listener: accepts connections and serves the router on them over HTTP/1.1 and
//! HTTP/2 (cleartext, prior knowledge), with the limits a server facing the internet needs
//! and `axum::serve` does not have.
//!
//! - **Header timeout** (`[http] header_timeout`): a request's header section must arrive
//!   within it. hyper starts this clock whenever an HTTP/1.1 connection is ready for a
//!   request, so a connection that sends nothing, or sends its headers a byte at a time
//!   (slowloris), is closed after it.
//! - **Idle timeout** (`[http] idle_timeout`): a connection with no request in progress
//!   (HTTP/1.1 or HTTP/2) is closed after it. A request is in progress from its head until
//!   its response body has been sent, so a long download or event stream is never cut
//!   here (the gateway's own body timeouts cover a silent upstream).
//! - **Connection caps** (`[http] max_connections`, `max_connections_per_ip`): past the
//!   total, new connections wait in the kernel's backlog until one closes; past the
//!   per-address cap (which trusted proxies are exempt from), they are closed at once.
//! - **Request caps**: HTTP/2 multiplexes up to [`H2_MAX_STREAMS`] requests on one
//!   connection, so requests in progress are capped per address too
//!   (`[http] max_requests_per_ip`, 503 past it). A request body that trickles is cut by
//!   `[http] body_timeout` (Tollgate's own endpoints, AI calls) or by `[gateway]
//!   idle_timeout` (proxied bodies).
//!
//! At shutdown the listener stops accepting, asks every connection to finish its requests
//! (HTTP/1.1 closes after the current response, HTTP/2 sends GOAWAY) and waits for them up
//! to [`SHUTDOWN_GRACE`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::limits::Cidr;
use crate::limits::address::canonical;

/// How long shutdown waits for open connections to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Requests one HTTP/2 connection may have in progress at once (RFC 9113 recommends no
/// fewer than 100).
pub const H2_MAX_STREAMS: u32 = 100;

/// Connection limits and timeouts (`[http]`).
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_requests_per_ip: usize,
    /// Peers exempt from the per-address cap (`[limits] trusted_proxies`): every client
    /// behind a load balancer arrives from its few addresses.
    pub trusted_proxies: Vec<Cidr>,
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerAddress::default());
    let requests_per_ip = Arc::new(PerAddress::default());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, or a connection reset while queued: wait a
                    // moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(address_slot) = per_ip.admit(peer.ip(), limits.max_connections_per_ip, &limits)
        else {
            metrics::counter!("tollgate_connections_refused_total", "reason" => "per_ip")
                .increment(1);
            tracing::debug!(%peer, "connection refused: too many from this address");
            continue;
        };
        // No Nagle: a proxied response's head and its first body frame are separate
        // writes (the body streams), and the client's delayed ACK would hold the second.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let connection = Connection {
            router: router.clone(),
            builder: builder.clone(),
            limits: limits.clone(),
            requests_per_ip: requests_per_ip.clone(),
            stop: stop_rx.clone(),
        };
        tokio::spawn(async move {
            connection.run(stream, peer).await;
            drop(address_slot);
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
}

struct Connection {
    router: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<ServerLimits>,
    requests_per_ip: Arc<PerAddress>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, peer: SocketAddr) {
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = activity.clone();
            let router = self.router.clone();
            let (requests, limits) = (self.requests_per_ip.clone(), self.limits.clone());
            hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                let busy = activity.begin();
                let slot = requests.admit(peer.ip(), limits.max_requests_per_ip, &limits);
                req.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                async move {
                    let Some(slot) = slot else {
                        metrics::counter!("tollgate_requests_refused_total", "reason" => "per_ip")
                            .increment(1);
                        return Ok(too_many_requests_in_progress());
                    };
                    let res = router.oneshot(req.map(Body::new)).await;
                    res.map(|res| {
                        res.map(|body| {
                            Body::new(InProgress {
                                body,
                                _busy: busy,
                                _slot: slot,
                            })
                        })
                    })
                }
            })
        };
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let idle = self.limits.idle_timeout;
        let mut stopping = *self.stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let deadline = activity.idle_deadline(idle);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + idle)) => {
                    if deadline.is_some() && activity.idle_deadline(idle).is_some_and(|d| d <= Instant::now()) {
                        tracing::debug!(%peer, "idle connection closed");
                        return;
                    }
                }
            }
        }
    }
}

/// Requests in progress on one connection, and since when it has had none.
struct Activity {
    in_progress: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_progress: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// When the connection becomes closable for idleness; `None` while a request is in
    /// progress.
    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        if self.in_progress.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(*self.idle_since.lock().unwrap_or_else(|p| p.into_inner()) + idle)
    }
}

/// One request in progress; dropped when its response body is done (or abandoned).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if self.0.in_progress.fetch_sub(1, Ordering::SeqCst) == 1 {
            *since = Instant::now();
        }
    }
}

/// 503 for a request over its address's cap of requests in progress.
fn too_many_requests_in_progress() -> http::Response<Body> {
    use axum::response::IntoResponse;
    crate::http::problem::Problem::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "too_many_requests_in_progress",
        "Too many requests in progress from this address",
    )
    .with_header(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    )
    .into_response()
}

/// A response body that keeps its request counted as in progress (on its connection and
/// for its address) until it is dropped.
struct InProgress {
    body: Body,
    _busy: Busy,
    _slot: AddressSlot,
}

impl http_body::Body for InProgress {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Open connections, or requests in progress, per client address (IPv6 by /64).
#[derive(Default)]
struct PerAddress {
    open: Mutex<HashMap<u128, usize>>,
}

/// The number an address is counted under: an IPv4 address as is, an IPv6 address by its
/// /64 (one host commonly holds a whole /64), as `limits::address::limit_key` counts them,
/// without building a string on every request.
fn address_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        IpAddr::V6(v6) => (v6.to_bits() >> 64) | (1 << 127),
    }
}

impl PerAddress {
    /// Counts one more from `ip`, or refuses it when the address is at `cap`.
    fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        cap: usize,
        limits: &ServerLimits,
    ) -> Option<AddressSlot> {
        let ip = canonical(ip);
        if limits.trusted_proxies.iter().any(|c| c.contains(ip)) {
            return Some(AddressSlot(None));
        }
        let key = address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot(Some((self.clone(), key))))
    }
}

/// One counted connection; gives its place back when dropped.
struct AddressSlot(Option<(Arc<PerAddress>, u128)>);

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some((per, key)) = self.0.take() {
            let mut open = per.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = open.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

/// `tollgate serve`: builds the services, binds, serves until SIGINT or SIGTERM, then lets
/// the app write what it holds.
pub async fn run(config: crate::config::Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let app = crate::app::build(config).await?;
    crate::app::spawn_background(&app);
    if app.mailer.is_outbox() {
        tracing::warn!(outbox = %app.mailer.describe(), "no [smtp] configured: verification and reset mail is only written to the outbox (fine for development; configure [smtp] for users to receive it)");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(%listen, public_url = %app.config.public_url, database = app.store.backend(), revocation_fanout = app.revocations.channel(), routes = app.gateway.routes.routes().len(), rate_limits = app.limits.backend(), ai_providers = app.ai.config.providers.len(), ai_quotas = app.ai.meter.backend(), mail = %app.mailer.describe(), "tollgate serving");
    let router = super::router(app.clone());
    let http = &app.config.http;
    let limits = ServerLimits {
        header_timeout: http.header_timeout,
        idle_timeout: http.idle_timeout,
        max_connections: http.max_connections,
        max_connections_per_ip: http.max_connections_per_ip,
        max_requests_per_ip: http.max_requests_per_ip,
        trusted_proxies: app.config.limits.trusted_proxies.clone(),
    };
    if let Some(metrics_listen) = app.config.metrics.listen {
        let metrics_listener = tokio::net::TcpListener::bind(metrics_listen)
            .await
            .with_context(|| format!("cannot listen on {metrics_listen} (metrics.listen)"))?;
        tokio::spawn(serve(
            metrics_listener,
            super::ops::metrics_router(app.clone()),
            limits.clone(),
            shutdown_signal(),
        ));
    }
    serve(listener, router, limits, shutdown_signal()).await;
    crate::app::finish(&app).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: usize, trusted: &[&str]) -> ServerLimits {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 100,
            max_connections_per_ip: per_ip,
            max_requests_per_ip: per_ip,
            trusted_proxies: trusted.iter().filter_map(|c| Cidr::parse(c)).collect(),
        }
    }

    #[test]
    fn addresses_are_capped_and_give_their_places_back() {
        let per = Arc::new(PerAddress::default());
        let l = limits(2, &["10.0.0.0/8"]);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = per.admit(ip, 2, &l).unwrap();
        let _b = per.admit(ip, 2, &l).unwrap();
        assert!(per.admit(ip, 2, &l).is_none());
        // IPv6 counts by /64.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        let _c = per.admit(v6a, 2, &l).unwrap();
        let _d = per.admit(v6b, 2, &l).unwrap();
        assert!(per.admit("2001:db8::3".parse().unwrap(), 2, &l).is_none());
        drop(a);
        assert!(per.admit(ip, 2, &l).is_some());
        // Trusted proxies are not counted.
        let lb: IpAddr = "10.1.2.3".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| per.admit(lb, 2, &l).unwrap()).collect();
        assert_eq!(held.len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_requests_in_progress() {
        let a = Arc::new(Activity::new());
        let idle = Duration::from_secs(60);
        let start = Instant::now();
        assert_eq!(a.idle_deadline(idle), Some(start + idle));
        let first = a.begin();
        let second = a.begin();
        tokio::time::advance(Duration::from_secs(120)).await;
        assert_eq!(a.idle_deadline(idle), None);
        drop(first);
        assert_eq!(a.idle_deadline(idle), None);
        drop(second);
        assert_eq!(a.idle_deadline(idle), Some(Instant::now() + idle));
    }
}
