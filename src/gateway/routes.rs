//! The route table: `[[route]]` entries from the TOML file, validated once at start-up and
//! matched against every gateway request.
//!
//! A path is exact (`/api/health`) or a prefix ending in `/*` (`/api/docs/*` matches
//! `/api/docs` and everything below it). The longest pattern wins; among routes with that
//! same pattern, the one listing the request's method. When the longest matching pattern
//! does not allow the method the answer is 405, never a shorter, more permissive route.
//!
//! Upstreams disagree about spelling: Express and ASP.NET Core match routes ignoring case,
//! Express and Flask ignore a trailing slash, Go's `net/http` and nginx do neither. So a
//! path is matched twice, as written and in its folded form (`path::fold`: case, trailing
//! slash, letters that fold to ASCII). When the two land on different routes, the request
//! is held to both policies at once (`Policy::and`): `/API/ADMIN/users` cannot escape
//! `/api/admin/*` through a public `/*`, and `/PUBLIC/x` cannot escape a protected `/*`
//! through a public `/public/*` behind an upstream that reads case. Routes whose paths
//! differ only in spelling are refused at start-up.

use std::borrow::Cow;

use http::Method;
use serde::Deserialize;
use url::Url;

use super::path;
use crate::authz::policy::{AuthMode, Clients, Policy};
use crate::authz::valid_client_id;
use crate::authz::valid_scope;
use crate::config::values::{DurationValue, parse_duration};

/// Paths Tollgate serves itself; no route may claim them.
pub const RESERVED_PREFIXES: &[&str] = &[
    "/auth/",
    "/authz/",
    "/oauth2/",
    "/.well-known/",
    "/ai/",
    "/ui/",
    "/admin/",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// Whether a (normalised) request path belongs to Tollgate itself.
pub fn is_reserved(path: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| match p.strip_suffix('/') {
        Some(bare) => path.starts_with(p) || path == bare,
        None => {
            path == *p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    })
}

/// One `[[route]]` as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub path: String,
    pub methods: Option<Vec<String>>,
    pub upstream: Option<String>,
    pub auth: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub strip_prefix: Option<String>,
    /// Origins allowed to call this route cross-site, besides `[cors] allowed_origins`.
    pub cors_origins: Option<Vec<String>>,
    /// Double-submit CSRF check for cookie-authenticated unsafe methods (default true).
    pub csrf: Option<bool>,
    /// `aud` of the assertions for this route; default: `upstream`.
    pub audience: Option<String>,
    /// OAuth clients whose tokens are admitted (services' own tokens, and users' tokens
    /// held by applications): client ids, or `["*"]` for any client holding the route's
    /// scopes. Default: none (Tollgate's own sign-in and API keys only).
    pub clients: Option<Vec<String>>,
    /// Whether users' credentials pass (default true; false: services only).
    pub users: Option<bool>,
    /// Refuse users whose email address is not verified (403 `email_unverified`).
    pub verified_email: Option<bool>,
    /// Also remove other auth proxies' identity headers (`X-Forwarded-User`,
    /// `X-Auth-Request-*`, `Remote-User`…) before the upstream sees them (default false).
    pub strip_proxy_identity: Option<bool>,
    /// Users must have passed a second factor (step-up, RFC 9470; default false).
    pub mfa: Option<bool>,
    /// Users must have authenticated (their latest factor) this recently: `"10m"`.
    pub max_age: Option<DurationValue>,
    /// An OAuth protected resource (RFC 9728): metadata at
    /// `/.well-known/oauth-protected-resource<path>`, tokens bound to it (RFC 8707).
    pub resource: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    /// The prefix without its `/*`; empty for the catch-all `/*`.
    Prefix(String),
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match self {
            Pattern::Exact(p) => path == p,
            Pattern::Prefix(p) => path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }

    /// Longer patterns are more specific; an exact path beats a prefix of equal length.
    fn specificity(&self) -> (usize, bool) {
        match self {
            Pattern::Exact(p) => (p.len(), true),
            Pattern::Prefix(p) => (p.len(), false),
        }
    }
}

/// Where a route's requests go.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// As configured: the `aud` of the assertions sent there.
    pub audience: String,
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// Path prefix of the upstream URL without its trailing slash (often empty).
    pub base_path: String,
}

