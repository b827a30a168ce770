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
}

impl LoginRedirect {
    /// The `Location` for a refused navigation that wanted `return_to`.
    pub fn location(&self, return_to: Option<&str>) -> Option<String> {
        let login = self.login_url.as_deref()?;
        let Some(rd) = return_to.filter(|u| self.return_allowed(u)) else {
            return Some(login.to_string());
        };
        let sep = if login.contains('?') { '&' } else { '?' };
        let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        Some(format!("{login}{sep}rd={rd}"))
    }

    /// Whether `target` is an absolute http(s) URL on an allowed origin.
    pub fn return_allowed(&self, target: &str) -> bool {
        let Ok(url) = url::Url::parse(target) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
            return false;
        }
        let origin = url.origin().ascii_serialization();
        origin == self.own_origin || self.return_origins.contains(&origin)
    }
}

/// A top-level page load by a browser, as opposed to an API call.
pub fn is_browser_navigation(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect() -> LoginRedirect {
        LoginRedirect {
            login_url: Some("https://auth.example.com/ui/login".into()),
            return_origins: vec!["https://app.example.com".into()],
            own_origin: "https://auth.example.com".into(),
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
    }
}
