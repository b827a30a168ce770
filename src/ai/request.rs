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
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("the body must name a model (at most 256 printable ASCII characters)")]
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
    /// Something whose cost cannot be bounded before the call (server-side tools, stored
    /// conversations, documents, audio), refused to callers with a quota.
    #[error("{0} cannot be metered in advance and is not available to callers with a quota")]
    Unmeterable(&'static str),
    #[error("'{0}' may be at most {1}")]
    TooMany(&'static str, u64),
    #[error("at most {limit} output tokens may be asked for; this asks for {asked}")]
    OutputOverCap { asked: u64, limit: u32 },
}

pub struct AiRequest {
    pub model: String,
    pub stream: bool,
    /// Upper bound of the prompt's tokens (see [`AiRequest::inspect`]).
    pub prompt_tokens: i64,
    /// The output bound as it will be forwarded, times the number of choices asked for
    /// (0 for embeddings).
    pub max_output: i64,
    /// The prompt asks for cache writes (Anthropic `cache_control`), billed above input.
    pub cache_write: bool,
    /// The prompt text as forwarded, when the provider's guard logs prompts.
    pub logged_prompt: Option<String>,
    /// The body as it will be forwarded.
    pub bytes: Vec<u8>,
    /// `stream_options.include_usage` was set by Tollgate, not the client: the usage
    /// chunk is for the meter only.
    pub hide_usage_chunk: bool,
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

/// How prompts are sized, and whether the caller is metered.
pub struct Sizing<'a> {
    pub bytes_per_token: u32,
    /// Tokens reserved per image, by model.
    pub image_tokens: &'a dyn Fn(&str) -> i64,
    pub metered: bool,
}

const MAX_MODEL_LEN: usize = 256;
/// Anthropic's system prompt for tool use, billed as input but not in the body (about
/// 350 tokens; rounded up).
const ANTHROPIC_TOOL_TOKENS: i64 = 500;
/// Most choices one call may ask for (`n`, `best_of`).
const MAX_CHOICES: u64 = 128;

impl AiRequest {
    /// Parses and checks a body, applies the guard (deny-list, then redaction) to every
    /// string in it, and bounds the output. The prompt estimate is the forwarded body's
    /// bytes (less image data, plus an allowance per image) divided by
    /// `bytes_per_token`: with 1, a strict upper bound for text, since every token of a
    /// byte-level tokenizer is at least one byte, and the body holds every piece of
    /// text the model reads (messages, system prompt, tool definitions, schemas).
    pub fn inspect(
        endpoint: Endpoint,
        kind: ProviderKind,
        raw: &[u8],
        guard: &Guard,
        output: &OutputPolicy,
        sizing: &Sizing<'_>,
    ) -> Result<AiRequest, RequestError> {
        let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(raw) else {
            return Err(RequestError::NotAnObject);
        };
        let model = match body.get("model") {
            // Model names become ledger rows, audit details and metric labels.
            Some(Value::String(m))
                if !m.is_empty()
                    && m.len() <= MAX_MODEL_LEN
                    && m.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                m.clone()
            }
            _ => return Err(RequestError::NoModel),
        };
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RequestError::BadStream),
        };
        if sizing.metered {
            refuse_unmeterable(endpoint, &body)?;
            // A faster (dearer) tier is the provider account's choice, not the caller's.
            body.remove("service_tier");
        }
        let choices = choices(&body)?;

        let mut parts = Parts::default();
        let mut denied = None;
        let mut logged = guard.log_prompts.then(String::new);
        // The model name was checked above; every other string is the guards' business.
        let model_value = body.remove("model");
        let mut whole = Value::Object(std::mem::take(&mut body));
        walk_text(&mut whole, kind, &mut parts, &mut |text, is_key| {
            let this = guard.inspect(text);
            denied = denied.or(this);
            if !is_key && let Some(log) = logged.as_mut() {
                log.push_str(text);
                log.push('\n');
            }
        });
        if let Value::Object(o) = whole {
            body = o;
        }
        if let Some(m) = model_value {
            body.insert("model".into(), m);
        }
        if let Some(i) = denied {
            return Err(RequestError::Denied(i));
        }
        if sizing.metered && parts.documents > 0 {
            return Err(RequestError::Unmeterable("a document or file input"));
        }

        let max_output = bound_output(endpoint, kind, &mut body, output)?.saturating_mul(choices);
        let mut hide_usage_chunk = false;
        if stream
            && kind == ProviderKind::OpenAi
            && matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions)
        {
            // Without it an OpenAI stream never says what it used.
            hide_usage_chunk = body
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                != Some(&Value::Bool(true));
            let options = body
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(o) = options {
                o.insert("include_usage".into(), Value::Bool(true));
            } else {
                *options = serde_json::json!({"include_usage": true});
            }
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let text_bytes = bytes.len().saturating_sub(parts.image_bytes) as i64;
        let per = i64::from(sizing.bytes_per_token.max(1));
        let tools = kind == ProviderKind::Anthropic
            && body
                .get("tools")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
        let prompt_tokens = (text_bytes + per - 1) / per
            + parts.images.saturating_mul((sizing.image_tokens)(&model))
            + if tools { ANTHROPIC_TOOL_TOKENS } else { 0 };
        if let Some(limit) = guard.max_prompt_tokens
            && prompt_tokens as u64 > limit
        {
            return Err(RequestError::PromptTooLong {
                estimate: prompt_tokens,
                limit,
            });
        }
        Ok(AiRequest {
            cache_write: kind == ProviderKind::Anthropic
                && (parts.cache_control || body.contains_key("cache_control")),
            model,
            stream,
            prompt_tokens,
            max_output,
            logged_prompt: logged,
            bytes,
            hide_usage_chunk,
        })
    }
}

