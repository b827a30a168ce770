//! Unit tests of `authorize`.

use super::*;

const ISS: &str = "https://id.example";

fn client(public: bool) -> ClientRecord {
    ClientRecord {
        id: "app".into(),
        name: "App".into(),
        secret_hash: (!public).then(|| "h".into()),
        redirect_uris: vec!["https://app.example/cb".into()],
        grant_types: vec![AUTHORIZATION_CODE.into()],
        scopes: vec!["docs:read".into()],
        ..ClientRecord::default()
    }
}

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut base: HashMap<String, String> = [
        ("client_id", "app"),
        ("redirect_uri", "https://app.example/cb"),
        ("response_type", "code"),
        ("scope", "openid docs:read"),
        ("state", "s1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in pairs {
        if v.is_empty() {
            base.remove(*k);
        } else {
            base.insert(k.to_string(), v.to_string());
        }
    }
    base
}

/// The one protected resource of these tests.
fn known(r: &str) -> bool {
    r == "https://api.example/mcp"
}

fn error_of(r: Result<Pending, AuthorizeRefusal>) -> (bool, String) {
    match r {
        Err(AuthorizeRefusal::Untrusted(e)) => (false, e.code.to_string()),
        Err(AuthorizeRefusal::ToClient(reply)) => {
            assert!(reply.params.contains(&("iss", ISS.into())));
            let (_, code) = reply.params.iter().find(|(k, _)| *k == "error").unwrap();
            (true, code.clone())
        }
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn untrusted_clients_and_redirects_are_never_redirected_to() {
    let c = client(false);
    assert_eq!(
        error_of(validate(&params(&[]), None, false, ISS, 0, &known)),
        (false, "invalid_client".to_string())
    );
    let other = params(&[("redirect_uri", "https://evil.example/cb")]);
    assert_eq!(
        error_of(validate(&other, Some(&c), false, ISS, 0, &known)),
        (false, "invalid_request".to_string())
    );
    let prefix = params(&[("redirect_uri", "https://app.example/cb/x")]);
    assert_eq!(
        error_of(validate(&prefix, Some(&c), false, ISS, 0, &known)),
        (false, "invalid_request".to_string())
    );
    let missing = params(&[("redirect_uri", "")]);
    assert_eq!(
        error_of(validate(&missing, Some(&c), false, ISS, 0, &known)),
        (false, "invalid_request".to_string())
    );
}

#[test]
fn later_errors_go_back_to_the_client() {
    let c = client(false);
    for (pairs, code) in [
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "openid admin")], "invalid_scope"),
        (
            vec![("code_challenge", "x"), ("code_challenge_method", "plain")],
            "invalid_request",
        ),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("max_age", "-1")], "invalid_request"),
        (vec![("response_mode", "fragment")], "invalid_request"),
        (vec![("request", "eyJ")], "request_not_supported"),
        (vec![("nonce", "a\u{0}b")], "invalid_request"),
        (vec![("state", "snow\u{2603}")], "invalid_request"),
    ] {
        assert_eq!(
            error_of(validate(&params(&pairs), Some(&c), false, ISS, 0, &known)),
            (true, code.to_string()),
            "{pairs:?}"
        );
    }
}

