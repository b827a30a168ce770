//! The WebSocket handshake, the one protocol switch the gateway passes through: what
//! asks for it, what completes it, and the tunnel it opens. Every other hop-by-hop header
//! is removed by `outbound::remove_hop_by_hop`; the exchange itself goes through the
//! shared client in `outbound`.

use http::header::{self, HeaderMap, HeaderValue};
use hyper_util::rt::TokioIo;

use crate::outbound::connection_tokens;

/// Whether the message is a WebSocket handshake, the one protocol switch passed through
/// (an h2c upgrade would open an HTTP/2 connection to the upstream that no policy sees).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && connection_tokens(headers).any(|t| t == "upgrade")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::remove_hop_by_hop;
    use http::header::HeaderName;

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
