//! API keys: long-lived credentials for scripts and services, sent as
//! `Authorization: Bearer tg_…`.
//!
//! A key is `tg_` plus 256 random bits; only its SHA-256 is stored. A key grants the
//! scopes it was created with, and never more than its user's roles grant at the time of
//! use (no scopes listed: everything the roles grant). Verification is served from memory:
//! a key's row and its user are looked up once and reused for [`CACHE_TTL_SECS`], so a
//! revoked key, a disabled user or a changed role takes effect within that time, and a
//! busy key costs one database read per interval, not per request. Last-use times are
//! collected in memory and written in batches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::audit::{Context, Outcome};
use crate::authz::{RoleMap, valid_scope};
use crate::clock;
use crate::error::{Error, Result};
use crate::secret;
use crate::store::{ApiKeyRecord, NewApiKey, Store, UserRecord};

pub const API_KEY_PREFIX: &str = "tg_";
/// How long a key's database state is trusted before it is read again.
pub const CACHE_TTL_SECS: i64 = 5;
const CACHE_CAPACITY: usize = 100_000;
/// Refused keys are remembered apart, in a smaller map: a flood of made-up keys must not
/// evict the keys in use.
const REFUSED_CAPACITY: usize = 10_000;

/// The identity a valid key stands for.
#[derive(Debug)]
pub struct ApiKeyPrincipal {
    pub key_id: String,
    pub user_id: String,
    pub email: String,
    pub email_verified: bool,
    /// Space-separated effective scopes.
    pub scope: String,
    /// The owner's roles (AI quotas follow them).
    pub roles: Vec<String>,
    pub expires_at: Option<i64>,
}

struct CacheEntry {
    principal: Arc<ApiKeyPrincipal>,
    fetched_at: i64,
}

pub struct ApiKeys {
    store: Store,
    roles: RoleMap,
    cache: RwLock<HashMap<Box<str>, CacheEntry>>,
    /// Unknown, revoked or disabled-user keys → when that was read.
    refused: RwLock<HashMap<Box<str>, i64>>,
    used: Mutex<HashMap<String, i64>>,
}

