//! The gateway's policy decision: a plain function from a route's policy and what the
//! caller presented to allow or deny. The reverse proxy and forward auth both call it, so
//! the two can never disagree; it has no HTTP and no I/O, and is tested as a table.

/// How much authentication a route asks for, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthMode {
    /// Credentials are not looked at; the upstream never receives an identity.
    Public,
    /// A valid credential identifies the caller; anonymous callers pass too.
    Optional,
    /// Only authenticated callers pass.
    Required,
}

impl AuthMode {
    pub fn parse(s: &str) -> Option<AuthMode> {
        match s {
            "public" => Some(AuthMode::Public),
            "optional" => Some(AuthMode::Optional),
            "required" => Some(AuthMode::Required),
            _ => None,
        }
    }
}

/// Which OAuth clients' tokens a route admits: a service calling with its own
/// client-credentials token, or an application calling with a token a user granted it.
/// Tollgate's own sign-in and API keys are not clients here: they always count as the
/// user. Applications are admitted only where a route says so, so a token a user granted
/// an application for `openid` alone never opens the first-party API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Clients {
    /// No client's token passes (the default).
    #[default]
    None,
    /// Any client whose token carries the route's scopes.
    Any,
    /// These clients only (and still the route's scopes).
    Only(Vec<String>),
}

impl Clients {
    fn admits(&self, client_id: &str) -> bool {
        match self {
            Clients::None => false,
            Clients::Any => true,
            Clients::Only(ids) => ids.iter().any(|id| id == client_id),
        }
    }

    /// The clients both admit.
    fn and(&self, other: &Clients) -> Clients {
        match (self, other) {
            (Clients::None, _) | (_, Clients::None) => Clients::None,
            (Clients::Any, c) | (c, Clients::Any) => c.clone(),
            (Clients::Only(a), Clients::Only(b)) => {
                let both: Vec<String> = a.iter().filter(|id| b.contains(id)).cloned().collect();
                if both.is_empty() {
                    Clients::None
                } else {
                    Clients::Only(both)
                }
            }
        }
    }
}

/// A route's access policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub auth: AuthMode,
    /// Every one of these is required of an authenticated caller.
    pub scopes: Vec<String>,
    pub clients: Clients,
    /// Whether users' credentials pass, their own or through an application (false: a
    /// route for services only).
    pub users: bool,
    /// Users must have verified their email address (services have none and pass).
    pub verified_email: bool,
    /// Users must have passed a second factor (services have none and pass).
    pub mfa: bool,
    /// Users must have authenticated (their latest factor) at most this many seconds ago.
    pub max_age: Option<u64>,
    /// The route is an OAuth protected resource (RFC 9728) with this identifier: tokens
    /// bound to an audience (RFC 8707) pass only if it is this one, and clients' tokens
    /// must be bound to it. `None`: tokens bound to any resource are refused.
    pub resource: Option<String>,
}

impl Policy {
    /// A policy for users' credentials only, requiring `scopes` (tests build many).
    #[cfg(test)]
    pub fn for_users(auth: AuthMode, scopes: &[&str]) -> Policy {
        Policy {
            auth,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            clients: Clients::None,
            users: true,
            verified_email: false,
            mfa: false,
            max_age: None,
            resource: None,
        }
    }

    /// Forward-auth requests that match no route: authentication required, no scopes
    /// (fail closed: a proxy that forgot a route must not open it).
    pub fn default_forward_auth() -> Policy {
        Policy {
            auth: AuthMode::Required,
            scopes: Vec::new(),
            clients: Clients::None,
            users: true,
            verified_email: false,
            mfa: false,
            max_age: None,
            resource: None,
        }
    }

    /// A policy that only admits what both admit: the stricter authentication, every
    /// scope of either, the clients both admit, users only if both admit them, the
    /// stricter step-up. For a
    /// request two routes could claim (see `RouteTable::find`).
    pub fn and(&self, other: &Policy) -> Policy {
        let mut scopes = self.scopes.clone();
        for s in &other.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        Policy {
            auth: self.auth.max(other.auth),
            scopes,
            clients: self.clients.and(&other.clients),
            users: self.users && other.users,
            verified_email: self.verified_email || other.verified_email,
            mfa: self.mfa || other.mfa,
            max_age: match (self.max_age, other.max_age) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            // Two different resources: no bound token can be both (an empty identifier
            // is never a token's audience), while first-party credentials pass either.
            resource: match (&self.resource, &other.resource) {
                (Some(a), Some(b)) if a != b => Some(String::new()),
                (a, b) => a.clone().or_else(|| b.clone()),
            },
        }
    }
}

