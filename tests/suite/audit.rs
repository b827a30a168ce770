//! The audit log: events land with the change they record (and not without it), the
//! chain verifies, and every kind of tampering is found and named by `tollgate audit
//! verify`.

use crate::common;

use std::time::Duration;

use common::{Backend, Options, PASSWORD, TestServer, email, eventually};
use serde_json::{Value, json};

/// A server with a handful of events in its log; background mail entries have landed.
async fn seeded(backend: Backend, config: &str) -> (TestServer, String) {
    let s = TestServer::start_with(
        backend,
        Options {
            config: config.to_string(),
            env: vec![],
        },
    )
    .await;
    let user = email("audited");
    s.register(&user).await;
    let (access, _) = s.login_tokens(&user, PASSWORD).await;
    s.post(
        "/auth/login",
        json!({ "email": user, "password": "not the password" }),
    )
    .await;
    // A password typed into the email field must not land in the undeletable log.
    s.post(
        "/auth/login",
        json!({ "email": "Hunter2Hunter2!", "password": "x" }),
    )
    .await;
    let out = s.cli(&["user", "disable", &user], None);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = access;
    // user.created, email.verification_sent, auth.login ×2, user.disabled
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.sandbox.query_i64("SELECT COUNT(*) FROM audit_log").await >= 5
        })
        .await
    );
    (s, user)
}

fn verify(s: &TestServer) -> (bool, String) {
    let out = s.cli(&["audit", "verify"], None);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub(crate) async fn drop_guards(s: &TestServer, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            s.sandbox.execute("DROP TRIGGER audit_log_no_update").await;
            s.sandbox.execute("DROP TRIGGER audit_log_no_delete").await;
            s.sandbox
                .execute("DROP TRIGGER audit_checkpoints_no_update")
                .await;
            s.sandbox
                .execute("DROP TRIGGER audit_checkpoints_no_delete")
                .await;
        }
        Backend::Postgres => {
            s.sandbox
                .execute("DROP TRIGGER audit_log_no_change ON audit_log")
                .await;
            s.sandbox
                .execute("DROP TRIGGER audit_checkpoints_no_change ON audit_checkpoints")
                .await;
        }
    }
}

async fn events_are_recorded_and_the_chain_verifies(backend: Backend) {
    let (s, user) = seeded(backend, "[roles.user]\nscopes = []\n").await;
    let (ok, text) = verify(&s);
    assert!(ok, "{text}");
    assert!(text.contains("\"intact\":true"), "{text}");
    // A head recorded elsewhere pins the chain like a signed checkpoint.
    let printed: Value = serde_json::from_str(text.trim()).unwrap();
    let expect = printed["expect"].as_str().unwrap().to_string();
    let out = s.cli(&["audit", "verify", "--expect", &expect], None);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = format!("2:{}", "0".repeat(64));
    let out = s.cli(&["audit", "verify", "--expect", &wrong], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit entry 2"));
    let actions = s
        .sandbox
        .query_strings(
            "SELECT action || ' ' || outcome || ' ' || actor FROM audit_log ORDER BY seq",
        )
        .await;
    for expected in [
        "user.created success anonymous",
        "auth.login success user:",
        "auth.login failure anonymous",
        "user.disabled success cli",
    ] {
        assert!(
            actions.iter().any(|a| a.starts_with(expected)),
            "{expected} in {actions:?}"
        );
    }
    // Login entries carry the client.
    let ip = s
        .sandbox
        .query_string(
            "SELECT ip FROM audit_log WHERE action = 'auth.login' AND outcome = 'success'",
        )
        .await;
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    // Export: one JSON object per entry, in order, nothing secret.
    let out = s.cli(&["audit", "export"], None);
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len() as i64,
        s.sandbox.query_i64("SELECT COUNT(*) FROM audit_log").await
    );
    assert_eq!(lines[0]["seq"], 1);
    assert!(
        lines
            .iter()
            .all(|l| l["hash"].as_str().unwrap().len() == 64)
    );
    let export = serde_json::to_string(&lines).unwrap();
    assert!(!export.contains(PASSWORD) && !export.contains("not the password"));
    assert!(
        !export.to_lowercase().contains("hunter2hunter2"),
        "{export}"
    );
    assert!(export.contains(&user));
    // The log refuses edits through SQL while its guards are in place.
    let refused = match backend {
        Backend::Sqlite => sqlx::query("UPDATE audit_log SET actor = 'x'")
            .execute(
                &sqlx::SqlitePool::connect(&s.sandbox.database_url)
                    .await
                    .unwrap(),
            )
            .await
            .is_err(),
        Backend::Postgres => sqlx::query("DELETE FROM audit_log")
            .execute(
                &sqlx::PgPool::connect(&s.sandbox.database_url)
                    .await
                    .unwrap(),
            )
            .await
            .is_err(),
    };
    assert!(refused, "append-only triggers");
}

