//! The session cookies: names, parsing and `Set-Cookie` values.
//!
//! Over `https://` public URLs every name carries the `__Host-` prefix (so no subdomain can
//! plant one) and `Secure`. `tg_at`/`tg_rt` are `HttpOnly`; `tg_csrf` is readable by the
//! page's scripts so they can echo it in `X-CSRF-Token` (double submit). All are
//! `SameSite=Lax` and `Path=/`, except that `[session] refresh_cookie_path` can scope the
//! refresh cookie to Tollgate's `/auth/` paths for forward-auth deployments (the browser
//! then never sends it to the app; `__Host-` requires `Path=/`, so it becomes
//! `__Secure-tg_rt`). `tg_fed` lives for one federated sign-in (HttpOnly); for a provider
//! that answers with a cross-site POST (`form_post`) it is `SameSite=None; Secure`.

use http::{HeaderMap, HeaderValue, header};

use super::Issued;
use crate::clock;
use crate::secret;

#[derive(Debug, Clone)]
pub struct CookieNames {
    pub access: String,
    pub refresh: String,
    pub csrf: String,
    /// A federated sign-in's journey (state, nonce, PKCE verifier), signed and HttpOnly.
    pub journey: String,
    pub secure: bool,
    /// `Path` of the refresh cookie.
    refresh_path: String,
}

impl CookieNames {
    pub fn new(secure: bool, refresh_path: &str) -> CookieNames {
        let prefix = if secure { "__Host-" } else { "" };
        let refresh_prefix = match (secure, refresh_path) {
            (true, "/") => "__Host-",
            (true, _) => "__Secure-",
            (false, _) => "",
        };
        CookieNames {
            access: format!("{prefix}tg_at"),
            refresh: format!("{refresh_prefix}tg_rt"),
            csrf: format!("{prefix}tg_csrf"),
            journey: format!("{prefix}tg_fed"),
            secure,
            refresh_path: refresh_path.to_string(),
        }
    }

    /// A `Set-Cookie` value.
    pub fn set(&self, name: &str, value: &str, max_age_secs: i64, http_only: bool) -> HeaderValue {
        self.render(name, value, max_age_secs, http_only, false)
    }

    /// A `Set-Cookie` value for a cookie that must travel on a cross-site POST (an
    /// identity provider's `form_post` answer): HttpOnly, `SameSite=None` and therefore
    /// `Secure`, which browsers honour over https and on loopback hosts.
    pub fn set_cross_site(&self, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
        self.render(name, value, max_age_secs, true, true)
    }

    fn render(
        &self,
        name: &str,
        value: &str,
        max_age_secs: i64,
        http_only: bool,
        cross_site: bool,
    ) -> HeaderValue {
        let path = if name == self.refresh {
            self.refresh_path.as_str()
        } else {
            "/"
        };
        let same_site = if cross_site { "None" } else { "Lax" };
        let mut v = format!(
            "{name}={value}; Path={path}; Max-Age={}; SameSite={same_site}",
            max_age_secs.max(0)
        );
        if http_only {
            v.push_str("; HttpOnly");
        }
        if self.secure || cross_site {
            v.push_str("; Secure");
        }
        // Names and values are our own base64url/JWT strings: always valid header bytes.
        HeaderValue::from_str(&v).expect("cookie values are header-safe")
    }

    /// The `Set-Cookie` values for a freshly issued token pair. An existing CSRF token is
    /// kept (other tabs hold copies of it); a missing or malformed one is replaced.
    pub fn for_issued(&self, issued: &Issued, keep_csrf: Option<&str>) -> [HeaderValue; 3] {
        let refresh_age = issued.refresh_expires_at - clock::now();
        let csrf = keep_csrf
            .filter(|c| c.len() == 43)
            .map(str::to_string)
            .unwrap_or_else(secret::generate);
        [
            self.for_access(issued),
            self.set(
                &self.refresh,
                issued.refresh_token.as_deref().unwrap_or(""),
                refresh_age,
                true,
            ),
            self.set(&self.csrf, &csrf, refresh_age, false),
        ]
    }

    /// The `Set-Cookie` value of a new access token alone (a step-up: the refresh token
    /// and the CSRF token stay).
    pub fn for_access(&self, issued: &Issued) -> HeaderValue {
        let access_age = issued.access_claims.exp - issued.access_claims.iat;
        self.set(&self.access, &issued.access_token, access_age, true)
    }

    /// Every name, to keep them from crossing the proxy.
    pub fn all(&self) -> [&str; 4] {
        [&self.access, &self.refresh, &self.csrf, &self.journey]
    }

    /// `Set-Cookie` values that delete all three cookies.
    pub fn clear_all(&self) -> [HeaderValue; 3] {
        [
            self.set(&self.access, "", 0, true),
            self.set(&self.refresh, "", 0, true),
            self.set(&self.csrf, "", 0, false),
        ]
    }
}

/// The first value of cookie `name` in the request's `Cookie` headers. Unparsable
/// headers are ignored rather than rejected: a bad cookie is just no cookie.
pub fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_cookies_are_prefixed_and_secure() {
        let n = CookieNames::new(true, "/");
        assert_eq!(n.access, "__Host-tg_at");
        let v = n.set(&n.access, "x", 60, true);
        assert_eq!(
            v,
            "__Host-tg_at=x; Path=/; Max-Age=60; SameSite=Lax; HttpOnly; Secure"
        );
        let plain = CookieNames::new(false, "/");
        assert_eq!(
            plain.set(&plain.csrf, "c", 5, false),
            "tg_csrf=c; Path=/; Max-Age=5; SameSite=Lax"
        );
    }

    #[test]
    fn a_cross_site_cookie_is_secure_even_over_http() {
        // Browsers drop `SameSite=None` without `Secure`; loopback hosts accept `Secure`.
        let plain = CookieNames::new(false, "/");
        assert_eq!(
            plain.set_cross_site(&plain.journey, "j", 600),
            "tg_fed=j; Path=/; Max-Age=600; SameSite=None; HttpOnly; Secure"
        );
        let n = CookieNames::new(true, "/");
        assert_eq!(
            n.set_cross_site(&n.journey, "j", 0),
            "__Host-tg_fed=j; Path=/; Max-Age=0; SameSite=None; HttpOnly; Secure"
        );
    }

    #[test]
    fn the_refresh_cookie_can_be_kept_to_tollgates_paths() {
        let n = CookieNames::new(true, "/auth/");
        assert_eq!(n.refresh, "__Secure-tg_rt");
        assert_eq!(
            n.set(&n.refresh, "r", 60, true),
            "__Secure-tg_rt=r; Path=/auth/; Max-Age=60; SameSite=Lax; HttpOnly; Secure"
        );
        assert_eq!(n.access, "__Host-tg_at");
        assert!(
            n.set(&n.access, "a", 60, true)
                .to_str()
                .unwrap()
                .contains("Path=/;")
        );
        let plain = CookieNames::new(false, "/auth/refresh");
        assert_eq!(plain.refresh, "tg_rt");
        assert!(
            plain
                .set(&plain.refresh, "r", 1, true)
                .to_str()
                .unwrap()
                .contains("Path=/auth/refresh;")
        );
    }

    #[test]
    fn reading_tolerates_garbage() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_bytes(b"\xff\xfe=bad").unwrap(),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("junk; tg_at=abc; tg_at=second; =; tg_rt="),
        );
        assert_eq!(read(&h, "tg_at"), Some("abc"));
        assert_eq!(read(&h, "tg_rt"), None);
        assert_eq!(read(&h, "tg_csrf"), None);
    }
}