/// How a user authenticated, as their credential says (`acr`, `auth_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Authenticated {
    /// A second factor was used (`acr` 2).
    pub second_factor: bool,
    /// Seconds since the latest factor (`auth_time`); `None` for a credential no sign-in
    /// stands behind (an API key), which can never be recent.
    pub age_secs: Option<u64>,
}

impl Authenticated {
    /// Whether this is enough for a step-up that asks for a second factor (`mfa`) and/or
    /// a latest factor at most `max_age` seconds old.
    pub fn satisfies(self, mfa: bool, max_age: Option<u64>) -> bool {
        let factor_ok = !mfa || self.second_factor;
        let recent_ok = match max_age {
            None => true,
            Some(max) => self.age_secs.is_some_and(|age| age <= max),
        };
        factor_ok && recent_ok
    }
}

/// What the caller presented, after verification.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// No credential at all.
    Nothing,
    /// A credential that failed verification. `explicit` is true for credentials a client
    /// chose to send (a bearer token, an API key) and false for cookies a browser sends
    /// by itself, which may simply be stale.
    Rejected { code: &'static str, explicit: bool },
    /// A verified credential granting these scopes. `client` names the OAuth client the
    /// token was issued to (`None` for Tollgate's own sign-in and API keys); `audience`,
    /// the resource the token is bound to (`None`: Tollgate itself); `service` says it is
    /// that client's own token, with no user behind it; `email_verified`, that the user's
    /// address has been verified; `authenticated`, how the user signed in.
    Verified {
        scopes: &'a [&'a str],
        audience: Option<&'a str>,
        client: Option<&'a str>,
        service: bool,
        email_verified: bool,
        authenticated: Authenticated,
    },
}