impl ApiKeys {
    pub fn new(store: Store, roles: RoleMap) -> ApiKeys {
        ApiKeys {
            store,
            roles,
            cache: RwLock::new(HashMap::new()),
            refused: RwLock::new(HashMap::new()),
            used: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a bearer credential is shaped like an API key (rather than a JWT).
    pub fn looks_like_key(credential: &str) -> bool {
        credential.starts_with(API_KEY_PREFIX)
    }

    /// Creates a key for `user`; returns the key (shown once) and its record.
    pub async fn create(
        &self,
        user: &UserRecord,
        name: &str,
        scopes: &[String],
        ttl: Option<std::time::Duration>,
        ctx: &Context,
    ) -> Result<(String, ApiKeyRecord)> {
        let granted = self.roles.scopes_for(user.roles.iter().map(String::as_str));
        for s in scopes {
            if !valid_scope(s) {
                return Err(Error::invalid(
                    "invalid_scope",
                    format!("invalid scope '{s}'"),
                ));
            }
            if !granted.contains(s) {
                return Err(Error::invalid(
                    "scope_not_granted",
                    format!("the user's roles do not grant scope '{s}'"),
                ));
            }
        }
        if user.disabled {
            return Err(Error::AccountDisabled);
        }
        let now = clock::now();
        let key = format!("{API_KEY_PREFIX}{}", secret::generate());
        let id = uuid::Uuid::new_v4().to_string();
        let scopes = scopes.join(" ");
        let expires_at = ttl.map(|t| now + t.as_secs() as i64);
        let audit = ctx
            .entry("apikey.created", Outcome::Success, Some(&user.id))
            .with("key_id", id.as_str())
            .with("name", name)
            .with("scopes", scopes.as_str())
            .with("expires_at", expires_at);
        self.store
            .insert_api_key(
                &NewApiKey {
                    id: &id,
                    user_id: &user.id,
                    key_hash: &secret::digest_hex(&key),
                    name,
                    scopes: &scopes,
                    now,
                    expires_at,
                },
                &audit,
            )
            .await?;
        let record = ApiKeyRecord {
            id,
            user_id: user.id.clone(),
            name: name.to_string(),
            scopes,
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        Ok((key, record))
    }

    /// Verifies a presented key.
    pub async fn verify(&self, key: &str) -> Result<Arc<ApiKeyPrincipal>> {
        if !Self::looks_like_key(key) || key.len() > 128 {
            return Err(Error::InvalidToken);
        }
        let hash = secret::digest_hex(key);
        let now = clock::now();
        let fresh = |at: i64| now - at < CACHE_TTL_SECS;
        let cached = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash.as_str())
            .filter(|e| fresh(e.fetched_at))
            .map(|e| e.principal.clone());
        let principal = match cached {
            Some(p) => p,
            None => {
                let refused = self
                    .refused
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(hash.as_str())
                    .is_some_and(|at| fresh(*at));
                if refused {
                    return Err(Error::InvalidToken);
                }
                match self.load(&hash).await? {
                    Some(p) => {
                        self.remember(hash, p.clone(), now);
                        p
                    }
                    None => {
                        self.remember_refused(hash, now);
                        return Err(Error::InvalidToken);
                    }
                }
            }
        };
        if principal.expires_at.is_some_and(|e| now >= e) {
            return Err(Error::TokenExpired);
        }
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(principal.key_id.clone(), now);
        crate::telemetry::record_user(&principal.user_id);
        Ok(principal)
    }

    async fn load(&self, hash: &str) -> Result<Option<Arc<ApiKeyPrincipal>>> {
        let Some(key) = self.store.api_key_by_hash(hash).await? else {
            return Ok(None);
        };
        if key.revoked_at.is_some() {
            return Ok(None);
        }
        let Some(user) = self.store.user_by_id(&key.user_id).await? else {
            return Ok(None);
        };
        if user.disabled {
            return Ok(None);
        }
        let granted = self.roles.scopes_for(user.roles.iter().map(String::as_str));
        let scope = if key.scopes.is_empty() {
            granted.join(" ")
        } else {
            key.scopes
                .split_ascii_whitespace()
                .filter(|s| granted.iter().any(|g| g == s))
                .collect::<Vec<_>>()
                .join(" ")
        };
        Ok(Some(Arc::new(ApiKeyPrincipal {
            key_id: key.id,
            user_id: user.id,
            email: user.email,
            email_verified: user.email_verified,
            scope,
            roles: user.roles,
            expires_at: key.expires_at,
        })))
    }

    fn remember_refused(&self, hash: String, now: i64) {
        let mut refused = self.refused.write().unwrap_or_else(|p| p.into_inner());
        if refused.len() >= REFUSED_CAPACITY {
            refused.retain(|_, at| now - *at < CACHE_TTL_SECS);
            if refused.len() >= REFUSED_CAPACITY {
                refused.clear();
            }
        }
        refused.insert(hash.into(), now);
    }

    fn remember(&self, hash: String, principal: Arc<ApiKeyPrincipal>, now: i64) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, e| now - e.fetched_at < CACHE_TTL_SECS);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            hash.into(),
            CacheEntry {
                principal,
                fetched_at: now,
            },
        );
    }

    /// Revokes a key (with `owner`, only one of theirs: another's looks unknown); this
    /// node forgets it at once, others within [`CACHE_TTL_SECS`].
    pub async fn revoke(&self, key_id: &str, owner: Option<&str>, ctx: &Context) -> Result<bool> {
        let audit = ctx
            .entry("apikey.revoked", Outcome::Success, None)
            .with("key_id", key_id);
        let revoked = self
            .store
            .revoke_api_key(key_id, owner, clock::now(), audit)
            .await?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| e.principal.key_id != key_id);
        Ok(revoked)
    }

    /// Whether the key with this id exists, is not revoked and has not expired (read from
    /// the database, not the cache: for deeper checks).
    pub async fn is_live(&self, key_id: &str) -> Result<bool> {
        let now = clock::now();
        Ok(self
            .store
            .api_key_by_id(key_id)
            .await?
            .is_some_and(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| now < e)))
    }

    pub async fn list(&self, user_id: &str) -> Result<Vec<ApiKeyRecord>> {
        Ok(self.store.api_keys_of(user_id).await?)
    }

    /// Writes the last-use times collected since the previous flush.
    pub async fn flush_last_used(&self) -> Result<()> {
        let used: Vec<(String, i64)> =
            std::mem::take(&mut *self.used.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        Ok(self.store.touch_api_keys(&used).await?)
    }
}
