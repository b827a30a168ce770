//! The official OpenAI and Anthropic Python SDKs against the AI proxy
//! (`tests/interop/ai_sdks.py`), with the mock provider behind it: a plain stream never
//! hands client code the usage chunk Tollgate asked for (yet the call is metered), a
//! stream that asks for usage gets it, and Tollgate's own refusals reach the SDK user as
//! the provider's error shape with the reason and Tollgate's `code`.

use crate::common;

use common::python::{python, run_json};
use common::{Backend, eventually};
use std::time::Duration;

use super::ai::{start, usage};

async fn the_providers_sdks_read_streams_and_refusals(b: Backend) {
    let (s, openai, _anthropic) = start(b, "[ai.quota.user]\ntokens_per_day = 20000\n").await;
    let (_, token) = s.user_with_roles("sdk", &["user"]).await;
    let out = run_json(
        &python(),
        "ai_sdks.py",
        &[("BASE", s.base.as_str()), ("TOKEN", token.as_str())],
    );
    assert_eq!(out["plain_stream"], "t0 t1 t2 ", "{out}");
    assert_eq!(out["usage_chunk"]["choices"], 0, "{out}");
    assert_eq!(out["usage_chunk"]["completion_tokens"], 4, "{out}");
    assert_eq!(
        openai.calls()[0].body["stream_options"]["include_usage"],
        true,
        "the plain stream was metered from the provider's usage"
    );
    // Both streams are metered (5 + 4 output tokens, 20 prompt tokens each, as the mock
    // reports), then the Anthropic call; the refusals cost nothing.
    let metered = eventually(Duration::from_secs(10), || async {
        usage(&s, &token).await["usage"]["tokens_per_day"].as_i64() >= Some(49)
    })
    .await;
    assert!(metered, "{}", usage(&s, &token).await);

    let refused = &out["openai_refusal"];
    assert_eq!(refused["class"], "RateLimitError", "{out}");
    assert_eq!(refused["status"], 429);
    assert_eq!(refused["code"], "quota_exceeded", "{out}");
    assert_eq!(refused["type"], "insufficient_quota", "{out}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("AI quota exceeded") && message.contains("tokens_per_day"),
        "the SDK's message names the reason: {message}"
    );

    assert_eq!(out["anthropic_message"], "message", "{out}");
    let refused = &out["anthropic_refusal"];
    assert_eq!(refused["class"], "RateLimitError", "{out}");
    assert_eq!(refused["body"]["type"], "error", "{out}");
    assert_eq!(
        refused["body"]["error"]["type"], "rate_limit_error",
        "{out}"
    );
    assert_eq!(refused["body"]["error"]["code"], "quota_exceeded", "{out}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("AI quota exceeded"),
        "{out}"
    );
}

on_sqlite!(the_providers_sdks_read_streams_and_refusals => the_providers_sdks_read_streams_and_refusals);