impl<'a> Presented<'a> {
    /// A user's own credential (Tollgate's sign-in or an API key).
    #[cfg(test)]
    pub fn user(scopes: &'a [&'a str]) -> Presented<'a> {
        Presented::Verified {
            scopes,
            audience: None,
            client: None,
            service: false,
            email_verified: true,
            authenticated: Authenticated::default(),
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward the request; `identified` says whether the identity goes upstream.
    Allow { identified: bool },
    /// 401: no acceptable credential. `code` says why.
    Unauthenticated { code: &'static str },
    /// 403: authenticated, but some required scopes are missing.
    InsufficientScope { missing: Vec<String> },
    /// 403: authenticated, but this kind of caller is not admitted (`client_not_allowed`,
    /// `user_not_allowed`, `email_unverified`).
    Forbidden { code: &'static str },
    /// 401 with RFC 9470's `insufficient_user_authentication`: the user must pass a
    /// second factor (`mfa`) and/or have authenticated within `max_age` seconds.
    StepUp { mfa: bool, max_age: Option<u64> },
}

pub fn decide(policy: &Policy, presented: Presented<'_>) -> Decision {
    match (policy.auth, presented) {
        (AuthMode::Public, _) => Decision::Allow { identified: false },
        (AuthMode::Optional, Presented::Nothing)
        | (
            AuthMode::Optional,
            Presented::Rejected {
                explicit: false, ..
            },
        ) => Decision::Allow { identified: false },
        (AuthMode::Required, Presented::Nothing) => Decision::Unauthenticated {
            code: "unauthenticated",
        },
        (_, Presented::Rejected { code, .. }) => Decision::Unauthenticated { code },
        (
            _,
            Presented::Verified {
                audience, client, ..
            },
        ) if !audience_fits(policy.resource.as_deref(), audience, client) => {
            Decision::Unauthenticated {
                code: "invalid_audience",
            }
        }
        (
            _,
            Presented::Verified {
                client: Some(client),
                ..
            },
        ) if !policy.clients.admits(client) => Decision::Forbidden {
            code: "client_not_allowed",
        },
        (_, Presented::Verified { service: false, .. }) if !policy.users => Decision::Forbidden {
            code: "user_not_allowed",
        },
        (
            _,
            Presented::Verified {
                service: false,
                email_verified: false,
                ..
            },
        ) if policy.verified_email => Decision::Forbidden {
            code: "email_unverified",
        },
        (
            _,
            Presented::Verified {
                scopes,
                service,
                authenticated,
                ..
            },
        ) => {
            let missing: Vec<String> = policy
                .scopes
                .iter()
                .filter(|s| !scopes.contains(&s.as_str()))
                .cloned()
                .collect();
            // Scopes first: a step-up cannot cure a 403, so it is not asked for in vain.
            if !missing.is_empty() {
                Decision::InsufficientScope { missing }
            } else if !service && !authenticated.satisfies(policy.mfa, policy.max_age) {
                Decision::StepUp {
                    mfa: policy.mfa,
                    max_age: policy.max_age,
                }
            } else {
                Decision::Allow { identified: true }
            }
        }
    }
}

/// Whether a token bound to `audience` may be used where `resource` is the protected
/// resource (RFC 8707, RFC 9068 §4): a bound token only at its own resource; at a resource,
/// an OAuth client's token only when bound to it. First-party credentials (Tollgate's own
/// sign-in, API keys) are bound to no resource and pass everywhere as they always have.
fn audience_fits(resource: Option<&str>, audience: Option<&str>, client: Option<&str>) -> bool {
    match (resource, audience) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(r), Some(a)) => r == a,
        (Some(_), None) => client.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(auth: AuthMode, scopes: &[&str]) -> Policy {
        Policy::for_users(auth, scopes)
    }

    fn user(scopes: &'static [&'static str]) -> Presented<'static> {
        Presented::user(scopes)
    }

    const ALLOW_ANON: Decision = Decision::Allow { identified: false };
    const ALLOW_ID: Decision = Decision::Allow { identified: true };

    #[test]
    fn decision_table() {
        use AuthMode::*;
        let stale = Presented::Rejected {
            code: "token_expired",
            explicit: false,
        };
        let bad_bearer = Presented::Rejected {
            code: "invalid_token",
            explicit: true,
        };
        let none: &[&str] = &[];
        let reader: &[&str] = &["docs:read", "profile"];
        let unauth = |code| Decision::Unauthenticated { code };
        let missing = |m: &[&str]| Decision::InsufficientScope {
            missing: m.iter().map(|s| s.to_string()).collect(),
        };
        let cases: Vec<(Policy, Presented, Decision)> = vec![
            // public: credentials are never looked at, not even bad ones
            (policy(Public, &[]), Presented::Nothing, ALLOW_ANON),
            (policy(Public, &[]), bad_bearer, ALLOW_ANON),
            (policy(Public, &[]), user(reader), ALLOW_ANON),
            // optional: identity when valid, anonymous when absent or stale
            (policy(Optional, &[]), Presented::Nothing, ALLOW_ANON),
            (policy(Optional, &[]), stale, ALLOW_ANON),
            (policy(Optional, &[]), bad_bearer, unauth("invalid_token")),
            (policy(Optional, &[]), user(none), ALLOW_ID),
            (
                policy(Optional, &["docs:read"]),
                user(none),
                missing(&["docs:read"]),
            ),
            (
                policy(Optional, &["docs:read"]),
                Presented::Nothing,
                ALLOW_ANON,
            ),
            // required
            (
                policy(Required, &[]),
                Presented::Nothing,
                unauth("unauthenticated"),
            ),
            (policy(Required, &[]), stale, unauth("token_expired")),
            (policy(Required, &[]), bad_bearer, unauth("invalid_token")),
            (policy(Required, &[]), user(none), ALLOW_ID),
            (policy(Required, &["docs:read"]), user(reader), ALLOW_ID),
            (
                policy(Required, &["docs:read", "docs:write", "profile"]),
                user(reader),
                missing(&["docs:write"]),
            ),
            (
                policy(Required, &["docs:read"]),
                Presented::Nothing,
                unauth("unauthenticated"),
            ),
        ];
        for (p, presented, want) in cases {
            assert_eq!(decide(&p, presented), want, "{p:?} {presented:?}");
        }
    }

    #[test]
    fn clients_pass_only_where_admitted_and_users_only_where_allowed() {
        let service = |client: &'static str| Presented::Verified {
            audience: None,
            scopes: &["reports:read"],
            client: Some(client),
            service: true,
            email_verified: false,
            authenticated: Authenticated::default(),
        };
        let app = Presented::Verified {
            audience: None,
            scopes: &["reports:read"],
            client: Some("docs-app"),
            service: false,
            email_verified: true,
            authenticated: Authenticated::default(),
        };
        let mut p = policy(AuthMode::Required, &["reports:read"]);
        let refused = Decision::Forbidden {
            code: "client_not_allowed",
        };
        assert_eq!(decide(&p, service("billing")), refused, "none by default");
        assert_eq!(decide(&p, app), refused, "nor an application's user token");
        assert_eq!(decide(&p, user(&["reports:read"])), ALLOW_ID);
        p.clients = Clients::Only(vec!["reports".into()]);
        assert_eq!(decide(&p, service("reports")), ALLOW_ID);
        assert_eq!(decide(&p, service("billing")), refused);
        p.clients = Clients::Any;
        assert_eq!(decide(&p, service("billing")), ALLOW_ID);
        assert_eq!(decide(&p, app), ALLOW_ID);
        p.scopes = vec!["reports:write".into()];
        assert!(matches!(
            decide(&p, service("billing")),
            Decision::InsufficientScope { .. }
        ));
        p.users = false;
        p.scopes.clear();
        let user_not_allowed = Decision::Forbidden {
            code: "user_not_allowed",
        };
        assert_eq!(decide(&p, user(&[])), user_not_allowed);
        assert_eq!(
            decide(&p, app),
            user_not_allowed,
            "an application acts for a user"
        );
        assert_eq!(decide(&p, service("billing")), ALLOW_ID);
    }

    #[test]
    fn two_policies_together_admit_only_what_both_admit() {
        let open = policy(AuthMode::Public, &[]);
        let mut admin = policy(AuthMode::Required, &["admin"]);
        admin.clients = Clients::Only(vec!["ops".into(), "ci".into()]);
        let mut reader = policy(AuthMode::Optional, &["docs:read"]);
        reader.clients = Clients::Any;
        let both = open.and(&admin);
        assert_eq!(both.auth, AuthMode::Required);
        assert_eq!(both.scopes, vec!["admin".to_string()]);
        assert_eq!(both.clients, Clients::None);
        let both = reader.and(&admin);
        assert_eq!(
            both.scopes,
            vec!["docs:read".to_string(), "admin".to_string()]
        );
        assert_eq!(both.clients, admin.clients);
        assert_eq!(
            decide(&both, Presented::Nothing),
            Decision::Unauthenticated {
                code: "unauthenticated"
            }
        );
        assert!(matches!(
            decide(&both, user(&["admin"])),
            Decision::InsufficientScope { .. }
        ));
        assert_eq!(decide(&both, user(&["admin", "docs:read"])), ALLOW_ID);
        let mut services = policy(AuthMode::Required, &[]);
        services.users = false;
        services.clients = Clients::Only(vec!["ci".into()]);
        let both = admin.and(&services);
        assert!(!both.users);
        assert_eq!(both.clients, Clients::Only(vec!["ci".into()]));
    }

    #[test]
    fn routes_can_require_a_verified_address() {
        let mut p = policy(AuthMode::Required, &[]);
        p.verified_email = true;
        let unverified = Presented::Verified {
            audience: None,
            scopes: &[],
            client: None,
            service: false,
            email_verified: false,
            authenticated: Authenticated::default(),
        };
        assert_eq!(
            decide(&p, unverified),
            Decision::Forbidden {
                code: "email_unverified"
            }
        );
        assert_eq!(decide(&p, user(&[])), ALLOW_ID);
        p.clients = Clients::Any;
        let service = Presented::Verified {
            audience: None,
            scopes: &[],
            client: Some("svc"),
            service: true,
            email_verified: false,
            authenticated: Authenticated::default(),
        };
        assert_eq!(decide(&p, service), ALLOW_ID, "a service has no address");
    }

    #[test]
    fn step_up_asks_users_for_a_second_factor_and_a_recent_sign_in() {
        let signed_in = |second_factor, age_secs| Presented::Verified {
            audience: None,
            scopes: &["docs:read"],
            client: None,
            service: false,
            email_verified: true,
            authenticated: Authenticated {
                second_factor,
                age_secs,
            },
        };
        let mut p = policy(AuthMode::Required, &[]);
        p.mfa = true;
        let step_up = |max_age| Decision::StepUp { mfa: true, max_age };
        assert_eq!(decide(&p, signed_in(false, Some(5))), step_up(None));
        assert_eq!(decide(&p, signed_in(true, Some(86_400))), ALLOW_ID);
        assert_eq!(
            decide(&p, signed_in(true, None)),
            ALLOW_ID,
            "no max_age: any time"
        );
        p.max_age = Some(600);
        assert_eq!(decide(&p, signed_in(true, Some(600))), ALLOW_ID);
        assert_eq!(decide(&p, signed_in(true, Some(601))), step_up(Some(600)));
        assert_eq!(
            decide(&p, signed_in(true, None)),
            step_up(Some(600)),
            "an API key is never recent"
        );
        // max_age alone: a recent password is enough.
        p.mfa = false;
        assert_eq!(decide(&p, signed_in(false, Some(10))), ALLOW_ID);
        assert_eq!(
            decide(&p, signed_in(false, Some(700))),
            Decision::StepUp {
                mfa: false,
                max_age: Some(600)
            }
        );
        // A missing scope is a 403 before any step-up is asked for.
        p.scopes = vec!["docs:write".into()];
        assert!(matches!(
            decide(&p, signed_in(false, Some(700))),
            Decision::InsufficientScope { .. }
        ));
        // Services have no person behind them to step up.
        let mut services = policy(AuthMode::Required, &[]);
        services.mfa = true;
        services.max_age = Some(60);
        services.clients = Clients::Any;
        let service = Presented::Verified {
            audience: None,
            scopes: &[],
            client: Some("svc"),
            service: true,
            email_verified: false,
            authenticated: Authenticated::default(),
        };
        assert_eq!(decide(&services, service), ALLOW_ID);
        // Two policies together: the stricter step-up.
        let mut a = policy(AuthMode::Required, &[]);
        a.max_age = Some(900);
        let mut b = policy(AuthMode::Optional, &[]);
        b.mfa = true;
        b.max_age = Some(300);
        let both = a.and(&b);
        assert!(both.mfa);
        assert_eq!(both.max_age, Some(300));
        assert_eq!(a.and(&policy(AuthMode::Public, &[])).max_age, Some(900));
    }

    #[test]
    fn scope_names_match_exactly() {
        let p = policy(AuthMode::Required, &["docs:read"]);
        for near in [
            &["docs:rea"][..],
            &["DOCS:READ"],
            &["docs:read:all"],
            &["docs"],
        ] {
            assert!(
                matches!(
                    decide(&p, Presented::user(near)),
                    Decision::InsufficientScope { .. }
                ),
                "{near:?}"
            );
        }
    }

    #[test]
    fn tokens_bound_to_a_resource_pass_only_there() {
        let mcp = "https://gw.test/mcp";
        let mut at_resource = policy(AuthMode::Required, &[]);
        at_resource.resource = Some(mcp.into());
        at_resource.clients = Clients::Any;
        let plain = Policy {
            clients: Clients::Any,
            ..policy(AuthMode::Required, &[])
        };
        let token = |audience, client| Presented::Verified {
            scopes: &[],
            audience,
            client,
            service: false,
            email_verified: true,
            authenticated: Authenticated::default(),
        };
        let wrong = Decision::Unauthenticated {
            code: "invalid_audience",
        };
        let cases = [
            (&at_resource, token(Some(mcp), Some("agent")), ALLOW_ID),
            (
                &at_resource,
                token(Some("https://gw.test/other"), Some("agent")),
                wrong.clone(),
            ),
            // A client's token for Tollgate itself is not for the resource.
            (&at_resource, token(None, Some("agent")), wrong.clone()),
            // First-party sign-in keeps working at a resource.
            (&at_resource, token(None, None), ALLOW_ID),
            // A token bound to a resource is refused everywhere else.
            (&plain, token(Some(mcp), Some("agent")), wrong.clone()),
            (&plain, token(None, Some("agent")), ALLOW_ID),
        ];
        for (i, (p, presented, expected)) in cases.into_iter().enumerate() {
            assert_eq!(decide(p, presented), expected, "case {i}");
        }
        // A request two resources could claim admits no bound token.
        let mut other = at_resource.clone();
        other.resource = Some("https://gw.test/other".into());
        let both = at_resource.and(&other);
        assert_eq!(decide(&both, token(Some(mcp), Some("agent"))), wrong);
        assert_eq!(decide(&both, token(None, None)), ALLOW_ID);
    }
}
