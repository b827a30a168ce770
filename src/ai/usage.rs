//! Reading what a provider says a call used, from a JSON body or from a server-sent-event
//! stream, as the bytes pass through (nothing is held back from the client).
//!
//! OpenAI reports `usage.{prompt,completion}_tokens` (chat, completions, embeddings; in
//! the last chunk of a stream when `stream_options.include_usage` is set) or
//! `usage.{input,output}_tokens` (responses; `response.usage` in `response.completed`).
//! Anthropic reports `usage` in the body, `message.usage` in `message_start` and a
//! cumulative `usage.output_tokens` in `message_delta`; its cache reads and writes are
//! input too. Every figure seen is kept at its maximum, which suits both styles.

use serde_json::Value;

/// Tokens a call used, as far as the provider said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input, cache reads and writes included.
    pub input: Option<i64>,
    pub output: Option<i64>,
    /// The part of `input` written to the prompt cache (billed above input).
    pub cache_write: Option<i64>,
}

impl Usage {
    pub fn reported(&self) -> bool {
        self.input.is_some() || self.output.is_some()
    }

    /// Takes in every usage object a JSON message carries.
    pub fn absorb(&mut self, message: &Value) {
        for u in [
            message.get("usage"),
            message.get("response").and_then(|r| r.get("usage")),
            message.get("message").and_then(|m| m.get("usage")),
        ]
        .into_iter()
        .flatten()
        {
            let n = |k: &str| u.get(k).and_then(Value::as_i64).filter(|n| *n >= 0);
            let input = n("prompt_tokens").or_else(|| {
                let parts = [
                    n("input_tokens"),
                    n("cache_creation_input_tokens"),
                    n("cache_read_input_tokens"),
                ];
                parts
                    .iter()
                    .any(Option::is_some)
                    .then(|| parts.iter().flatten().sum())
            });
            let output = n("completion_tokens").or_else(|| n("output_tokens"));
            self.input = max(self.input, input);
            self.output = max(self.output, output);
            self.cache_write = max(self.cache_write, n("cache_creation_input_tokens"));
        }
    }
}

fn max(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// How much of a non-streamed body is kept for reading its usage.
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;
/// Longest event kept; longer ones are passed on but not read.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Reads usage from a response body fed to it chunk by chunk.
pub enum UsageReader {
    Json { buf: Vec<u8>, overflow: bool },
    Events(EventReader),
}

impl UsageReader {
    pub fn for_content_type(content_type: &str) -> UsageReader {
        if content_type.starts_with("text/event-stream") {
            UsageReader::Events(EventReader::default())
        } else {
            UsageReader::Json {
                buf: Vec::new(),
                overflow: false,
            }
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        match self {
            UsageReader::Json { buf, overflow } => {
                if buf.len() + chunk.len() > MAX_JSON_BYTES {
                    *overflow = true;
                    buf.clear();
                } else if !*overflow {
                    buf.extend_from_slice(chunk);
                }
            }
            UsageReader::Events(r) => r.feed(chunk),
        }
    }

    /// The usage read, once the body has ended.
    pub fn finish(self) -> Usage {
        match self {
            UsageReader::Json { buf, overflow } => {
                let mut usage = Usage::default();
                if !overflow && let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    usage.absorb(&v);
                }
                usage
            }
            UsageReader::Events(mut r) => {
                r.feed(b"\n\n");
                r.usage
            }
        }
    }
}

/// A server-sent-event parser that only looks at `data:` fields.
#[derive(Default)]
pub struct EventReader {
    line: Vec<u8>,
    data: Vec<u8>,
    skipping: bool,
    pub usage: Usage,
}

impl EventReader {
    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' {
                self.end_line();
            } else if self.line.len() < MAX_EVENT_BYTES {
                self.line.push(b);
            } else {
                self.skipping = true;
            }
        }
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            if !self.skipping
                && !self.data.is_empty()
                && self.data != b"[DONE]"
                && let Ok(v) = serde_json::from_slice::<Value>(&self.data)
            {
                self.usage.absorb(&v);
            }
            self.data.clear();
            self.skipping = false;
        } else if let Some(rest) = line.strip_prefix(b"data:") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            if self.data.len() + rest.len() > MAX_EVENT_BYTES {
                self.skipping = true;
            } else {
                self.data.extend_from_slice(rest);
            }
        }
        self.line = line;
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_and_anthropic_bodies() {
        let mut u = Usage::default();
        u.absorb(&json!({"usage": {"prompt_tokens": 12, "completion_tokens": 30}}));
        assert_eq!((u.input, u.output), (Some(12), Some(30)));
        let mut u = Usage::default();
        u.absorb(&json!({"usage": {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 7}}));
        assert_eq!((u.input, u.output), (Some(105), Some(7)));
        let mut u = Usage::default();
        u.absorb(&json!({"usage": {"prompt_tokens": 8, "total_tokens": 8}}));
        assert_eq!((u.input, u.output), (Some(8), None));
    }

    #[test]
    fn streams_split_anywhere_are_read() {
        let stream = concat!(
            "event: message_start\r\n",
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\r\n\r\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n",
            ": comment\n\n",
            "data: [DONE]\n\n",
        )
        .as_bytes();
        for split in [1, 3, 7, 64, stream.len()] {
            let mut r = UsageReader::for_content_type("text/event-stream; charset=utf-8");
            for part in stream.chunks(split) {
                r.feed(part);
            }
            let u = r.finish();
            assert_eq!((u.input, u.output), (Some(25), Some(15)), "split {split}");
        }
    }

    #[test]
    fn a_stream_without_usage_reports_none() {
        let mut r = UsageReader::for_content_type("text/event-stream");
        r.feed(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
        assert!(!r.finish().reported());
    }
}
