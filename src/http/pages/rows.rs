//! How a session and an API key appear in a table, on the account page and on a user's
//! console page alike.

use minijinja::{Value, context};

use crate::store::{ApiKeyRecord, SessionRecord};
use crate::ui::format;

/// A session: its device (read from the user agent), address and times; the application
/// it belongs to unless it is Tollgate's own sign-in; `current` marks the viewer's own.
pub fn session(s: &SessionRecord, current: Option<&str>) -> Value {
    context! {
        id => &s.id, current => current == Some(s.id.as_str()),
        device => format::device(s.user_agent.as_deref()), ip => s.ip.clone(),
        client_id => (s.client_id != crate::authz::FIRST_PARTY_CLIENT).then(|| s.client_id.clone()),
        created_at => s.created_at, last_used_at => s.last_used_at,
    }
}

/// An API key (never the key itself): its name, scopes as words, and times.
pub fn api_key(k: &ApiKeyRecord) -> Value {
    context! {
        id => &k.id, name => &k.name,
        scopes => k.scopes.split_whitespace().map(str::to_string).collect::<Vec<_>>(),
        created_at => k.created_at, expires_at => k.expires_at, last_used_at => k.last_used_at,
        revoked => k.revoked_at.is_some(),
    }
}
