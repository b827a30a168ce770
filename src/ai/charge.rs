//! What a metered call may do and what it costs, decided without HTTP.
//!
//! Admission: the request is inspected (shape, guards, output bound), its model checked
//! against the caller's roles and prices, and its worst case (prompt estimate plus output
//! bound) reserved against the quota, all or nothing. Settlement: how the call ended
//! decides the charge ([`settlement`]), the reservation is settled to it and the ledger
//! row written. Every refusal is audited as `ai.refused` (throttled per caller, reason
//! and minute).

use std::time::Instant;

use super::config::{OverMaxOutput, Quota};
use super::meter::{Charge, Dimension, MeterDecision, MeterError, Reservation};
use super::relay::RelayEnd;
use super::request::{AiRequest, Endpoint, OutputPolicy, RequestError, Sizing};
use super::{Ai, AiProvider, Payer, model_allowed};
use crate::audit::{Context, Outcome};
use crate::store::UsageRow;

/// Why a call is not forwarded.
#[derive(Debug)]
pub enum AiRefusal {
    /// The body: not a call this endpoint takes, a refused prompt, an output bound over
    /// the cap, something that cannot be metered in advance.
    Request(RequestError),
    /// The caller's roles do not allow the model, or it has no price under a USD budget.
    Model(&'static str),
    /// The worst case does not fit in a limit (now, or ever: `never_fits`).
    Quota {
        dimension: Dimension,
        limit: i64,
        retry_after_secs: i64,
        never_fits: bool,
    },
    /// The quota counters cannot be reached.
    Unavailable(MeterError),
    /// The ledger's spill file is nearly full: no row could be kept for another call.
    LedgerFull,
}

impl AiRefusal {
    /// The reason recorded in the audit log and the refusal metric; `None` when the
    /// refusal is ours, not the caller's (it is logged instead).
    pub fn reason(&self) -> Option<&'static str> {
        Some(match self {
            AiRefusal::Request(RequestError::Denied(_)) => "prompt_rejected",
            AiRefusal::Request(RequestError::PromptTooLong { .. }) => "prompt_too_long",
            AiRefusal::Request(RequestError::Unmeterable(_)) => "unmeterable_request",
            AiRefusal::Request(RequestError::OutputOverCap { .. }) => "max_output_tokens_exceeded",
            AiRefusal::Request(_) => "invalid_request",
            AiRefusal::Model(_) => "model_not_allowed",
            AiRefusal::Quota { dimension, .. } => dimension.code(),
            AiRefusal::Unavailable(_) | AiRefusal::LedgerFull => return None,
        })
    }
}

/// A call that was let through: what the ledger needs besides its usage.
#[derive(Debug)]
pub struct Admitted {
    pub model: String,
    pub endpoint: String,
    pub streamed: bool,
    pub prompt_estimate: i64,
    /// The worst case: output bound and charge (what an unknown outcome is charged).
    pub worst_output: i64,
    pub worst: Charge,
    pub started: Instant,
    pub created_at: i64,
    pub reservation: Option<Reservation>,
}

