//! Unit tests of `routes`.

use super::*;

fn spec(path: &str) -> RouteSpec {
    RouteSpec {
        path: path.into(),
        upstream: Some("http://127.0.0.1:9000".into()),
        ..RouteSpec::default()
    }
}

fn build_table(specs: Vec<RouteSpec>) -> Result<RouteTable, String> {
    RouteTable::build(specs, "https://gw.test")
}

fn with_methods(path: &str, methods: &[&str]) -> RouteSpec {
    RouteSpec {
        methods: Some(methods.iter().map(|m| m.to_string()).collect()),
        ..spec(path)
    }
}

fn found(table: &RouteTable, method: Method, path: &str) -> Option<String> {
    match table.find(&method, path) {
        Match::Found(m) => Some(format!("{} {:?}", m.route.name, m.route.methods)),
        _ => None,
    }
}

fn with_auth(path: &str, auth: &str, scopes: &[&str]) -> RouteSpec {
    RouteSpec {
        auth: Some(auth.into()),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..spec(path)
    }
}

#[test]
fn other_spellings_are_held_to_every_route_they_could_mean() {
    let table = build_table(vec![
        with_auth("/*", "public", &[]),
        with_auth("/api/admin/*", "required", &["admin"]),
        with_auth("/reports", "required", &[]),
        with_auth("/files/*", "required", &[]),
        with_auth("/files/public/*", "public", &[]),
    ])
    .unwrap();
    let held = |path: &str| match table.find(&Method::GET, path) {
        Match::Found(m) => (m.route.name.clone(), m.policy.into_owned()),
        other => panic!("{path}: {other:?}"),
    };
    // Case and a trailing slash: the protected route's policy applies.
    for path in [
        "/API/ADMIN/users",
        "/Api/Admin",
        "/api/admin/",
        "/api/adm%C4%B1n/x",
        "/api/ADM%C4%B0N/x",
    ] {
        let Ok(path) = &path::normalize(path) else {
            panic!("{path}")
        };
        let (_, policy) = held(path);
        assert_eq!(policy.auth, AuthMode::Required, "{path}");
        assert_eq!(policy.scopes, vec!["admin".to_string()], "{path}");
    }
    for path in ["/reports/", "/REPORTS", "/Reports/"] {
        assert_eq!(held(path).1.auth, AuthMode::Required, "{path}");
    }
    assert_eq!(held("/files/public/x").1.auth, AuthMode::Public);
    assert_eq!(held("/elsewhere").1.auth, AuthMode::Public);
    // A looser route spelled differently does not open a protected one (an upstream
    // that reads case serves `/PUBLIC/x` as something else under `/*`).
    let table = build_table(vec![
        with_auth("/*", "required", &[]),
        with_auth("/public/*", "public", &[]),
    ])
    .unwrap();
    let Match::Found(m) = table.find(&Method::GET, "/PUBLIC/x") else {
        panic!()
    };
    assert_eq!(m.route.name, "/*", "routed as written");
    assert_eq!(m.policy.auth, AuthMode::Required);
    let Match::Found(m) = table.find(&Method::GET, "/public/x") else {
        panic!()
    };
    assert_eq!(m.policy.auth, AuthMode::Public);
    // Method restrictions of either route hold too.
    let table = build_table(vec![spec("/*"), with_methods("/api/admin/*", &["GET"])]).unwrap();
    assert!(matches!(
        table.find(&Method::DELETE, "/API/ADMIN/x"),
        Match::MethodNotAllowed(_)
    ));
    // No route as written, one folded: that one.
    let table = build_table(vec![with_auth("/api/*", "required", &[])]).unwrap();
    assert_eq!(held_in(&table, "/API/x"), Some("/api/*".to_string()));
}

fn held_in(table: &RouteTable, path: &str) -> Option<String> {
    found(table, Method::GET, path).map(|s| s.split(' ').next().unwrap().to_string())
}

#[test]
fn routes_differing_only_in_spelling_are_refused() {
    for (a, b) in [
        ("/Files/*", "/files/*"),
        ("/reports", "/reports/"),
        ("/API", "/api"),
    ] {
        let err = build_table(vec![spec(a), spec(b)]).unwrap_err();
        assert!(err.contains("only in case"), "{err}");
    }
    assert!(build_table(vec![spec("/reports"), spec("/reports/*")]).is_ok());
}

#[test]
fn longest_match_wins_and_methods_never_fall_through() {
    let table = build_table(vec![
        spec("/*"),
        spec("/api/*"),
        spec("/api/docs/*"),
        spec("/api/docs/index"),
        with_methods("/api/admin/*", &["GET"]),
        with_methods("/api/admin/*", &["post", "PUT"]),
        with_methods("/api/report", &["GET"]),
    ])
    .unwrap();
    let name =
        |m: Method, p: &str| found(&table, m, p).map(|s| s.split(' ').next().unwrap().to_string());
    assert_eq!(
        name(Method::GET, "/api/docs/index").as_deref(),
        Some("/api/docs/index")
    );
    assert_eq!(
        name(Method::GET, "/api/docs/index2").as_deref(),
        Some("/api/docs/*")
    );
    assert_eq!(
        name(Method::GET, "/api/docs").as_deref(),
        Some("/api/docs/*")
    );
    assert_eq!(
        name(Method::GET, "/api/docs/").as_deref(),
        Some("/api/docs/*")
    );
    assert_eq!(name(Method::GET, "/api/docsx").as_deref(), Some("/api/*"));
    assert_eq!(name(Method::GET, "/other").as_deref(), Some("/*"));
    assert_eq!(name(Method::GET, "/").as_deref(), Some("/*"));
    assert!(
        found(&table, Method::POST, "/api/admin/x")
            .unwrap()
            .contains("POST")
    );
    assert!(
        found(&table, Method::GET, "/api/admin/x")
            .unwrap()
            .contains("GET")
    );
    // DELETE is allowed by "/api/*" but "/api/admin/*" is more specific: 405, not a
    // fall-through to the looser route.
    match table.find(&Method::DELETE, "/api/admin/x") {
        Match::MethodNotAllowed(m) => {
            assert_eq!(m, vec![Method::GET, Method::POST, Method::PUT])
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        table.find(&Method::POST, "/api/report"),
        Match::MethodNotAllowed(_)
    ));
    let narrow = build_table(vec![spec("/api/docs/*")]).unwrap();
    assert!(matches!(narrow.find(&Method::GET, "/api"), Match::NotFound));
}

