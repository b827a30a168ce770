//! A provider request body: what it asks for (model, streaming, output bound), the worst
//! case it can cost, and the rewrites Tollgate makes before forwarding (guards, the
//! output cap, usage reporting in streams).

use serde_json::{Map, Value};

use super::config::ProviderKind;
use super::guard::Guard;

/// The endpoints Tollgate meters; everything else on the allow-list passes unmetered
/// (model lists, token counting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Messages,
    Unmetered,
}

impl Endpoint {
    pub fn of(kind: ProviderKind, path: &str) -> Endpoint {
        match (kind, path) {
            (ProviderKind::OpenAi, "chat/completions") => Endpoint::ChatCompletions,
            (ProviderKind::OpenAi, "completions") => Endpoint::Completions,
            (ProviderKind::OpenAi, "embeddings") => Endpoint::Embeddings,
            (ProviderKind::OpenAi, "responses") => Endpoint::Responses,
            (ProviderKind::Anthropic, "messages") => Endpoint::Messages,
            _ => Endpoint::Unmetered,
        }
    }

    /// The field that bounds the output, if the endpoint produces any.
    fn output_field(self) -> Option<&'static str> {
        match self {
            Endpoint::ChatCompletions => Some("max_completion_tokens"),
            Endpoint::Completions | Endpoint::Messages => Some("max_tokens"),
            Endpoint::Responses => Some("max_output_tokens"),
            Endpoint::Embeddings | Endpoint::Unmetered => None,
        }
    }

    /// Fields that carry what the model reads.
    fn prompt_fields(self) -> &'static [&'static str] {
        match self {
            Endpoint::ChatCompletions => &["messages"],
            Endpoint::Completions => &["prompt"],
            Endpoint::Embeddings => &["input"],
            Endpoint::Responses => &["input", "instructions"],
            Endpoint::Messages => &["messages", "system"],
            Endpoint::Unmetered => &[],
        }
    }
}

/// A generous upper bound for one image, in tokens (providers bill images by size, up
/// to about 1,600 (Anthropic) or 2,500 (OpenAI) tokens each).
const IMAGE_TOKENS: i64 = 2_600;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("the body must name a model")]
    NoModel,
    #[error("'{0}' must be a non-negative integer")]
    BadNumber(&'static str),
    #[error("'stream' must be a boolean")]
    BadStream,
    /// Index of the deny-list pattern that matched.
    #[error("the prompt matches a refused pattern")]
    Denied(usize),
    #[error("the prompt is estimated at {estimate} tokens, over the limit of {limit}")]
    PromptTooLong { estimate: i64, limit: u64 },
    #[error("at most {limit} output tokens may be asked for; this asks for {asked}")]
    OutputOverCap { asked: u64, limit: u32 },
}

pub struct AiRequest {
    pub endpoint: Endpoint,
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// Upper bound of the prompt's tokens (see [`AiRequest::inspect`]).
    pub prompt_tokens: i64,
    /// The output bound as it will be forwarded (0 for embeddings).
    pub max_output: i64,
    /// The prompt text as forwarded, when the provider's guard logs prompts.
    pub logged_prompt: Option<String>,
}

/// How the output bound is enforced for this caller.
pub struct OutputPolicy {
    pub cap: Option<u32>,
    /// Refuse instead of capping when a request asks for more than `cap`.
    pub reject: bool,
    /// The bound injected when the request names none (metered callers only; `None`
    /// leaves such requests as they are).
    pub default: Option<u32>,
}

