//! Unit tests of `request`.

use super::*;
use crate::ai::guard::Redaction;
use serde_json::json;

const IMAGE_TOKENS: i64 = 2_600;

fn guard() -> Guard {
    Guard::new(
        1 << 20,
        None,
        &["forbidden".into()],
        vec![Redaction::Email],
        false,
    )
    .unwrap()
}

fn open() -> OutputPolicy {
    OutputPolicy {
        cap: None,
        reject: false,
        default: None,
    }
}

fn run(
    endpoint: Endpoint,
    body: Value,
    policy: &OutputPolicy,
    metered: bool,
) -> Result<AiRequest, RequestError> {
    let kind = if endpoint == Endpoint::Messages {
        ProviderKind::Anthropic
    } else {
        ProviderKind::OpenAi
    };
    let sizing = Sizing {
        bytes_per_token: 1,
        image_tokens: &|_| IMAGE_TOKENS,
        metered,
    };
    AiRequest::inspect(
        endpoint,
        kind,
        &serde_json::to_vec(&body).unwrap(),
        &guard(),
        policy,
        &sizing,
    )
}

/// The body as it will be forwarded.
fn sent(r: &AiRequest) -> Value {
    serde_json::from_slice(&r.bytes).unwrap()
}

fn inspect(
    endpoint: Endpoint,
    body: Value,
    policy: &OutputPolicy,
) -> Result<AiRequest, RequestError> {
    run(endpoint, body, policy, false)
}

#[test]
fn streams_ask_for_usage_and_outputs_are_capped() {
    let policy = OutputPolicy {
        cap: Some(100),
        reject: false,
        default: Some(4096),
    };
    let r = inspect(
        Endpoint::ChatCompletions,
        json!({"model": "m", "stream": true, "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]}),
        &policy,
    )
    .unwrap();
    assert!(r.stream);
    assert_eq!(sent(&r)["stream_options"]["include_usage"], true);
    assert_eq!(sent(&r)["max_tokens"], 100);
    assert_eq!(r.max_output, 100);
    let r = inspect(
        Endpoint::Messages,
        json!({"model": "c", "messages": []}),
        &policy,
    )
    .unwrap();
    assert_eq!(sent(&r)["max_tokens"], 100, "a missing bound gets the cap");
    // Both names: the larger counts and one is forwarded.
    let r = inspect(
        Endpoint::ChatCompletions,
        json!({"model": "m", "max_tokens": 10, "max_completion_tokens": 90}),
        &open(),
    )
    .unwrap();
    assert_eq!(sent(&r)["max_completion_tokens"], 90);
    assert!(sent(&r).get("max_tokens").is_none());
    let reject = OutputPolicy {
        reject: true,
        ..policy
    };
    assert_eq!(
        inspect(
            Endpoint::Responses,
            json!({"model": "m", "max_output_tokens": 101}),
            &reject
        )
        .err(),
        Some(RequestError::OutputOverCap {
            asked: 101,
            limit: 100
        })
    );
}

#[test]
fn several_choices_multiply_the_output() {
    let r = inspect(
        Endpoint::Completions,
        json!({"model": "m", "prompt": "x", "max_tokens": 10, "n": 3, "best_of": 5}),
        &open(),
    )
    .unwrap();
    assert_eq!(r.max_output, 50);
    assert_eq!(
        inspect(
            Endpoint::ChatCompletions,
            json!({"model": "m", "n": 1000}),
            &open()
        )
        .err(),
        Some(RequestError::TooMany("n", 128))
    );
}

#[test]
fn the_estimate_bounds_text_and_counts_images() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", "A".repeat(10_000))}}
    ]}]});
    let r = inspect(Endpoint::ChatCompletions, body, &open()).unwrap();
    assert!(
        r.prompt_tokens >= IMAGE_TOKENS && r.prompt_tokens < IMAGE_TOKENS + 200,
        "{}",
        r.prompt_tokens
    );
    assert_eq!(
        r.max_output, 0,
        "an unmetered caller without a bound reserves none"
    );
    // Text that looks like a data URL is text, counted and guarded.
    let sneaky = format!("data: {} forbidden", "y".repeat(5000));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": sneaky}]});
    assert_eq!(
        inspect(Endpoint::ChatCompletions, body, &open()).err(),
        Some(RequestError::Denied(0))
    );
    let body = json!({"model": "m", "messages": [{"role": "user", "content": format!("data: {}", "y".repeat(5000))}]});
    assert!(
        inspect(Endpoint::ChatCompletions, body, &open())
            .unwrap()
            .prompt_tokens
            > 5000
    );
}

