//! Sending unauthenticated browsers to sign in, without becoming an open redirect.
//!
//! With `[gateway] login_url` set, a browser navigation (a `GET`/`HEAD` that accepts
//! HTML) refused for lack of a session is redirected there, with the page it wanted as the
//! `rd` parameter. The return URL is only ever included when its origin is Tollgate's own
//! or listed in `[gateway] return_origins`; anything else is dropped, so no request can
//! make Tollgate emit a redirect that leads off-site afterwards.

use http::{HeaderMap, Method, header};

#[derive(Debug, Clone, Default)]
pub struct LoginRedirect {
    /// Absolute URL of the sign-in page; `None`: answer 401 instead of redirecting.
    pub login_url: Option<String>,
    /// Origins (`scheme://host[:port]`) a return URL may point to, besides ours.
    pub return_origins: Vec<String>,
    /// Tollgate's own origin.
    pub own_origin: String,
    /// Absolute URL of the hosted step-up page (`/ui/mfa`).
    pub step_up_url: String,
}

impl LoginRedirect {
    /// The `Location` for a refused navigation that wanted `return_to`.
    pub fn location(&self, return_to: Option<&str>) -> Option<String> {
        Some(self.returning(self.login_url.as_deref()?, return_to))
    }

    /// The `Location` for a navigation whose session must be raised first (a second
    /// factor when `mfa`, else a recent sign-in): the hosted step-up page. Only where
    /// refused navigations are redirected at all (`login_url` set).
    pub fn step_up_location(&self, return_to: Option<&str>, mfa: bool) -> Option<String> {
        self.login_url.as_ref()?;
        let page = if mfa {
            format!("{}?acr=2", self.step_up_url)
        } else {
            self.step_up_url.clone()
        };
        Some(self.returning(&page, return_to))
    }

    /// `page` with `return_to` as its `rd` parameter, when that is an allowed return.
    fn returning(&self, page: &str, return_to: Option<&str>) -> String {
        let Some(rd) = return_to.filter(|u| self.return_allowed(u)) else {
            return page.to_string();
        };
        let sep = if page.contains('?') { '&' } else { '?' };
        let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        format!("{page}{sep}rd={rd}")
    }

    /// Whether `target` is an absolute http(s) URL on an allowed origin.
    pub fn return_allowed(&self, target: &str) -> bool {
        self.return_url(target).is_some()
    }

    /// `target` as the URL to send a browser to, when it is an absolute http(s) URL on an
    /// allowed origin: the parser's serialisation, so the browser reads exactly what was
    /// checked. Control characters, whitespace and backslashes are refused rather than
    /// repaired: parsers (ours, browsers') disagree on them.
    pub fn return_url(&self, target: &str) -> Option<String> {
        if target
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return None;
        }
        let url = url::Url::parse(target).ok()?;
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
            return None;
        }
        let origin = url.origin().ascii_serialization();
        (origin == self.own_origin || self.return_origins.contains(&origin))
            .then(|| url.to_string())
    }
}

/// A top-level page load by a browser, as opposed to an API call.
pub fn is_browser_navigation(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD) && prefers_html(headers)
}

/// Whether `Accept` names `text/html` as acceptable (`q` above 0) and at least as wanted
/// as JSON. Browsers name HTML when they load a page; API clients send `*/*`, JSON, or
/// HTML with `q=0`, and a wildcard alone does not count.
pub fn prefers_html(headers: &HeaderMap) -> bool {
    let html = quality(headers, |m| m.eq_ignore_ascii_case("text/html"));
    let json = quality(headers, |m| {
        m.eq_ignore_ascii_case("application/json")
            || m.eq_ignore_ascii_case("application/problem+json")
    });
    html > 0.0 && html >= json
}