async fn an_edited_entry_is_named(backend: Backend) {
    let (s, _) = seeded(backend, "[roles.user]\nscopes = []\n").await;
    drop_guards(&s, backend).await;
    s.sandbox
        .execute("UPDATE audit_log SET actor = 'someone else' WHERE seq = 3")
        .await;
    let (ok, text) = verify(&s);
    assert!(!ok);
    assert!(
        text.contains("audit entry 3") && text.contains("altered"),
        "{text}"
    );
}

async fn a_deleted_entry_is_named(backend: Backend) {
    let (s, _) = seeded(backend, "[roles.user]\nscopes = []\n").await;
    drop_guards(&s, backend).await;
    s.sandbox
        .execute("DELETE FROM audit_log WHERE seq = 4")
        .await;
    let (ok, text) = verify(&s);
    assert!(!ok);
    assert!(
        text.contains("audit entry 4") && text.contains("missing"),
        "{text}"
    );
}

async fn reordered_entries_are_named(backend: Backend) {
    let (s, _) = seeded(backend, "[roles.user]\nscopes = []\n").await;
    drop_guards(&s, backend).await;
    s.sandbox
        .execute("UPDATE audit_log SET seq = -2 WHERE seq = 2")
        .await;
    s.sandbox
        .execute("UPDATE audit_log SET seq = 2 WHERE seq = 3")
        .await;
    s.sandbox
        .execute("UPDATE audit_log SET seq = 3 WHERE seq = -2")
        .await;
    let (ok, text) = verify(&s);
    assert!(!ok);
    assert!(text.contains("audit entry 2"), "{text}");
}

async fn checkpoints_catch_a_deleted_tail_and_forged_signatures(backend: Backend) {
    let (s, _) = seeded(
        backend,
        "[audit]\ncheckpoint_interval = \"1s\"\n\n[roles.user]\nscopes = []\n",
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.sandbox
                .query_i64("SELECT COUNT(*) FROM audit_checkpoints WHERE seq = (SELECT seq FROM audit_head)")
                .await
                == 1
        })
        .await,
        "a checkpoint covers the head"
    );
    let (ok, text) = verify(&s);
    assert!(ok, "{text}");
    // Deleting the newest entry and moving the head back consistently: only the signed
    // checkpoint can tell.
    drop_guards(&s, backend).await;
    s.sandbox
        .execute("DELETE FROM audit_log WHERE seq = (SELECT seq FROM audit_head)")
        .await;
    s.sandbox
        .execute("UPDATE audit_head SET seq = seq - 1, hash = (SELECT hash FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log))")
        .await;
    let (ok, text) = verify(&s);
    assert!(!ok);
    assert!(
        text.contains("missing") && text.contains("checkpoint"),
        "{text}"
    );
    // A checkpoint whose signature is not from our keys is refused.
    s.sandbox
        .execute("UPDATE audit_checkpoints SET signature = signature || 'x'")
        .await;
    let (ok, text) = verify(&s);
    assert!(!ok);
    assert!(text.contains("cannot be trusted"), "{text}");
}

async fn changes_and_their_entries_commit_together(backend: Backend) {
    let s = TestServer::start(backend).await;
    let user = email("atomic");
    s.register(&user).await;
    // A refused change leaves no entry.
    s.post(
        "/auth/register",
        json!({ "email": user, "password": PASSWORD }),
    )
    .await
    .assert_problem(409, "email_taken");
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'user.created'")
            .await,
        1
    );
    let out = s.cli(&["role", "revoke", &user, "never-held"], None);
    assert!(out.status.success());
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'role.revoked'")
            .await,
        0,
        "nothing changed, nothing recorded"
    );
    // An entry that cannot be written takes its change down with it.
    match backend {
        Backend::Sqlite => {
            s.sandbox
                .execute("CREATE TRIGGER refuse_disable BEFORE INSERT ON audit_log WHEN NEW.action = 'user.disabled' BEGIN SELECT RAISE(ABORT, 'audit store full'); END")
                .await;
        }
        Backend::Postgres => {
            s.sandbox
                .execute("CREATE FUNCTION refuse_disable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.action = 'user.disabled' THEN RAISE EXCEPTION 'audit store full'; END IF; RETURN NEW; END $$")
                .await;
            s.sandbox
                .execute("CREATE TRIGGER refuse_disable BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_disable()")
                .await;
        }
    }
    let (access, _) = s.login_tokens(&user, PASSWORD).await;
    let out = s.cli(&["user", "disable", &user], None);
    assert!(
        !out.status.success(),
        "the disable fails with its audit entry"
    );
    assert_eq!(
        s.sandbox
            .query_i64("SELECT COUNT(*) FROM users WHERE disabled")
            .await,
        0,
        "and the account stays enabled"
    );
    assert_eq!(
        s.get_bearer("/auth/me", &access).await.status,
        200,
        "sessions untouched"
    );
    let (ok, text) = verify(&s);
    assert!(ok, "{text}");
}

on_both_backends!(
    events_are_recorded_and_the_chain_verifies,
    an_edited_entry_is_named,
    a_deleted_entry_is_named,
    reordered_entries_are_named,
    checkpoints_catch_a_deleted_tail_and_forged_signatures,
    changes_and_their_entries_commit_together,
);
