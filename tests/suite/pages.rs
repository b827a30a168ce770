//! The hosted pages over HTTP, one header set at a time: which `Origin` / `Sec-Fetch-Site`
//! combinations a form (and the JSON sign-in) accepts, error pages for navigations and
//! JSON for everything else, closed registration, the language, and the mails' links.
//! The same flows in a real browser are in tests/browser.rs.

use crate::common;

use common::browser::{Browser, hidden};
use common::{Backend, Options, PASSWORD, Reply, TestServer, email, wait_for_mail};
use reqwest::Method;
use serde_json::json;

async fn server(b: Backend, config: &str) -> TestServer {
    TestServer::start_with(
        b,
        Options {
            config: format!("[roles.user]\nscopes = [\"profile\"]\n{config}"),
            env: vec![],
        },
    )
    .await
}

fn user(s: &TestServer) -> String {
    let email = email("pages");
    let out = s.cli(&["user", "add", &email, "--password-stdin"], Some(PASSWORD));
    assert!(out.status.success());
    email
}

/// Posts the sign-in form of a freshly fetched `/ui/login` (its CSRF cookie and token, or
/// `token` instead of the page's), with exactly `headers` besides.
async fn post_login(
    s: &TestServer,
    email: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let page = s
        .call(Method::GET, "/ui/login", None, &[("accept", "text/html")])
        .await;
    let cookie = format!("tg_csrf={}", page.cookies.value("tg_csrf"));
    let field = hidden(&page.text, "csrf_token").unwrap();
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", token.unwrap_or(&field)),
        ])
        .finish();
    let mut req = s
        .http
        .post(s.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .header("cookie", cookie)
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Reply::from(req.send().await.unwrap()).await
}

fn signed_in(r: &Reply) -> bool {
    r.status == 303 && r.cookies.0.get("tg_at").is_some_and(|(v, _)| !v.is_empty())
}