/// Inputs the provider bills but the body does not show, refused to metered callers.
fn refuse_unmeterable(endpoint: Endpoint, body: &Map<String, Value>) -> Result<(), RequestError> {
    let present = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    if endpoint == Endpoint::Responses {
        // An input item may stand for stored content by its id alone.
        let references = body
            .get("input")
            .and_then(Value::as_array)
            .is_some_and(|items| {
                items.iter().any(|item| {
                    item.get("type").and_then(Value::as_str) == Some("item_reference")
                        || (item.get("id").is_some()
                            && ["content", "output", "arguments", "summary", "action"]
                                .iter()
                                .all(|k| item.get(*k).is_none()))
                })
            });
        if references {
            return Err(RequestError::Unmeterable("a reference to a stored item"));
        }
        for (key, what) in [
            ("previous_response_id", "a stored previous response"),
            ("conversation", "a stored conversation"),
            ("prompt", "a stored prompt"),
        ] {
            if present(key) {
                return Err(RequestError::Unmeterable(what));
            }
        }
    }
    for (key, what) in [
        ("web_search_options", "web search"),
        ("audio", "audio output"),
        ("mcp_servers", "remote MCP servers"),
        ("container", "a code-execution container"),
    ] {
        if present(key) {
            return Err(RequestError::Unmeterable(what));
        }
    }
    if body
        .get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x != "text"))
    {
        return Err(RequestError::Unmeterable("audio output"));
    }
    // Client-side tools are described in the body; server-side ones (search, code
    // execution, computer use, hosted MCP) run and bill at the provider.
    if let Some(tools) = body.get("tools").and_then(Value::as_array)
        && tools.iter().any(|t| {
            t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|ty| ty != "function" && ty != "custom")
        })
    {
        return Err(RequestError::Unmeterable("a server-side tool"));
    }
    Ok(())
}

/// How many completions one call asks for (`n`, `best_of`).
fn choices(body: &Map<String, Value>) -> Result<i64, RequestError> {
    let mut most = 1;
    for key in ["n", "best_of"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v.as_u64().ok_or(RequestError::BadNumber(key))?;
                if n > MAX_CHOICES {
                    return Err(RequestError::TooMany(key, MAX_CHOICES));
                }
                most = most.max(n);
            }
        }
    }
    Ok(most as i64)
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
    let mut asked = None;
    // Both names may be sent; the larger counts, and only one is forwarded.
    let names: &[&'static str] = if endpoint == Endpoint::ChatCompletions {
        &["max_completion_tokens", "max_tokens"]
    } else {
        &[field]
    };
    for name in names {
        match body.get(*name) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v.as_u64().ok_or(RequestError::BadNumber(name))?;
                asked = Some(asked.map_or(n, |a: u64| a.max(n)));
            }
        }
        if *name != field {
            body.remove(*name);
        }
    }
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

