//! One exchange with a provider: send the call with the provider's key, decide what a
//! failure costs, and relay the answer while reading its usage.
//!
//! A metered call arrives admitted (its worst case reserved) and leaves settled, whatever
//! happens: nothing reached the provider, so nothing is charged; the provider may have
//! billed it (a timeout, a broken or unreadable answer), so the reservation is; or the
//! answer is relayed and the usage it reports is charged once its body ends.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use futures_util::StreamExt;
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode};

use super::charge::{Admitted, Ending};
use super::relay::{self, RelayEnd};
use super::scrub::{Scrubber, scrubbed};
use super::usage_chunk::UsageChunkFilter;
use super::{Ai, AiProvider, Payer, upstream};
use crate::outbound::SendError;

/// The client's call as it goes upstream.
pub struct Outgoing<'a> {
    /// The provider endpoint, without `v1/`.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub body: Vec<u8>,
    /// Tollgate asked for a stream's usage chunk that the client did not ask for.
    pub hide_usage_chunk: bool,
}

/// Why no answer of the provider's is relayed.
#[derive(Debug)]
pub enum ExchangeFailure {
    /// No valid request target can be made of the path.
    InvalidTarget,
    /// Sending failed; the variant says whether anything reached the provider.
    Upstream(SendError),
    /// The provider refused Tollgate's key: the client can do nothing about it, and the
    /// provider's message may quote part of the key.
    KeyRefused,
    /// An answer that could be read neither for its usage nor scrubbed of the key
    /// (compressed although asked for `identity`), or no final answer (`101`).
    Unreadable,
}

impl Ai {
    /// Sends `out` to `provider` and returns the answer to relay. `admitted` is `None` for
    /// unmetered endpoints (model lists), whose answers are only scrubbed.
    pub async fn exchange(
        self: &Arc<Self>,
        provider: &AiProvider,
        payer: &Payer,
        out: Outgoing<'_>,
        admitted: Option<Admitted>,
    ) -> Result<Response<Body>, ExchangeFailure> {
        let cfg = &provider.config;
        let settle_unpaid = |a: Admitted, ending: Ending| async move {
            self.settle(payer, cfg.name.clone(), a, ending).await;
        };
        // Listing endpoints page with query parameters; metered calls take none.
        let query = out.query.filter(|_| admitted.is_none());
        let empty = out.body.is_empty();
        let usage_chunk = out.hide_usage_chunk.then(UsageChunkFilter::default);
        let request = upstream::request(cfg, out.path, query, out.method, out.headers, empty)
            .and_then(|b| b.body(Body::from(out.body)).ok());
        let Some(request) = request else {
            if let Some(a) = admitted {
                let ending = Ending::Unsent {
                    status: 400,
                    outcome: "invalid_target",
                };
                settle_unpaid(a, ending).await;
            }
            return Err(ExchangeFailure::InvalidTarget);
        };
        let sent = Instant::now();
        let res = provider.outbound.send(request).await;
        metrics::histogram!("tollgate_ai_upstream_latency_seconds", "provider" => cfg.name.clone())
            .record(sent.elapsed().as_secs_f64());
        let res = match res {
            Ok(res) => res,
            Err(e) => {
                if let Some(a) = admitted {
                    settle_unpaid(a, ending_of_failure(&e)).await;
                }
                return Err(ExchangeFailure::Upstream(e));
            }
        };
        let status = res.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            tracing::error!(provider = %cfg.name, status = status.as_u16(), "the AI provider refused the configured key");
            if let Some(a) = admitted {
                let ending = Ending::Unsent {
                    status: i32::from(status.as_u16()),
                    outcome: "upstream_auth_failed",
                };
                settle_unpaid(a, ending).await;
            }
            return Err(ExchangeFailure::KeyRefused);
        }
        if !upstream::is_readable(status, res.headers()) {
            tracing::error!(provider = %cfg.name, status = status.as_u16(), "the AI provider's answer cannot be checked (compressed although asked not to, or not a final answer)");
            if let Some(a) = admitted {
                // The provider may have billed it: charge the reservation.
                settle_unpaid(a, Ending::Unknown { status: 502 }).await;
            }
            return Err(ExchangeFailure::Unreadable);
        }
        let (mut head, body) = res.into_parts();
        let key = cfg.api_key.as_ref().map_or("", |k| k.0.as_str());
        upstream::clean_response_head(&mut head, key);
        let Some(admitted) = admitted else {
            return Ok(Response::from_parts(
                head,
                scrubbed(body, Scrubber::new(key)),
            ));
        };
        let content_type = head
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let ai = self.clone();
        let payer = payer.clone();
        let provider = cfg.name.clone();
        let ok = status.is_success();
        let rx = relay::spawn(
            body,
            &content_type,
            Scrubber::new(key),
            usage_chunk,
            self.config.drain_timeout,
            move |end: RelayEnd| async move {
                let status = i32::from(status.as_u16());
                let ending = Ending::Relayed { status, ok, end };
                ai.settle(&payer, provider, admitted, ending).await;
            },
        );
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed();
        Ok(Response::from_parts(head, Body::from_stream(stream)))
    }
}

/// What a failed send costs: nothing when nothing reached the provider; the reservation
/// when the provider may be generating (and billing) still.
fn ending_of_failure(e: &SendError) -> Ending {
    match e {
        SendError::Unreachable(_) => Ending::Unsent {
            status: 502,
            outcome: "upstream_unreachable",
        },
        SendError::Timeout => Ending::Unknown { status: 504 },
        // (A buffered body cannot stall nor fail; counted as broken to be safe.)
        SendError::Broken(_) | SendError::ClientStalled | SendError::ClientBody => {
            Ending::Unknown { status: 502 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_that_reached_the_provider_goes_unpaid() {
        assert!(matches!(
            ending_of_failure(&SendError::Unreachable("refused".into())),
            Ending::Unsent { status: 502, .. }
        ));
        for e in [
            SendError::Timeout,
            SendError::Broken("reset".into()),
            SendError::ClientStalled,
        ] {
            assert!(
                matches!(ending_of_failure(&e), Ending::Unknown { .. }),
                "{e}"
            );
        }
    }
}
