//! `[tokens] access_token_alg`: access tokens and identity assertions signed `EdDSA`,
//! `ES256` or `RS256`, each verified by two JOSE libraries we did not write (PyJWT and
//! panva's jose) from the published JWKS alone, and still accepted by Tollgate itself
//! (the gateway, `/auth/me`, introspection by the upstream's assertion check).

use crate::common;

use std::path::Path;

use common::python::{python, run_json};
use common::upstream::{Upstream, echoed_header};
use common::{Backend, Options, TestServer};
use reqwest::Method;

fn node() -> &'static Path {
    Path::new("node")
}

async fn signed_and_verified_independently(alg: &str) {
    let up = Upstream::start().await;
    let s = TestServer::start_with(
        Backend::Sqlite,
        Options {
            config: format!(
                "[tokens]\naccess_token_alg = \"{alg}\"\n\n[roles.user]\nscopes = [\"profile\"]\n\n[[route]]\npath = \"/app/*\"\nupstream = \"{}\"\nauth = \"required\"\n",
                up.base
            ),
            env: vec![],
        },
    )
    .await;
    let (_, token) = s.user_with_roles(&format!("alg-{alg}"), &["user"]).await;
    let jwks = s
        .call(Method::GET, "/.well-known/jwks.json", None, &[])
        .await
        .json
        .to_string();
    // Tollgate accepts its own token at the API and the gateway.
    assert_eq!(s.get_bearer("/auth/me", &token).await.status, 200);
    let r = s.get_bearer("/app/x", &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let assertion = echoed_header(&r.json, "x-tollgate-assertion")
        .unwrap()
        .to_string();
    let checks = [
        (token.as_str(), "at+jwt", s.base.as_str()),
        (
            assertion.as_str(),
            "tollgate-assertion+jwt",
            up.base.as_str(),
        ),
    ];
    for (jwt, typ, audience) in checks {
        let env = [
            ("JWKS", jwks.as_str()),
            ("TOKEN", jwt),
            ("ALG", alg),
            ("ISSUER", s.base.as_str()),
            ("AUDIENCE", audience),
            ("TYP", typ),
        ];
        for (program, script) in [
            (python(), "verify_jwt.py"),
            (node().to_path_buf(), "verify-jwt.mjs"),
        ] {
            let out = run_json(&program, script, &env);
            assert_eq!(out["ok"], true, "{script}: {out}");
            assert!(out["claims"]["sub"].is_string(), "{script}: {out}");
        }
    }
}

async fn eddsa() {
    signed_and_verified_independently("EdDSA").await;
}
async fn es256() {
    signed_and_verified_independently("ES256").await;
}
async fn rs256() {
    signed_and_verified_independently("RS256").await;
}

/// Switching the algorithm signs no one out: a token signed before the change is still
/// accepted (each with its own key's algorithm, never the one its header picks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_algorithm_keeps_earlier_tokens_valid() {
    let mut s = TestServer::start(Backend::Sqlite).await;
    let (email, before) = s.user_with_roles("switch", &[]).await;
    assert_eq!(common::jwt_part(&before, 0)["alg"], "EdDSA");
    s.restart_with(Some("[tokens]\naccess_token_alg = \"ES256\"\n"), vec![])
        .await;
    assert_eq!(s.get_bearer("/auth/me", &before).await.status, 200);
    let (after, _) = s.login_tokens(&email, common::PASSWORD).await;
    assert_eq!(common::jwt_part(&after, 0)["alg"], "ES256");
    assert_eq!(s.get_bearer("/auth/me", &after).await.status, 200);
}

mod sqlite_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn eddsa_tokens_verify_with_pyjwt_and_jose() {
        super::eddsa().await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn es256_tokens_verify_with_pyjwt_and_jose() {
        super::es256().await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rs256_tokens_verify_with_pyjwt_and_jose() {
        super::rs256().await
    }
}
