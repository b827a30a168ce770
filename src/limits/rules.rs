//! Which requests a limit applies to, and what it counts by.
//!
//! A rule names paths (exact, or a `/*` prefix), optionally methods, what it counts per
//! and its quota. `ip` and `route` rules are checked for every request before routing;
//! `account` rules where the account is known (the email posted to sign-in and recovery
//! endpoints, the signed-in user on gateway routes); `api_key` rules when a request
//! carries an API key. [`default_rules`] protect the sign-in, registration, refresh and
//! recovery endpoints; a configured rule with the same name replaces a default.

use std::borrow::Cow;

use serde::Deserialize;

use super::gcra::Quota;
use crate::config::values::parse_duration;
use crate::gateway::path::fold;

/// The form paths are compared in, on both sides: folded as route matching folds them
/// (case, a trailing slash, letters that fold to ASCII: `gateway::path::fold`), and an AI
/// endpoint with its optional `v1/` written out (`/ai/<provider>/chat/completions` is
/// `/ai/<provider>/v1/chat/completions`), so that no spelling of a limited path escapes
/// its rule.
pub fn match_form(path: &str) -> Cow<'_, str> {
    let folded = fold(path);
    let Some(rest) = folded.strip_prefix("/ai/") else {
        return folded;
    };
    match rest.split_once('/') {
        Some((provider, endpoint))
            if !endpoint.is_empty() && endpoint != "v1" && !endpoint.starts_with("v1/") =>
        {
            Cow::Owned(format!("/ai/{provider}/v1/{endpoint}"))
        }
        _ => folded,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// The client address (see `limits.trusted_proxies`).
    Ip,
    /// The account: the email a sign-in or recovery request names, or the signed-in user.
    Account,
    /// The API key a request carries.
    ApiKey,
    /// Everyone together: one allowance for the paths.
    Route,
}

/// A rule as written in `[[limits.rule]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub paths: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    pub per: Per,
    pub limit: u32,
    pub window: String,
    pub burst: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// In [`match_form`].
    exact: Vec<String>,
    /// In [`match_form`], without their `/*`: each covers itself and what lies below.
    prefixes: Vec<String>,
    methods: Vec<String>,
    pub per: Per,
    pub quota: Quota,
}

impl Rule {
    pub fn build(spec: RuleSpec) -> Result<Rule, String> {
        let name = spec.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "invalid limits rule name '{name}': expected 1-64 characters of A-Z a-z 0-9 - _ ."
            ));
        }
        let window = parse_duration(&spec.window)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("limits rule '{name}': invalid window '{}'", spec.window))?;
        if spec.limit == 0 || spec.burst == Some(0) {
            return Err(format!(
                "limits rule '{name}': limit and burst must be at least 1"
            ));
        }
        if spec.paths.is_empty() {
            return Err(format!("limits rule '{name}': paths must not be empty"));
        }
        let (mut exact, mut prefixes) = (Vec::new(), Vec::new());
        for p in spec.paths {
            if !p.starts_with('/') {
                return Err(format!(
                    "limits rule '{name}': path '{p}' must start with '/'"
                ));
            }
            match p.strip_suffix('*') {
                Some(prefix) if prefix.ends_with('/') => {
                    let base = match_form(&prefix[..prefix.len() - 1]).into_owned();
                    prefixes.push(base.trim_end_matches('/').to_string());
                }
                Some(_) => {
                    return Err(format!(
                        "limits rule '{name}': '*' is only allowed as a final '/*' in '{p}'"
                    ));
                }
                None => exact.push(match_form(&p).into_owned()),
            }
        }
        Ok(Rule {
            name,
            exact,
            prefixes,
            methods: spec
                .methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            per: spec.per,
            quota: Quota {
                limit: spec.limit,
                window_ms: window.as_millis() as u64,
                burst: spec.burst.unwrap_or(spec.limit),
            },
        })
    }

    /// Whether the rule applies; `path` in [`match_form`].
    /// Whether the rule counts this request. A rule for GET counts HEAD too: the GET
    /// handler answers HEAD, so leaving it out would leave the route unlimited.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let counted = |m: &String| m == method || (method == "HEAD" && m == "GET");
        (self.methods.is_empty() || self.methods.iter().any(counted))
            && (self.exact.iter().any(|p| p == path)
                || self.prefixes.iter().any(|p| {
                    path.strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                }))
    }
}