/// How a metered call ended, as the proxy saw it.
#[derive(Debug)]
pub enum Ending {
    /// Nothing the provider could bill: it was never reached, the request could not be
    /// built, or it refused the gateway's key.
    Unsent { status: i32, outcome: &'static str },
    /// The provider may have billed the call and nothing says how much: a timeout, a
    /// broken connection, an answer that could not be read.
    Unknown { status: i32 },
    /// The answer was relayed; `end` says whether it completed and what usage it reported.
    Relayed {
        status: i32,
        ok: bool,
        end: RelayEnd,
    },
}

/// What a call is charged, and the ledger's outcome for it.
#[derive(Debug, PartialEq)]
pub struct Settlement {
    pub input: i64,
    pub output: i64,
    pub charge: Charge,
    pub status: i32,
    pub outcome: &'static str,
}

/// The charging rules. Nothing reached the provider: nothing. The provider refused the
/// call: what it reported (usually nothing). It completed and reported usage: that usage
/// at the model's price. Anything else (no usage reported, cut short, unknown): the whole
/// reservation, since the provider may have billed the call in full.
pub fn settlement(
    a: &Admitted,
    ending: &Ending,
    price: impl Fn(i64, i64, i64) -> Charge,
) -> Settlement {
    let worst = |status, outcome| Settlement {
        input: a.prompt_estimate,
        output: a.worst_output,
        charge: a.worst,
        status,
        outcome,
    };
    match ending {
        Ending::Unsent { status, outcome } => Settlement {
            input: 0,
            output: 0,
            charge: Charge::default(),
            status: *status,
            outcome,
        },
        Ending::Unknown { status } => worst(*status, "upstream_broken"),
        Ending::Relayed { status, ok, end } => {
            let reported = |input_default: i64, outcome| {
                let input = end.usage.input.unwrap_or(input_default);
                let output = end.usage.output.unwrap_or(0);
                Settlement {
                    input,
                    output,
                    charge: price(input, output, end.usage.cache_write.unwrap_or(0)),
                    status: *status,
                    outcome,
                }
            };
            if !ok {
                reported(0, "upstream_error")
            } else if end.completed && end.usage.reported() {
                reported(a.prompt_estimate, end.outcome())
            } else if end.completed {
                worst(*status, "no_usage_reported")
            } else {
                worst(*status, end.outcome())
            }
        }
    }
}

impl Ai {
    /// Inspects a body sent to a metered endpoint under the caller's quota (`None`:
    /// unmetered): the output bound it may ask for, and its size in tokens.
    pub fn inspect(
        &self,
        provider: &AiProvider,
        endpoint: Endpoint,
        raw: &[u8],
        quota: Option<&Quota>,
    ) -> Result<AiRequest, AiRefusal> {
        let output = OutputPolicy {
            cap: quota.and_then(|q| q.max_output_tokens),
            reject: self.config.over_max_output == OverMaxOutput::Reject,
            default: quota.map(|_| self.config.default_max_output_tokens),
        };
        let image_tokens = |model: &str| self.image_tokens(model);
        let sizing = Sizing {
            bytes_per_token: self.config.prompt_bytes_per_token,
            image_tokens: &image_tokens,
            metered: quota.is_some(),
        };
        AiRequest::inspect(
            endpoint,
            provider.config.kind,
            raw,
            &provider.config.guard,
            &output,
            &sizing,
        )
        .map_err(AiRefusal::Request)
    }

    /// Admits an inspected call to `endpoint`: the model against the roles' allow-list
    /// and prices, then its worst case reserved against the quota.
    pub async fn admit(
        &self,
        payer: &Payer,
        quota: Option<&Quota>,
        request: &AiRequest,
        endpoint: String,
    ) -> Result<Admitted, AiRefusal> {
        // A call whose row the ledger could not keep would be a bill nobody sees.
        if !self.ledger.accepting() {
            return Err(AiRefusal::LedgerFull);
        }
        if let Some(q) = quota {
            if !model_allowed(q.models.as_deref(), &request.model) {
                return Err(AiRefusal::Model("your roles do not allow this model"));
            }
            if q.usd_per_month.is_some() && self.price(&request.model).is_none() {
                return Err(AiRefusal::Model(
                    "this model has no configured price, and your calls have a USD budget",
                ));
            }
        }
        let cache_write = if request.cache_write {
            request.prompt_tokens
        } else {
            0
        };
        let worst = self.charge(
            &request.model,
            request.prompt_tokens,
            request.max_output,
            cache_write,
        );
        let reservation = match quota {
            None => None,
            Some(q) => match self.reserve(payer, q, worst).await {
                Ok(MeterDecision::Reserved(r)) => Some(r),
                Ok(MeterDecision::Refused {
                    dimension,
                    limit,
                    retry_after_secs,
                    never_fits,
                }) => {
                    return Err(AiRefusal::Quota {
                        dimension,
                        limit,
                        retry_after_secs,
                        never_fits,
                    });
                }
                Err(e) => return Err(AiRefusal::Unavailable(e)),
            },
        };
        Ok(Admitted {
            model: request.model.clone(),
            endpoint,
            streamed: request.stream,
            prompt_estimate: request.prompt_tokens,
            worst_output: request.max_output,
            worst,
            started: Instant::now(),
            created_at: crate::clock::now(),
            reservation,
        })
    }

    /// Settles a call by how it ended and writes its ledger row.
    pub async fn settle(&self, payer: &Payer, provider: String, a: Admitted, ending: Ending) {
        let s = settlement(&a, &ending, |input, output, cache_write| {
            self.charge(&a.model, input, output, cache_write)
        });
        let row = UsageRow {
            id: uuid::Uuid::now_v7().to_string(),
            principal: payer.principal.clone(),
            api_key_id: payer.api_key_id.clone(),
            client_id: payer.client_id.clone(),
            provider,
            model: a.model.clone(),
            endpoint: a.endpoint.clone(),
            input_tokens: s.input,
            output_tokens: s.output,
            cost_pico: s.charge.pico_usd,
            latency_ms: a.started.elapsed().as_millis() as i64,
            status: s.status,
            outcome: s.outcome.to_string(),
            streamed: a.streamed,
            created_at: a.created_at,
            day: crate::clock::day_string(a.created_at),
        };
        self.record(a.reservation, s.charge, row).await;
    }