#[derive(Default)]
struct Parts {
    images: i64,
    /// Bytes of image data (base64 payloads), which are not text.
    image_bytes: usize,
    documents: usize,
    cache_control: bool,
}

/// Calls `f` on every string under `v` that a provider may read as text: values and object
/// keys at any depth (a tool schema's property names reach the model, and a lenient
/// server renders even a `role` into the prompt), with `true` for keys. The one exception
/// is an image's data, which is counted instead: the base64 payload in the one place each
/// API puts it. Any other string inside an image object is text, guarded and metered as
/// text, since a lenient provider (llama.cpp, vLLM, Ollama) reads it.
fn walk_text(
    v: &mut Value,
    kind: ProviderKind,
    parts: &mut Parts,
    f: &mut dyn FnMut(&mut String, bool),
) {
    match v {
        Value::String(s) => f(s, false),
        Value::Array(items) => {
            for item in items {
                walk_text(item, kind, parts, f);
            }
        }
        Value::Object(o) => {
            if o.contains_key("cache_control") {
                parts.cache_control = true;
            }
            let mut image = None;
            match o.get("type").and_then(Value::as_str) {
                Some("image" | "image_url" | "input_image") => {
                    parts.images += 1;
                    image = image_data(o, kind).map(std::mem::take);
                }
                Some("document" | "input_file" | "file") => parts.documents += 1,
                _ => {}
            }
            let mut renamed = Vec::new();
            for (key, item) in o.iter_mut() {
                let mut k = key.clone();
                f(&mut k, true);
                if k != *key {
                    renamed.push((key.clone(), k));
                }
                walk_text(item, kind, parts, f);
            }
            for (old, new) in renamed {
                if let Some(item) = o.remove(&old) {
                    o.insert(new, item);
                }
            }
            if let Some(data) = image {
                parts.image_bytes += data.len();
                if let Some(slot) = image_data_slot(o, kind) {
                    *slot = data;
                }
            }
        }
        _ => {}
    }
}

/// Where an image object carries its data in the provider's own API: OpenAI's
/// `image_url` (a string, or an object's `url`), Anthropic's `source.data` (with
/// `source.type` `base64`). The other API's shape is not the provider's, so it is text.
fn image_data_slot(o: &mut Map<String, Value>, kind: ProviderKind) -> Option<&mut String> {
    match kind {
        ProviderKind::OpenAi => match o.get_mut("image_url")? {
            Value::String(url) => Some(url),
            Value::Object(inner) => match inner.get_mut("url")? {
                Value::String(url) => Some(url),
                _ => None,
            },
            _ => None,
        },
        ProviderKind::Anthropic => match o.get_mut("source")? {
            Value::Object(source) if source.get("type") == Some(&Value::from("base64")) => {
                match source.get_mut("data")? {
                    Value::String(data) => Some(data),
                    _ => None,
                }
            }
            _ => None,
        },
    }
}

/// The image's data, when it is a base64 payload: `data:<type>/<subtype>;base64,<payload>`
/// and nothing else in OpenAI's slot (a parameter such as `;filename=…` is text a
/// provider may read), bare base64 in Anthropic's. The payload must be well-formed base64.
/// A URL to fetch, or anything else, is text.
fn image_data(o: &mut Map<String, Value>, kind: ProviderKind) -> Option<&mut String> {
    let slot = image_data_slot(o, kind)?;
    let payload = match kind {
        ProviderKind::Anthropic => slot.as_str(),
        ProviderKind::OpenAi => {
            let (media_type, payload) = slot.strip_prefix("data:")?.split_once(";base64,")?;
            let (top, sub) = media_type.split_once('/')?;
            let token = |t: &str| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
            };
            if !token(top) || !token(sub) {
                return None;
            }
            payload
        }
    };
    is_base64(payload).then_some(slot)
}

/// Standard base64 with its padding: what decodes, and nothing that reads as words
/// (`forbidden` is nine letters of the alphabet, but not a length base64 comes in).
fn is_base64(s: &str) -> bool {
    use base64::Engine;
    !s.is_empty()
        && s.len().is_multiple_of(4)
        && base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .is_ok()
}

#[cfg(test)]
mod tests;
