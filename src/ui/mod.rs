//! The hosted pages (sign-in, consent, sign-out, account linking, messages): HTML
//! rendered on the server from templates compiled into the binary. They work without
//! JavaScript, escape everything they show (minijinja auto-escapes `.html`), and are
//! served under a strict Content-Security-Policy: styles from `/ui/style.css`, no
//! scripts at all except the one-line auto-submit of the `form_post` response mode,
//! allowed by its hash.

use aws_lc_rs::digest;
use base64::Engine;
use minijinja::{Environment, Value};

/// The stylesheet served at `/ui/style.css`.
pub const STYLE: &str = include_str!("style.css");

/// The policy of every page but `form_post`.
pub const PAGE_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The script of the `form_post` page, exactly as it appears there.
const FORM_POST_SCRIPT: &str = "document.forms[0].submit()";

const TEMPLATES: [(&str, &str); 7] = [
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("logout.html", include_str!("templates/logout.html")),
    ("message.html", include_str!("templates/message.html")),
    ("form_post.html", include_str!("templates/form_post.html")),
    ("link.html", include_str!("templates/link.html")),
];

pub struct Pages {
    env: Environment<'static>,
    form_post_csp: String,
}

impl Pages {
    pub fn new() -> Pages {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // The templates are part of the binary: one that does not parse is a bug the
            // unit tests catch, not a runtime condition.
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        let hash = digest::digest(&digest::SHA256, FORM_POST_SCRIPT.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(hash.as_ref());
        Pages {
            env,
            form_post_csp: format!(
                "default-src 'none'; script-src 'sha256-{hash}'; base-uri 'none'; frame-ancestors 'none'"
            ),
        }
    }

    /// Renders template `name` with `ctx` (a `minijinja::context!` or serialisable value).
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("rendering {name}: {e}"))
    }

    /// The policy of the `form_post` page: its one script, by hash.
    pub fn form_post_csp(&self) -> &str {
        &self.form_post_csp
    }
}

impl Default for Pages {
    fn default() -> Self {
        Pages::new()
    }
}

/// What a scope lets a client do, in words for the consent page.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "confirm who you are (an identifier of your account, nothing else)".into(),
        "profile" => "see your user name, which is your email address".into(),
        "email" => "see your email address and whether it is verified".into(),
        "offline_access" => "keep access after you sign out here, until you withdraw it".into(),
        "roles" => "see the names of your roles".into(),
        other => format!("act for you with the permission “{other}”"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn the_consent_page_says_what_each_scope_reveals() {
        let pages = Pages::new();
        let scopes: Vec<_> = ["openid", "profile", "email", "roles", "docs:read"]
            .iter()
            .map(|s| context! { name => *s, description => describe_scope(s) })
            .collect();
        let html = pages
            .render(
                "consent.html",
                context! { client_name => "Docs", email => "a@b.c", scopes, csrf => "c", flow => "f" },
            )
            .unwrap();
        for words in [
            "an identifier of your account",
            "your user name, which is your email address",
            "your email address and whether it is verified",
            "the names of your roles",
            "the permission “docs:read”",
        ] {
            assert!(html.contains(words), "{words}: {html}");
        }
    }

    #[test]
    fn every_page_renders_and_escapes() {
        let pages = Pages::new();
        let evil = "<script>alert(1)</script>";
        let html = pages
            .render(
                "login.html",
                context! { csrf => "c", flow => evil, email => evil, error => evil, client_name => evil,
                           providers => vec![context! { href => "/auth/federated/corp", label => "Corp" }] },
            )
            .unwrap();
        assert!(
            !html.contains(evil) && html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(html.contains(r#"<label for="password">"#));
        for (name, ctx) in [
            (
                "consent.html",
                context! { client_name => "App", email => "a@b", csrf => "c", flow => "f",
                scopes => vec![context! { name => "openid", description => describe_scope("openid") }] },
            ),
            (
                "logout.html",
                context! { csrf => "c", params => vec![("state", "s")] },
            ),
            (
                "message.html",
                context! { heading => "Signed out", text => "Bye" },
            ),
            (
                "form_post.html",
                context! { action => "https://app.example/cb", params => vec![("code", "x")] },
            ),
            (
                "link.html",
                context! { provider => "Corp", email => "a@b", csrf => "c", link => "l" },
            ),
        ] {
            let html = pages.render(name, ctx).unwrap();
            assert!(
                html.contains("<html lang=\"en\">") || html.contains("<!doctype html>"),
                "{name}"
            );
        }
        let post = pages
            .render(
                "form_post.html",
                context! { action => "https://app.example/cb", params => vec![("code", "x")] },
            )
            .unwrap();
        assert!(post.contains(&format!("<script>{FORM_POST_SCRIPT}</script>")));
        assert!(pages.form_post_csp().contains("script-src 'sha256-"));
    }
}