    /// Audits and counts a refusal (never the prompt itself): once per caller, reason and
    /// minute, with the rest counted (`audit::throttle`).
    pub async fn audit_refusal(
        &self,
        ctx: &Context,
        payer: &Payer,
        provider: &str,
        reason: &'static str,
        model: Option<&str>,
    ) {
        metrics::counter!("tollgate_ai_refusals_total", "reason" => reason).increment(1);
        let entry = ctx
            .entry("ai.refused", Outcome::Denied, Some(&payer.principal))
            .with("reason", reason)
            .with("provider", provider)
            .with("model", model.unwrap_or(""));
        let key = format!("{} {reason}", payer.principal);
        for entry in self.refusals.admit(key, entry) {
            if let Err(e) = self.store.append_audit(&entry).await {
                tracing::warn!(error = %e, "could not audit an AI refusal");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::usage::Usage;

    fn admitted() -> Admitted {
        Admitted {
            model: "m".into(),
            endpoint: "chat/completions".into(),
            streamed: false,
            prompt_estimate: 100,
            worst_output: 50,
            worst: Charge {
                tokens: 150,
                pico_usd: 1_500,
            },
            started: Instant::now(),
            created_at: 0,
            reservation: None,
        }
    }

    /// Ten pico-dollars a token.
    fn price(input: i64, output: i64, _cache_write: i64) -> Charge {
        Charge {
            tokens: input + output,
            pico_usd: 10 * (input + output),
        }
    }

    fn relayed(ok: bool, completed: bool, usage: Option<(i64, i64)>) -> Ending {
        Ending::Relayed {
            status: if ok { 200 } else { 429 },
            ok,
            end: RelayEnd {
                usage: Usage {
                    input: usage.map(|u| u.0),
                    output: usage.map(|u| u.1),
                    ..Usage::default()
                },
                completed,
                client_gone: false,
            },
        }
    }

    #[test]
    fn nothing_reached_the_provider_charge_nothing() {
        let s = settlement(
            &admitted(),
            &Ending::Unsent {
                status: 502,
                outcome: "upstream_unreachable",
            },
            price,
        );
        assert_eq!(s.charge, Charge::default());
        assert_eq!(
            (s.input, s.output, s.outcome),
            (0, 0, "upstream_unreachable")
        );
    }

    #[test]
    fn reported_usage_is_charged_at_the_price() {
        let s = settlement(&admitted(), &relayed(true, true, Some((80, 20))), price);
        assert_eq!(s.charge.pico_usd, 1_000);
        assert_eq!((s.input, s.output, s.outcome), (80, 20, "completed"));
    }

    #[test]
    fn no_usage_charge_the_reservation() {
        let a = admitted();
        let s = settlement(&a, &relayed(true, true, None), price);
        assert_eq!((s.charge, s.outcome), (a.worst, "no_usage_reported"));
        // Cut short: the provider may have billed it all.
        let s = settlement(&a, &relayed(true, false, Some((80, 5))), price);
        assert_eq!((s.charge, s.outcome), (a.worst, "upstream_broken"));
        // Timed out or unreadable: the same.
        let s = settlement(&a, &Ending::Unknown { status: 504 }, price);
        assert_eq!(
            (s.charge, s.status, s.input, s.output),
            (a.worst, 504, 100, 50)
        );
    }

    #[test]
    fn a_provider_refusal_costs_what_it_reported() {
        let s = settlement(&admitted(), &relayed(false, true, None), price);
        assert_eq!((s.charge, s.outcome), (Charge::default(), "upstream_error"));
        let s = settlement(&admitted(), &relayed(false, true, Some((7, 0))), price);
        assert_eq!(s.charge.pico_usd, 70);
    }

    #[test]
    fn refusals_name_their_reason() {
        assert_eq!(
            AiRefusal::Request(RequestError::Denied(0)).reason(),
            Some("prompt_rejected")
        );
        assert_eq!(AiRefusal::Model("x").reason(), Some("model_not_allowed"));
        assert_eq!(
            AiRefusal::Request(RequestError::NoModel).reason(),
            Some("invalid_request")
        );
    }
}
