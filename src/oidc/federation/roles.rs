//! Roles from an identity provider's claims: which roles the claims map to, and how a
//! user's roles change at each sign-in. Pure functions, tested as tables.

use serde_json::Value;

use super::config::ProviderConfig;
use crate::authz::DEFAULT_ROLE;

/// The string values at `path` (dotted, like Keycloak's `realm_access.roles`): one
/// string, or the strings of a list.
pub fn claim_values(claims: &Value, path: &str) -> Vec<String> {
    let mut at = claims;
    for part in path.split('.') {
        match at.get(part) {
            Some(v) => at = v,
            None => return Vec::new(),
        }
    }
    match at {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The roles `claims` map to under the provider's `role_claim` and `roles`.
pub fn mapped_roles(p: &ProviderConfig, claims: &Value) -> Vec<String> {
    let Some(claim) = &p.role_claim else {
        return Vec::new();
    };
    let mut roles: Vec<String> = claim_values(claims, claim)
        .iter()
        .filter_map(|v| p.roles.get(v).cloned())
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

/// `(grant, revoke)` for a sign-in: the mapped roles the user lacks, and the roles the
/// provider mapped before but no longer does (never the default role every account has).
pub fn changes(
    user_roles: &[String],
    before: &[String],
    now: &[String],
) -> (Vec<String>, Vec<String>) {
    let grant = now
        .iter()
        .filter(|r| !user_roles.contains(r))
        .cloned()
        .collect();
    let revoke = before
        .iter()
        .filter(|r| !now.contains(r) && user_roles.contains(r) && r.as_str() != DEFAULT_ROLE)
        .cloned()
        .collect();
    (grant, revoke)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn claim_values_follow_dotted_paths() {
        let claims =
            json!({ "groups": ["ops", 3, "dev"], "realm_access": { "roles": "admin" }, "n": 1 });
        assert_eq!(claim_values(&claims, "groups"), v(&["ops", "dev"]));
        assert_eq!(claim_values(&claims, "realm_access.roles"), v(&["admin"]));
        assert!(claim_values(&claims, "n").is_empty());
        assert!(claim_values(&claims, "missing.path").is_empty());
    }

    #[test]
    fn role_changes_grant_new_and_revoke_withdrawn_mappings_only() {
        let user = v(&["user", "analyst", "admin"]);
        // The provider used to map admin and analyst; now only analyst and auditor.
        let (grant, revoke) = changes(
            &user,
            &v(&["admin", "analyst"]),
            &v(&["analyst", "auditor"]),
        );
        assert_eq!(grant, v(&["auditor"]));
        assert_eq!(revoke, v(&["admin"]));
        // A role granted by hand, never mapped, is left alone; so is `user`.
        let (_, revoke) = changes(&v(&["user", "billing"]), &v(&["user"]), &v(&[]));
        assert!(revoke.is_empty());
    }
}