async fn forms_accept_what_browsers_send_for_their_own_pages(b: Backend) {
    let s = server(
        b,
        "[http]\ntrusted_origins = [\"https://login.example.com\"]\n",
    )
    .await;
    let e = user(&s);
    let own = s.base.as_str();
    let accepted: [(&str, &[(&str, &str)]); 6] = [
        // Chromium under Referrer-Policy: same-origin.
        (
            "own origin",
            &[("origin", own), ("sec-fetch-site", "same-origin")],
        ),
        // Under no-referrer a same-origin form post says `Origin: null`.
        (
            "null, same-origin",
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        ),
        ("trusted origin", &[("origin", "https://login.example.com")]),
        // Typed or bookmarked (no page caused it).
        (
            "sec-fetch-site none",
            &[("origin", own), ("sec-fetch-site", "none")],
        ),
        // An old browser or a script: the form token alone decides.
        ("neither header", &[]),
        ("origin only", &[("origin", own)]),
    ];
    for (case, headers) in accepted {
        let r = post_login(&s, &e, None, headers).await;
        assert!(signed_in(&r), "{case}: {} {}", r.status, r.text);
    }
    let refused: [(&str, &[(&str, &str)]); 6] = [
        ("null without sec-fetch-site", &[("origin", "null")]),
        (
            "null, cross-site",
            &[("origin", "null"), ("sec-fetch-site", "cross-site")],
        ),
        ("foreign origin", &[("origin", "https://evil.example")]),
        (
            "cross-site",
            &[("origin", own), ("sec-fetch-site", "cross-site")],
        ),
        (
            "same-site sibling",
            &[("origin", own), ("sec-fetch-site", "same-site")],
        ),
        ("cross-site, no origin", &[("sec-fetch-site", "cross-site")]),
    ];
    for (case, headers) in refused {
        let r = post_login(&s, &e, None, headers).await;
        assert_eq!(r.status, 403, "{case}: {}", r.text);
        assert!(!signed_in(&r), "{case}");
        assert!(r.header("content-type").starts_with("text/html"), "{case}");
        // Nothing posted comes back.
        assert!(
            !r.text.contains(&e),
            "{case}: the posted address is shown back"
        );
    }
    // The right headers with another page's token (or none).
    for token in ["not-the-token", ""] {
        let r = post_login(
            &s,
            &e,
            Some(token),
            &[("origin", own), ("sec-fetch-site", "same-origin")],
        )
        .await;
        assert_eq!(r.status, 403, "{token:?}");
        assert!(
            r.text
                .contains("This form expired or did not come from this site")
        );
    }
    // Reached under another name: the page says which address to use and what to set.
    let r = post_login(
        &s,
        &e,
        None,
        &[
            ("origin", "http://localhost:1"),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    let text = common::browser::unescape(&r.text);
    assert!(
        text.contains("opened at http://localhost:1")
            && text.contains(&format!("Open {own} instead")),
        "{text}"
    );
    assert!(
        text.contains("TOLLGATE_PUBLIC_URL") && text.contains("trusted_origins"),
        "{text}"
    );
    // Another site's form is not told about the settings.
    let r = post_login(
        &s,
        &e,
        None,
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
    )
    .await;
    assert!(!r.text.contains("TOLLGATE_PUBLIC_URL"), "{}", r.text);
    // Nor is a form from an old browser (Origin, no Sec-Fetch-Site) without this
    // browser's token: its origin is not repeated to the person, nor offered as a fix.
    let r = post_login(
        &s,
        &e,
        Some("the-attackers-own-token"),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        !r.text.contains("evil.example") && !r.text.contains("TOLLGATE_PUBLIC_URL"),
        "{}",
        r.text
    );
}

/// A form post whose answer comes from before the page's handler (a rate limit, a body
/// over the limit) is shown as a page too; an `rd` that parsers read differently is not
/// followed.
async fn form_errors_are_pages_and_odd_return_targets_are_dropped(b: Backend) {
    let s = server(
        b,
        // A small body limit: an answer to a large body can race the client still
        // sending it (the server refuses from Content-Length and closes).
        "[http]\nmax_body_bytes = 1024\n\n[limits]\ndefault_rules = false\n\n[[limits.rule]]\nname = \"forgot\"\npaths = [\"/ui/forgot\"]\nper = \"ip\"\nlimit = 2\nwindow = \"1h\"\n",
    )
    .await;
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    ];
    let mut last = None;
    for _ in 0..4 {
        let r = s
            .http
            .post(s.url("/ui/forgot"))
            .headers(headers(&form))
            .body("email=a%40example.com&csrf_token=x")
            .send()
            .await
            .unwrap();
        last = Some(common::Reply::from(r).await);
    }
    let limited = last.unwrap();
    assert_eq!(limited.status, 429);
    assert!(limited.header("content-type").starts_with("text/html"));
    assert!(!limited.header("retry-after").is_empty());
    let big = s
        .http
        .post(s.url("/ui/login"))
        .headers(headers(&form))
        .body(format!("email={}", "a".repeat(2_000)))
        .send()
        .await
        .unwrap();
    let big = common::Reply::from(big).await;
    assert_eq!(big.status, 413);
    assert!(big.header("content-type").starts_with("text/html"));
    // A script's form post that prefers JSON still gets JSON.
    let script = s
        .http
        .post(s.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(format!("email={}", "a".repeat(2_000)))
        .send()
        .await
        .unwrap();
    common::Reply::from(script)
        .await
        .assert_problem(413, "payload_too_large");

    // Control characters, whitespace and backslashes in `rd`: dropped, not repaired.
    let e = user(&s);
    for rd in ["%2Fapp%2F%0Ax", "%2Fapp%2F%7F", "http:%5C%5C127.0.0.1%5Cx"] {
        let page = s
            .call(
                Method::GET,
                &format!("/ui/login?rd={rd}"),
                None,
                &[("accept", "text/html")],
            )
            .await;
        assert_eq!(
            hidden(&page.text, "rd").as_deref().unwrap_or(""),
            "",
            "{rd}"
        );
        let cookie = format!("tg_csrf={}", page.cookies.value("tg_csrf"));
        let body = format!(
            "email={}&password={}&rd={rd}&csrf_token={}",
            urlencode(&e),
            urlencode(PASSWORD),
            hidden(&page.text, "csrf_token").unwrap()
        );
        let r = s
            .http
            .post(s.url("/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html")
            .header("cookie", cookie)
            .body(body)
            .send()
            .await
            .unwrap();
        let r = common::Reply::from(r).await;
        assert!(signed_in(&r), "{rd}: {} {}", r.status, r.text);
        assert_eq!(r.header("location"), "/ui/", "{rd}");
    }
}

fn headers(pairs: &[(&str, &str)]) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn json_sign_in_and_registration_check_the_same_headers(b: Backend) {
    let s = server(b, "").await;
    let e = user(&s);
    let own = s.base.clone();
    let login = |headers: Vec<(&'static str, String)>| {
        let s = &s;
        let e = e.clone();
        async move {
            let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.call(
                Method::POST,
                "/auth/login",
                Some(json!({ "email": e, "password": PASSWORD })),
                &refs,
            )
            .await
        }
    };
    for ok in [
        vec![],
        vec![
            ("origin", own.clone()),
            ("sec-fetch-site", "same-origin".into()),
        ],
        vec![
            ("origin", "null".into()),
            ("sec-fetch-site", "same-origin".into()),
        ],
    ] {
        let r = login(ok.clone()).await;
        assert_eq!(r.status, 200, "{ok:?}: {}", r.text);
    }
    for bad in [
        vec![("origin", "null".to_string())],
        vec![("origin", "https://evil.example".into())],
        vec![
            ("origin", own.clone()),
            ("sec-fetch-site", "cross-site".into()),
        ],
        vec![("sec-fetch-site", "same-site".into())],
    ] {
        let r = login(bad.clone()).await;
        r.assert_problem(403, "csrf_failed");
        assert!(!r.cookies.0.contains_key("tg_at"), "{bad:?}");
    }
    let r = login(vec![("origin", "http://localhost:9".into())]).await;
    r.assert_problem(403, "csrf_failed");
    assert!(
        r.str("detail").contains("TOLLGATE_PUBLIC_URL"),
        "{}",
        r.text
    );
    let r = s
        .call(
            Method::POST,
            "/auth/register",
            Some(json!({ "email": email("x"), "password": PASSWORD })),
            &[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    r.assert_problem(403, "csrf_failed");
}

async fn navigations_get_pages_and_clients_get_json(b: Backend) {
    let s = server(b, "").await;
    for path in ["/nowhere", "/ui/nowhere", "/auth/nowhere"] {
        let page = s
            .call(
                Method::GET,
                path,
                None,
                &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
            )
            .await;
        assert_eq!(page.status, 404, "{path}");
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{path}"
        );
        assert!(page.text.contains("Page not found") && page.text.contains("not_found"));
        assert!(
            page.header("content-security-policy")
                .contains("default-src 'none'")
        );
        s.call(Method::GET, path, None, &[("accept", "application/json")])
            .await
            .assert_problem(404, "not_found");
        s.call(Method::GET, path, None, &[])
            .await
            .assert_problem(404, "not_found");
        // HTML named but refused (q=0), or less wanted than JSON: JSON.
        for accept in [
            "application/json, text/html;q=0",
            "application/json;q=1, text/html;q=0.01",
        ] {
            s.call(Method::GET, path, None, &[("accept", accept)])
                .await
                .assert_problem(404, "not_found");
        }
    }
    // A form post is not a navigation to render over: an API error stays JSON.
    s.call(
        Method::POST,
        "/auth/login",
        Some(json!({})),
        &[("accept", "text/html")],
    )
    .await
    .assert_problem(400, "invalid_request");
    // In the browser's language.
    let fr = s
        .call(
            Method::GET,
            "/nowhere",
            None,
            &[
                ("accept", "text/html"),
                ("accept-language", "fr-CA,fr;q=0.9,en;q=0.5"),
            ],
        )
        .await;
    assert!(
        fr.text.contains("<html lang=\"fr\"") && fr.text.contains("Page introuvable"),
        "{}",
        fr.text
    );
}

async fn the_language_follows_accept_language(b: Backend) {
    let s = server(b, "").await;
    for (accept, lang, says) in [
        ("fr", "fr", "Se connecter"),
        ("fr-FR,fr;q=0.9", "fr", "Se connecter"),
        ("de-DE, fr;q=0.5, en;q=0.4", "fr", "Se connecter"),
        ("de", "en", "Sign in"),
        ("en-GB,fr;q=0.8", "en", "Sign in"),
        ("*", "en", "Sign in"),
        ("", "en", "Sign in"),
        ("fr;q=0", "en", "Sign in"),
    ] {
        let r = s
            .call(
                Method::GET,
                "/ui/login",
                None,
                &[("accept-language", accept)],
            )
            .await;
        assert_eq!(r.status, 200);
        assert!(
            r.text.contains(&format!("<html lang=\"{lang}\"")),
            "{accept}"
        );
        assert!(r.text.contains(says), "{accept}");
        assert!(
            r.header("vary")
                .to_ascii_lowercase()
                .contains("accept-language"),
            "{accept}"
        );
    }
}

async fn closed_registration(b: Backend) {
    let s = server(b, "[accounts]\nopen_registration = false\n").await;
    s.post(
        "/auth/register",
        json!({ "email": email("x"), "password": PASSWORD }),
    )
    .await
    .assert_problem(403, "registration_closed");
    let page = s.call(Method::GET, "/ui/signup", None, &[]).await;
    assert_eq!(page.status, 403);
    assert!(
        page.text.contains("created by an administrator"),
        "{}",
        page.text
    );
    let login = s.call(Method::GET, "/ui/login", None, &[]).await;
    assert!(
        !login.text.contains("/ui/signup"),
        "the sign-in page offers sign-up"
    );
    // Open (the default): the sign-in page links to sign-up.
    let open = server(b, "").await;
    let login = open.call(Method::GET, "/ui/login", None, &[]).await;
    assert!(common::browser::unescape(&login.text).contains("href=\"/ui/signup\""));
}

async fn mails_link_to_the_pages(b: Backend) {
    let s = server(b, "[mail]\nrequire_verification = true\n").await;
    let e = email("mail");
    s.register(&e).await;
    let mail = wait_for_mail(&s, &e, 1)
        .await
        .replace("=\r\n", "")
        .replace("=3D", "=");
    let link = format!("{}/ui/verify?token=", s.base);
    assert!(mail.contains(&link), "{mail}");
    assert!(mail.contains("within 24 hours"), "{mail}");
    assert!(
        mail.contains(&format!("Or open {}/ui/verify and enter this code", s.base)),
        "{mail}"
    );
    let token = mail
        .split(&link)
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        mail.matches(token).count() >= 2,
        "the code is in the mail as text too"
    );

    // Signing up at the page with an address that has an account: the same answer as for
    // a new one (the page does not tell), and a mail to the owner instead.
    let mut browser = Browser::new();
    let page = browser.get(&s.url("/ui/signup")).await;
    let csrf = hidden(&page.text, "csrf_token").unwrap();
    let fresh = email("fresh");
    let mut answers = vec![];
    for address in [&e, &fresh] {
        let r = browser
            .post_form(
                &s.url("/ui/signup"),
                &[
                    ("email", address),
                    ("password", PASSWORD),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        answers.push((r.status, r.text.replace(address.as_str(), "ADDRESS")));
    }
    assert_eq!(answers[0].0, 200);
    assert_eq!(
        answers[0], answers[1],
        "the page tells an existing address apart"
    );
    let second = wait_for_mail(&s, &e, 2)
        .await
        .replace("=\r\n", "")
        .replace("=3D", "=");
    assert!(second.contains("already has one"), "{second}");
    assert!(
        second.contains(&format!("{}/ui/forgot", s.base)),
        "{second}"
    );

    s.post("/auth/password/forgot", json!({ "email": e })).await;
    let reset = wait_for_mail(&s, &e, 3)
        .await
        .replace("=\r\n", "")
        .replace("=3D", "=");
    assert!(
        reset.contains(&format!("{}/ui/reset?token=", s.base)),
        "{reset}"
    );
    assert!(reset.contains("within 30 minutes"), "{reset}");
}

on_both_backends!(mails_link_to_the_pages);

on_sqlite!(
    form_origins => forms_accept_what_browsers_send_for_their_own_pages,
    json_origins => json_sign_in_and_registration_check_the_same_headers,
    error_pages => navigations_get_pages_and_clients_get_json,
    language => the_language_follows_accept_language,
    registration => closed_registration,
    form_errors => form_errors_are_pages_and_odd_return_targets_are_dropped,
);
