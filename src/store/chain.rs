//! The chain's hash: what makes an edit, a deletion or a reordering visible.
//!
//! An entry's hash is SHA-256 over a JSON array of its sequence number, its fields and the
//! previous entry's hash. The sequence number is inside the hash, so moving an entry to
//! another position changes what its hash should be; the previous hash is inside, so
//! removing an entry breaks the link of the one after it.

use aws_lc_rs::digest;
use serde_json::json;

/// The "previous hash" of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields an entry's hash covers, as stored.
pub struct Fields<'a> {
    pub seq: i64,
    pub at_ms: i64,
    pub action: &'a str,
    pub outcome: &'a str,
    pub actor: &'a str,
    pub subject: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// The stored JSON text, hashed as stored.
    pub detail: &'a str,
}

/// Hex SHA-256 of the entry's canonical form chained to `prev_hash`.
pub fn entry_hash(f: &Fields<'_>, prev_hash: &str) -> String {
    let canonical = json!([
        f.seq,
        f.at_ms,
        f.action,
        f.outcome,
        f.actor,
        f.subject,
        f.ip,
        f.user_agent,
        f.detail,
        prev_hash
    ])
    .to_string();
    let d = digest::digest(&digest::SHA256, canonical.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(seq: i64, action: &str) -> Fields<'_> {
        Fields {
            seq,
            at_ms: 1,
            action,
            outcome: "success",
            actor: "cli",
            subject: None,
            ip: None,
            user_agent: None,
            detail: "{}",
        }
    }

    #[test]
    fn every_field_and_the_link_change_the_hash() {
        let base = entry_hash(&fields(1, "a"), GENESIS);
        assert_eq!(base, entry_hash(&fields(1, "a"), GENESIS));
        assert_ne!(base, entry_hash(&fields(2, "a"), GENESIS));
        assert_ne!(base, entry_hash(&fields(1, "b"), GENESIS));
        assert_ne!(base, entry_hash(&fields(1, "a"), &"1".repeat(64)));
        let mut f = fields(1, "a");
        f.subject = Some("");
        assert_ne!(base, entry_hash(&f, GENESIS), "None and empty differ");
    }
}
