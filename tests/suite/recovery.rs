//! Mailed-token flows: password reset, email verification and change, through the outbox
//! (the zero-configuration default) and over real SMTP to a sink; the password policy.

use crate::common;

use std::time::Duration;

use common::smtp::{SmtpSink, token_in};
use common::{Backend, Options, PASSWORD, TestServer, email, eventually, outbox, wait_for_mail};
use reqwest::Method;
use serde_json::json;

async fn reset_is_single_use_and_revokes_every_session(backend: Backend) {
    let s = TestServer::start(backend).await;
    let user = email("reset");
    s.register(&user).await;
    let (access, refresh) = s.login_tokens(&user, PASSWORD).await;
    let r = s
        .post("/auth/password/forgot", json!({ "email": user }))
        .await;
    assert_eq!(r.status, 202);
    // Registration mailed a verification code first; the reset is the second message.
    let mail = wait_for_mail(&s, &user, 2).await;
    assert!(mail.contains("Subject: Reset your password"), "{mail}");
    // Messages carry live codes: only the owner may read them.
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = s.sandbox.dir.join("data").join("outbox");
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for f in std::fs::read_dir(&dir).unwrap() {
            let mode = f.unwrap().metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
    let token = token_in(&mail);
    let new_password = "a brand new passphrase";
    let r = s
        .post(
            "/auth/password/reset",
            json!({ "token": token, "new_password": new_password }),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.json);
    // Every session is gone, at once.
    s.get_bearer("/auth/me", &access)
        .await
        .assert_problem(401, "session_revoked");
    s.post(
        "/auth/refresh?mode=token",
        json!({ "refresh_token": refresh }),
    )
    .await
    .assert_problem(401, "invalid_refresh_token");
    s.login_tokens(&user, new_password).await;
    s.post(
        "/auth/login",
        json!({ "email": user, "password": PASSWORD }),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    // Single use.
    s.post(
        "/auth/password/reset",
        json!({ "token": token, "new_password": "yet another passphrase" }),
    )
    .await
    .assert_problem(400, "invalid_token");
    // Stored hashed only.
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM email_tokens WHERE token_hash = 'x'")
            .await,
        0
    );
    let stored = s
        .sandbox
        .query_strings("SELECT token_hash FROM email_tokens")
        .await;
    assert!(!stored.contains(&token));
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'password.reset'")
            .await,
        1
    );
}

