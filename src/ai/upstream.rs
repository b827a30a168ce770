//! The provider's side of an AI call: the request Tollgate sends (the client's few
//! harmless headers, the provider key, no compression) and what of the provider's answer
//! head reaches the client (no reason phrase, cookies, account headers or key).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, request, response};

use super::config::{ProviderConfig, ProviderKind};
use super::scrub::scrub_headers;
use crate::outbound::remove_hop_by_hop;

/// Request headers a provider may receive from the client; everything else (cookies,
/// credentials, identity, forwarding headers, and `anthropic-beta`, whose features can
/// change the price) stays here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 3] = [
    header::ACCEPT,
    header::CONTENT_TYPE,
    HeaderName::from_static("anthropic-version"),
];

/// Response headers about the provider account (its organisation, project and rate
/// limits), which are not the caller's business.
fn is_account_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("openai-organization")
        || n.starts_with("openai-project")
        || n.starts_with("anthropic-organization")
        || n.starts_with("x-ratelimit-")
        || n.starts_with("anthropic-ratelimit-")
}

/// The head of the request to the provider for `path` (and `query`, for listing
/// endpoints), or `None` when no valid target can be made of it.
pub fn request(
    cfg: &ProviderConfig,
    path: &str,
    query: Option<&str>,
    method: &Method,
    client: &HeaderMap,
    empty_body: bool,
) -> Option<request::Builder> {
    let mut target = format!("{}/{path}", cfg.base_url);
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    let uri = http::Uri::try_from(target).ok()?;
    let mut builder = http::Request::builder().method(method.clone()).uri(uri);
    let headers = builder.headers_mut()?;
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(v) = client.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    // Usage is read from the body as it passes: it must not be compressed.
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if !empty_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(key) = &cfg.api_key {
        let mut value = match cfg.kind {
            ProviderKind::OpenAi => HeaderValue::try_from(format!("Bearer {}", key.0)),
            ProviderKind::Anthropic => HeaderValue::try_from(key.0.as_str()),
        }
        // Checked when the configuration was loaded.
        .unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        let name = match cfg.kind {
            ProviderKind::OpenAi => header::AUTHORIZATION,
            ProviderKind::Anthropic => HeaderName::from_static("x-api-key"),
        };
        headers.insert(name, value);
    }
    if cfg.kind == ProviderKind::Anthropic
        && !headers.contains_key("anthropic-version")
        && let Ok(v) = HeaderValue::from_str(&cfg.anthropic_version)
    {
        headers.insert(HeaderName::from_static("anthropic-version"), v);
    }
    Some(builder)
}

/// Whether an answer can be relayed: a final status, and a body as sent, with no coding
/// but chunked framing. Asked for `identity`, a provider that compresses anyway (in any
/// header of the list, or as a transfer coding) sends bytes that could be read neither
/// for their usage nor scrubbed of the key; a `101` would hand the client a connection.
pub fn is_readable(status: http::StatusCode, headers: &HeaderMap) -> bool {
    let only = |name: header::HeaderName, allowed: &str| {
        headers.get_all(name).iter().all(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .all(|t| t.is_empty() || t.eq_ignore_ascii_case(allowed))
            })
        })
    };
    !status.is_informational()
        && only(header::CONTENT_ENCODING, "identity")
        && only(header::TRANSFER_ENCODING, "chunked")
}

/// What of the provider's answer head reaches the client.
pub fn clean_response_head(head: &mut response::Parts, key: &str) {
    // Only the status code goes on: an HTTP/1.1 reason phrase is the provider's free
    // text (hyper keeps it as an extension), and it may quote the key.
    head.extensions = http::Extensions::new();
    remove_hop_by_hop(&mut head.headers, false);
    head.headers.remove(header::SET_COOKIE);
    let account: Vec<HeaderName> = head
        .headers
        .keys()
        .filter(|n| is_account_header(n))
        .cloned()
        .collect();
    for name in account {
        head.headers.remove(name);
    }
    scrub_headers(&mut head.headers, key);
    // Chunked: scrubbing may change the length, and a metered body must end when the
    // relay ends it (after settling), not when the declared length has been sent.
    head.headers.remove(header::CONTENT_LENGTH);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn head(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_plain_final_answers_are_readable() {
        let ok = StatusCode::OK;
        assert!(is_readable(ok, &head(&[])));
        assert!(is_readable(ok, &head(&[("content-encoding", "identity")])));
        assert!(is_readable(ok, &head(&[("transfer-encoding", "chunked")])));
        for bad in [
            head(&[("content-encoding", "gzip")]),
            head(&[
                ("content-encoding", "identity"),
                ("content-encoding", "gzip"),
            ]),
            head(&[("content-encoding", "identity, br")]),
            head(&[("transfer-encoding", "gzip, chunked")]),
        ] {
            assert!(!is_readable(ok, &bad), "{bad:?}");
        }
        assert!(!is_readable(StatusCode::SWITCHING_PROTOCOLS, &head(&[])));
    }
}