#[test]
fn public_clients_must_use_pkce() {
    let c = client(true);
    assert_eq!(
        error_of(validate(&params(&[]), Some(&c), false, ISS, 0, &known)),
        (true, "invalid_request".to_string())
    );
    let challenge = pkce::s256(&"v".repeat(43));
    let ok = params(&[
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let p = validate(&ok, Some(&c), false, ISS, 7, &known).unwrap();
    assert_eq!(p.code_challenge.as_deref(), Some(challenge.as_str()));
    assert_eq!(p.requested_at, 7);
    // Confidential clients may skip it, unless the server requires it of everyone.
    assert!(validate(&params(&[]), Some(&client(false)), false, ISS, 0, &known).is_ok());
    assert!(validate(&params(&[]), Some(&client(false)), true, ISS, 0, &known).is_err());
}

#[test]
fn repeated_parameters_are_refused() {
    assert!(parse_params("a=1&b=2").is_ok());
    assert_eq!(
        parse_params("a=1&a=2").unwrap_err(),
        "parameter 'a' is repeated"
    );
    // Not echoed: a sentence posing as a name, or a very long name.
    let sentence = "Your+session+expired.+Call+%2B1-555-0100";
    assert_eq!(
        parse_params(&format!("{sentence}=1&{sentence}=2")).unwrap_err(),
        "a parameter is repeated"
    );
    let long = "a".repeat(33);
    assert_eq!(
        parse_params(&format!("{long}=1&{long}=2")).unwrap_err(),
        "a parameter is repeated"
    );
}

fn pending(prompt: &[&str], max_age: Option<i64>) -> Pending {
    Pending {
        client_id: "app".into(),
        redirect_uri: "https://app.example/cb".into(),
        scope: vec!["openid".into(), "docs:read".into()],
        state: Some("s".into()),
        nonce: None,
        code_challenge: None,
        response_mode: ResponseMode::Query,
        prompt: prompt.iter().map(|s| s.to_string()).collect(),
        max_age,
        requested_at: 1000,
        signed_in_as: None,
        second_factor: false,
        resource: None,
    }
}

fn session(auth_time: i64) -> BrowserSession {
    BrowserSession {
        session_id: "s".into(),
        user_id: "u".into(),
        auth_time,
        amr: "pwd".into(),
        scopes: vec!["docs:read".into()],
    }
}

#[test]
fn steps_follow_session_prompt_max_age_and_consent() {
    let c = client(false);
    let granted = vec!["openid".to_string(), "docs:read".to_string()];
    let issue = Step::Issue {
        scopes: granted.clone(),
    };
    assert_eq!(
        next_step(&pending(&[], None), &c, None, None, false),
        Step::SignIn
    );
    assert_eq!(
        next_step(&pending(&[], None), &c, Some(&session(10)), None, false),
        Step::Consent {
            scopes: granted.clone()
        }
    );
    assert_eq!(
        next_step(
            &pending(&[], None),
            &c,
            Some(&session(10)),
            Some(&granted),
            false
        ),
        issue
    );
    // prompt=login wants a sign-in after the request; max_age one recent enough.
    assert_eq!(
        next_step(
            &pending(&["login"], None),
            &c,
            Some(&session(999)),
            Some(&granted),
            false
        ),
        Step::SignIn
    );
    assert_eq!(
        next_step(
            &pending(&["login"], None),
            &c,
            Some(&session(1000)),
            Some(&granted),
            false
        ),
        Step::SignIn,
        "a sign-in in the same second may have come before the request"
    );
    assert_eq!(
        next_step(
            &pending(&["login"], None),
            &c,
            Some(&session(1001)),
            Some(&granted),
            false
        ),
        issue
    );
    let mut signed_in_here = pending(&["login"], Some(0));
    signed_in_here.signed_in_as = Some("s".into());
    assert_eq!(
        next_step(
            &signed_in_here,
            &c,
            Some(&session(1000)),
            Some(&granted),
            false
        ),
        issue
    );
    assert_eq!(
        next_step(
            &pending(&[], Some(60)),
            &c,
            Some(&session(900)),
            Some(&granted),
            false
        ),
        Step::SignIn
    );
    assert_eq!(
        next_step(
            &pending(&[], Some(0)),
            &c,
            Some(&session(1001)),
            Some(&granted),
            false
        ),
        issue
    );
    // prompt=consent asks again; prompt=none never shows a page.
    assert_eq!(
        next_step(
            &pending(&["consent"], None),
            &c,
            Some(&session(10)),
            Some(&granted),
            false
        ),
        Step::Consent {
            scopes: granted.clone()
        }
    );
    assert!(matches!(
        next_step(&pending(&["none"], None), &c, None, None, false),
        Step::Refuse(e) if e.code == "login_required"
    ));
    assert!(matches!(
        next_step(&pending(&["none"], None), &c, Some(&session(10)), None, false),
        Step::Refuse(e) if e.code == "consent_required"
    ));
    // A scope the user's roles don't grant is left out, not refused.
    let mut s = session(10);
    s.scopes.clear();
    assert_eq!(
        next_step(&pending(&[], None), &c, Some(&s), None, true),
        Step::Issue {
            scopes: vec!["openid".into()]
        }
    );
    // So is one taken from the client after the request was made.
    let mut narrowed = client(false);
    narrowed.scopes.clear();
    assert_eq!(
        next_step(
            &pending(&[], None),
            &narrowed,
            Some(&session(10)),
            None,
            true
        ),
        Step::Issue {
            scopes: vec!["openid".into()]
        }
    );
}

#[test]
fn replies_carry_state_and_issuer_in_the_query() {
    let p = pending(&[], None);
    let r = Reply::code(&p, "c0de".into(), ISS);
    assert_eq!(
        r.location(),
        "https://app.example/cb?code=c0de&state=s&iss=https%3A%2F%2Fid.example"
    );
    let mut q = p.clone();
    q.redirect_uri = "https://app.example/cb?tenant=1".into();
    assert!(
        Reply::error(&q, &OAuthError::access_denied("no"), ISS)
            .location()
            .starts_with("https://app.example/cb?tenant=1&error=access_denied&")
    );
}

#[test]
fn acr_values_2_needs_a_session_that_passed_a_second_factor() {
    let client = client(false);
    let mut p = pending(&[], None);
    p.second_factor = true;
    let pwd = session(900);
    let mut mfa = session(900);
    mfa.amr = "pwd otp mfa".into();
    assert_eq!(
        next_step(&p, &client, Some(&pwd), None, false),
        Step::SignIn
    );
    assert!(matches!(
        next_step(&p, &client, Some(&mfa), Some(&["docs:read".into()]), false),
        Step::Issue { .. } | Step::Consent { .. }
    ));
    // Signed in during this request without one: the account has none to give.
    p.signed_in_as = Some("s".into());
    assert!(matches!(
        next_step(&p, &client, Some(&pwd), None, false),
        Step::Refuse(OAuthError {
            code: "unmet_authentication_requirements",
            ..
        })
    ));
    let mut silent = pending(&["none"], None);
    silent.second_factor = true;
    assert!(matches!(
        next_step(&silent, &client, Some(&pwd), None, false),
        Step::Refuse(OAuthError {
            code: "login_required",
            ..
        })
    ));
}

#[test]
fn resource_indicators_name_one_of_our_resources() {
    let c = client(true);
    let with = |r: &str| {
        params(&[
            ("resource", r),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
    };
    let p = validate(
        &with("https://api.example/mcp/"),
        Some(&c),
        false,
        ISS,
        0,
        &known,
    )
    .unwrap();
    assert_eq!(p.resource.as_deref(), Some("https://api.example/mcp"));
    for bad in [
        "https://api.example/other",
        "https://api.example/mcp#x",
        "mcp",
        "urn:x",
    ] {
        assert_eq!(
            error_of(validate(&with(bad), Some(&c), false, ISS, 0, &known)),
            (true, "invalid_target".into()),
            "{bad}"
        );
    }
}