async fn reset_tokens_expire(backend: Backend) {
    let s = TestServer::start(backend).await;
    let user = email("expire");
    s.register(&user).await;
    s.post("/auth/password/forgot", json!({ "email": user }))
        .await;
    let token = token_in(&wait_for_mail(&s, &user, 2).await);
    s.sandbox
        .execute("UPDATE email_tokens SET expires_at = created_at - 1 WHERE purpose = 'reset'")
        .await;
    s.post(
        "/auth/password/reset",
        json!({ "token": token, "new_password": "a brand new passphrase" }),
    )
    .await
    .assert_problem(400, "invalid_token");
    // A second request supersedes the first mail's code.
    s.post("/auth/password/forgot", json!({ "email": user }))
        .await;
    let first = token_in(&wait_for_mail(&s, &user, 3).await);
    s.post("/auth/password/forgot", json!({ "email": user }))
        .await;
    let second = token_in(&wait_for_mail(&s, &user, 4).await);
    s.post(
        "/auth/password/reset",
        json!({ "token": first, "new_password": "a brand new passphrase" }),
    )
    .await
    .assert_problem(400, "invalid_token");
    let r = s
        .post(
            "/auth/password/reset",
            json!({ "token": second, "new_password": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(r.status, 204);
}

async fn unknown_and_known_emails_get_identical_answers(backend: Backend) {
    let s = TestServer::start(backend).await;
    let known = email("known");
    s.register(&known).await;
    let unknown = email("unknown");
    for path in ["/auth/password/forgot", "/auth/email/verify/request"] {
        let a = s.post(path, json!({ "email": known })).await;
        let b = s.post(path, json!({ "email": unknown })).await;
        let c = s.post(path, json!({ "email": "not even an email" })).await;
        assert_eq!((a.status, b.status, c.status), (202, 202, 202));
        assert_eq!(a.text, b.text);
        assert_eq!(a.text, c.text);
        let shape = |r: &common::Reply| {
            let mut names: Vec<String> = r
                .headers
                .keys()
                .map(|k| k.to_string())
                .filter(|k| k != "date" && k != "x-request-id")
                .collect();
            names.sort();
            (names, r.header("content-length").to_string())
        };
        assert_eq!(shape(&a), shape(&b), "{path}");
    }
    // Only the known address got mail (one verification, one reset, one re-sent verification).
    wait_for_mail(&s, &known, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(outbox(&s, &unknown).is_empty());
}

async fn verification_can_be_required(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options {
            config: "[mail]\nrequire_verification = true\nverify_url = \"https://app.example.com/verify?token={token}\"\n\n[roles.user]\nscopes = []\n".into(),
            env: vec![],
        },
    )
    .await;
    let user = email("verify");
    s.register(&user).await;
    s.post(
        "/auth/login",
        json!({ "email": user, "password": PASSWORD }),
    )
    .await
    .assert_problem(403, "email_not_verified");
    let mail = wait_for_mail(&s, &user, 1).await;
    let token = token_in(&mail);
    // Long lines travel quoted-printable; the code has a short line of its own.
    let mail = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    assert!(
        mail.contains(&format!("https://app.example.com/verify?token={token}")),
        "{mail}"
    );
    assert_eq!(
        s.post("/auth/email/verify", json!({ "token": token }))
            .await
            .status,
        204
    );
    let r = s
        .post(
            "/auth/login",
            json!({ "email": user, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["user"]["email_verified"], true);
    s.post("/auth/email/verify", json!({ "token": token }))
        .await
        .assert_problem(400, "invalid_token");
    s.post("/auth/email/verify", json!({ "token": "short" }))
        .await
        .assert_problem(400, "invalid_token");
}

async fn email_change_is_confirmed_at_the_new_address(backend: Backend) {
    let s = TestServer::start(backend).await;
    let old = email("old");
    let new = email("new");
    s.register(&old).await;
    let (access, _) = s.login_tokens(&old, PASSWORD).await;
    let auth = format!("Bearer {access}");
    let r = s
        .call(
            Method::POST,
            "/auth/email/change",
            Some(json!({ "new_email": new, "password": "wrong one here" })),
            &[("authorization", &auth)],
        )
        .await;
    r.assert_problem(403, "invalid_credentials");
    let r = s
        .call(
            Method::POST,
            "/auth/email/change",
            Some(json!({ "new_email": new, "password": PASSWORD })),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let token = token_in(&wait_for_mail(&s, &new, 1).await);
    // Nothing changes until the new address confirms.
    s.login_tokens(&old, PASSWORD).await;
    assert_eq!(
        s.post("/auth/email/change/confirm", json!({ "token": token }))
            .await
            .status,
        204
    );
    s.login_tokens(&new, PASSWORD).await;
    s.post("/auth/login", json!({ "email": old, "password": PASSWORD }))
        .await
        .assert_problem(401, "invalid_credentials");
    let notice = wait_for_mail(&s, &old, 2).await;
    assert!(
        notice.contains("Your email address was changed"),
        "{notice}"
    );
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'email.changed'")
            .await,
        1
    );
}

async fn a_password_reset_cancels_a_pending_email_change(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = email("owner");
    let intruder = email("intruder");
    s.register(&owner).await;
    // Someone who knew the password asks to move the account to their address...
    let (access, _) = s.login_tokens(&owner, PASSWORD).await;
    let r = s
        .call(
            Method::POST,
            "/auth/email/change",
            Some(json!({ "new_email": intruder, "password": PASSWORD })),
            &[("authorization", &format!("Bearer {access}"))],
        )
        .await;
    assert_eq!(r.status, 202);
    let change = token_in(&wait_for_mail(&s, &intruder, 1).await);
    // ...the owner resets the password...
    s.post("/auth/password/forgot", json!({ "email": owner }))
        .await;
    let reset = token_in(&wait_for_mail(&s, &owner, 2).await);
    let r = s
        .post(
            "/auth/password/reset",
            json!({ "token": reset, "new_password": "the owner's new passphrase" }),
        )
        .await;
    assert_eq!(r.status, 204);
    // ...and the pending change is dead.
    s.post("/auth/email/change/confirm", json!({ "token": change }))
        .await
        .assert_problem(400, "invalid_token");
    s.login_tokens(&owner, "the owner's new passphrase").await;
}

on_both_backends!(
    a_password_reset_cancels_a_pending_email_change,
    reset_is_single_use_and_revokes_every_session,
    reset_tokens_expire,
    unknown_and_known_emails_get_identical_answers,
    verification_can_be_required,
    email_change_is_confirmed_at_the_new_address,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_out_over_smtp_when_configured() {
    let sink = SmtpSink::start().await;
    let config = format!(
        "[mail]\nfrom = \"Acme Login <login@acme.example>\"\n\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"mailer\"\npassword_env = \"TEST_SMTP_PASSWORD\"\n\n[roles.user]\nscopes = []\n",
        sink.port
    );
    let s = TestServer::start_with(
        Backend::Sqlite,
        Options {
            config,
            env: vec![("TEST_SMTP_PASSWORD", "s3cret-relay".into())],
        },
    )
    .await;
    let user = email("smtp");
    s.register(&user).await;
    let verify = sink.wait_for(&user).await;
    assert_eq!(verify.from, "login@acme.example");
    assert!(verify.data.contains("Subject: Confirm your email address"));
    // AUTH PLAIN carried the configured credentials.
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD
        .decode(verify.auth.clone().expect("authenticated"))
        .unwrap();
    assert_eq!(auth, b"\0mailer\0s3cret-relay");
    let token = token_in(&verify.data);
    assert_eq!(
        s.post("/auth/email/verify", json!({ "token": token }))
            .await
            .status,
        204
    );
    s.post("/auth/password/forgot", json!({ "email": user }))
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            sink.messages().len() >= 2
        })
        .await,
        "reset mail"
    );
    assert!(
        sink.messages()[1]
            .data
            .contains("Subject: Reset your password")
    );
    assert!(
        !s.server_log().contains("s3cret-relay"),
        "the SMTP password is never logged"
    );
    // Nothing went to the outbox.
    assert!(outbox(&s, &user).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_policy_refuses_common_and_email_passwords() {
    let s = TestServer::start(Backend::Sqlite).await;
    let user = email("policy");
    for (password, code) in [
        ("password1", "password_too_common"),
        ("Iloveyou", "password_too_common"),
        ("qwertyuiop", "password_too_common"),
        (user.as_str(), "password_equals_email"),
        ("short", "password_too_short"),
    ] {
        s.post(
            "/auth/register",
            json!({ "email": user, "password": password }),
        )
        .await
        .assert_problem(400, code);
    }
    s.register(&user).await;
    let (access, _) = s.login_tokens(&user, PASSWORD).await;
    let r = s
        .call(
            Method::POST,
            "/auth/password",
            Some(json!({ "current_password": PASSWORD, "new_password": "1234567890" })),
            &[("authorization", &format!("Bearer {access}"))],
        )
        .await;
    r.assert_problem(400, "password_too_common");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_breach_range_api_is_consulted() {
    // A k-anonymity range server that lists one password's SHA-1 suffix.
    let listed = "a very breached passphrase";
    let sha1 = {
        let d = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            listed.as_bytes(),
        );
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    };
    let (prefix, suffix) = (sha1[..5].to_string(), sha1[5..].to_string());
    let range = common::upstream::Upstream::fixed(move |path| {
        if path == format!("/range/{prefix}") {
            format!("0000000000000000000000000000000000A:0\r\n{suffix}:42\r\n")
        } else {
            "0000000000000000000000000000000000B:3\r\n".to_string()
        }
    })
    .await;
    let s = TestServer::start_with(
        Backend::Sqlite,
        Options {
            config: format!(
                "[password]\nbreach_api = \"{}/range/\"\n\n[roles.user]\nscopes = []\n",
                range.base
            ),
            env: vec![],
        },
    )
    .await;
    s.post(
        "/auth/register",
        json!({ "email": email("b"), "password": listed }),
    )
    .await
    .assert_problem(400, "password_breached");
    s.register(&email("ok")).await;
}
