//! The hosted pages (sign-in, sign-up, recovery, consent, sign-out, account linking,
//! error pages): HTML rendered on the server from templates compiled into the binary.
//! They work without JavaScript, escape everything they show (minijinja auto-escapes
//! `.html`), and are served under a strict Content-Security-Policy: styles from
//! `/ui/style.css`, no scripts at all except the one-line auto-submit of the `form_post`
//! response mode, allowed by its hash. Their words come from a message catalogue in the
//! request's language ([`messages`]); `[ui]` names the product, its logo and accent colour.

pub mod chart;
pub mod format;
pub mod messages;
pub mod qr;

use crate::config::values::{ConfigError, invalid};
use aws_lc_rs::digest;
use base64::Engine;
use minijinja::value::Kwargs;
use minijinja::{Environment, Value, context};

pub use messages::Locale;

/// How the hosted pages look (`[ui]`).
#[derive(Debug, Clone)]
pub struct UiConfig {
    /// Shown in page titles and headings.
    pub product_name: String,
    /// An image shown above every page (absolute `https://` URL, or a path on this origin).
    pub logo_url: Option<String>,
    /// Buttons, links and focus rings: `#rgb` or `#rrggbb`.
    pub accent_colour: String,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiSection {
    pub product_name: Option<String>,
    pub logo_url: Option<String>,
    pub accent_colour: Option<String>,
}

/// `[ui]`, resolved: the name "Tollgate", no logo, a blue accent.
pub fn resolve_config(u: UiSection) -> Result<UiConfig, ConfigError> {
    let accent_colour = u.accent_colour.unwrap_or_else(|| "#0b57d0".into());
    let hex = accent_colour.strip_prefix('#').unwrap_or("");
    if !(hex.len() == 3 || hex.len() == 6) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            "ui.accent_colour",
            "#rgb or #rrggbb",
            &accent_colour,
        ));
    }
    if let Some(logo) = &u.logo_url {
        let ok = if logo.starts_with('/') {
            !logo.starts_with("//") && !logo.contains(['"', '<', '>', ' ', '\\'])
        } else {
            // The same rule as a client's redirect URI: https, or http on a loopback host.
            crate::oidc::clients::check_redirect_uri(logo, false).is_ok()
                && !logo.contains(['"', '<', '>', ' ', '\\'])
        };
        if !ok {
            return Err(invalid(
                "ui.logo_url",
                "an https:// URL (http only on a loopback host) or a path on this origin",
                logo,
            ));
        }
    }
    let product_name = u.product_name.unwrap_or_else(|| "Tollgate".into());
    if product_name.trim().is_empty() || product_name.chars().count() > 64 {
        return Err(invalid(
            "ui.product_name",
            "1 to 64 characters",
            &product_name,
        ));
    }
    Ok(UiConfig {
        product_name,
        logo_url: u.logo_url,
        accent_colour,
    })
}

/// The stylesheet, with `/*ACCENT*/` standing for `[ui] accent_colour`.
const STYLE: &str = include_str!("style.css");

/// The script of the `form_post` page, exactly as it appears there.
const FORM_POST_SCRIPT: &str = "document.forms[0].submit()";

