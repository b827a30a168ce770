//! What the upstream is told, and what it must never see.
//!
//! Client-sent `X-Tollgate-*` headers are removed from every proxied request, whatever the
//! route: only the gateway speaks with that voice. Names are compared the way CGI, WSGI
//! and uWSGI apps read them (`X_Tollgate_User` and `x-tollgate-user` both arrive as
//! `HTTP_X_TOLLGATE_USER`), so underscores count as dashes. Routes with
//! `strip_proxy_identity` also lose the identity headers of other auth proxies
//! ([`PROXY_IDENTITY`]), for apps that trust those. Tollgate's own cookies and a bearer
//! credential Tollgate verified are removed too, so an upstream (or whoever compromises
//! one) never holds a refresh token or a replayable access token. Then the verified
//! identity is added, and the usual `X-Forwarded-*` trio.

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

pub const USER: HeaderName = HeaderName::from_static("x-tollgate-user");
pub const EMAIL: HeaderName = HeaderName::from_static("x-tollgate-email");
pub const EMAIL_VERIFIED: HeaderName = HeaderName::from_static("x-tollgate-email-verified");
pub const SCOPES: HeaderName = HeaderName::from_static("x-tollgate-scopes");
pub const SESSION: HeaderName = HeaderName::from_static("x-tollgate-session");
pub const CLIENT: HeaderName = HeaderName::from_static("x-tollgate-client");
pub const ASSERTION: HeaderName = HeaderName::from_static("x-tollgate-assertion");
const PREFIX: &str = "x-tollgate-";

/// The identity passed upstream (and returned by forward auth).
pub struct IdentityHeaders<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    /// `true`/`false`; empty for a service (no account).
    pub email_verified: &'a str,
    pub scope: &'a str,
    pub session_id: &'a str,
    /// The OAuth client the credential was issued to; for a service's own token, the
    /// service (with the user fields empty).
    pub client_id: &'a str,
    pub assertion: &'a str,
}

/// Identity headers that other auth proxies set and apps behind them trust: oauth2-proxy
/// (`X-Forwarded-User`, `-Email`, `-Preferred-Username`, `-Groups`, `-Access-Token`,
/// `X-Auth-Request-*`), Authelia (`Remote-*`), Authentik (`X-Authentik-*`), Apache-style
/// `X-Remote-User`, Grafana's auth proxy (`X-WEBAUTH-USER`). A name ending in `-` is a
/// prefix.
pub const PROXY_IDENTITY: [&str; 13] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-auth-request-",
    "remote-user",
    "remote-email",
    "remote-name",
    "remote-groups",
    "x-remote-user",
    "x-webauth-user",
    "x-authentik-",
];

/// Whether a (lower-case) header name, with `_` read as `-`, is `pattern` or, for a
/// pattern ending in `-`, starts with it.
fn cgi_name_is(name: &str, pattern: &str) -> bool {
    let (name, pattern) = (name.as_bytes(), pattern.as_bytes());
    let prefix = pattern.ends_with(b"-");
    if name.len() < pattern.len() || (!prefix && name.len() != pattern.len()) {
        return false;
    }
    name.iter()
        .zip(pattern)
        .all(|(n, p)| n == p || (*n == b'_' && *p == b'-'))
}

/// Removes every header an app could read as one of ours (`X-Tollgate-*`, underscores
/// included) and, with `proxy_identity`, as another auth proxy's.
pub fn strip_forged(headers: &mut HeaderMap, proxy_identity: bool) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let name = k.as_str();
            cgi_name_is(name, PREFIX)
                || (proxy_identity && PROXY_IDENTITY.iter().any(|p| cgi_name_is(name, p)))
        })
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

pub fn add_identity(headers: &mut HeaderMap, id: &IdentityHeaders<'_>) {
    for (name, value) in [
        (USER, id.user_id),
        (EMAIL, id.email),
        (EMAIL_VERIFIED, id.email_verified),
        (SCOPES, id.scope),
        (SESSION, id.session_id),
        (CLIENT, id.client_id),
        (ASSERTION, id.assertion),
    ] {
        // Our own ids, scopes and JWTs are visible ASCII; an email may carry UTF-8, which
        // header values allow as opaque bytes.
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.insert(name, v);
        }
    }
}

