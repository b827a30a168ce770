//! The account page and the admin console in Chromium (`tests/browser/account_page.mjs`,
//! `tests/browser/console.mjs`; how flows run: `browser.rs`).

use crate::browser::{outbox, run, user};
use crate::common;

use common::llm::{MockLlm, provider_section};
use common::upstream::Upstream;
use common::{Backend, Options, PASSWORD, TestServer};
use reqwest::Method;
use serde_json::json;

const KEY: &str = "sk-mock-console-5f4e3d2c1b0a";
const MODEL: &str = "console-model";

/// A gateway route (`/app/*`), an AI provider with a priced model and a monthly budget.
async fn start(b: Backend, mock: &MockLlm) -> (TestServer, Upstream) {
    let up = Upstream::start().await;
    let config = format!(
        r#"
[roles.user]
scopes = ["profile", "docs:read", "ai:invoke"]

[gateway]
login_url = "/ui/login"

[oauth]
dynamic_registration = "open"

[[route]]
path = "/app/*"
upstream = "{}"
{}
[ai.price."{MODEL}"]
input = 1.0
output = 10.0

[ai.quota.user]
usd_per_month = 5.0
"#,
        up.base,
        provider_section("openai", "openai", &mock.base, "MOCK_KEY", "")
    );
    let s = TestServer::start_with(
        b,
        Options {
            config,
            env: vec![("MOCK_KEY", KEY.to_string())],
        },
    )
    .await;
    (s, up)
}

/// One metered call for `token`, and its row in the usage ledger (written in batches).
async fn metered_call(s: &TestServer, token: &str) {
    let r = s
        .call(
            Method::POST,
            "/ai/openai/v1/chat/completions",
            Some(json!({
                "model": MODEL,
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "hello"}]
            })),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for _ in 0..300 {
        if s.sandbox.query_i64("SELECT COUNT(*) FROM ai_usage").await >= 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the call never reached the usage ledger");
}

async fn account_page_in_a_browser(b: Backend) {
    let mock = MockLlm::start(KEY).await;
    let (s, _up) = start(b, &mock).await;
    let email = user(&s, "owner");
    let (other, _) = s.login_tokens(&email, PASSWORD).await;
    metered_call(&s, &other).await;
    let env = vec![
        ("BASE", s.base.clone()),
        ("EMAIL", email),
        ("PASSWORD", PASSWORD.to_string()),
        ("OTHER_TOKEN", other),
        ("APP_PAGE", "/app/page".to_string()),
        ("MODEL", MODEL.to_string()),
        ("OUTBOX", outbox(&s)),
    ];
    run("account_page.mjs", env).await;
    // Erased: the account is gone, the usage row keeps the pseudonymous id.
    assert_eq!(s.sandbox.query_i64("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(
        s.sandbox.query_i64("SELECT COUNT(*) FROM ai_usage").await,
        1
    );
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'user.erased' AND actor LIKE 'user:%'")
            .await,
        1
    );
}

async fn console_in_a_browser(b: Backend) {
    let mock = MockLlm::start(KEY).await;
    let (s, _up) = start(b, &mock).await;
    let admin = common::email("admin");
    let out = s.cli(
        &["user", "add", &admin, "--password-stdin", "--role", "admin"],
        Some(PASSWORD),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (admin_token, _) = s.login_tokens(&admin, PASSWORD).await;
    let (secret, _, spent) = crate::mfa::enrol(&s, &admin_token).await;

    let target = user(&s, "target");
    let (target_token, _) = s.login_tokens(&target, PASSWORD).await;
    crate::mfa::enrol(&s, &target_token).await;
    let target_id = s.get_bearer("/auth/me", &target_token).await.str("id");
    metered_call(&s, &target_token).await;
    let plain = user(&s, "plain");
    // An agent that registered itself, which the console lists as such.
    let agent = s
        .post(
            "/oauth2/register",
            serde_json::json!({
                "client_name": "Self-registered agent",
                "redirect_uris": ["http://127.0.0.1:9/cb"],
                "token_endpoint_auth_method": "none",
            }),
        )
        .await;
    assert_eq!(agent.status, 201, "{}", agent.text);
    // The crowd the target hides in.
    s.sandbox
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
             INSERT INTO users (id, email, password_hash, disabled, email_verified, created_at, updated_at)
             SELECT 'crowd-' || i, 'crowd' || i || '@example.com', NULL, FALSE, TRUE, 0, 0 FROM n",
        )
        .await;
    let env = vec![
        ("BASE", s.base.clone()),
        ("ADMIN_EMAIL", admin),
        ("ADMIN_TOTP_SECRET", secret),
        ("ADMIN_SPENT_CODE", spent),
        ("PASSWORD", PASSWORD.to_string()),
        ("TARGET_EMAIL", target),
        ("TARGET_ID", target_id.clone()),
        ("TARGET_TOKEN", target_token),
        ("PLAIN_EMAIL", plain),
        ("APP_PAGE", "/app/page".to_string()),
    ];
    run("console.mjs", env).await;
    // Every console read and write is audited with the admin as actor.
    assert!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'admin.read' AND actor LIKE 'admin:%'")
            .await
            >= 5
    );
    assert!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action IN ('user.disabled', 'mfa.reset', 'client.created') AND actor LIKE 'admin:%'")
            .await
            >= 3
    );
}

on_both_backends!(account_page_in_a_browser, console_in_a_browser);
