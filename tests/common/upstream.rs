//! A real HTTP upstream for gateway tests, on its own loopback port.
//!
//! Every path echoes the request it received as JSON (method, path, query, headers),
//! except paths ending in:
//! - `/stream`: a server-sent-event stream, one event, a 4 s pause, a second event (long
//!   against the 1–2 s timeouts the tests set, so a loaded machine cannot blur the two);
//! - `/slow`: answers after 10 s;
//! - `/upload`: counts the request body's bytes as they stream in;
//! - `/set-cookie`: tries to set Tollgate's cookies (named, prefixed, nameless) and one of
//!   its own, and to switch HSTS off;
//! - `/ws`: accepts an `Upgrade` and echoes bytes on the upgraded connection;
//! - `/ws-bad-accept`: answers a handshake with 101 but the wrong `Sec-WebSocket-Accept`;
//! - `/switch`: answers any request with `101 Switching Protocols` to `Upgrade: raw`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

pub struct Upstream {
    pub base: String,
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new().fallback(handle);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Upstream {
            base: format!("http://127.0.0.1:{port}"),
            port,
            task,
        }
    }
}

impl Upstream {
    /// An upstream whose every answer is `200 text/plain` with `body(path)`.
    pub async fn fixed<F>(body: F) -> Upstream
    where
        F: Fn(&str) -> String + Clone + Send + Sync + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new().fallback(move |req: Request| {
            let body = body.clone();
            async move { body(req.uri().path()) }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Upstream {
            base: format!("http://127.0.0.1:{port}"),
            port,
            task,
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path.ends_with("/stream") {
        let events = futures_util::stream::unfold(0u8, |n| async move {
            match n {
                0 => Some((Ok::<_, Infallible>(Bytes::from("data: first\n\n")), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    Some((Ok(Bytes::from("data: second\n\n")), 2))
                }
                _ => None,
            }
        });
        return (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from_stream(events),
        )
            .into_response();
    }
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(10)).await;
        return "late".into_response();
    }
    if path.ends_with("/upload") {
        let mut body = req.into_body().into_data_stream();
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => bytes += c.len() as u64,
                Err(_) => return StatusCode::BAD_REQUEST.into_response(),
            }
        }
        return axum::Json(json!({ "bytes": bytes })).into_response();
    }
    if path.ends_with("/set-cookie") {
        let mut res = "cookies".into_response();
        for c in [
            "tg_rt=planted; Path=/",
            "__Host-tg_at=planted; Path=/; Secure",
            "tg_at=planted; Path=/",
            "=tg_rt=planted; Path=/",
            "tg_csrf; Path=/",
            "__HOST-tg_rt=planted; Path=/; Secure",
            "app=1; Path=/",
        ] {
            res.headers_mut()
                .append(header::SET_COOKIE, HeaderValue::from_static(c));
        }
        res.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=0"),
        );
        return res;
    }
    if path.ends_with("/ws") {
        return upgrade(req);
    }
    if path.ends_with("/ws-bad-accept") {
        let mut res = upgrade(req);
        res.headers_mut().insert(
            "sec-websocket-accept",
            HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        );
        return res;
    }
    if path.ends_with("/switch") {
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "raw")
            .body(Body::empty())
            .unwrap();
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let method = req.method().to_string();
    let query = req.uri().query().map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut res = axum::Json(json!({
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body_bytes": body.len(),
    }))
    .into_response();
    // Upstream opinions the gateway must leave alone on proxied responses.
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'"),
    );
    res
}

fn upgrade(mut req: Request) -> Response {
    let key = req.headers().get("sec-websocket-key").cloned();
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        let mut buf = [0u8; 1024];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    if io.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    // RFC 6455 §4.2.2, written out here rather than taken from the code under test.
    let accept = key
        .map(|k| {
            use base64::Engine;
            let mut input = k.as_bytes().to_vec();
            input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
            let digest =
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        })
        .unwrap_or_default();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", accept)
        .body(Body::empty())
        .unwrap()
}

/// The JSON an echo answered with.
pub fn echoed_header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

/// Sends raw bytes over a fresh connection and returns the whole response (the gateway's
/// path handling must be tested with paths no HTTP client library would send).
pub async fn raw(port: u16, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// `GET path` with `Connection: close` and extra header lines.
pub async fn raw_get(port: u16, path: &str, extra: &str) -> (u16, String) {
    raw(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n"),
    )
    .await
}

/// An address where a connect hangs, as to a firewalled host: a listener that never
/// accepts, its queue filled, so the kernel drops further handshakes instead of refusing.
pub struct Blackhole {
    pub base: String,
    _listener: tokio::net::TcpListener,
    _queued: Vec<tokio::net::TcpStream>,
}

impl Blackhole {
    pub async fn start() -> Blackhole {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut queued = Vec::new();
        loop {
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
            match tokio::time::timeout(Duration::from_millis(500), connect).await {
                Ok(Ok(conn)) if queued.len() < 16 => queued.push(conn),
                Ok(_) => panic!("connects to a full queue should hang, not complete or fail"),
                Err(_) => break,
            }
        }
        Blackhole {
            base: format!("http://127.0.0.1:{port}"),
            _listener: listener,
            _queued: queued,
        }
    }
}

/// An upstream that accepts connections and never reads from them (nor answers): an
/// upload to it stalls once the socket buffers are full.
pub struct Deaf {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Deaf {
    pub async fn start() -> Deaf {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        Deaf {
            base: format!("http://127.0.0.1:{port}"),
            task,
        }
    }
}

impl Drop for Deaf {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An upstream that reads uploads slowly but steadily (128 KiB every 125 ms, 1 MiB/s)
/// and answers 200 with the byte count once it has read `Content-Length`.
pub struct SlowReader {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl SlowReader {
    pub async fn start() -> SlowReader {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let length: u64 = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    let mut read = 0u64;
                    let mut buf = vec![0u8; 128 * 1024];
                    while read < length {
                        let want = buf.len().min((length - read) as usize);
                        match conn.read(&mut buf[..want]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n as u64,
                        }
                        tokio::time::sleep(Duration::from_millis(125)).await;
                    }
                    let body = read.to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        SlowReader {
            base: format!("http://127.0.0.1:{port}"),
            task,
        }
    }
}

impl Drop for SlowReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many of process `pid`'s TCP connections to `port` on loopback are established.
pub fn established_to(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 9
                && f[3] == "01"
                && f[2].ends_with(&format!(":{port:04X}"))
                && inodes.contains(f[9])
        })
        .count()
}
