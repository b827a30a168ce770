//! Taking the usage chunk Tollgate asked for back out of an OpenAI stream.
//!
//! A streamed chat completion says what it used only when the request sets
//! `stream_options.include_usage`, so Tollgate sets it on every metered stream. A client
//! that did not ask for it must not receive the extra last chunk (`"choices": []` plus
//! `usage`): code reading `chunk.choices[0]` on every chunk crashes on it. The
//! [`UsageChunkFilter`] passes every server-sent event through whole, as soon as its
//! closing blank line arrives, except that one. (The `"usage": null` member OpenAI adds
//! to the other chunks is left alone: it is a field clients already ignore, and
//! rewriting each chunk's JSON would cost more than it is worth.)

use bytes::Bytes;
use serde_json::Value;

/// An event longer than this is passed on unread (a usage chunk is a few hundred bytes;
/// a provider padding one past this would have it reach the client, never unmetered).
const MAX_EVENT_BYTES: usize = 1024 * 1024;

#[derive(Default)]
pub struct UsageChunkFilter {
    held: Vec<u8>,
    /// An over-long event is being passed through until its end.
    passing: bool,
}

impl UsageChunkFilter {
    /// The complete events of `held + chunk` minus the usage chunk; the unfinished last
    /// event is held until its end arrives.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        self.held.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.held.len());
        let mut at = 0;
        while let Some(len) = event_len(&self.held[at..]) {
            let event = &self.held[at..at + len];
            if self.passing {
                self.passing = false;
                out.extend_from_slice(event);
            } else if !is_usage_chunk(event) {
                out.extend_from_slice(event);
            }
            at += len;
        }
        self.held.drain(..at);
        if self.held.len() > MAX_EVENT_BYTES {
            self.passing = true;
        }
        if self.passing {
            out.append(&mut self.held);
        }
        Bytes::from(out)
    }

    /// Whatever was held back, at the end of the body: an event without its closing
    /// blank line is the client's to judge.
    pub fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.held))
    }
}

/// The length of the first complete event in `data`, its closing blank line included.
fn event_len(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < data.len() {
        let line_end = match data[i] {
            b'\n' => 1,
            b'\r' if data.get(i + 1) == Some(&b'\n') => 2,
            b'\r' => 1,
            _ => {
                i += 1;
                continue;
            }
        };
        let next = i + line_end;
        // A line break directly after a line break ends the event.
        match (data.get(next), data.get(next + 1)) {
            (Some(b'\n'), _) => return Some(next + 1),
            (Some(b'\r'), Some(b'\n')) => return Some(next + 2),
            (Some(b'\r'), Some(_)) => return Some(next + 1),
            // A `\r` at the very end may be the start of `\r\n`: wait for more.
            (Some(b'\r'), None) | (None, _) => return None,
            _ => i = next,
        }
    }
    None
}

/// An event whose data is a chunk without choices that reports usage.
fn is_usage_chunk(event: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(event) else {
        return false;
    };
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    if data.is_empty() {
        return false;
    }
    let Ok(chunk) = serde_json::from_str::<Value>(&data.join("\n")) else {
        return false;
    };
    chunk
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        && chunk.get("usage").is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n",
        "data: [DONE]\n\n",
    );

    fn filtered(pieces: &[&[u8]]) -> String {
        let mut f = UsageChunkFilter::default();
        let mut out = Vec::new();
        for p in pieces {
            out.extend_from_slice(&f.feed(p));
        }
        out.extend_from_slice(&f.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn drops_only_the_usage_chunk_however_the_stream_is_cut() {
        let want = STREAM.replace(
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n",
            "",
        );
        assert_eq!(filtered(&[STREAM.as_bytes()]), want);
        let bytes = STREAM.as_bytes();
        for cut in 1..bytes.len() {
            assert_eq!(
                filtered(&[&bytes[..cut], &bytes[cut..]]),
                want,
                "cut at {cut}"
            );
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(filtered(&singles), want);
    }

    #[test]
    fn crlf_events_and_chunks_with_choices_pass() {
        let s = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\r\n\r\ndata: {\"choices\":[{}],\"usage\":{\"prompt_tokens\":1}}\r\n\r\n: keep-alive\n\ndata: [DONE]\r\n\r\n";
        assert_eq!(
            filtered(&[s.as_bytes()]),
            "data: {\"choices\":[{}],\"usage\":{\"prompt_tokens\":1}}\r\n\r\n: keep-alive\n\ndata: [DONE]\r\n\r\n"
        );
    }

    #[test]
    fn complete_events_are_not_held_back() {
        let mut f = UsageChunkFilter::default();
        assert_eq!(
            &f.feed(b"data: {\"choices\":[{}]}\n\ndata: {\"cho")[..],
            b"data: {\"choices\":[{}]}\n\n"
        );
        assert_eq!(&f.finish()[..], b"data: {\"cho");
    }

    #[test]
    fn an_over_long_event_is_passed_through_unread() {
        let mut f = UsageChunkFilter::default();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(f.feed(&big).len(), big.len());
        assert_eq!(&f.feed(b"yy\n\ndata: 1\n\n")[..], b"yy\n\ndata: 1\n\n");
    }
}
