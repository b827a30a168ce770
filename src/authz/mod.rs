//! Authorisation vocabulary: which scopes each role grants.
//!
//! Roles are configured in `[roles.<name>]`; a user's scopes are the union of the scopes of
//! their roles. Role `user` always exists (every new account has it), with no scopes unless
//! configured. The gateway's per-route policy builds on this module.

pub mod policy;

use std::collections::{BTreeMap, BTreeSet};

/// The role every account receives at creation.
pub const DEFAULT_ROLE: &str = "user";
/// The built-in role that grants [`ADMIN_SCOPE`] (plus whatever `[roles.admin]` adds).
pub const ADMIN_ROLE: &str = "admin";
/// The scope the admin API (`/admin/*`) requires.
pub const ADMIN_SCOPE: &str = "admin";
/// The scopes every client may ask for and every user may grant: OpenID Connect's, and
/// `roles` (the user's role names in the ID token and userinfo, for a relying party that
/// maps them, as a Tollgate federating to this one does). They are about the user's
/// profile, not about what the user may do.
pub const STANDARD_SCOPES: [&str; 5] = ["openid", "profile", "email", "offline_access", "roles"];

/// The client id of Tollgate's own first-party sign-in (cookie and token mode).
pub const FIRST_PARTY_CLIENT: &str = "tollgate";

/// Client ids appear in tokens, URLs, headers and the fan-out channel: keep them plain,
/// and never shaped like a user id (a UUID), which a service's `sub` could pose as.
pub fn valid_client_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_err()
        && (1..=48).contains(&id.len())
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && id != FIRST_PARTY_CLIENT
}

pub fn is_standard_scope(scope: &str) -> bool {
    STANDARD_SCOPES.contains(&scope)
}

#[derive(Debug, Clone, Default)]
pub struct RoleMap {
    roles: BTreeMap<String, BTreeSet<String>>,
}

impl RoleMap {
    /// Builds the map, checking names so they are safe in tokens and headers.
    pub fn from_config(
        entries: impl IntoIterator<Item = (String, Vec<String>)>,
    ) -> Result<RoleMap, String> {
        let mut roles = BTreeMap::new();
        roles.insert(DEFAULT_ROLE.to_string(), BTreeSet::new());
        roles.insert(
            ADMIN_ROLE.to_string(),
            BTreeSet::from([ADMIN_SCOPE.to_string()]),
        );
        for (role, scopes) in entries {
            if !valid_role_name(&role) {
                return Err(format!(
                    "invalid role name '{role}': expected 1-64 characters of a-z 0-9 _ - . :"
                ));
            }
            for scope in &scopes {
                if !valid_scope(scope) {
                    return Err(format!(
                        "invalid scope '{scope}' in [roles.{role}]: expected visible ASCII without spaces, quotes or backslashes"
                    ));
                }
            }
            let granted = roles.entry(role).or_default();
            granted.extend(scopes);
        }
        Ok(RoleMap { roles })
    }

    /// Every configured role name (including `user`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    pub fn is_defined(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// The sorted union of the scopes granted by `roles`; unknown roles grant nothing.
    pub fn scopes_for<'a>(&self, roles: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for role in roles {
            if let Some(scopes) = self.roles.get(role) {
                out.extend(scopes.iter().cloned());
            }
        }
        out.into_iter().collect()
    }
}

/// Role names appear in JWT claims and CLI arguments: keep them plain.
pub fn valid_role_name(role: &str) -> bool {
    (1..=64).contains(&role.len())
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.:".contains(c))
}

/// RFC 6749 §3.3 scope-token characters.
pub fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 128
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_the_union_of_role_scopes() {
        let map = RoleMap::from_config([
            ("user".to_string(), vec!["profile".to_string()]),
            (
                "analyst".to_string(),
                vec!["docs:read".to_string(), "profile".to_string()],
            ),
        ])
        .unwrap();
        assert_eq!(
            map.scopes_for(["user", "analyst", "ghost"]),
            ["docs:read", "profile"]
        );
        assert!(map.is_defined("user") && !map.is_defined("ghost"));
    }

    #[test]
    fn user_role_exists_without_configuration() {
        let map = RoleMap::from_config([]).unwrap();
        assert!(map.is_defined(DEFAULT_ROLE));
        assert!(map.scopes_for([DEFAULT_ROLE]).is_empty());
    }

    #[test]
    fn bad_names_and_scopes_are_refused() {
        assert!(RoleMap::from_config([("Admin Role".to_string(), vec![])]).is_err());
        assert!(RoleMap::from_config([("a".to_string(), vec!["two words".to_string()])]).is_err());
        assert!(RoleMap::from_config([("a".to_string(), vec!["q\"".to_string()])]).is_err());
    }
}