fn spec(name: &str, paths: &[&str], per: Per, limit: u32, window: &str, burst: u32) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        methods: vec!["POST".into()],
        per,
        limit,
        window: window.into(),
        burst: Some(burst),
    }
}

/// The protection every installation gets (docs/configuration.md lists it).
pub fn default_rules() -> Vec<RuleSpec> {
    const RECOVERY: &[&str] = &[
        "/auth/password/forgot",
        "/auth/password/reset",
        "/auth/email/verify",
        "/auth/email/verify/request",
        "/auth/email/change",
        "/auth/email/change/confirm",
        // They check the current password: a stolen access token must not guess it fast.
        "/auth/password",
    ];
    // Every door that checks a password or a second factor: the JSON API, the hosted
    // forms, account linking.
    const SIGN_IN: &[&str] = &[
        "/auth/login",
        "/auth/login/mfa",
        "/auth/mfa/verify",
        "/auth/webauthn/login",
        "/auth/webauthn/login/options",
        "/auth/webauthn/register/options",
        "/auth/webauthn/verify/options",
        "/ui/login",
        "/ui/login/passkey",
        "/ui/mfa",
        "/auth/federated/link",
    ];
    // The hosted pages that mail a link, spend a mailed code or create an account.
    const RECOVERY_PAGES: &[&str] = &["/ui/forgot", "/ui/reset", "/ui/verify", "/ui/confirm-email"];
    vec![
        spec("login-ip", SIGN_IN, Per::Ip, 30, "1m", 10),
        spec("login-account", SIGN_IN, Per::Account, 10, "1m", 5),
        // Client secrets are 256 bits; this bounds the cost of a flood, not guessing.
        spec("token-ip", &["/oauth2/token"], Per::Ip, 600, "1m", 200),
        spec(
            "register-ip",
            &["/auth/register", "/ui/signup"],
            Per::Ip,
            10,
            "1h",
            5,
        ),
        // RFC 7591 §5: self-registration is open to anyone who can reach it.
        spec(
            "client-register-ip",
            &["/oauth2/register"],
            Per::Ip,
            10,
            "1h",
            5,
        ),
        // RFC 8628 §5.1: a user code has about 34 bits; entries are limited per address
        // (a code in the link's query is an entry too).
        RuleSpec {
            methods: vec!["GET".into(), "HEAD".into(), "POST".into()],
            ..spec("device-code-ip", &["/ui/device"], Per::Ip, 20, "1m", 10)
        },
        spec(
            "device-authorization-ip",
            &["/oauth2/device_authorization"],
            Per::Ip,
            30,
            "1m",
            10,
        ),
        spec("refresh-ip", &["/auth/refresh"], Per::Ip, 120, "1m", 60),
        // Each federated sign-in ends in a call to the provider's token endpoint, under
        // this deployment's client id: a flood could get it throttled for everyone.
        RuleSpec {
            // HEAD is answered by the GET handler: it starts journeys too.
            methods: vec!["GET".into(), "HEAD".into(), "POST".into()],
            ..spec(
                "federation-ip",
                &["/auth/federated/*"],
                Per::Ip,
                30,
                "1m",
                10,
            )
        },
        spec(
            "recovery-ip",
            &[RECOVERY, RECOVERY_PAGES].concat(),
            Per::Ip,
            10,
            "1m",
            5,
        ),
        spec(
            "recovery-account",
            &[
                "/auth/password/forgot",
                "/auth/email/verify/request",
                "/ui/forgot",
            ],
            Per::Account,
            3,
            "15m",
            3,
        ),
    ]
}

