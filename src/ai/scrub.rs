//! Keeping the provider key out of everything relayed to the client.
//!
//! A provider may quote the key it received: in an error body (any status, not only 401
//! and 403), in a debug header, in an echoed request. Every relayed body passes through a
//! [`Scrubber`], which replaces each occurrence of the key, also one split across chunks:
//! a chunk's tail that could be the start of the key is held back until the next chunk
//! shows whether it is. Keys never start with a line break, so a server-sent event's
//! closing blank line is never held. Response headers that carry the key, or a long piece
//! of it, are dropped.

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

use super::BoxError;

/// What stands where the key was.
pub const REDACTED: &[u8] = b"[REDACTED]";
/// A header value sharing this many consecutive characters with the key is dropped.
const HEADER_FRAGMENT: usize = 8;

pub struct Scrubber {
    key: Vec<u8>,
    held: Vec<u8>,
}

impl Scrubber {
    pub fn new(key: &str) -> Scrubber {
        Scrubber {
            key: key.as_bytes().to_vec(),
            held: Vec::new(),
        }
    }

    /// The next piece of the body, with the key replaced; the end of it may be held back.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        if self.key.is_empty() {
            return Bytes::copy_from_slice(chunk);
        }
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(data.len());
        let mut at = 0;
        while let Some(found) = find(&data[at..], &self.key) {
            out.extend_from_slice(&data[at..at + found]);
            out.extend_from_slice(REDACTED);
            at += found + self.key.len();
        }
        let rest = &data[at..];
        let hold = (1..self.key.len().min(rest.len() + 1))
            .rev()
            .find(|&k| rest.ends_with(&self.key[..k]))
            .unwrap_or(0);
        out.extend_from_slice(&rest[..rest.len() - hold]);
        self.held = rest[rest.len() - hold..].to_vec();
        Bytes::from(out)
    }

    /// Whatever was held back, at the end of the body.
    pub fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.held))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Drops response headers whose name or value holds the key or a long piece of it (names
/// arrive lower-cased, so they are compared ignoring case).
pub fn scrub_headers(headers: &mut HeaderMap, key: &str) {
    let key = key.as_bytes();
    if key.len() < HEADER_FRAGMENT {
        return;
    }
    let lower_key = key.to_ascii_lowercase();
    let leaking: Vec<http::HeaderName> = headers
        .iter()
        .filter(|(name, v)| {
            key.windows(HEADER_FRAGMENT)
                .any(|piece| find(v.as_bytes(), piece).is_some())
                || lower_key
                    .windows(HEADER_FRAGMENT)
                    .any(|piece| find(name.as_str().as_bytes(), piece).is_some())
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in leaking {
        tracing::warn!(header = %name, "dropped a provider response header that quoted the provider key");
        headers.remove(name);
    }
}

/// A response body relayed through a [`Scrubber`].
pub fn scrubbed<B>(body: B, scrubber: Scrubber) -> axum::body::Body
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let stream = futures_util::stream::unfold(
        (body, scrubber, false),
        |(mut body, mut scrubber, ended)| async move {
            if ended {
                return None;
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    let data = frame.into_data().unwrap_or_default();
                    Some((Ok(scrubber.feed(&data)), (body, scrubber, false)))
                }
                Some(Err(e)) => Some((Err(e.into()), (body, scrubber, true))),
                None => {
                    let tail = scrubber.finish();
                    Some((Ok::<_, BoxError>(tail), (body, scrubber, true)))
                }
            }
        },
    );
    axum::body::Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-abcdef0123456789";

    fn through(chunks: &[&str]) -> String {
        let mut s = Scrubber::new(KEY);
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&s.feed(c.as_bytes()));
        }
        out.extend_from_slice(&s.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_key_is_replaced_wherever_the_chunks_split_it() {
        let body = format!(r#"{{"error": "bad key {KEY} (and again: {KEY})"}}"#);
        let want = r#"{"error": "bad key [REDACTED] (and again: [REDACTED])"}"#;
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(through(&[a, b]), want, "split at {split}");
        }
        let bytes: Vec<String> = body.chars().map(|c| c.to_string()).collect();
        let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(through(&refs), want);
    }

    #[test]
    fn everything_else_passes_and_nothing_is_held_at_an_event_end() {
        let mut s = Scrubber::new(KEY);
        assert_eq!(&s.feed(b"data: {\"a\":1}\n\n")[..], b"data: {\"a\":1}\n\n");
        // A tail that might start the key waits for the next chunk, then passes.
        assert_eq!(&s.feed(b"data: sk-pro")[..], b"data: ");
        assert_eq!(&s.feed(b"se\n\n")[..], b"sk-prose\n\n");
        assert_eq!(through(&["sk-proj-abc"]), "sk-proj-abc");
        assert_eq!(through(&["no key here"]), "no key here");
    }

    #[test]
    fn headers_quoting_the_key_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-debug-key",
            "Bearer sk-proj-abcdef0123456789".parse().unwrap(),
        );
        h.insert("x-hint", "key ends in 0123456789".parse().unwrap());
        h.insert("x-key-sk-proj-abcdef", "1".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        scrub_headers(&mut h, KEY);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }
}
