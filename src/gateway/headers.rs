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
pub const SCOPES: HeaderName = HeaderName::from_static("x-tollgate-scopes");
pub const SESSION: HeaderName = HeaderName::from_static("x-tollgate-session");
pub const CLIENT: HeaderName = HeaderName::from_static("x-tollgate-client");
pub const ASSERTION: HeaderName = HeaderName::from_static("x-tollgate-assertion");
const PREFIX: &str = "x-tollgate-";

/// The identity passed upstream (and returned by forward auth).
pub struct IdentityHeaders<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
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
    for name in [USER, EMAIL, SCOPES, SESSION, CLIENT, ASSERTION] {
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

/// Drops `Set-Cookie` headers of an upstream response that would set one of our cookies
/// (an upstream must not plant a session in the browser). Names are compared on the raw
/// bytes, with or without the `__Host-` prefix.
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
        let name = cookie_name(v.as_bytes().split(|b| *b == b';').next().unwrap_or(b""));
        let bare = name
            .strip_prefix(b"__Host-")
            .or_else(|| name.strip_prefix(b"__Secure-"));
        let ours = names.iter().any(|n| {
            let n = n.as_bytes();
            let n_bare = n.strip_prefix(b"__Host-").unwrap_or(n);
            n == name || Some(n_bare) == bare || n_bare == name
        });
        if !ours {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// Request headers some frameworks trust to change the method, the path or the client
/// address. The gateway decided on the request as sent, so none may reach the upstream.
const STEERING: [HeaderName; 9] = [
    header::FORWARDED,
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

pub fn strip_steering(headers: &mut HeaderMap) {
    for name in &STEERING {
        headers.remove(name);
    }
}

/// `X-Forwarded-For` (appended), `-Proto` and `-Host` (set).
pub fn add_forwarded(headers: &mut HeaderMap, client_ip: Option<&str>, proto: &'static str) {
    if let Some(ip) = client_ip {
        let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) if !prior.trim().is_empty() => format!("{prior}, {ip}"),
            _ => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", v);
        }
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    match headers.get(header::HOST).cloned() {
        Some(host) => {
            headers.insert("x-forwarded-host", host);
        }
        None => {
            headers.remove("x-forwarded-host");
        }
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
        strip_set_cookies(&mut h, &["tg_at", "tg_rt", "tg_csrf"]);
        let left: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(left, vec!["app=1; Path=/"]);
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert(header::HOST, HeaderValue::from_static("app.example.com"));
        add_forwarded(&mut h, Some("127.0.0.1"), "https");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