/// The defaults, with configured rules replacing same-named defaults and adding the rest.
pub fn merge(defaults: bool, configured: Vec<RuleSpec>) -> Result<Vec<Rule>, String> {
    let mut specs = if defaults {
        default_rules()
    } else {
        Vec::new()
    };
    let mut seen = std::collections::HashSet::new();
    for s in configured {
        if !seen.insert(s.name.clone()) {
            return Err(format!("limits rule '{}' is defined twice", s.name));
        }
        specs.retain(|d| d.name != s.name);
        specs.push(s);
    }
    specs.into_iter().map(Rule::build).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_paths_and_methods() {
        let rules = merge(true, vec![]).unwrap();
        let login = rules.iter().find(|r| r.name == "login-ip").unwrap();
        assert!(login.matches("POST", "/auth/login"));
        assert!(!login.matches("GET", "/auth/login"));
        assert!(!login.matches("POST", "/auth/login/x"));
        // Every way to start or answer a federated sign-in counts, HEAD included (the
        // GET handler answers it).
        let federation = rules.iter().find(|r| r.name == "federation-ip").unwrap();
        for method in ["GET", "HEAD", "POST"] {
            assert!(
                federation.matches(method, "/auth/federated/apple"),
                "{method}"
            );
            assert!(federation.matches(method, "/auth/federated/apple/callback"));
        }
        let api = Rule::build(RuleSpec {
            name: "api".into(),
            paths: vec!["/api/*".into()],
            methods: vec![],
            per: Per::ApiKey,
            limit: 5,
            window: "1s".into(),
            burst: None,
        })
        .unwrap();
        assert!(api.matches("GET", "/api/x") && api.matches("DELETE", "/api"));
        assert!(!api.matches("GET", "/apix"));
        assert_eq!(api.quota.burst, 5);
        // A rule for GET counts HEAD (answered by the GET handler), and only that.
        let me = Rule::build(RuleSpec {
            name: "me".into(),
            paths: vec!["/auth/me".into()],
            methods: vec!["GET".into()],
            per: Per::Ip,
            limit: 5,
            window: "1h".into(),
            burst: None,
        })
        .unwrap();
        assert!(me.matches("GET", "/auth/me") && me.matches("HEAD", "/auth/me"));
        assert!(!me.matches("POST", "/auth/me") && !me.matches("OPTIONS", "/auth/me"));
    }

    #[test]
    fn no_spelling_of_a_path_escapes_its_rule() {
        let rule = |paths: &[&str]| {
            Rule::build(RuleSpec {
                name: "r".into(),
                paths: paths.iter().map(|p| p.to_string()).collect(),
                methods: vec![],
                per: Per::Account,
                limit: 1,
                window: "1m".into(),
                burst: None,
            })
            .unwrap()
        };
        let matches = |r: &Rule, path: &str| r.matches("POST", &match_form(path));
        let ai = rule(&["/ai/openai/v1/chat/completions"]);
        for path in [
            "/ai/openai/v1/chat/completions",
            "/ai/openai/chat/completions",
            "/AI/OpenAI/Chat/Completions/",
        ] {
            assert!(matches(&ai, path), "{path}");
        }
        assert!(!matches(&ai, "/ai/openai/v1/embeddings"));
        // Written without v1/, the rule covers both spellings too.
        let short = rule(&["/ai/openai/chat/*"]);
        assert!(matches(&short, "/ai/openai/v1/chat/completions"));
        assert!(matches(&short, "/ai/openai/chat/completions"));
        let all = rule(&["/ai/*"]);
        assert!(matches(&all, "/ai/x/v1/messages") && matches(&all, "/ai/x/messages"));
        let login = rule(&["/auth/login"]);
        assert!(matches(&login, "/Auth/Login/") && !matches(&login, "/auth/login/x"));
    }

    #[test]
    fn configured_rules_replace_defaults_by_name() {
        let mine = spec("login-ip", &["/auth/login"], Per::Ip, 2, "1m", 2);
        let rules = merge(true, vec![mine]).unwrap();
        assert_eq!(rules.iter().filter(|r| r.name == "login-ip").count(), 1);
        assert_eq!(
            rules
                .iter()
                .find(|r| r.name == "login-ip")
                .unwrap()
                .quota
                .limit,
            2
        );
        assert!(merge(false, vec![]).unwrap().is_empty());
        let twice = vec![
            spec("a", &["/x"], Per::Ip, 1, "1m", 1),
            spec("a", &["/y"], Per::Ip, 1, "1m", 1),
        ];
        assert!(merge(false, twice).is_err());
        assert!(merge(false, vec![spec("b", &["/x*"], Per::Ip, 1, "1m", 1)]).is_err());
        assert!(merge(false, vec![spec("c", &["/x"], Per::Ip, 1, "soon", 1)]).is_err());
    }
}