#[derive(Debug, Clone)]
pub struct Route {
    /// `path` as written, to name the route in logs and errors.
    pub name: String,
    pub pattern: Pattern,
    /// The pattern in the folded form it is also matched in.
    folded: Pattern,
    /// `None`: every method.
    pub methods: Option<Vec<Method>>,
    /// `None`: a forward-auth-only route, not proxied.
    pub upstream: Option<Upstream>,
    pub policy: Policy,
    pub strip_prefix: Option<String>,
    pub cors_origins: Vec<String>,
    pub csrf: bool,
    /// The `aud` of assertions about this route's requests (its upstream by default);
    /// `None`: no assertion is issued.
    pub audience: Option<String>,
    /// Remove other auth proxies' identity headers too (`headers::PROXY_IDENTITY`).
    pub strip_proxy_identity: bool,
}

impl Route {
    fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    /// The path to request upstream for a normalised request path.
    pub fn upstream_path(&self, path: &str) -> String {
        let rest = match &self.strip_prefix {
            Some(prefix) => match path.strip_prefix(prefix.as_str()) {
                Some("") => "/",
                Some(rest) if rest.starts_with('/') => rest,
                _ => path,
            },
            None => path,
        };
        match &self.upstream {
            Some(u) if !u.base_path.is_empty() => format!("{}{rest}", u.base_path),
            _ => rest.to_string(),
        }
    }
}

/// The result of matching a request.
#[derive(Debug)]
pub enum Match<'a> {
    Found(Matched<'a>),
    /// The most specific pattern matched but none of its routes allows the method.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

/// The route a request goes to, and the policy it is held to.
#[derive(Debug)]
pub struct Matched<'a> {
    /// Where the request goes (upstream, prefix, CORS, audience).
    pub route: &'a Route,
    /// The route's policy or, when the folded spelling of the path matched another
    /// route, both policies together.
    pub policy: Cow<'a, Policy>,
    /// The double-submit CSRF check, if either route asks for it.
    pub csrf: bool,
}

impl<'a> Matched<'a> {
    fn one(route: &'a Route) -> Matched<'a> {
        Matched {
            route,
            policy: Cow::Borrowed(&route.policy),
            csrf: route.csrf,
        }
    }

    fn both(route: &'a Route, also: &'a Route) -> Matched<'a> {
        if std::ptr::eq(route, also) || route.policy == also.policy {
            return Matched {
                csrf: route.csrf || also.csrf,
                ..Matched::one(route)
            };
        }
        Matched {
            route,
            policy: Cow::Owned(route.policy.and(&also.policy)),
            csrf: route.csrf || also.csrf,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Most specific first.
    routes: Vec<Route>,
    /// Indices into `routes`, most specific folded pattern first.
    by_folded: Vec<usize>,
    /// Every pattern is already in folded form: a path in folded form needs one scan.
    all_folded: bool,
}

/// One scan of the table in a given order: the most specific matching pattern, then the
/// first of its routes that allows the method.
fn scan<'a>(
    ordered: impl Iterator<Item = &'a Route>,
    pattern_of: impl Fn(&Route) -> &Pattern,
    method: &Method,
    path: &str,
) -> Result<Option<&'a Route>, Vec<Method>> {
    let mut ordered = ordered
        .skip_while(|r| !pattern_of(r).matches(path))
        .peekable();
    let Some(first) = ordered.peek() else {
        return Ok(None);
    };
    let pattern = pattern_of(first).clone();
    let mut allowed = Vec::new();
    for route in ordered.take_while(|r| pattern_of(r) == &pattern) {
        if route.allows(method) {
            return Ok(Some(route));
        }
        allowed.extend(route.methods.iter().flatten().cloned());
    }
    Err(allowed)
}

