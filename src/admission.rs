//! Admission: may this caller, as its credentials resolved, go ahead on this route? One
//! decision for the reverse proxy, forward auth and the AI door: the route's policy
//! (`authz::policy::decide`), then the caller's own rate limits (per account, per API
//! key). No HTTP here: the refusal says why, and the HTTP layer picks the answer (a 401,
//! a 403, a 429, or a sign-in redirect for a browser).

use crate::authz::policy::{AuthMode, Decision, Policy, decide};
use crate::limits::{LimitRefusal, Limiter, Per};
use crate::session::credentials::{Principal, Resolved};

/// Why a caller may not go ahead.
#[derive(Debug)]
pub enum Refusal {
    /// No acceptable credential; `code` says why (`unauthenticated`, `token_expired`…).
    Unauthenticated { code: &'static str },
    /// Authenticated, without some of the scopes the route requires.
    InsufficientScope { missing: Vec<String> },
    /// Authenticated, but not admitted here (`client_not_allowed`, `user_not_allowed`,
    /// `email_unverified`).
    Forbidden { code: &'static str },
    /// Authenticated, but not strongly or recently enough: a step-up is needed (RFC 9470).
    StepUp { mfa: bool, max_age: Option<u64> },
    /// Over one of the caller's own rate limits.
    Limited(LimitRefusal),
}

/// Where the caller's own limits are counted: the method and the route's path, in the
/// one spelling the rules match.
pub struct Counted<'a> {
    pub method: &'a str,
    pub path: &'a str,
}

/// Decides `resolved` against `policy` and, with `counted`, charges the caller's own
/// limits. `Ok(identified)`: go ahead, passing the identity upstream when `identified`.
pub async fn admit(
    limits: &Limiter,
    policy: &Policy,
    resolved: &Resolved,
    counted: Option<Counted<'_>>,
) -> Result<bool, Refusal> {
    if policy.auth == AuthMode::Public {
        return Ok(false);
    }
    let scopes = resolved.scopes();
    let identified = match decide(policy, resolved.presented(&scopes)) {
        Decision::Allow { identified } => identified,
        Decision::Unauthenticated { code } => return Err(Refusal::Unauthenticated { code }),
        Decision::InsufficientScope { missing } => {
            return Err(Refusal::InsufficientScope { missing });
        }
        Decision::Forbidden { code } => return Err(Refusal::Forbidden { code }),
        Decision::StepUp { mfa, max_age } => return Err(Refusal::StepUp { mfa, max_age }),
    };
    if let (Some(c), Some(principal)) = (counted, &resolved.principal) {
        limits
            .check(Per::Account, c.method, c.path, principal.user_id())
            .await
            .map_err(Refusal::Limited)?;
        if let Principal::ApiKey(k) = principal {
            limits
                .check(Per::ApiKey, c.method, c.path, &k.key_id)
                .await
                .map_err(Refusal::Limited)?;
        }
    }
    Ok(identified)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::limits::LimitsConfig;
    use crate::limits::rules::{Rule, RuleSpec};
    use crate::limits::signin::SignInPolicy;
    use crate::session::AccessClaims;
    use crate::session::credentials::Via;

    /// One request per account per hour on `/x`.
    fn limiter() -> Limiter {
        let rule = Rule::build(RuleSpec {
            name: "per-account".into(),
            paths: vec!["/x".into()],
            methods: vec![],
            per: Per::Account,
            limit: 1,
            window: "1h".into(),
            burst: Some(1),
        })
        .unwrap();
        let config = LimitsConfig {
            enabled: true,
            trusted_proxies: vec![],
            on_redis_failure: crate::limits::RedisFailure::Local,
            redis_timeout: Duration::from_millis(250),
            database_counters: false,
            rules: vec![rule],
            sign_in: SignInPolicy::default(),
        };
        Limiter::new(config, None, None).unwrap()
    }

    fn policy(auth: AuthMode, scopes: &[&str]) -> Policy {
        Policy::for_users(auth, scopes)
    }

    fn user(scope: &str) -> Resolved {
        let claims = AccessClaims {
            sub: "u1".into(),
            client_id: crate::authz::FIRST_PARTY_CLIENT.into(),
            scope: scope.into(),
            ..serde_json::from_value(serde_json::json!({
                "iss": "", "sub": "", "aud": "", "exp": 0, "iat": 0, "jti": "", "sid": "s",
                "client_id": "", "scope": "", "roles": [], "auth_time": 0
            }))
            .unwrap()
        };
        Resolved {
            principal: Some(Principal::Token(Arc::new(claims))),
            via: Some(Via::Bearer),
            ..Resolved::default()
        }
    }

    fn at_x() -> Option<Counted<'static>> {
        Some(Counted {
            method: "GET",
            path: "/x",
        })
    }

    #[tokio::test]
    async fn the_policy_decides_then_the_callers_own_limits_count() {
        let limits = limiter();
        let required = policy(AuthMode::Required, &["docs:read"]);
        assert!(matches!(
            admit(&limits, &required, &Resolved::default(), at_x()).await,
            Err(Refusal::Unauthenticated {
                code: "unauthenticated"
            })
        ));
        assert!(matches!(
            admit(&limits, &required, &user("profile"), at_x()).await,
            Err(Refusal::InsufficientScope { .. })
        ));
        // A refusal by policy spent nothing: the first admitted call is still allowed.
        assert!(matches!(
            admit(&limits, &required, &user("docs:read"), at_x()).await,
            Ok(true)
        ));
        assert!(matches!(
            admit(&limits, &required, &user("docs:read"), at_x()).await,
            Err(Refusal::Limited(_))
        ));
        // Not counted (forward auth), or a public route: no limit applies.
        assert!(
            admit(&limits, &required, &user("docs:read"), None)
                .await
                .is_ok()
        );
        let public = policy(AuthMode::Public, &[]);
        assert!(matches!(
            admit(&limits, &public, &user("docs:read"), at_x()).await,
            Ok(false)
        ));
    }
}
