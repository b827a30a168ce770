//! The listener's own defences (hardening item 4), over real sockets: a connection that
//! sends nothing or sends its headers slowly is closed after the header timeout, an idle
//! keep-alive connection after the idle timeout, a long response is never cut for
//! idleness, one address cannot hold more than its share of connections, and HTTP/2
//! (prior knowledge) is served with the same rules.

use crate::common;

use std::time::{Duration, Instant};

use common::upstream::Upstream;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server in front of `up` with short timeouts (header 1 s, idle 2 s unless given).
async fn server(
    backend: Backend,
    up: &Upstream,
    per_ip: usize,
    timeouts: Option<(&str, &str)>,
) -> TestServer {
    let (header, idle) = timeouts.unwrap_or(("1s", "2s"));
    TestServer::start_with(
        backend,
        Options {
            config: config(up, per_ip, header, idle),
            env: vec![],
        },
    )
    .await
}

fn config(up: &Upstream, per_ip: usize, header: &str, idle: &str) -> String {
    format!(
        r#"
[http]
header_timeout = "{header}"
idle_timeout = "{idle}"
body_timeout = "2s"
max_connections_per_ip = {per_ip}
max_requests_per_ip = 4

[gateway]
timeout = "5s"

[[route]]
path = "/pub/*"
upstream = "{}"
auth = "public"
"#,
        up.base
    )
}

/// Reads until the server closes the connection; how long that took (at most `within`).
async fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(start + within),
            conn.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

async fn slow_and_silent_connections_are_closed(backend: Backend) {
    let up = Upstream::start().await;
    let s = server(backend, &up, 64, None).await;
    // Nothing at all.
    let mut silent = connect(s.port).await;
    let took = closed_within(&mut silent, Duration::from_secs(15)).await;
    assert!(took.is_some(), "a silent connection stayed open");
    // Headers a byte at a time (slowloris): the header timeout counts from the start.
    let mut slow = connect(s.port).await;
    let start = Instant::now();
    let head = b"GET /pub/x HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut closed = false;
    for b in head {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if start.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    if !closed {
        closed = closed_within(&mut slow, Duration::from_secs(15))
            .await
            .is_some();
    }
    assert!(closed, "a slowloris connection stayed open");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    // A keep-alive connection is closed once idle, not while its response streams.
    let mut kept = connect(s.port).await;
    kept.write_all(b"GET /pub/x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 8192];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    assert!(
        closed_within(&mut kept, Duration::from_secs(15))
            .await
            .is_some(),
        "an idle keep-alive connection stayed open"
    );
    // The stream pauses 4 s between its events; the idle timeout (2 s) and even the
    // header timeout (1 s) never apply while a response is in progress.
    let mut streaming = connect(s.port).await;
    streaming
        .write_all(b"GET /pub/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !String::from_utf8_lossy(&got).contains("data: second") && Instant::now() < deadline {
        let n = tokio::time::timeout(Duration::from_secs(15), streaming.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "the stream was cut: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("data: second"));
}

async fn one_address_cannot_hold_every_connection(backend: Backend) {
    let up = Upstream::start().await;
    let s = server(backend, &up, 6, Some(("20s", "20s"))).await;
    // The harness's own client may hold a pooled connection: open up to the cap, then
    // one more must be closed at once, without a byte sent.
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(connect(s.port).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = 0;
    for conn in held.iter_mut() {
        if closed_within(conn, Duration::from_millis(300))
            .await
            .is_some()
        {
            refused += 1;
        }
    }
    let mut extra = connect(s.port).await;
    let took = closed_within(&mut extra, Duration::from_secs(5)).await;
    assert!(
        took.is_some() || refused > 0,
        "the address held more connections than its cap"
    );
    drop(held);
    drop(extra);
    // Its places come back.
    let ok = eventually(Duration::from_secs(10), || async {
        let (status, _) = common::upstream::raw_get(s.port, "/pub/x", "").await;
        status == 200
    })
    .await;
    assert!(ok);
}

async fn http2_is_served_with_the_same_rules(backend: Backend) {
    use http_body_util::{BodyExt, Empty};
    let up = Upstream::start().await;
    let s = server(backend, &up, 64, None).await;
    let io = hyper_util::rt::TokioIo::new(connect(s.port).await);
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    let driver = tokio::spawn(conn);
    // Forged identity in underscore spellings does not pass over HTTP/2 either.
    let req = http::Request::builder()
        .uri(format!("http://127.0.0.1:{}/pub/x", s.port))
        .header("x_tollgate_user", "admin")
        .header("x-tollgate_scopes", "admin")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_2);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let names: Vec<&String> = echo["headers"].as_object().unwrap().keys().collect();
    assert!(
        names
            .iter()
            .all(|n| !n.replace('_', "-").starts_with("x-tollgate-")),
        "{names:?}"
    );
    // An idle HTTP/2 connection is closed too (GOAWAY, then the socket).
    let ended = tokio::time::timeout(Duration::from_secs(15), driver).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection stayed open");
}

/// A body that trickles or stalls on Tollgate's own endpoints is cut after
/// `body_timeout` (408), over HTTP/1.1 and HTTP/2, and HTTP/2 cannot multiply stalled
/// requests past the per-address cap.
async fn stalled_bodies_are_cut_and_capped(backend: Backend) {
    use http_body_util::{BodyExt, Empty, StreamBody};
    let up = Upstream::start().await;
    let s = server(backend, &up, 64, Some(("10s", "20s"))).await;
    // HTTP/1.1: the headers, then part of the body, then nothing.
    let mut conn = connect(s.port).await;
    conn.write_all(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{",
    )
    .await
    .unwrap();
    let start = Instant::now();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("request_timeout"), "{reply}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    // HTTP/2: four stalled bodies fill the address's cap; a fifth request is refused
    // until they are cut.
    let io = hyper_util::rt::TokioIo::new(connect(s.port).await);
    let (send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut stalled = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
        >(1);
        tx.send(Ok(http_body::Frame::data(bytes::Bytes::from_static(b"{"))))
            .await
            .unwrap();
        senders.push(tx);
        let body = StreamBody::new(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
        )))
        .boxed();
        let req = http::Request::post(format!("http://127.0.0.1:{}/auth/login", s.port))
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let mut send = send.clone();
        stalled.push(tokio::spawn(async move { send.send_request(req).await }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut probe = send.clone();
    let empty = || {
        Empty::<bytes::Bytes>::new()
            .map_err(|never| match never {})
            .boxed()
    };
    let req = http::Request::get(format!("http://127.0.0.1:{}/healthz", s.port))
        .body(empty())
        .unwrap();
    let res = probe.send_request(req).await.unwrap();
    assert_eq!(res.status(), 503);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("too_many_requests_in_progress"));
    for task in stalled {
        let res = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("a stalled request was never answered")
            .unwrap()
            .unwrap();
        assert_eq!(res.status(), 408);
    }
    drop(senders);
    let req = http::Request::get(format!("http://127.0.0.1:{}/healthz", s.port))
        .body(empty())
        .unwrap();
    assert_eq!(probe.send_request(req).await.unwrap().status(), 200);
}

on_sqlite!(
    slow_and_silent => slow_and_silent_connections_are_closed,
    stalled_bodies => stalled_bodies_are_cut_and_capped,
    per_address_cap => one_address_cannot_hold_every_connection,
    http2 => http2_is_served_with_the_same_rules,
);
