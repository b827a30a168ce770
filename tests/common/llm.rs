//! A mock OpenAI- and Anthropic-compatible provider, on its own loopback port.
//!
//! It checks the provider key (`Authorization: Bearer` for OpenAI paths, `x-api-key` for
//! `/v1/messages`), answers like the real APIs (JSON or server-sent events) and reports
//! usage: `mock_prompt_tokens` (default 20) in, and the request's output bound (default
//! 16) out. Fields of the request body steer it:
//! - `mock_delay_ms`: wait before answering;
//! - `mock_chunks` / `mock_chunk_ms`: how many content events a stream sends, how far apart;
//! - `mock_status`: answer with this status and an error body instead;
//! - `mock_echo_key`: quote the key the mock received (in the error body and an
//!   `x-debug-key` header with `mock_status`; split across two chunks of a stream
//!   otherwise); `GET /v1/models?echo_key=1` quotes it in the list;
//! - `mock_reason`: answer with the key as the HTTP/1.1 reason phrase;
//! - `mock_gzip`: answer with a `Content-Encoding: gzip` body (though asked for identity);
//!   `"twice"`: after a first `Content-Encoding: identity` header; `"transfer"`: as a
//!   `Transfer-Encoding: gzip, chunked` body;
//! - `mock_switch`: answer `101 Switching Protocols`.
//!
//! A wrong key gets 401 with the received key quoted back, as providers do in part.
//! Every request is recorded (path, headers, body) for the tests to inspect.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
pub struct MockState {
    pub key: String,
    pub calls: Mutex<Vec<Recorded>>,
    /// Streams that sent their last event (whether or not anyone was still reading).
    pub streams_finished: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

pub struct MockLlm {
    pub base: String,
    pub state: Arc<MockState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockLlm {
    pub async fn start(key: &str) -> MockLlm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(MockState {
            key: key.to_string(),
            ..MockState::default()
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MockLlm {
            base: format!("http://127.0.0.1:{port}"),
            state,
            task,
        }
    }

    pub fn calls(&self) -> Vec<Recorded> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.calls().pop().expect("the mock received a call")
    }

    pub fn streams_finished(&self) -> usize {
        self.state.streams_finished.load(Ordering::SeqCst)
    }
}

/// `[ai.provider.<name>]` of `kind` for a mock at `base`, its key in `key_env`, and
/// `extra` keys (guards, timeouts).
pub fn provider_section(name: &str, kind: &str, base: &str, key_env: &str, extra: &str) -> String {
    format!(
        "\n[ai.provider.{name}]\nkind = \"{kind}\"\nbase_url = \"{base}/v1\"\napi_key_env = \"{key_env}\"\n{extra}\n"
    )
}

fn num(body: &Value, key: &str) -> Option<u64> {
    body.get(key).and_then(Value::as_u64)
}

async fn handle(State(state): State<Arc<MockState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let raw = req.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let echo_key =
        body["mock_echo_key"] == true || query.as_deref().is_some_and(|q| q.contains("echo_key=1"));
    state.calls.lock().unwrap().push(Recorded {
        path: path.clone(),
        query,
        headers: headers.clone(),
        body: body.clone(),
    });
    let anthropic = path == "/v1/messages";
    let presented = if anthropic {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    } else {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
    };
    if presented.as_deref() != Some(state.key.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"message": format!(
                "Incorrect API key provided: {}", presented.unwrap_or_default()
            ), "type": "invalid_request_error"}})),
        )
            .into_response();
    }
    if let Some(ms) = num(&body, "mock_delay_ms") {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    if let Some(status) = num(&body, "mock_status") {
        let message = if echo_key {
            format!("mock failure for key {}", state.key)
        } else {
            "mock failure".to_string()
        };
        let mut res = (
            StatusCode::from_u16(status as u16).unwrap(),
            [("x-mock", "error")],
            axum::Json(json!({"error": {"message": message, "type": "server_error"}})),
        )
            .into_response();
        if echo_key {
            res.headers_mut()
                .insert("x-debug-key", state.key.parse().unwrap());
            res.headers_mut().insert(
                http::HeaderName::from_bytes(
                    format!("x-leak-{}", state.key.to_lowercase()).as_bytes(),
                )
                .unwrap(),
                http::HeaderValue::from_static("1"),
            );
        }
        return res;
    }
    if body["mock_reason"] == true {
        let mut res = axum::Json(json!({"id": "chatcmpl-mock", "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}))
        .into_response();
        res.extensions_mut().insert(
            hyper::ext::ReasonPhrase::try_from(format!("key={}", state.key).into_bytes()).unwrap(),
        );
        return res;
    }
    if body["mock_switch"] == true {
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .body(Body::empty())
            .unwrap();
    }
    if body["mock_gzip"] == "twice" {
        let mut res = (StatusCode::OK, format!("compressed {}", state.key)).into_response();
        let h = res.headers_mut();
        h.append(header::CONTENT_ENCODING, "identity".parse().unwrap());
        h.append(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        return res;
    }
    if body["mock_gzip"] == "transfer" {
        let text = format!("compressed {}", state.key);
        let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(text))]);
        let mut res = Response::new(Body::from_stream(chunks));
        res.headers_mut()
            .insert(header::TRANSFER_ENCODING, "gzip, chunked".parse().unwrap());
        return res;
    }
    if body["mock_gzip"] == true {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_ENCODING, "gzip")],
            // Not real gzip: what matters is that the gateway refuses to relay it.
            format!("compressed {}", state.key),
        )
            .into_response();
    }
    let prompt = num(&body, "mock_prompt_tokens").unwrap_or(20);
    let output = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| num(&body, k))
        .unwrap_or(16);
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let chunks = num(&body, "mock_chunks").unwrap_or(3) as usize;
    let chunk_ms = num(&body, "mock_chunk_ms").unwrap_or(10);
    match path.as_str() {
        "/v1/chat/completions" | "/v1/completions" if stream => {
            let include = body["stream_options"]["include_usage"] == true;
            let mut events: Vec<String> = (0..chunks)
                .map(|i| json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": format!("t{i} ")}}]}).to_string())
                .collect();
            if include {
                events.push(json!({"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}}).to_string());
            }
            events.push("[DONE]".into());
            let mut chunks: Vec<String> =
                events.into_iter().map(|d| format!("data: {d}\n\n")).collect();
            if echo_key {
                // The key inside an event, the event written in two pieces that split it.
                let event = format!(
                    "data: {}\n\n",
                    json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": format!("your key is {}", state.key)}}]})
                );
                let at = event.find(&state.key).unwrap() + state.key.len() / 2;
                chunks.insert(1, event[at..].to_string());
                chunks.insert(1, event[..at].to_string());
            }
            sse(state, chunks, chunk_ms)
        }
        "/v1/chat/completions" | "/v1/completions" => (
            // What real providers say about the account; not the caller's business.
            [
                ("openai-organization", "org-mock"),
                ("openai-project", "proj_mock"),
                ("x-ratelimit-remaining-requests", "4999"),
                ("x-request-id", "req_mock"),
            ],
            axum::Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}
        })),
        )
            .into_response(),
        "/v1/embeddings" => axum::Json(json!({
            "object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt}
        }))
        .into_response(),
        "/v1/responses" if stream => {
            let mut events: Vec<String> = (0..chunks)
                .map(|i| format!("event: response.output_text.delta\ndata: {}\n\n", json!({"type": "response.output_text.delta", "delta": format!("t{i}")})))
                .collect();
            events.push(format!("event: response.completed\ndata: {}\n\n", json!({"type": "response.completed", "response": {"usage": {"input_tokens": prompt, "output_tokens": output}}})));
            sse(state, events, chunk_ms)
        }
        "/v1/responses" => axum::Json(json!({
            "object": "response", "output": [],
            "usage": {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output}
        }))
        .into_response(),
        "/v1/messages" if stream => {
            let mut events = vec![format!(
                "event: message_start\ndata: {}\n\n",
                json!({"type": "message_start", "message": {"id": "msg_mock", "usage": {"input_tokens": prompt, "output_tokens": 1}}})
            )];
            events.extend((0..chunks).map(|i| format!("event: content_block_delta\ndata: {}\n\n", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!("t{i}")}}))));
            events.push(format!("event: message_delta\ndata: {}\n\n", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output}})));
            events.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".into());
            sse(state, events, chunk_ms)
        }
        "/v1/messages" => axum::Json(json!({
            "id": "msg_mock", "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "Hello"}],
            "usage": {"input_tokens": prompt, "output_tokens": output}
        }))
        .into_response(),
        "/v1/models" if echo_key => axum::Json(json!({"object": "list", "data": [{"id": "gpt-test", "owner": state.key}]})).into_response(),
        "/v1/models" => axum::Json(json!({"object": "list", "data": [{"id": "gpt-test"}]})).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Sends `events` `chunk_ms` apart, counting the stream as finished once the last is out
/// (whether or not the client still reads).
fn sse(state: Arc<MockState>, events: Vec<String>, chunk_ms: u64) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        for (i, e) in events.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(chunk_ms)).await;
            }
            // Keep producing even when the reader is gone, as a provider would.
            let _ = tx.send(Ok(Bytes::from(e))).await;
        }
        state.streams_finished.fetch_add(1, Ordering::SeqCst);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}
