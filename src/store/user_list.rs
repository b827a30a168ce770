//! The admin console's user list: a page of accounts in email order under a filter, paged
//! by the last email seen (keyset), so page 2,000 costs what page 1 does. The SQL is
//! built from a fixed set of conditions (never from input) so each variant gets its own
//! plan and walks the index that fits it (`0008_console.sql`).

use std::collections::HashMap;

use sqlx::Row;

use super::users::{UserRecord, user_from_row};
use super::{Store, StoreResult, on_pool};

/// Which accounts, from where, how many.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Emails starting with this (lower case, as stored).
    pub prefix: String,
    /// Members of this role.
    pub role: Option<String>,
    pub state: Option<UserState>,
    /// The last email of the previous page.
    pub after: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    Active,
    Disabled,
    Unverified,
}

impl UserState {
    pub fn parse(s: &str) -> Option<UserState> {
        Some(match s {
            "active" => UserState::Active,
            "disabled" => UserState::Disabled,
            "unverified" => UserState::Unverified,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            UserState::Active => "active",
            UserState::Disabled => "disabled",
            UserState::Unverified => "unverified",
        }
    }
}

/// The largest code point: every string starting with a prefix sorts below the prefix
/// followed by it (byte order, which both backends use here).
const AFTER_EVERY_CHAR: char = '\u{10FFFF}';

impl UserQuery {
    /// The statement for this query on a backend whose byte-order comparison of `email`
    /// is spelled `email_bytes`, and its text parameters in order.
    fn sql(&self, email_bytes: &str) -> (String, Vec<String>) {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut param = |value: String| {
            params.push(value);
            format!("${}", params.len())
        };
        if !self.prefix.is_empty() {
            let from = param(self.prefix.clone());
            let to = param(format!("{}{AFTER_EVERY_CHAR}", self.prefix));
            conditions.push(format!("{email_bytes} >= {from} AND {email_bytes} < {to}"));
        }
        if let Some(after) = &self.after {
            let after = param(after.clone());
            conditions.push(format!("{email_bytes} > {after}"));
        }
        if let Some(role) = &self.role {
            let role = param(role.clone());
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.role = {role})"
            ));
        }
        match self.state {
            Some(UserState::Active) => conditions.push("u.disabled = FALSE".into()),
            Some(UserState::Disabled) => conditions.push("u.disabled = TRUE".into()),
            Some(UserState::Unverified) => conditions.push("u.email_verified = FALSE".into()),
            None => {}
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let limit = param(String::new());
        (
            format!(
                "SELECT u.id, u.email, u.password_hash, u.disabled, u.email_verified, u.created_at
                 FROM users u {filter} ORDER BY {email_bytes} LIMIT {limit}"
            ),
            params,
        )
    }
}

impl UserQuery {
    /// The page's statement with its values written in as literals, for running the same
    /// query in `sqlite3` or `psql` (the user-list benchmark's baseline). Never executed
    /// by Tollgate itself.
    #[doc(hidden)]
    pub fn literal_sql(&self, postgres: bool) -> String {
        let email_bytes = if postgres {
            "u.email COLLATE \"C\""
        } else {
            "u.email"
        };
        let (mut sql, params) = self.sql(email_bytes);
        let limit = self.limit.to_string();
        let values: Vec<String> = params[..params.len() - 1]
            .iter()
            .map(|p| format!("'{}'", p.replace('\'', "''")))
            .chain([limit])
            .collect();
        // Highest number first, so `$1` does not match the start of `$10`.
        for (i, v) in values.iter().enumerate().rev() {
            sql = sql.replace(&format!("${}", i + 1), v);
        }
        sql
    }
}

impl Store {
    /// A page of accounts with their roles, in two round trips.
    pub async fn user_page(&self, q: &UserQuery) -> StoreResult<Vec<UserRecord>> {
        let email_bytes = match self {
            Store::Sqlite(_) => "u.email",
            Store::Postgres(_) => "u.email COLLATE \"C\"",
        };
        let (sql, params) = q.sql(email_bytes);
        let text_params = &params[..params.len() - 1];
        on_pool!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in text_params {
                query = query.bind(p);
            }
            let rows = query.bind(q.limit).fetch_all(pool).await?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<String> = rows
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?;
            let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
            let roles_sql = format!(
                "SELECT user_id, role FROM user_roles WHERE user_id IN ({}) ORDER BY role",
                placeholders.join(", ")
            );
            let mut roles_query = sqlx::query(sqlx::AssertSqlSafe(roles_sql));
            for id in &ids {
                roles_query = roles_query.bind(id);
            }
            let role_rows = roles_query.fetch_all(pool).await?;
            let mut roles: HashMap<String, Vec<String>> = HashMap::new();
            for r in role_rows {
                roles
                    .entry(r.try_get("user_id")?)
                    .or_default()
                    .push(r.try_get("role")?);
            }
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let id: String = row.try_get("id")?;
                let roles = roles.remove(&id).unwrap_or_default();
                out.push(user_from_row!(row, roles));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_come_from_a_fixed_list_and_values_are_parameters() {
        let q = UserQuery {
            prefix: "ann'".into(),
            role: Some("admin".into()),
            state: Some(UserState::Disabled),
            after: Some("ann@b".into()),
            limit: 50,
        };
        let (sql, params) = q.sql("u.email");
        assert!(!sql.contains("ann"), "{sql}");
        assert!(sql.contains("u.disabled = TRUE"));
        assert_eq!(params.len(), 5);
        assert_eq!(params[1], format!("ann'{AFTER_EVERY_CHAR}"));
        assert!(sql.ends_with("LIMIT $5"));
    }
}