#[test]
fn routes_of_equal_length_do_not_hide_each_other() {
    let table = build_table(vec![
        with_methods("/a/*", &["GET"]),
        spec("/b/*"),
        with_methods("/a/*", &["POST"]),
    ])
    .unwrap();
    assert!(found(&table, Method::POST, "/a/x").is_some());
    assert!(found(&table, Method::GET, "/a/x").is_some());
    assert!(found(&table, Method::DELETE, "/b/x").is_some());
}

#[test]
fn strip_prefix_and_base_path_shape_the_upstream_path() {
    let mut s = spec("/api/docs/*");
    s.strip_prefix = Some("/api".into());
    s.upstream = Some("http://127.0.0.1:9000/v1/".into());
    let table = build_table(vec![s]).unwrap();
    let Match::Found(m) = table.find(&Method::GET, "/api/docs/7") else {
        panic!()
    };
    let r = m.route;
    assert_eq!(r.upstream_path("/api/docs/7"), "/v1/docs/7");
    let mut s = spec("/api/*");
    s.strip_prefix = Some("/api".into());
    let table = build_table(vec![s]).unwrap();
    let Match::Found(m) = table.find(&Method::GET, "/api") else {
        panic!()
    };
    let r = m.route;
    assert_eq!(r.upstream_path("/api"), "/");
    assert_eq!(r.upstream_path("/api/x?"), "/x?");
}

#[test]
fn bad_routes_stop_start_up_naming_the_route() {
    let cases: Vec<(RouteSpec, &str)> = vec![
        (spec("/auth/*"), "reserved"),
        (spec("/auth"), "reserved"),
        (spec("/admin/users"), "reserved"),
        (spec("/.well-known/x"), "reserved"),
        (spec("/healthz"), "reserved"),
        (spec("/metrics/*"), "reserved"),
        (spec("api"), "normalised"),
        (spec("/a/../b"), "normalised"),
        (spec("/a//b"), "normalised"),
        (spec("/a/*/b"), "normalised"),
        (spec("/a*"), "normalised"),
        (
            RouteSpec {
                upstream: Some("ftp://x".into()),
                ..spec("/x")
            },
            "upstream",
        ),
        (
            RouteSpec {
                upstream: Some("not a url".into()),
                ..spec("/x")
            },
            "upstream",
        ),
        (
            RouteSpec {
                upstream: Some("http://u:p@h".into()),
                ..spec("/x")
            },
            "credentials",
        ),
        (
            RouteSpec {
                auth: Some("sometimes".into()),
                ..spec("/x")
            },
            "auth",
        ),
        (
            RouteSpec {
                auth: Some("public".into()),
                scopes: vec!["a".into()],
                ..spec("/x")
            },
            "public",
        ),
        (
            RouteSpec {
                strip_prefix: Some("/y".into()),
                ..spec("/x/*")
            },
            "strip_prefix",
        ),
        (with_methods("/x", &["G E T"]), "method"),
        (with_methods("/x", &[]), "methods"),
    ];
    for (s, needle) in cases {
        let name = s.path.clone();
        let err = build_table(vec![s]).unwrap_err();
        assert!(
            err.contains(&format!("route '{name}'")) && err.contains(needle),
            "{err}"
        );
    }
    let dup = build_table(vec![spec("/x/*"), with_methods("/x/*", &["GET"])]).unwrap_err();
    assert!(dup.contains("duplicates"), "{dup}");
    assert!(
        build_table(vec![
            with_methods("/x/*", &["POST"]),
            with_methods("/x/*", &["GET"])
        ])
        .is_ok()
    );
}

#[test]
fn reserved_paths() {
    for p in [
        "/auth/login",
        "/healthz",
        "/metrics",
        "/admin/",
        "/admin",
        "/oauth2/token",
    ] {
        assert!(is_reserved(p), "{p}");
    }
    for p in ["/authx", "/healthzz/x", "/api/auth/login", "/", ""] {
        assert!(!is_reserved(p), "{p}");
    }
}

#[test]
fn a_resource_is_named_by_the_public_url_and_its_path() {
    let resource = |path: &str, auth: &str| RouteSpec {
        resource: Some(true),
        ..with_auth(path, auth, &["mcp:tools"])
    };
    let table = build_table(vec![resource("/mcp/*", "required"), spec("/*")]).unwrap();
    assert_eq!(
        table.resource("https://gw.test/mcp"),
        Some(vec!["mcp:tools"])
    );
    assert_eq!(table.resource("https://gw.test/"), None);
    let Match::Found(m) = table.find(&Method::POST, "/mcp/x") else {
        panic!("no match");
    };
    assert_eq!(m.policy.resource.as_deref(), Some("https://gw.test/mcp"));
    // Any client, as long as its token is bound to the resource.
    assert_eq!(m.policy.clients, Clients::Any);
    let err = build_table(vec![resource("/mcp", "optional")]).unwrap_err();
    assert!(err.contains("resource = true needs auth"), "{err}");
}