const TEMPLATES: [(&str, &str); 33] = [
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("mfa.html", include_str!("templates/mfa.html")),
    ("step_up.html", include_str!("templates/step_up.html")),
    ("account.html", include_str!("templates/account.html")),
    ("totp_setup.html", include_str!("templates/totp_setup.html")),
    (
        "recovery_codes.html",
        include_str!("templates/recovery_codes.html"),
    ),
    ("signup.html", include_str!("templates/signup.html")),
    ("forgot.html", include_str!("templates/forgot.html")),
    ("reset.html", include_str!("templates/reset.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    ("home.html", include_str!("templates/home.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("device.html", include_str!("templates/device.html")),
    ("logout.html", include_str!("templates/logout.html")),
    ("message.html", include_str!("templates/message.html")),
    ("error.html", include_str!("templates/error.html")),
    ("form_post.html", include_str!("templates/form_post.html")),
    ("link.html", include_str!("templates/link.html")),
    ("usage.html", include_str!("templates/usage.html")),
    (
        "sessions_table.html",
        include_str!("templates/sessions_table.html"),
    ),
    ("keys_table.html", include_str!("templates/keys_table.html")),
    (
        "key_created.html",
        include_str!("templates/key_created.html"),
    ),
    (
        "account_delete.html",
        include_str!("templates/account_delete.html"),
    ),
    ("admin_nav.html", include_str!("templates/admin_nav.html")),
    (
        "admin_users.html",
        include_str!("templates/admin_users.html"),
    ),
    ("admin_user.html", include_str!("templates/admin_user.html")),
    (
        "admin_roles.html",
        include_str!("templates/admin_roles.html"),
    ),
    (
        "admin_clients.html",
        include_str!("templates/admin_clients.html"),
    ),
    (
        "admin_client.html",
        include_str!("templates/admin_client.html"),
    ),
    (
        "admin_secret.html",
        include_str!("templates/admin_secret.html"),
    ),
    (
        "admin_audit.html",
        include_str!("templates/admin_audit.html"),
    ),
    (
        "admin_spend.html",
        include_str!("templates/admin_spend.html"),
    ),
];

tokio::task_local! {
    /// The language of the request being handled (set by the edge for Tollgate's own
    /// routes); pages rendered outside one are English.
    pub static LOCALE: Locale;
}

/// The current request's language.
pub fn current_locale() -> Locale {
    LOCALE.try_with(|l| *l).unwrap_or_default()
}

pub struct Pages {
    env: Environment<'static>,
    /// Each language's messages, as templates read them (`m.<key>`).
    messages: Vec<Value>,
    product: String,
    logo_url: Option<String>,
    style: String,
    page_csp: String,
    form_post_csp: String,
}

impl Pages {
    pub fn new(ui: &UiConfig) -> Pages {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // The templates are part of the binary: one that does not parse is a bug the
            // unit tests catch, not a runtime condition.
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        env.add_filter("fill", fill);
        env.add_filter("when", format::when);
        env.add_filter("device", |ua: Option<String>| format::device(ua.as_deref()));
        let messages = Locale::all()
            .map(|l| {
                Value::from(
                    l.messages()
                        .collect::<std::collections::BTreeMap<&'static str, &'static str>>(),
                )
            })
            .collect();
        let hash = digest::digest(&digest::SHA256, FORM_POST_SCRIPT.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(hash.as_ref());
        // A logo on another origin must be allowed by name; nothing else may load.
        let logo_origin = ui
            .logo_url
            .as_deref()
            .and_then(|l| url::Url::parse(l).ok())
            .map(|u| format!(" {}", u.origin().ascii_serialization()))
            .unwrap_or_default();
        Pages {
            env,
            messages,
            product: ui.product_name.clone(),
            logo_url: ui.logo_url.clone(),
            style: STYLE.replace("/*ACCENT*/", &ui.accent_colour),
            page_csp: format!(
                "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'{logo_origin}; base-uri 'none'; frame-ancestors 'none'"
            ),
            form_post_csp: format!(
                "default-src 'none'; script-src 'sha256-{hash}'; base-uri 'none'; frame-ancestors 'none'"
            ),
        }
    }

    /// Renders template `name` with `ctx` in the current request's language.
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, String> {
        self.render_in(current_locale(), name, ctx)
    }

    /// Renders template `name` with `ctx` in `locale`.
    pub fn render_in(&self, locale: Locale, name: &str, ctx: Value) -> Result<String, String> {
        let index = Locale::all().position(|l| l == locale).unwrap_or(0);
        let ctx = context! {
            m => self.messages[index].clone(),
            lang => locale.lang(),
            product => self.product.clone(),
            logo_url => self.logo_url.clone(),
            ..ctx
        };
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("rendering {name}: {e}"))
    }

    /// The stylesheet served at `/ui/style.css`, in the configured accent colour.
    pub fn style(&self) -> &str {
        &self.style
    }

    /// The policy of every page but `form_post`.
    pub fn page_csp(&self) -> &str {
        &self.page_csp
    }

    /// The policy of the `form_post` page: its one script, by hash.
    pub fn form_post_csp(&self) -> &str {
        &self.form_post_csp
    }
}

/// The `fill` filter: `{{ m.key | fill(name=value) }}` replaces `{name}` in the message,
/// in one pass ([`messages::fill`]: a value is never read for placeholders).
fn fill(text: String, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let mut values = Vec::new();
    for name in kwargs.args() {
        let value: Value = kwargs.get(name)?;
        values.push((name, value.to_string()));
    }
    kwargs.assert_all_used()?;
    let pairs: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
    Ok(messages::fill(&text, &pairs))
}

/// What a scope lets a client do, in words for the consent page.
pub fn describe_scope(scope: &str, locale: Locale) -> String {
    match scope {
        "openid" | "profile" | "email" | "offline_access" | "roles" => {
            locale.text(&format!("scope_{scope}")).to_string()
        }
        other => messages::fill(locale.text("scope_other"), &[("scope", other)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn settings() -> UiConfig {
        UiConfig {
            product_name: "Acme <Cloud>".into(),
            logo_url: Some("https://cdn.example.com/logo.svg".into()),
            accent_colour: "#aa3300".into(),
        }
    }

    #[test]
    fn names_in_pages_are_not_read_for_placeholders() {
        let pages = Pages::new(&settings());
        for (template, ctx) in [
            (
                "consent.html",
                context! { csrf => "c", flow => "f", client_name => "X {email} {client}",
                email => "victim@example.com", scopes => Vec::<Value>::new() },
            ),
            (
                "logout.html",
                context! { csrf => "c", client_name => "X {email}", email => "victim@example.com",
                action => "/oauth2/logout" },
            ),
        ] {
            let html = pages.render_in(Locale::default(), template, ctx).unwrap();
            assert!(html.contains("X {email}"), "{template}: {html}");
            assert!(!html.contains("X victim@example.com"), "{template}: {html}");
        }
    }

    /// The AI usage section (`http::pages::usage`) with every part shown.
    fn usage_section(evil: &str) -> Value {
        context! { metered => true, month => evil, spent => evil, budget => evil,
        tokens_today => 5, token_limit => 10, chart => evil,
        models => vec![context! { provider => evil, model => evil, requests => 1, tokens => 2, spent => evil }] }
    }

    /// Every template with a context that shows every part of it.
    fn every_page() -> Vec<(&'static str, Value)> {
        let evil = "<script>alert(1)</script>";
        vec![
            (
                "login.html",
                context! { csrf => "c", flow => evil, email => evil, error => evil, hint => evil,
                client_name => evil, signup => "/ui/signup",
                providers => vec![context! { href => "/auth/federated/corp", label => evil }] },
            ),
            (
                "signup.html",
                context! { csrf => "c", email => evil, error => evil, rd => evil },
            ),
            (
                "forgot.html",
                context! { csrf => "c", email => evil, error => evil },
            ),
            (
                "reset.html",
                context! { csrf => "c", token => evil, error => evil },
            ),
            (
                "confirm.html",
                context! { csrf => "c", token => evil, title => evil, lead => evil, button => evil,
                action => "/ui/verify", error => evil },
            ),
            ("home.html", context! { csrf => "c", email => evil }),
            (
                "device.html",
                context! { csrf => "c", confirm => true, user_code => evil, email => evil,
                client_name => evil, registered => true, resource => evil,
                scopes => vec![context! { name => evil, description => evil }] },
            ),
            (
                "device.html",
                context! { csrf => "c", confirm => false, user_code => evil, error => evil },
            ),
            (
                "consent.html",
                context! { client_name => evil, email => evil, csrf => "c", flow => "f",
                scopes => vec![context! { name => "openid", description => describe_scope("openid", Locale::ENGLISH) }] },
            ),
            (
                "logout.html",
                context! { csrf => "c", params => vec![("state", evil)], action => "/ui/logout",
                email => evil, client_name => evil, cancel => "/ui/" },
            ),
            (
                "message.html",
                context! { heading => evil, text => evil, hint => evil, code => evil,
                link => context! { href => "/ui/login", label => evil }, is_error => true },
            ),
            (
                "error.html",
                context! { heading => evil, text => evil, code => evil, status => 404 },
            ),
            (
                "form_post.html",
                context! { action => "https://app.example/cb", params => vec![("code", evil)] },
            ),
            (
                "link.html",
                context! { provider => evil, email => evil, csrf => "c", link => "l", error => evil },
            ),
            (
                "mfa.html",
                context! { csrf => "c", mfa_token => evil, flow => evil, rd => evil, error => evil,
                passkeys => true },
            ),
            (
                "step_up.html",
                context! { csrf => "c", rd => evil, acr => "2", with_password => true, email => evil,
                error => evil, passkeys => true },
            ),
            (
                "account.html",
                context! { csrf => "c", email => evil, totp => true, recovery_codes_left => 3,
                passkeys => true, passkeys_available => true, error => evil, notice => evil,
                passkeys_list => vec![context! { id => evil, name => evil }],
                has_password => true, email_verified => false,
                sessions => vec![
                    context! { id => evil, current => true, device => evil, ip => evil, created_at => 1 },
                    context! { id => evil, current => false, device => evil, client_id => evil },
                ],
                consents => vec![context! { client_id => evil, name => evil, scopes => vec![evil], granted_at => 1 }],
                identities => vec![context! { provider => evil, label => evil, subject => evil, email => evil }],
                providers => vec![context! { name => "corp", label => evil }],
                keys => vec![context! { id => evil, name => evil, scopes => vec![evil], expires_at => 2 }],
                scopes_held => vec![evil], key_days => 90, key_days_max => 365,
                usage => usage_section(evil) },
            ),
            ("key_created.html", context! { name => evil, key => evil }),
            (
                "account_delete.html",
                context! { csrf => "c", email => evil },
            ),
            (
                "admin_users.html",
                context! { csrf => "c", section => "users", operator => evil, prefix => evil, role => evil,
                state => "active", roles => vec![evil], first => evil, next => "/ui/admin/users?after=x",
                deleted => true,
                users => vec![context! { id => evil, email => evil, roles => vec![evil], disabled => true,
                verified => false, created_at => 1 }] },
            ),
            (
                "admin_user.html",
                context! { csrf => "c", section => "users", notice => evil, is_self => false,
                user => context! { id => evil, email => evil, roles => vec![evil], disabled => false,
                verified => true, created_at => 1 },
                has_password => true, totp => true, recovery_codes_left => 2, passkeys => 1,
                sessions => vec![context! { id => evil, device => evil, ip => evil, client_id => evil }],
                identities => vec![context! { provider => evil, email => evil, linked_at => 1 }],
                keys => vec![context! { id => evil, name => evil, scopes => vec![evil], revoked => false }],
                grantable => vec![evil], scopes => vec![evil], usage => usage_section(evil) },
            ),
            (
                "admin_roles.html",
                context! { section => "roles", roles => vec![context! { name => evil, scopes => vec![evil],
                more => true, members => vec![context! { id => evil, email => evil }] }] },
            ),
            (
                "admin_clients.html",
                context! { csrf => "c", section => "clients", clients => vec![context! { id => evil,
                href => evil, name => evil, public => false, redirect_uris => vec![evil], scopes => vec![evil] }] },
            ),
            (
                "admin_client.html",
                context! { csrf => "c", section => "clients", client => context! { id => evil, href => evil, name => evil,
                public => false, redirect_uris => vec![evil], post_logout_redirect_uris => vec![evil],
                grant_types => vec![evil], scopes => vec![evil], skip_consent => true } },
            ),
            (
                "admin_secret.html",
                context! { section => "clients", client_id => evil, secret => evil, href => evil },
            ),
            (
                "admin_audit.html",
                context! { csrf => "c", section => "audit", actor => evil, subject => evil, action => evil,
                outcome => "success", from => evil, to => evil, paged => true, older => evil,
                verified => context! { intact => false, seq => 3, problem => evil },
                entries => vec![context! { seq => 1, at => evil, action => evil, outcome => evil,
                actor => evil, subject => evil, ip => evil, detail => evil, actor_name => evil, subject_name => evil }] },
            ),
            (
                "admin_spend.html",
                context! { section => "spend", from => evil, to => evil, group => "user", sort => "cost", csv => evil,
                total => evil, chart => evil,
                rows => vec![context! { user_id => evil, email => evil, requests => 1, tokens => 2, spent => evil }] },
            ),
            (
                "totp_setup.html",
                context! { csrf => "c", secret => evil, otpauth_uri => "otpauth://totp/x",
                qr => qr::svg("otpauth://totp/x"), error => evil },
            ),
            (
                "recovery_codes.html",
                context! { codes => vec![evil, "ABCD-EFGH-JKLM"] },
            ),
        ]
    }

    #[test]
    fn every_page_renders_in_every_language_and_escapes() {
        let pages = Pages::new(&settings());
        for locale in Locale::all() {
            for (name, ctx) in every_page() {
                let html = pages.render_in(locale, name, ctx).unwrap();
                assert!(!html.contains("<script>alert"), "{name}: {html}");
                assert!(
                    html.contains(&format!("<html lang=\"{}\">", locale.lang())),
                    "{name}"
                );
                // A message a template asks for and the catalogue lacks renders empty.
                assert!(!html.contains("{{"), "{name}");
            }
        }
        let login = pages
            .render_in(Locale::ENGLISH, "login.html", every_page()[0].1.clone())
            .unwrap();
        assert!(
            login.contains(r#"<label for="password">Password</label>"#),
            "{login}"
        );
        assert!(login.contains("Forgot password?") && login.contains("Create an account"));
        assert!(login.contains("cdn.example.com"));
        let fr = Locale::negotiate(Some("fr"));
        let login = pages
            .render_in(fr, "login.html", every_page()[0].1.clone())
            .unwrap();
        assert!(login.contains("Mot de passe oublié"), "{login}");
        let post = pages
            .render_in(
                Locale::ENGLISH,
                "form_post.html",
                every_page()[10].1.clone(),
            )
            .unwrap();
        assert!(post.contains(&format!("<script>{FORM_POST_SCRIPT}</script>")));
        assert!(pages.form_post_csp().contains("script-src 'sha256-"));
    }

    #[test]
    fn shared_tables_post_to_their_page() {
        let pages = Pages::new(&settings());
        let session = context! { id => "s1", device => "Firefox", current => false };
        let key =
            context! { id => "k1", name => "ci", scopes => vec!["docs:read"], revoked => false };
        let account = pages
            .render_in(
                Locale::ENGLISH,
                "account.html",
                context! { csrf => "c", email => "a@b.c", sessions => vec![session.clone()],
                keys => vec![key.clone()], usage => usage_section("x") },
            )
            .unwrap()
            .replace("&#x2f;", "/");
        assert!(account.contains(r#"action="/ui/account/sessions/revoke""#));
        assert!(account.contains(r#"action="/ui/account/keys/revoke""#));
        let console = pages
            .render_in(
                Locale::ENGLISH,
                "admin_user.html",
                context! { csrf => "c", user => context! { id => "u1", email => "a@b.c" },
                sessions => vec![session], keys => vec![key], usage => usage_section("x") },
            )
            .unwrap()
            .replace("&#x2f;", "/");
        assert!(console.contains(r#"action="/ui/admin/users/u1/revoke-session""#));
        assert!(console.contains(r#"action="/ui/admin/users/u1/revoke-key""#));
    }

    #[test]
    fn every_message_a_template_uses_exists() {
        let used = regex::Regex::new(r"m\.([a-z_0-9]+)").unwrap();
        for (name, source) in TEMPLATES {
            for key in used.captures_iter(source) {
                let key = &key[1];
                for locale in Locale::all() {
                    assert!(
                        !locale.text(key).is_empty(),
                        "{name} uses m.{key}, missing in {}",
                        locale.lang()
                    );
                }
            }
        }
    }

    #[test]
    fn the_look_comes_from_ui_settings() {
        let pages = Pages::new(&settings());
        assert!(pages.style().contains("--accent: #aa3300;"));
        assert!(!pages.style().contains("/*ACCENT*/"));
        assert!(
            pages
                .page_csp()
                .contains("img-src 'self' https://cdn.example.com;")
        );
        let html = pages
            .render_in(
                Locale::ENGLISH,
                "home.html",
                context! { csrf => "c", email => "a@b.c" },
            )
            .unwrap();
        assert!(html.contains("Acme &lt;Cloud&gt;"), "{html}");
    }

    #[test]
    fn the_consent_page_says_what_each_scope_reveals() {
        let pages = Pages::new(&settings());
        let scopes: Vec<_> = ["openid", "profile", "email", "roles", "docs:read"]
            .iter()
            .map(|s| context! { name => *s, description => describe_scope(s, Locale::ENGLISH) })
            .collect();
        let html = pages
            .render_in(
                Locale::ENGLISH,
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
}
