//! Walking the chain: the first entry that does not fit, named.
//!
//! Entries are fed in sequence order (a page at a time, so the log can be any size). The
//! walker expects sequence numbers 1, 2, 3, … without gaps, each entry linked to the hash
//! of the one before, each hash matching the entry's fields, and every signed checkpoint
//! matching the entry at its position. At the end, the head row and the newest checkpoint
//! must not point past the last entry (a deleted tail).

use std::collections::BTreeMap;

use crate::store::AuditRecord;
use crate::store::chain::{self, Fields, GENESIS};

/// The first problem found: which entry, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub problem: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit entry {}: {}", self.seq, self.problem)
    }
}

/// What an intact log looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub entries: i64,
    pub checkpoints: usize,
    pub last_hash: String,
    /// Entries after the newest signed checkpoint: covered by the chain alone, so someone
    /// able to write the database could still drop or rewrite them undetected.
    pub unsigned_tail: i64,
}

impl Summary {
    /// The result as `tollgate audit verify` prints it and `POST /admin/audit/verify`
    /// answers (`expect` is what a later check passes to prove nothing was dropped).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "intact": true,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "unsigned_tail": self.unsigned_tail,
            "last_hash": self.last_hash,
            "expect": format!("{}:{}", self.entries, self.last_hash),
        })
    }
}

pub struct Walker {
    /// Verified checkpoints: seq → hash.
    checkpoints: BTreeMap<i64, String>,
    next_seq: i64,
    prev_hash: String,
}

impl Walker {
    pub fn new(checkpoints: BTreeMap<i64, String>) -> Walker {
        Walker {
            checkpoints,
            next_seq: 1,
            prev_hash: GENESIS.to_string(),
        }
    }

    pub fn feed(&mut self, e: &AuditRecord) -> Result<(), Break> {
        let at = |problem: String| Break {
            seq: e.seq.min(self.next_seq),
            problem,
        };
        if e.seq != self.next_seq {
            return Err(if e.seq > self.next_seq {
                at(format!(
                    "missing: the log jumps from entry {} to entry {} (deleted)",
                    self.next_seq - 1,
                    e.seq
                ))
            } else {
                at(format!(
                    "appears twice or out of order (found entry {} after entry {})",
                    e.seq,
                    self.next_seq - 1
                ))
            });
        }
        if e.prev_hash != self.prev_hash {
            return Err(at(
                "does not follow the entry before it (its link to the previous hash is broken: entries were reordered, replaced or deleted)".into(),
            ));
        }
        let computed = chain::entry_hash(
            &Fields {
                seq: e.seq,
                at_ms: e.at_ms,
                action: &e.action,
                outcome: &e.outcome,
                actor: &e.actor,
                subject: e.subject.as_deref(),
                ip: e.ip.as_deref(),
                user_agent: e.user_agent.as_deref(),
                detail: &e.detail,
            },
            &e.prev_hash,
        );
        if computed != e.hash {
            return Err(at("was altered (its contents do not match its hash)".into()));
        }
        if let Some(signed) = self.checkpoints.get(&e.seq)
            && *signed != e.hash
        {
            return Err(at(
                "does not match the signed checkpoint at this position (the chain was rewritten)"
                    .into(),
            ));
        }
        self.next_seq += 1;
        self.prev_hash = e.hash.clone();
        Ok(())
    }

    /// Ends the walk: `head` is the stored `(seq, hash)` of the last append.
    pub fn finish(self, head: (i64, String)) -> Result<Summary, Break> {
        let last = self.next_seq - 1;
        if let Some((&seq, _)) = self.checkpoints.range(last + 1..).next() {
            return Err(Break {
                seq: last + 1,
                problem: format!(
                    "missing: a signed checkpoint covers entry {seq} but the log ends at entry {last} (deleted)"
                ),
            });
        }
        if head.0 != last || head.1 != self.prev_hash {
            return Err(Break {
                seq: last + 1,
                problem: format!(
                    "missing: the chain's head records entry {} but the log ends at entry {last} (deleted, or the head was edited)",
                    head.0
                ),
            });
        }
        let newest = self.checkpoints.keys().next_back().copied().unwrap_or(0);
        Ok(Summary {
            entries: last,
            checkpoints: self.checkpoints.len(),
            last_hash: self.prev_hash,
            unsigned_tail: last - newest,
        })
    }
}

/// Verifies the whole log in `store` against the key directory `keys_dir`: `Ok(Err(_))`
/// names the first bad entry; `Err(_)` means the check itself could not run.
///
/// `expect` is a `(seq, hash)` recorded outside the database earlier (from a previous
/// run's output): it is held to like a signed checkpoint, so even someone who could
/// delete checkpoints cannot rewrite what it covers.
pub async fn verify_log(
    store: &crate::store::Store,
    keys_dir: &std::path::Path,
    expect: Option<(i64, String)>,
) -> crate::error::Result<Result<Summary, Break>> {
    let keys = crate::keys::verification_keys(keys_dir)?;
    let mut signed = BTreeMap::new();
    for (seq, token) in store.audit_checkpoints().await? {
        match super::checkpoint::open(&token, &keys) {
            Ok((claimed, hash)) if claimed == seq => {
                signed.insert(seq, hash);
            }
            Ok(_) => {
                return Ok(Err(Break {
                    seq,
                    problem: "its checkpoint was moved (the signed position differs)".into(),
                }));
            }
            Err(why) => {
                return Ok(Err(Break {
                    seq,
                    problem: format!("its checkpoint cannot be trusted: {why}"),
                }));
            }
        }
    }
    let checkpoints = signed.len();
    if let Some((seq, hash)) = expect {
        signed.insert(seq, hash);
    }
    let mut walker = Walker::new(signed);
    let mut pages = super::Pages::default();
    while let Some(page) = pages.next(store).await? {
        for e in &page {
            if let Err(b) = walker.feed(e) {
                return Ok(Err(b));
            }
        }
    }
    let head = store.audit_head().await?;
    Ok(walker.finish(head).map(|s| Summary { checkpoints, ..s }))
}