/// The identity headers, empty: a forward-auth answer for an anonymous caller, so
/// that proxies which copy these headers from the answer (Envoy, Caddy) overwrite any the
/// client forged instead of leaving them in place.
pub fn add_empty_identity(headers: &mut HeaderMap) {
    for name in [
        USER,
        EMAIL,
        EMAIL_VERIFIED,
        SCOPES,
        SESSION,
        CLIENT,
        ASSERTION,
    ] {
        headers.insert(name, HeaderValue::from_static(""));
    }
}

/// The name of a `name=value` cookie pair or `Set-Cookie` value, from the raw bytes (a
/// value need not be UTF-8, and an unreadable one must not hide the name).
fn cookie_name(pair: &[u8]) -> &[u8] {
    let name = pair.split(|b| *b == b'=').next().unwrap_or(b"");
    name.trim_ascii()
}

/// Drops the named cookies from the `Cookie` header(s), keeping the rest, byte for byte
/// and in order. One pass; the header is only rebuilt when one of ours was in it.
pub fn strip_cookies(headers: &mut HeaderMap, names: &[&str]) {
    let mut kept: Vec<u8> = Vec::new();
    let mut removed = false;
    for v in headers.get_all(header::COOKIE) {
        for pair in v.as_bytes().split(|b| *b == b';').map(<[u8]>::trim_ascii) {
            if pair.is_empty() {
                continue;
            }
            let name = cookie_name(pair);
            if names.iter().any(|n| n.as_bytes() == name) {
                removed = true;
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    if !removed {
        return;
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_bytes(&kept)
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Whether a cookie name is one of ours, with or without a `__Host-`/`__Secure-` prefix,
/// ignoring case (browsers match the prefixes without regard to case).
fn is_our_cookie(name: &[u8], names: &[&str]) -> bool {
    let bare = |n: &[u8]| -> Vec<u8> {
        let lower = n.to_ascii_lowercase();
        for prefix in [&b"__host-"[..], b"__secure-"] {
            if let Some(rest) = lower.strip_prefix(prefix) {
                return rest.to_vec();
            }
        }
        lower
    };
    let name = bare(name);
    names.iter().any(|n| bare(n.as_bytes()) == name)
}

/// Drops `Set-Cookie` headers of an upstream response that would set one of our cookies
/// (an upstream must not plant a session in the browser). Names are compared on the raw
/// bytes, with or without a prefix. A nameless cookie (`=tg_rt=x`, or `tg_rt` with no
/// `=`) counts by its value, since browsers send it as the bare value: `Cookie: tg_rt=x`.
pub fn strip_set_cookies(headers: &mut HeaderMap, names: &[&str]) {
    if !headers.contains_key(header::SET_COOKIE) {
        return;
    }
    let values: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for v in values {
        let pair = v.as_bytes().split(|b| *b == b';').next().unwrap_or(b"");
        let named = match pair.iter().position(|b| *b == b'=') {
            Some(eq) if !pair[..eq].trim_ascii().is_empty() => pair[..eq].trim_ascii(),
            // Nameless: what the browser will send is the value, itself `name=value`.
            Some(eq) => cookie_name(&pair[eq + 1..]),
            None => pair.trim_ascii(),
        };
        if !is_our_cookie(named, names) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// Request headers some frameworks trust to change the method, the path, the scheme or
/// the client address (go-chi's `RealIP` reads `True-Client-IP` first; Rack believes
/// `X-Forwarded-Ssl`; Tornado reads `X-Scheme` before `X-Forwarded-Proto`), and `Proxy`,
/// which CGI turns into the `HTTP_PROXY` environment variable (httpoxy). The gateway
/// decided on the request as sent and says where it came from in its own
/// `X-Forwarded-*`, so none may reach the upstream.
const STEERING: [&str; 30] = [
    "forwarded",
    "proxy",
    "x-scheme",
    "front-end-https",
    "x-forwarded-protocol",
    "x-forwarded-server",
    "x-host",
    "x-original-host",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-original-uri",
    "proxy-client-ip",
    "wl-proxy-client-ip",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-url-scheme",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The forwarding headers the gateway writes itself ([`add_forwarded`]).
const FORWARDING: [&str; 3] = ["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"];

/// Removes the steering headers in every CGI spelling, and the underscore spellings of the
/// forwarding headers ([`add_forwarded`] decides the dashed ones): a WSGI or Rack app reads
/// `X_Forwarded_Host` as `HTTP_X_FORWARDED_HOST` too, next to (or instead of) ours.
pub fn strip_steering(headers: &mut HeaderMap) {
    let steering: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let name = k.as_str();
            STEERING.iter().any(|s| cgi_name_is(name, s))
                || (name.contains('_') && FORWARDING.iter().any(|f| cgi_name_is(name, f)))
        })
        .cloned()
        .collect();
    for name in steering {
        headers.remove(name);
    }
}

/// Where a proxied request came from, for the `X-Forwarded-*` headers.
pub struct Forwarded<'a> {
    /// The connection's peer.
    pub peer: Option<std::net::IpAddr>,
    /// The peer is a trusted proxy (`[limits] trusted_proxies`): what it says about the
    /// client is believed.
    pub trusted_peer: bool,
    /// `http` or `https`, from the public URL.
    pub proto: &'static str,
    /// The public URL's host (and port): the only host Tollgate answers as.
    pub public_host: &'a str,
}

/// `X-Forwarded-For`, `-Proto` and `-Host`. A client's own `X-Forwarded-For` and
/// `X-Forwarded-Host` are believed only from a trusted proxy: from anyone else the chain
/// starts at the peer and the host is the public URL's, whatever `Host` the client sent
/// (an upstream building links or reset mails from it would otherwise be poisoned).
pub fn add_forwarded(headers: &mut HeaderMap, from: &Forwarded<'_>) {
    const XFF: &str = "x-forwarded-for";
    const XFH: &str = "x-forwarded-host";
    let prior = from
        .trusted_peer
        .then(|| {
            let chain: Vec<&str> = headers
                .get_all(XFF)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            (!chain.is_empty()).then(|| chain.join(", "))
        })
        .flatten();
    let chain = match (prior, from.peer) {
        (Some(prior), Some(ip)) => Some(format!("{prior}, {ip}")),
        (None, Some(ip)) => Some(ip.to_string()),
        (prior, None) => prior,
    };
    headers.remove(XFF);
    if let Some(v) = chain.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(XFF, v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(from.proto));
    let theirs = from
        .trusted_peer
        .then(|| headers.get(XFH).cloned())
        .flatten();
    let host = theirs.or_else(|| HeaderValue::from_str(from.public_host).ok());
    headers.remove(XFH);
    if let Some(host) = host {
        headers.insert(XFH, host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_identity_headers_go_in_every_spelling() {
        let mut h = HeaderMap::new();
        for name in [
            "x-tollgate-user",
            "X-Tollgate-Anything",
            "X_Tollgate_User",
            "x-tollgate_user",
            "X_TOLLGATE_SCOPES",
            "x_tollgate-email",
            "x-forwarded-user",
            "X_Forwarded_Email",
            "x-auth-request-user",
            "X_AUTH_REQUEST_GROUPS",
            "Remote-User",
            "remote_groups",
            "x-webauth-user",
            "x-authentik-username",
        ] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("admin"),
            );
        }
        for kept in [
            "x-other",
            "x-forwarded-for",
            "x-tollgate",
            "x-forwarded-username",
            "remote-userx",
        ] {
            h.insert(
                HeaderName::from_static(kept),
                HeaderValue::from_static("kept"),
            );
        }
        let mut ours_only = h.clone();
        strip_forged(&mut ours_only, false);
        assert!(
            ours_only
                .keys()
                .all(|k| !k.as_str().replace('_', "-").starts_with("x-tollgate-"))
        );
        assert!(
            ours_only.contains_key("x-forwarded-user") && ours_only.contains_key("remote_groups")
        );
        strip_forged(&mut h, true);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(
            left,
            [
                "remote-userx",
                "x-forwarded-for",
                "x-forwarded-username",
                "x-other",
                "x-tollgate"
            ]
        );
    }

    #[test]
    fn forged_identity_headers_go_and_ours_come() {
        let mut h = HeaderMap::new();
        h.insert("x-tollgate-user", HeaderValue::from_static("admin"));
        h.insert("X-Tollgate-Anything", HeaderValue::from_static("x"));
        h.insert("x-other", HeaderValue::from_static("kept"));
        strip_forged(&mut h, false);
        assert_eq!(h.len(), 1);
        add_identity(
            &mut h,
            &IdentityHeaders {
                user_id: "u1",
                email: "zoë@example.com",
                email_verified: "true",
                scope: "a b",
                session_id: "s1",
                client_id: "tollgate",
                assertion: "jwt",
            },
        );
        assert_eq!(h[&USER], "u1");
        assert_eq!(h[&EMAIL].as_bytes(), "zoë@example.com".as_bytes());
        assert_eq!(h[&SCOPES], "a b");
    }

    #[test]
    fn our_cookies_do_not_reach_the_upstream() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("tg_at=a; app=1; tg_rt=r"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("tg_csrf=c; theme=dark"),
        );
        strip_cookies(&mut h, &["tg_at", "tg_rt", "tg_csrf"]);
        assert_eq!(h[header::COOKIE], "app=1; theme=dark");
        let mut only_ours = HeaderMap::new();
        only_ours.append(header::COOKIE, HeaderValue::from_static("tg_rt=r"));
        strip_cookies(&mut only_ours, &["tg_at", "tg_rt", "tg_csrf"]);
        assert!(!only_ours.contains_key(header::COOKIE));
    }

    #[test]
    fn upstreams_cannot_set_our_cookies() {
        let mut h = HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("tg_rt=planted; Path=/"),
        );
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("app=1; Path=/"),
        );
        for planted in [
            "=tg_rt=planted; Path=/",
            " = tg_at=planted",
            "tg_csrf",
            "__HOST-tg_rt=x; Path=/; Secure",
            "__secure-TG_AT=x",
        ] {
            h.append(header::SET_COOKIE, HeaderValue::from_static(planted));
        }
        h.append(header::SET_COOKIE, HeaderValue::from_static("=app=2"));
        strip_set_cookies(&mut h, &["tg_at", "tg_rt", "tg_csrf"]);
        let left: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(left, vec!["app=1; Path=/", "=app=2"]);
    }

    #[test]
    fn steering_headers_go_in_every_spelling() {
        let mut h = HeaderMap::new();
        for name in [
            "x-original-url",
            "X_Original_URL",
            "x_http_method_override",
            "X_Real_IP",
            "x_forwarded_host",
            "X_Forwarded_For",
            "x-forwarded_proto",
        ] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("evil"),
            );
        }
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("kept for add_forwarded"),
        );
        h.insert("x-other", HeaderValue::from_static("kept"));
        strip_steering(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["x-forwarded-for", "x-other"]);
    }

    #[test]
    fn forwarding_headers_are_believed_only_from_trusted_proxies() {
        let client_sent = || {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
            h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
            h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
            h.insert(header::HOST, HeaderValue::from_static("evil.example"));
            h
        };
        let from = |trusted_peer| Forwarded {
            peer: Some("192.0.2.9".parse().unwrap()),
            trusted_peer,
            proto: "https",
            public_host: "app.example.com",
        };
        let mut h = client_sent();
        add_forwarded(&mut h, &from(false));
        assert_eq!(h["x-forwarded-for"], "192.0.2.9");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        assert_eq!(h["x-forwarded-proto"], "https");
        let mut h = client_sent();
        add_forwarded(&mut h, &from(true));
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 10.0.0.1, 192.0.2.9");
        assert_eq!(h["x-forwarded-host"], "evil.example");
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, &from(true));
        assert_eq!(h["x-forwarded-for"], "192.0.2.9");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
    }
}