#[test]
fn text_inside_image_objects_is_guarded_and_metered() {
    let hidden = format!("forbidden {}", "y".repeat(5000));
    for image in [
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": hidden}}),
        json!({"type": "image_url", "image_url": {"url": hidden}}),
        json!({"type": "image_url", "image_url": "data:image/png;base64,AAAA", "text": hidden}),
        json!({"type": "input_image", "image_url": hidden}),
        json!({"type": "image_url", "image_url": {"url": format!("data:image/png;filename={hidden};base64,AAAA")}}),
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": hidden}}),
    ] {
        let body =
            json!({"model": "m", "messages": [{"role": "user", "content": [image.clone()]}]});
        assert_eq!(
            inspect(Endpoint::ChatCompletions, body, &open()).err(),
            Some(RequestError::Denied(0)),
            "{image}"
        );
        // Without the denied word, the text is metered as text, on top of the image.
        let unguarded = serde_json::to_string(&image)
            .unwrap()
            .replace("forbidden", "fine");
        let body = json!({"model": "m", "messages": [{"role": "user", "content": [serde_json::from_str::<Value>(&unguarded).unwrap()]}]});
        let r = inspect(Endpoint::ChatCompletions, body, &open()).unwrap();
        assert!(
            r.prompt_tokens > IMAGE_TOKENS + 5000,
            "{image}: {}",
            r.prompt_tokens
        );
    }
    // Real image data is counted as an image, not as text.
    let data = "A".repeat(40_000);
    for (endpoint, image) in [
        (
            Endpoint::ChatCompletions,
            json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}}),
        ),
        (
            Endpoint::ChatCompletions,
            json!({"type": "input_image", "image_url": format!("data:image/jpeg;base64,{data}")}),
        ),
        (
            Endpoint::Messages,
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}),
        ),
    ] {
        let body =
            json!({"model": "m", "messages": [{"role": "user", "content": [image.clone()]}]});
        let r = inspect(endpoint, body.clone(), &open()).unwrap();
        assert!(
            r.prompt_tokens < IMAGE_TOKENS + 300,
            "{endpoint:?} {}: {}",
            image["type"],
            r.prompt_tokens
        );
        // The other API's shape is text to this provider.
        let other = if endpoint == Endpoint::Messages {
            Endpoint::ChatCompletions
        } else {
            Endpoint::Messages
        };
        assert!(inspect(other, body.clone(), &open()).unwrap().prompt_tokens > 40_000);
        assert_eq!(
            sent(&r)["messages"],
            body["messages"],
            "the data is forwarded untouched"
        );
    }
}

