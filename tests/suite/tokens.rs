//! Access-token verification: every forgery and expiry case is refused, on both backends.
//! Forged tokens are built here with the attacker's tools (and, for claim checks, with the
//! server's own key read from its data dir, to prove each claim is checked on its own).

use crate::common;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

on_both_backends!(
    forged_and_tampered_tokens_are_refused,
    claims_are_each_checked,
    expired_tokens_are_refused
);

fn b64(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

fn hs256(header: &Value, claims: &Value, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    format!(
        "{input}.{}",
        B64.encode(aws_lc_rs::hmac::sign(&k, input.as_bytes()).as_ref())
    )
}

fn ed25519(kid: &str, typ: &str, claims: &Value, pkcs8: &[u8]) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.into());
    h.typ = Some(typ.into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(pkcs8)).unwrap()
}

fn attacker_key() -> Vec<u8> {
    Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new())
        .unwrap()
        .as_ref()
        .to_vec()
}

/// The server's own signing key, as an insider with disk access would have it.
fn server_key(s: &TestServer) -> Vec<u8> {
    let dir = s.sandbox.dir.join("data/keys");
    let file = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ed25519-") && n.ends_with(".pk8"))
        })
        .unwrap();
    std::fs::read(file).unwrap()
}

async fn session(s: &TestServer) -> (String, Value, Value) {
    let email = email("tok");
    s.register(&email).await;
    let (at, _) = s.login_tokens(&email, PASSWORD).await;
    (at.clone(), jwt_part(&at, 0), jwt_part(&at, 1))
}

async fn forged_and_tampered_tokens_are_refused(b: Backend) {
    let s = TestServer::start(b).await;
    let (at, header, claims) = session(&s).await;
    let kid = header["kid"].as_str().unwrap();
    assert_eq!(s.get_bearer("/auth/me", &at).await.status, 200);
    let parts: Vec<&str> = at.split('.').collect();

    let mut elevated = claims.clone();
    elevated["scope"] = json!("profile admin");
    elevated["roles"] = json!(["user", "admin"]);
    let tampered_claims = format!("{}.{}.{}", parts[0], b64(&elevated), parts[2]);

    let mut sig = B64.decode(parts[2]).unwrap();
    sig[10] ^= 0x01;
    let tampered_sig = format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig));

    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "at+jwt", "kid": kid })),
        parts[1]
    );
    let none_no_dot = format!(
        "{}.{}",
        b64(&json!({ "alg": "none", "typ": "at+jwt" })),
        parts[1]
    );

    // HS256 keyed with the public key, in each form an attacker might try.
    let jwks = s
        .call(reqwest::Method::GET, "/.well-known/jwks.json", None, &[])
        .await
        .json;
    let jwk = jwks["keys"][0].clone();
    let x = jwk["x"].as_str().unwrap().to_string();
    let hs_header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": kid });
    let hs_raw = hs256(&hs_header, &claims, &B64.decode(&x).unwrap());
    let hs_x = hs256(&hs_header, &claims, x.as_bytes());
    let hs_jwk = hs256(
        &hs_header,
        &claims,
        serde_json::to_string(&jwk).unwrap().as_bytes(),
    );

    let attacker = attacker_key();
    let unknown_kid = ed25519("attacker-key", "at+jwt", &claims, &attacker);
    let wrong_key_real_kid = ed25519(kid, "at+jwt", &claims, &attacker);
    let no_kid = {
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ed_der(&attacker)).unwrap()
    };
    let embedded_jwk = {
        // A header carrying its own key must not be trusted.
        let pair = Ed25519KeyPair::from_pkcs8(&attacker).unwrap();
        let ax = B64.encode(pair.public_key().as_ref());
        let h = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jwk": { "kty": "OKP", "crv": "Ed25519", "x": ax } });
        let input = format!("{}.{}", b64(&h), b64(&claims));
        format!(
            "{input}.{}",
            B64.encode(pair.sign(input.as_bytes()).as_ref())
        )
    };

    let cases = [
        ("tampered claims", tampered_claims),
        ("tampered signature", tampered_sig),
        ("alg none", none),
        ("alg none without signature part", none_no_dot),
        ("HS256 with raw public key", hs_raw),
        ("HS256 with JWK x", hs_x),
        ("HS256 with JWK JSON", hs_jwk),
        ("unknown kid", unknown_kid),
        ("wrong key under the real kid", wrong_key_real_kid),
        ("no kid", no_kid),
        ("embedded jwk", embedded_jwk),
        ("garbage", "not.a.jwt".into()),
        ("empty segments", "..".into()),
    ];
    for (name, token) in cases {
        let r = s.get_bearer("/auth/me", &token).await;
        assert_eq!(r.status, 401, "{name}: {}", r.text);
        assert_eq!(r.code(), "invalid_token", "{name}");
        assert!(
            r.header("www-authenticate").contains("invalid_token"),
            "{name}"
        );
    }
}

async fn claims_are_each_checked(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, header, claims) = session(&s).await;
    let kid = header["kid"].as_str().unwrap();
    let key = server_key(&s);

    // Sanity: the insider key really signs acceptable tokens, so each refusal below is
    // about the one thing changed.
    let genuine = ed25519(kid, "at+jwt", &claims, &key);
    assert_eq!(s.get_bearer("/auth/me", &genuine).await.status, 200);

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        f(&mut c);
        ed25519(kid, "at+jwt", &c, &key)
    };
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let cases = [
        ("wrong typ", ed25519(kid, "JWT", &claims, &key)),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.example")),
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("someone-else")),
        ),
        ("not yet valid", with(&|c| c["nbf"] = json!(now + 30))),
        (
            "missing exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "missing sid",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sid");
            }),
        ),
    ];
    for (name, token) in cases {
        let r = s.get_bearer("/auth/me", &token).await;
        assert_eq!(r.status, 401, "{name}: {}", r.text);
    }
    // Expired beyond the 1 s leeway, with a valid signature: token_expired.
    let expired = with(&|c| c["exp"] = json!(now - 3));
    s.get_bearer("/auth/me", &expired)
        .await
        .assert_problem(401, "token_expired");
}

async fn expired_tokens_are_refused(b: Backend) {
    let s = TestServer::start_with(
        b,
        Options {
            env: vec![("TOLLGATE_ACCESS_TTL", "1s".into())],
            ..Default::default()
        },
    )
    .await;
    let (at, _, claims) = session(&s).await;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1
    );
    assert_eq!(
        s.get_bearer("/auth/me", &at).await.status,
        200,
        "valid (and now cached)"
    );
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    // Refused even though the verification cache holds it.
    s.get_bearer("/auth/me", &at)
        .await
        .assert_problem(401, "token_expired");
}
