//! The admin user list at 100,000 accounts, on SQLite and PostgreSQL: p50/p99 of
//! `Store::user_page` (the console's and `GET /admin/users`' query, with its roles) for
//! the first page, a deep keyset page, an email prefix, a role (first and deep page) and
//! a state. Baseline, in the same run: the same page query (values written in) run by
//! `sqlite3` / `psql` themselves, timed by the tool (`tool_times`), so the
//! ratio is what Tollgate adds (pool, binding, decoding, the roles query). Goal: p99 under
//! 20 ms. Run: `cargo bench --bench user_list` (PostgreSQL on 127.0.0.1:5432 as in
//! `scripts/test`).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tollgate::{Store, UserQuery, UserState};

const USERS: i64 = 100_000;
const RUNS: usize = 300;
const PAGE: i64 = 50;

const FILL_SQLITE: &str = "
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO users (id, email, password_hash, disabled, email_verified, created_at, updated_at)
SELECT printf('%08d-0000-4000-8000-000000000000', i),
       substr('abcdefghijklmnopqrstuvwxyz', (i * 7) % 26 + 1, 1) || printf('%06d', (i * 7919) % 1000000) || '@d' || (i % 50) || '.example',
       NULL, i % 100 = 0, i % 20 != 0, i, i FROM n;
INSERT INTO user_roles (user_id, role) SELECT id, 'user' FROM users;
INSERT INTO user_roles (user_id, role) SELECT id, 'reader' FROM users WHERE created_at % 10 = 0;
ANALYZE;";

const FILL_POSTGRES: &str = "
INSERT INTO users (id, email, password_hash, disabled, email_verified, created_at, updated_at)
SELECT lpad(i::text, 8, '0') || '-0000-4000-8000-000000000000',
       substr('abcdefghijklmnopqrstuvwxyz', (i * 7) % 26 + 1, 1) || lpad(((i * 7919) % 1000000)::text, 6, '0') || '@d' || (i % 50) || '.example',
       NULL, i % 100 = 0, i % 20 != 0, i, i FROM generate_series(1, 100000) AS i;
INSERT INTO user_roles (user_id, role) SELECT id, 'user' FROM users;
INSERT INTO user_roles (user_id, role) SELECT id, 'reader' FROM users WHERE created_at % 10 = 0;
ANALYZE;";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The tool's own timings of `sql` run `RUNS` times, in ms, sorted: psql's `\\timing`
/// (the round trip, as the client sees it); for sqlite3, whose `.timer` wall clock moves
/// in whole milliseconds, the statement's CPU time (user + sys, in microseconds), which is
/// its time once the pages are cached.
fn tool_times(postgres: bool, target: &str, sql: &str) -> Vec<f64> {
    let mut script = String::from(if postgres {
        "\\timing on\n"
    } else {
        ".output /dev/null\n.timer on\n"
    });
    for _ in 0..RUNS {
        script.push_str(sql);
        script.push_str(";\n");
    }
    let mut cmd = if postgres {
        let mut c = Command::new("psql");
        c.args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            target,
        ])
        .args(["-o", "/dev/null", "-f", "-"]);
        c
    } else {
        let mut c = Command::new("sqlite3");
        c.arg(target);
        c
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sqlite3 and psql are needed (apt-get install sqlite3 postgresql-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let mut times: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            if postgres {
                l.strip_prefix("Time: ")?.split(' ').next()?.parse().ok()
            } else {
                // "Run Time: real 0.000 user 0.000194 sys 0.000000"
                let w: Vec<&str> = l.strip_prefix("Run Time: real ")?.split(' ').collect();
                let user: f64 = w.get(2)?.parse().ok()?;
                let sys: f64 = w.get(4)?.parse().ok()?;
                Some((user + sys) * 1000.0)
            }
        })
        .collect();
    assert!(times.len() >= RUNS / 2, "no timings from the tool: {text}");
    times.sort_by(f64::total_cmp);
    times
}

/// Every case: a name and its query.
fn cases(deep_after: &str, deep_reader: &str) -> Vec<(&'static str, UserQuery)> {
    let q = |prefix: &str, role: Option<&str>, state: Option<UserState>, after: Option<&str>| {
        UserQuery {
            prefix: prefix.to_string(),
            role: role.map(str::to_string),
            state,
            after: after.map(str::to_string),
            limit: PAGE,
        }
    };
    vec![
        ("first page", q("", None, None, None)),
        (
            "deep page (after ~90%)",
            q("", None, None, Some(deep_after)),
        ),
        ("prefix \"k12\"", q("k12", None, None, None)),
        ("role reader, first page", q("", Some("reader"), None, None)),
        (
            "role reader, deep page",
            q("", Some("reader"), None, Some(deep_reader)),
        ),
        (
            "state disabled",
            q("", None, Some(UserState::Disabled), None),
        ),
        (
            "state unverified, prefix \"m\"",
            q("m", None, Some(UserState::Unverified), None),
        ),
    ]
}

async fn bench(label: &str, store: &Store, postgres: bool, target: &str) {
    // Deep pages: the email at about 90% of the list, and of the role's members.
    let mut after = None;
    let mut seen = 0;
    while seen < USERS * 9 / 10 {
        let page = store
            .user_page(&UserQuery {
                after: after.clone(),
                limit: 500,
                ..UserQuery::default()
            })
            .await
            .unwrap();
        seen += page.len() as i64;
        after = page.last().map(|u| u.email.clone());
    }
    let deep_after = after.unwrap();
    let readers = store
        .user_page(&UserQuery {
            role: Some("reader".into()),
            limit: 9000,
            ..UserQuery::default()
        })
        .await
        .unwrap();
    let deep_reader = readers.last().unwrap().email.clone();
    println!("\n{label}: {USERS} accounts, pages of {PAGE}, {RUNS} runs each (ms)");
    println!(
        "| case | rows | p50 | p99 | {} p50 | {} p99 | ratio p50 | ratio p99 |",
        if postgres { "psql" } else { "sqlite3" },
        if postgres { "psql" } else { "sqlite3" }
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, q) in cases(&deep_after, &deep_reader) {
        let mut times = Vec::with_capacity(RUNS);
        let mut rows = 0;
        for _ in 0..RUNS {
            let start = Instant::now();
            rows = store.user_page(&q).await.unwrap().len();
            times.push(millis(start.elapsed()));
        }
        times.sort_by(f64::total_cmp);
        let tool = tool_times(postgres, target, &q.literal_sql(postgres));
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        let (t50, t99) = (percentile(&tool, 0.5), percentile(&tool, 0.99));
        println!(
            "| {name} | {rows} | {p50:.3} | {p99:.3} | {t50:.3} | {t99:.3} | {:.2} | {:.2} |",
            p50 / t50.max(0.001),
            p99 / t99.max(0.001)
        );
    }
}

fn psql_admin(sql: &str) {
    let ok = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-c",
            sql,
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "psql failed: {sql}");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-bench-users-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users.db");
        let store = Store::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let ok = Command::new("sqlite3")
            .arg(&file)
            .arg(FILL_SQLITE)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "sqlite3 could not fill the database");
        bench("SQLite", &store, false, &file.display().to_string()).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);

        let db = format!(
            "bench_users_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        psql_admin(&format!("CREATE DATABASE {db}"));
        let store = Store::connect(&format!("postgres://postgres@127.0.0.1:5432/{db}"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let ok = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                &db,
                "-c",
                FILL_POSTGRES,
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "psql could not fill the database");
        bench("PostgreSQL", &store, true, &db).await;
        store.close().await;
        psql_admin(&format!("DROP DATABASE {db}"));
    });
}