#[test]
fn guards_see_roles_keys_and_nested_model_fields() {
    for body in [
        json!({"model": "m", "messages": [{"role": "forbidden", "content": "x"}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
               "tools": [{"type": "function", "function": {"name": "t", "parameters":
                   {"type": "object", "properties": {"model": {"type": "string", "description": "forbidden"}}}}}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
               "tools": [{"type": "function", "function": {"name": "t", "parameters":
                   {"type": "object", "properties": {"role": {"enum": ["forbidden"]}}}}}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
               "tools": [{"type": "function", "function": {"name": "t", "parameters":
                   {"type": "object", "properties": {"say forbidden things": {"type": "string"}}}}}]}),
    ] {
        assert_eq!(
            inspect(Endpoint::ChatCompletions, body.clone(), &open()).err(),
            Some(RequestError::Denied(0)),
            "{body}"
        );
    }
    // Property names are redacted like any text.
    let r = inspect(
        Endpoint::ChatCompletions,
        json!({"model": "m", "messages": [], "metadata": {"a@b.io": "x"}}),
        &open(),
    )
    .unwrap();
    assert!(
        sent(&r)["metadata"].get("[REDACTED_EMAIL]").is_some(),
        "{}",
        sent(&r)["metadata"]
    );
    // The model name itself is not prompt text.
    assert!(
        inspect(
            Endpoint::ChatCompletions,
            json!({"model": "forbidden-9", "messages": []}),
            &open()
        )
        .is_ok()
    );
}

#[test]
fn guards_see_every_string_but_the_model() {
    let r = inspect(
        Endpoint::Messages,
        json!({"model": "c", "system": "mail a@b.io", "messages": [{"role": "user", "content": "x@y.org"}],
               "tools": [{"name": "t", "description": "ask q@r.net"}]}),
        &open(),
    )
    .unwrap();
    assert_eq!(sent(&r)["system"], "mail [REDACTED_EMAIL]");
    assert_eq!(sent(&r)["messages"][0]["content"], "[REDACTED_EMAIL]");
    assert_eq!(sent(&r)["tools"][0]["description"], "ask [REDACTED_EMAIL]");
    assert_eq!(
        inspect(
            Endpoint::Completions,
            json!({"model": "m", "prompt": "x", "suffix": "a forbidden word"}),
            &open()
        )
        .err(),
        Some(RequestError::Denied(0))
    );
}

#[test]
fn what_cannot_be_bounded_is_refused_to_metered_callers() {
    for (endpoint, body) in [
        (
            Endpoint::Responses,
            json!({"model": "m", "previous_response_id": "resp_1"}),
        ),
        (
            Endpoint::Responses,
            json!({"model": "m", "tools": [{"type": "web_search"}]}),
        ),
        (
            Endpoint::Responses,
            json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
        ),
        (
            Endpoint::Responses,
            json!({"model": "m", "input": [{"id": "msg_1"}]}),
        ),
        (
            Endpoint::Messages,
            json!({"model": "c", "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
        ),
        (
            Endpoint::ChatCompletions,
            json!({"model": "m", "modalities": ["text", "audio"]}),
        ),
        (
            Endpoint::Messages,
            json!({"model": "c", "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}]}),
        ),
    ] {
        assert!(
            matches!(
                run(endpoint, body.clone(), &open(), true),
                Err(RequestError::Unmeterable(_))
            ),
            "{body}"
        );
        assert!(
            run(endpoint, body, &open(), false).is_ok(),
            "unmetered callers may"
        );
    }
    let r = run(
        Endpoint::ChatCompletions,
        json!({"model": "m", "service_tier": "priority", "tools": [{"type": "function", "function": {"name": "f"}}]}),
        &open(),
        true,
    )
    .unwrap();
    assert!(sent(&r).get("service_tier").is_none());
    let r = run(
        Endpoint::Messages,
        json!({"model": "c", "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]}),
        &open(),
        true,
    )
    .unwrap();
    assert!(r.cache_write);
    for body in [
        json!({"model": "c", "cache_control": {"type": "ephemeral"}, "messages": []}),
        json!({"model": "c", "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "data": "AA"}, "cache_control": {"type": "ephemeral"}}
        ]}]}),
    ] {
        assert!(
            run(Endpoint::Messages, body, &open(), true)
                .unwrap()
                .cache_write
        );
    }
    // Tool use costs Anthropic's hidden system prompt.
    let bare = run(Endpoint::Messages, json!({"model": "c"}), &open(), true).unwrap();
    let tools = run(
        Endpoint::Messages,
        json!({"model": "c", "tools": [{"name": "t"}]}),
        &open(),
        true,
    )
    .unwrap();
    assert!(tools.prompt_tokens - bare.prompt_tokens >= ANTHROPIC_TOOL_TOKENS);
    // Model names are short printable text.
    for model in [json!("a\u{0}b"), json!("x".repeat(300)), json!("")] {
        assert_eq!(
            inspect(Endpoint::ChatCompletions, json!({"model": model}), &open()).err(),
            Some(RequestError::NoModel)
        );
    }
}

#[test]
fn malformed_bodies_are_named() {
    for (body, want) in [
        (json!([1]), RequestError::NotAnObject),
        (json!({"messages": []}), RequestError::NoModel),
        (
            json!({"model": "m", "stream": "yes"}),
            RequestError::BadStream,
        ),
        (
            json!({"model": "m", "max_tokens": -1}),
            RequestError::BadNumber("max_tokens"),
        ),
    ] {
        assert_eq!(
            inspect(Endpoint::ChatCompletions, body, &open()).err(),
            Some(want)
        );
    }
}