/// The highest `q` the `Accept` fields give a media type `wanted` accepts (0 when none).
/// Read for every request the gateway answers itself: no allocation.
fn quality(headers: &HeaderMap, wanted: impl Fn(&str) -> bool) -> f32 {
    let mut best: f32 = 0.0;
    for range in headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut params = range.split(';');
        let media = params.next().unwrap_or("").trim();
        if !wanted(media) {
            continue;
        }
        let mut q: f32 = 1.0;
        for p in params {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .unwrap_or(0.0);
            }
        }
        best = best.max(q);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, value.parse().unwrap());
        h
    }

    #[test]
    fn html_counts_only_when_acceptable_and_not_less_wanted_than_json() {
        let chromium =
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        assert!(prefers_html(&accept(chromium)));
        assert!(prefers_html(&accept("TEXT/HTML; charset=utf-8")));
        for api in [
            "*/*",
            "application/json",
            "application/json, text/html;q=0",
            "text/html;q=0",
            "application/json;q=1, text/html;q=0.01",
            "notreally/text/html-ish",
            "text/html;q=abc",
        ] {
            assert!(!prefers_html(&accept(api)), "{api}");
        }
        assert!(!prefers_html(&HeaderMap::new()));
        assert!(!is_browser_navigation(&Method::POST, &accept(chromium)));
        assert!(is_browser_navigation(&Method::HEAD, &accept(chromium)));
    }

    #[test]
    fn return_urls_are_refused_with_control_characters_and_given_as_parsed() {
        let r = LoginRedirect {
            own_origin: "http://127.0.0.1:8080".into(),
            ..LoginRedirect::default()
        };
        for bad in [
            "http://127.0.0.1:8080/app/\nx",
            "http://127.0.0.1:8080/app/\u{7f}",
            "http://127.0.0.1:8080/a b",
            "http:\\\\127.0.0.1:8080\\x",
            "http://127.0.0.1:8080/\t/evil.example",
        ] {
            assert_eq!(r.return_url(bad), None, "{bad:?}");
        }
        assert_eq!(
            r.return_url("http:127.0.0.1:8080/x").as_deref(),
            Some("http://127.0.0.1:8080/x")
        );
        assert_eq!(
            r.return_url("http://127.0.0.1:8080/r?a=1").as_deref(),
            Some("http://127.0.0.1:8080/r?a=1")
        );
    }

    fn redirect() -> LoginRedirect {
        LoginRedirect {
            login_url: Some("https://auth.example.com/ui/login".into()),
            return_origins: vec!["https://app.example.com".into()],
            own_origin: "https://auth.example.com".into(),
            step_up_url: "https://auth.example.com/ui/mfa".into(),
        }
    }

    #[test]
    fn return_urls_are_checked_against_the_allow_list() {
        let r = redirect();
        assert_eq!(
            r.location(Some("https://app.example.com/docs?x=1"))
                .unwrap(),
            "https://auth.example.com/ui/login?rd=https%3A%2F%2Fapp.example.com%2Fdocs%3Fx%3D1"
        );
        for evil in [
            "https://evil.example.com/",
            "https://app.example.com.evil.com/",
            "https://app.example.com@evil.com/",
            "//evil.com/",
            "/relative",
            "javascript:alert(1)",
            "http://app.example.com/",
            "https://user@app.example.com/",
        ] {
            assert_eq!(
                r.location(Some(evil)).unwrap(),
                "https://auth.example.com/ui/login",
                "{evil}"
            );
        }
        assert!(
            LoginRedirect::default()
                .location(Some("https://app.example.com/"))
                .is_none()
        );
        assert_eq!(
            r.step_up_location(Some("https://app.example.com/billing"), true)
                .unwrap(),
            "https://auth.example.com/ui/mfa?acr=2&rd=https%3A%2F%2Fapp.example.com%2Fbilling"
        );
        assert_eq!(
            r.step_up_location(Some("https://evil.example.com/"), false)
                .unwrap(),
            "https://auth.example.com/ui/mfa"
        );
        assert!(
            LoginRedirect::default()
                .step_up_location(None, true)
                .is_none()
        );
    }
}