impl AiRequest {
    /// Parses and checks a body, applies the guard (deny-list, then redaction) to prompt
    /// text, and bounds the output. The prompt estimate is the body's bytes (less image
    /// data, plus a fixed allowance per image) divided by `bytes_per_token`: with 1, a
    /// strict upper bound for text, since every token of a byte-level tokenizer is at
    /// least one byte.
    pub fn inspect(
        endpoint: Endpoint,
        kind: ProviderKind,
        raw: &[u8],
        guard: &Guard,
        output: &OutputPolicy,
        bytes_per_token: u32,
    ) -> Result<AiRequest, RequestError> {
        let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(raw) else {
            return Err(RequestError::NotAnObject);
        };
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            _ => return Err(RequestError::NoModel),
        };
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RequestError::BadStream),
        };

        let mut images = Images::default();
        let mut denied = None;
        let mut logged = guard.log_prompts.then(String::new);
        for field in endpoint.prompt_fields() {
            if let Some(v) = body.get_mut(*field) {
                walk_text(v, &mut images, &mut |text| {
                    if denied.is_none() {
                        denied = guard.denied(text);
                    }
                    if guard.redacts()
                        && let std::borrow::Cow::Owned(clean) = guard.redact(text)
                    {
                        *text = clean;
                    }
                    if let Some(log) = logged.as_mut() {
                        log.push_str(text);
                        log.push('\n');
                    }
                });
            }
        }
        if let Some(i) = denied {
            return Err(RequestError::Denied(i));
        }

        let max_output = bound_output(endpoint, kind, &mut body, output)?;
        if stream
            && kind == ProviderKind::OpenAi
            && matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions)
        {
            // Without it an OpenAI stream never says what it used.
            let options = body
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(o) = options {
                o.insert("include_usage".into(), Value::Bool(true));
            } else {
                *options = serde_json::json!({"include_usage": true});
            }
        }
        let text_bytes = raw.len().saturating_sub(images.bytes) as i64;
        let per = i64::from(bytes_per_token.max(1));
        let prompt_tokens = (text_bytes + per - 1) / per + images.count * IMAGE_TOKENS;
        if let Some(limit) = guard.max_prompt_tokens
            && prompt_tokens as u64 > limit
        {
            return Err(RequestError::PromptTooLong {
                estimate: prompt_tokens,
                limit,
            });
        }
        Ok(AiRequest {
            endpoint,
            body,
            model,
            stream,
            prompt_tokens,
            max_output,
            logged_prompt: logged,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

/// Applies the output policy; returns the bound that will be forwarded.
fn bound_output(
    endpoint: Endpoint,
    kind: ProviderKind,
    body: &mut Map<String, Value>,
    policy: &OutputPolicy,
) -> Result<i64, RequestError> {
    let Some(field) = endpoint.output_field() else {
        return Ok(0);
    };
    // Chat completions still accept the older name; whichever the client used is kept.
    let field = if endpoint == Endpoint::ChatCompletions
        && kind == ProviderKind::OpenAi
        && !body.contains_key(field)
        && body.contains_key("max_tokens")
    {
        "max_tokens"
    } else {
        field
    };
    let asked = match body.get(field) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or(RequestError::BadNumber(field_name(field)))?,
        ),
    };
    let bound = match (asked, policy.cap) {
        (Some(a), Some(cap)) if a > u64::from(cap) => {
            if policy.reject {
                return Err(RequestError::OutputOverCap {
                    asked: a,
                    limit: cap,
                });
            }
            Some(u64::from(cap))
        }
        (Some(a), _) => Some(a),
        (None, Some(cap)) => Some(u64::from(policy.default.map_or(cap, |d| d.min(cap)))),
        (None, None) => policy.default.map(u64::from),
    };
    match bound {
        Some(b) => {
            body.insert(field.into(), Value::from(b));
            Ok(b.min(i64::MAX as u64) as i64)
        }
        // Unmetered callers without a bound: nothing is reserved for the output.
        None => Ok(0),
    }
}

fn field_name(field: &str) -> &'static str {
    match field {
        "max_tokens" => "max_tokens",
        "max_output_tokens" => "max_output_tokens",
        _ => "max_completion_tokens",
    }
}

#[derive(Default)]
struct Images {
    count: i64,
    bytes: usize,
}

/// Calls `f` on every text string under `v`, skipping image parts (counted instead).
fn walk_text(v: &mut Value, images: &mut Images, f: &mut dyn FnMut(&mut String)) {
    match v {
        Value::String(s) if s.starts_with("data:") => {
            images.count += 1;
            images.bytes += s.len();
        }
        Value::String(s) => f(s),
        Value::Array(items) => {
            for item in items {
                walk_text(item, images, f);
            }
        }
        Value::Object(o) if is_image(o) => {
            images.count += 1;
            images.bytes += serde_json::to_vec(&*o).map_or(0, |b| b.len());
        }
        Value::Object(o) => {
            for (_, item) in o.iter_mut() {
                walk_text(item, images, f);
            }
        }
        _ => {}
    }
}

fn is_image(o: &Map<String, Value>) -> bool {
    matches!(
        o.get("type").and_then(Value::as_str),
        Some("image" | "image_url" | "input_image" | "document" | "input_file")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::guard::Redaction;
    use serde_json::json;

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

    fn inspect(
        endpoint: Endpoint,
        body: Value,
        policy: &OutputPolicy,
    ) -> Result<AiRequest, RequestError> {
        let kind = if endpoint == Endpoint::Messages {
            ProviderKind::Anthropic
        } else {
            ProviderKind::OpenAi
        };
        AiRequest::inspect(
            endpoint,
            kind,
            &serde_json::to_vec(&body).unwrap(),
            &guard(),
            policy,
            1,
        )
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
        assert_eq!(r.body["stream_options"]["include_usage"], true);
        assert_eq!(r.body["max_tokens"], 100);
        assert_eq!(r.max_output, 100);
        let r = inspect(
            Endpoint::Messages,
            json!({"model": "c", "messages": []}),
            &policy,
        )
        .unwrap();
        assert_eq!(r.body["max_tokens"], 100, "a missing bound gets the cap");
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
    }

    #[test]
    fn guards_see_prompt_text_only() {
        let r = inspect(
            Endpoint::Messages,
            json!({"model": "c", "system": "mail a@b.io", "messages": [{"role": "user", "content": "x@y.org"}], "metadata": {"user_id": "z@q.com"}}),
            &open(),
        )
        .unwrap();
        assert_eq!(r.body["system"], "mail [REDACTED_EMAIL]");
        assert_eq!(r.body["messages"][0]["content"], "[REDACTED_EMAIL]");
        assert_eq!(r.body["metadata"]["user_id"], "z@q.com");
        assert_eq!(
            inspect(
                Endpoint::Completions,
                json!({"model": "m", "prompt": "a forbidden word"}),
                &open()
            )
            .err(),
            Some(RequestError::Denied(0))
        );
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
}