impl RouteTable {
    /// Validates every spec; the error names the offending route. `public_url` makes
    /// protected resources' identifiers.
    pub fn build(specs: Vec<RouteSpec>, public_url: &str) -> Result<RouteTable, String> {
        let mut routes: Vec<Route> = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = spec.path.clone();
            let route =
                build_route(spec, public_url).map_err(|e| format!("route '{name}': {e}"))?;
            if let Some(other) = routes.iter().find(|r| {
                r.pattern == route.pattern
                    && match (&r.methods, &route.methods) {
                        (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
                        _ => true,
                    }
            }) {
                return Err(format!(
                    "route '{name}': duplicates route '{}' (same path, overlapping methods)",
                    other.name
                ));
            }
            if let Some(other) = routes
                .iter()
                .find(|r| r.folded == route.folded && r.pattern != route.pattern)
            {
                return Err(format!(
                    "route '{name}': differs from route '{}' only in case or a trailing slash, which many upstreams ignore: use one spelling",
                    other.name
                ));
            }
            routes.push(route);
        }
        // Most specific first; equal patterns next to each other (`scan` relies on it).
        let order = |a: &Pattern, b: &Pattern| {
            b.specificity()
                .cmp(&a.specificity())
                .then_with(|| pattern_text(a).cmp(pattern_text(b)))
        };
        routes.sort_by(|a, b| order(&a.pattern, &b.pattern));
        let mut by_folded: Vec<usize> = (0..routes.len()).collect();
        by_folded.sort_by(|&a, &b| order(&routes[a].folded, &routes[b].folded));
        let all_folded = routes.iter().all(|r| r.pattern == r.folded);
        Ok(RouteTable {
            routes,
            by_folded,
            all_folded,
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The protected resource whose identifier is `id` (RFC 9728, RFC 8707): its routes'
    /// scopes, or `None` when no route is that resource.
    pub fn resource(&self, id: &str) -> Option<Vec<&str>> {
        let mut found = None;
        for r in &self.routes {
            if r.policy.resource.as_deref() == Some(id) {
                let scopes: &mut Vec<&str> = found.get_or_insert_with(Vec::new);
                for s in &r.policy.scopes {
                    if !scopes.contains(&s.as_str()) {
                        scopes.push(s);
                    }
                }
            }
        }
        found
    }

    /// Every scope a protected resource requires, once.
    pub fn resource_scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        for r in self.routes.iter().filter(|r| r.policy.resource.is_some()) {
            for s in &r.policy.scopes {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
        }
        scopes
    }

    /// Every protected resource's identifier, once.
    pub fn resource_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for r in &self.routes {
            if let Some(id) = &r.policy.resource
                && !ids.contains(id)
            {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// Every audience assertions are issued for.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().filter_map(|r| r.audience.as_deref())
    }

    /// Matches a normalised path, as written and folded (see the module's notes).
    pub fn find(&self, method: &Method, path: &str) -> Match<'_> {
        let as_written = scan(self.routes.iter(), |r| &r.pattern, method, path);
        let folded_path = path::fold(path);
        if self.all_folded && matches!(folded_path, Cow::Borrowed(_)) {
            return match as_written {
                Ok(Some(route)) => Match::Found(Matched::one(route)),
                Ok(None) => Match::NotFound,
                Err(allowed) => Match::MethodNotAllowed(allowed),
            };
        }
        let folded = scan(
            self.by_folded.iter().map(|&i| &self.routes[i]),
            |r| &r.folded,
            method,
            &folded_path,
        );
        // Any refusal wins; a route found either way is held to both policies.
        match (as_written, folded) {
            (Err(allowed), _) | (_, Err(allowed)) => Match::MethodNotAllowed(allowed),
            (Ok(Some(route)), Ok(Some(also))) => Match::Found(Matched::both(route, also)),
            (Ok(Some(route)), Ok(None)) | (Ok(None), Ok(Some(route))) => {
                Match::Found(Matched::one(route))
            }
            (Ok(None), Ok(None)) => Match::NotFound,
        }
    }
}

fn pattern_text(p: &Pattern) -> &str {
    match p {
        Pattern::Exact(s) | Pattern::Prefix(s) => s,
    }
}

fn build_route(spec: RouteSpec, public_url: &str) -> Result<Route, String> {
    let pattern = parse_pattern(&spec.path)?;
    let methods = match spec.methods {
        None => None,
        Some(list) if list.is_empty() => {
            return Err("methods is empty (leave it out to allow every method)".into());
        }
        Some(list) => Some(
            list.iter()
                .map(|m| {
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .map_err(|_| format!("invalid method '{m}'"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let auth = match spec.auth.as_deref() {
        None => AuthMode::Required,
        Some(a) => AuthMode::parse(a).ok_or_else(|| {
            format!("invalid auth '{a}': expected \"public\", \"optional\" or \"required\"")
        })?,
    };
    if let Some(bad) = spec.scopes.iter().find(|s| !valid_scope(s)) {
        return Err(format!("invalid scope '{bad}'"));
    }
    if auth == AuthMode::Public && spec.verified_email == Some(true) {
        return Err(
            "verified_email on a public route would never be checked: use auth = \"required\""
                .into(),
        );
    }
    let max_age = match &spec.max_age {
        None => None,
        Some(v) => {
            let secs = match v {
                DurationValue::Seconds(n) => u64::try_from(*n).ok(),
                DurationValue::Text(t) => parse_duration(t).map(|d| d.as_secs()),
            };
            Some(secs.filter(|s| *s > 0).ok_or_else(|| {
                format!("invalid max_age '{v}': expected a positive duration like \"10m\"")
            })?)
        }
    };
    let mfa = spec.mfa.unwrap_or(false);
    if auth == AuthMode::Public && (mfa || max_age.is_some()) {
        return Err(
            "mfa or max_age on a public route would never be checked: use auth = \"required\""
                .into(),
        );
    }
    if auth == AuthMode::Public && !spec.scopes.is_empty() {
        return Err(
            "scopes on a public route would never be checked: use auth = \"required\"".into(),
        );
    }
    let upstream = spec.upstream.as_deref().map(parse_upstream).transpose()?;
    if let Some(prefix) = &spec.strip_prefix {
        let covered = match &pattern {
            Pattern::Exact(p) | Pattern::Prefix(p) => p
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        };
        if !prefix.starts_with('/') || prefix.ends_with('/') || !covered {
            return Err(format!(
                "strip_prefix '{prefix}' must be a leading part of the path, starting with '/' and not ending with one"
            ));
        }
    }
    if let Some(a) = &spec.audience
        && (a.is_empty() || a.contains(char::is_whitespace))
    {
        return Err(format!(
            "invalid audience '{a}': expected a non-empty string without spaces"
        ));
    }
    let audience = spec
        .audience
        .or_else(|| upstream.as_ref().map(|u| u.audience.clone()));
    let resource = spec.resource.unwrap_or(false).then(|| match &pattern {
        Pattern::Exact(p) | Pattern::Prefix(p) => format!("{public_url}{p}"),
    });
    if resource.as_deref() == Some(public_url) {
        return Err(
            "resource = true on \"/*\" would name Tollgate itself: put the resource under a path"
                .into(),
        );
    }
    if resource.is_some() && auth != AuthMode::Required {
        return Err(
            "resource = true needs auth = \"required\" (a protected resource refuses anonymous callers)"
                .into(),
        );
    }
    let clients = match spec.clients.as_deref() {
        // A protected resource is for clients: any client whose token is bound to it.
        None if resource.is_some() => Clients::Any,
        None | Some([]) => Clients::None,
        Some([any]) if any == "*" => Clients::Any,
        Some(ids) => {
            if let Some(bad) = ids.iter().find(|id| !valid_client_id(id)) {
                return Err(format!(
                    "invalid client id '{bad}' in clients (use [\"*\"] alone for any service)"
                ));
            }
            Clients::Only(ids.to_vec())
        }
    };
    let users = spec.users.unwrap_or(true);
    if !users && clients == Clients::None {
        return Err("users = false admits nobody: list the services in clients".into());
    }
    if clients != Clients::None && auth == AuthMode::Public {
        return Err(
            "clients on a public route would never be checked: use auth = \"required\"".into(),
        );
    }
    let cors_origins = spec.cors_origins.unwrap_or_default();
    for origin in &cors_origins {
        super::check_origin_syntax(origin)?;
    }
    let folded = match &pattern {
        Pattern::Exact(p) => Pattern::Exact(path::fold(p).into_owned()),
        Pattern::Prefix(p) => Pattern::Prefix(path::fold(p).into_owned()),
    };
    Ok(Route {
        name: spec.path,
        pattern,
        folded,
        methods,
        upstream,
        policy: Policy {
            auth,
            scopes: spec.scopes,
            clients,
            users,
            verified_email: spec.verified_email.unwrap_or(false),
            mfa,
            max_age,
            resource,
        },
        strip_prefix: spec.strip_prefix,
        cors_origins,
        csrf: spec.csrf.unwrap_or(true),
        audience,
        strip_proxy_identity: spec.strip_proxy_identity.unwrap_or(false),
    })
}

fn parse_pattern(raw: &str) -> Result<Pattern, String> {
    let (base, prefix) = match raw.strip_suffix("/*") {
        Some(base) => (base, true),
        None => (raw, false),
    };
    let shape_ok = raw.starts_with('/')
        && !base.contains(['*', '?', '#'])
        && (base.is_empty() || path::normalize(base).as_deref() == Ok(base));
    if !shape_ok {
        return Err(
            "path must be a normalised absolute path, optionally ending in \"/*\" (no '*' elsewhere, no query, no '..' or '//')".into(),
        );
    }
    // The catch-all `/*` may cover reserved paths: those never reach the gateway.
    if is_reserved(base) {
        return Err(format!(
            "path is reserved for Tollgate itself ({})",
            RESERVED_PREFIXES.join(", ")
        ));
    }
    Ok(if prefix {
        Pattern::Prefix(base.to_string())
    } else {
        Pattern::Exact(base.to_string())
    })
}

fn parse_upstream(raw: &str) -> Result<Upstream, String> {
    let bad = |why: &str| format!("invalid upstream '{raw}': {why}");
    let url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("expected an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the URL are not supported"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment allowed"));
    }
    let host = url.host_str().unwrap_or_default();
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    Ok(Upstream {
        audience: raw.to_string(),
        scheme: url.scheme().parse().map_err(|_| bad("bad scheme"))?,
        authority: authority.parse().map_err(|_| bad("bad host"))?,
        base_path: url.path().trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests;
