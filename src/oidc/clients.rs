//! OAuth clients: registration rules, secrets, and client authentication.
//!
//! A confidential client holds a secret of 256 random bits (shown once; only its SHA-256
//! is stored); a public client (a browser or native app) holds none and must use PKCE.
//! Redirect URIs are matched exactly, so registration is where they are vetted: `https`,
//! or `http` only on a loopback host, or (public clients) a private-use scheme (RFC 8252).
//! Clients are read through a short cache; deleting one also voids its tokens at once
//! through the revocation set.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::error::OAuthError;
use crate::audit::{Context, Outcome};
use crate::authz::{valid_client_id, valid_scope};
use crate::clock;
use crate::error::{Error, Result};
use crate::secret;
use crate::session::Revocations;
use crate::session::revocation::CLIENT_PREFIX;
use crate::store::{ClientRecord, Store, StoreError};

pub const AUTHORIZATION_CODE: &str = "authorization_code";
pub const REFRESH_TOKEN: &str = "refresh_token";
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// RFC 8693 token exchange.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8628 device authorization.
pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const GRANTS: [&str; 5] = [
    AUTHORIZATION_CODE,
    REFRESH_TOKEN,
    CLIENT_CREDENTIALS,
    TOKEN_EXCHANGE,
    DEVICE_CODE,
];

/// How long a client's row is trusted before it is read again (a rotated secret or a
/// changed redirect URI reaches other nodes within this; a deletion reaches them at once).
const CACHE_TTL_SECS: i64 = 5;
const CACHE_CAPACITY: usize = 10_000;
const MAX_URIS: usize = 20;

/// A registration request, before validation.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Chosen id; generated from the name when absent.
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub public: bool,
    /// Default: `authorization_code` + `refresh_token` with redirect URIs, else
    /// `client_credentials`.
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub skip_consent: bool,
    /// How its ID tokens are signed: `RS256` (default, what every library accepts) or
    /// `EdDSA` (OIDC Dynamic Client Registration's name for the setting).
    pub id_token_signed_response_alg: Option<String>,
}

/// Where clients whose id is a URL are described (client ID metadata documents): the
/// client an operator would have registered, with its id, or why there is none.
pub trait ClientDescriptions: Send + Sync {
    fn describe<'a>(
        &'a self,
        url: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<ClientSpec, String>> + Send + 'a>,
    >;

    /// Whether one more client may be created from a document now (a budget).
    fn may_create(&self) -> bool;

    /// The client id a document URL is given.
    fn client_id_for(&self, url: &str) -> String;
}

/// Whether a `client_id` is a URL (a metadata document's) rather than an id.
pub fn is_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// A change to a registered client: the fields it names are set, the others stay as they
/// are (`PUT` and `PATCH /admin/clients/{id}` alike), so a partial body never wipes what
/// it does not mention.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub id: Option<String>,
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub public: Option<bool>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub skip_consent: Option<bool>,
    pub id_token_signed_response_alg: Option<String>,
}

impl ClientPatch {
    /// The whole registration: this change over `current`.
    fn over(self, current: &ClientRecord) -> ClientSpec {
        ClientSpec {
            id: self.id,
            name: self.name.unwrap_or_else(|| current.name.clone()),
            redirect_uris: self
                .redirect_uris
                .unwrap_or_else(|| current.redirect_uris.clone()),
            post_logout_redirect_uris: self
                .post_logout_redirect_uris
                .unwrap_or_else(|| current.post_logout_redirect_uris.clone()),
            public: self.public.unwrap_or_else(|| current.is_public()),
            grant_types: self
                .grant_types
                .unwrap_or_else(|| current.grant_types.clone()),
            scopes: self.scopes.unwrap_or_else(|| current.scopes.clone()),
            skip_consent: self.skip_consent.unwrap_or(current.skip_consent),
            id_token_signed_response_alg: self
                .id_token_signed_response_alg
                .or_else(|| Some(current.id_token_alg.clone())),
        }
    }
}

impl ClientRecord {
    /// The client as the admin API and `tollgate client list` show it (never a secret).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "client_id": self.id,
            "name": self.name,
            "public": self.is_public(),
            "redirect_uris": self.redirect_uris,
            "post_logout_redirect_uris": self.post_logout_redirect_uris,
            "grant_types": self.grant_types,
            "scopes": self.scopes,
            "skip_consent": self.skip_consent,
            "id_token_signed_response_alg": self.id_token_alg,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "registered": self.registered,
            "last_used_at": self.last_used_at,
            "metadata_url": self.metadata_url,
        })
    }

    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

/// Client authentication as presented at the token, introspection and revocation
/// endpoints: `client_secret_basic`, `client_secret_post`, or just an id (public
/// clients).
#[derive(Debug, Clone)]
pub struct PresentedClient {
    pub id: String,
    pub secret: Option<String>,
}

struct Cached {
    client: Arc<ClientRecord>,
    fetched_at: i64,
}

pub struct Clients {
    store: Store,
    revocations: Arc<Revocations>,
    /// Client ID metadata documents, when `[oauth] client_id_metadata`.
    documents: Option<Arc<dyn ClientDescriptions>>,
    cache: RwLock<HashMap<String, Cached>>,
    /// When a failed authentication of each client was last audited.
    failures_audited: std::sync::Mutex<HashMap<String, i64>>,
}

/// At most one audit entry per client per this many seconds for failed authentication:
/// the attempts are evidence, but an unauthenticated caller must not be able to grow the
/// append-only log (and serialise its writers) at will.
const FAILURE_AUDIT_INTERVAL_SECS: i64 = 10;

impl Clients {
    pub fn new(store: Store, revocations: Arc<Revocations>) -> Clients {
        Clients {
            store,
            revocations,
            documents: None,
            cache: RwLock::new(HashMap::new()),
            failures_audited: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Registers a client. Returns it with its secret (confidential clients), which is
    /// never shown again.
    pub async fn create(
        &self,
        spec: ClientSpec,
        ctx: &Context,
    ) -> Result<(ClientRecord, Option<String>)> {
        self.insert(spec, false, None, ctx).await
    }

    /// Accepts client ID metadata documents: a URL as a client id names one.
    pub fn with_documents(mut self, documents: Arc<dyn ClientDescriptions>) -> Clients {
        self.documents = Some(documents);
        self
    }

    /// Registers a client that asked for itself (RFC 7591): it is marked so, listed as
    /// such, and deleted when unused.
    pub async fn register(
        &self,
        spec: ClientSpec,
        ctx: &Context,
    ) -> Result<(ClientRecord, Option<String>)> {
        self.insert(spec, true, None, ctx).await
    }

    async fn insert(
        &self,
        spec: ClientSpec,
        registered: bool,
        metadata_url: Option<&str>,
        ctx: &Context,
    ) -> Result<(ClientRecord, Option<String>)> {
        let now = clock::now();
        let id = match &spec.id {
            Some(id) => id.clone(),
            None => generated_id(&spec.name),
        };
        let secret = (!spec.public).then(secret::generate);
        let client = validate(
            spec,
            ClientRecord {
                id,
                secret_hash: secret.as_deref().map(secret::digest_hex),
                created_at: now,
                updated_at: now,
                registered,
                metadata_url: metadata_url.map(str::to_string),
                ..ClientRecord::default()
            },
        )?;
        let action = if registered {
            "client.registered"
        } else {
            "client.created"
        };
        let audit = ctx
            .entry(action, Outcome::Success, None)
            .with("client_id", client.id.as_str())
            .with("public", client.is_public())
            .with("grant_types", client.grant_types.clone())
            .with("scopes", client.scopes.clone())
            .with("redirect_uris", client.redirect_uris.clone())
            .with("metadata_url", metadata_url);
        match self.store.insert_client(&client, &audit).await {
            Err(StoreError::Conflict) => {
                return Err(Error::invalid(
                    "client_exists",
                    format!("a client with id '{}' exists or existed", client.id),
                ));
            }
            other => other?,
        }
        Ok((client, secret))
    }

    /// Replaces a client's settings; its id, kind (public or not) and secret stay.
    /// Applies `patch` to the client `id` (what it does not name stays).
    pub async fn patch(&self, id: &str, patch: ClientPatch, ctx: &Context) -> Result<ClientRecord> {
        let current = self.live_by_id(id).await?;
        self.update(id, patch.over(&current), ctx).await
    }

    pub async fn update(&self, id: &str, spec: ClientSpec, ctx: &Context) -> Result<ClientRecord> {
        let current = self.live_by_id(id).await?;
        if spec.public != current.is_public() {
            return Err(Error::invalid(
                "invalid_client_metadata",
                "a client cannot change between public and confidential; register a new one",
            ));
        }
        if spec.id.as_deref().is_some_and(|new| new != id) {
            return Err(Error::invalid(
                "invalid_client_metadata",
                "a client's id cannot change",
            ));
        }
        let client = validate(
            spec,
            ClientRecord {
                updated_at: clock::now(),
                ..(*current).clone()
            },
        )?;
        let audit = ctx
            .entry("client.updated", Outcome::Success, None)
            .with("client_id", id)
            .with("grant_types", client.grant_types.clone())
            .with("scopes", client.scopes.clone())
            .with("redirect_uris", client.redirect_uris.clone());
        // Scopes taken from the client take its sessions and tokens with them: refresh
        // tokens would otherwise go on minting what it may no longer have.
        let revoked = match self.store.update_client(&client, &audit).await {
            Err(StoreError::Conflict) => {
                return Err(Error::invalid(
                    "client_changed",
                    "the client was changed meanwhile; read it again and retry",
                ));
            }
            other => other?.ok_or(Error::NotFound("client"))?,
        };
        self.revocations.announce(&revoked, client.updated_at).await;
        self.forget(id);
        Ok(client)
    }

    /// A new secret for a confidential client (the old one stops working).
    pub async fn rotate_secret(&self, id: &str, ctx: &Context) -> Result<String> {
        let current = self.live_by_id(id).await?;
        if current.is_public() {
            return Err(Error::invalid(
                "public_client",
                "a public client has no secret",
            ));
        }
        let secret = secret::generate();
        let audit = ctx
            .entry("client.secret_rotated", Outcome::Success, None)
            .with("client_id", id);
        if !self
            .store
            .set_client_secret(id, &secret::digest_hex(&secret), clock::now(), &audit)
            .await?
        {
            return Err(Error::NotFound("client"));
        }
        self.forget(id);
        Ok(secret)
    }

    /// Deletes a client: its sessions end and every token it holds fails at once, here
    /// and (through the fan-out) on every node.
    pub async fn delete(&self, id: &str, ctx: &Context) -> Result<()> {
        if !valid_client_id(id) {
            return Err(Error::NotFound("client"));
        }
        let now = clock::now();
        let audit = ctx
            .entry("client.deleted", Outcome::Success, None)
            .with("client_id", id);
        let mut revoked = self
            .store
            .delete_client(id, now, &audit)
            .await?
            .ok_or(Error::NotFound("client"))?;
        revoked.push(format!("{CLIENT_PREFIX}{id}"));
        self.revocations.announce(&revoked, now).await;
        self.forget(id);
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<ClientRecord>> {
        Ok(self.store.list_clients().await?)
    }

    /// A live (not deleted) client, from the cache when fresh; a client ID metadata
    /// document's URL gives the client it describes.
    pub async fn live(&self, id: &str) -> Result<Arc<ClientRecord>> {
        match &self.documents {
            Some(docs) if is_url(id) => match docs.describe(id).await {
                Ok(spec) => self.described_by(id, spec, docs.as_ref()).await,
                // A client known from its document stays usable while the document
                // cannot be read (a busy or slow moment must not sign its users out);
                // a document that says something else replaces it once it can be.
                Err(why) => match self.live_by_id(&docs.client_id_for(id)).await {
                    Ok(known) => Ok(known),
                    Err(_) => Err(Error::invalid("invalid_client_metadata", why)),
                },
            },
            _ => self.live_by_id(id).await,
        }
    }

    /// The client a document describes, created or brought up to date.
    async fn described_by(
        &self,
        url: &str,
        spec: ClientSpec,
        docs: &dyn ClientDescriptions,
    ) -> Result<Arc<ClientRecord>> {
        let id = spec.id.clone().unwrap_or_default();
        let ctx = Context::system();
        match self.store.client_by_id(&id).await? {
            None if !docs.may_create() => {
                tracing::warn!(event = "document_clients_budget_spent", metadata_url = %url);
                return Err(Error::invalid(
                    "invalid_client_metadata",
                    "too many new clients from metadata documents this hour; try again later",
                ));
            }
            None => match self.insert(spec, true, Some(url), &ctx).await {
                // Another request created it a moment ago.
                Ok(_)
                | Err(Error::Invalid {
                    code: "client_exists",
                    ..
                }) => {}
                Err(e) => return Err(e),
            },
            // Deleted by an operator: it stays out.
            Some(c) if c.deleted_at.is_some() => return Err(Error::NotFound("client")),
            Some(c)
                if c.name != spec.name.trim()
                    || c.redirect_uris != spec.redirect_uris
                    || c.grant_types != spec.grant_types
                    || c.scopes != {
                        let mut s = spec.scopes.clone();
                        s.sort();
                        s.dedup();
                        s
                    } =>
            {
                self.update(&id, spec, &ctx).await?;
            }
            Some(_) => {}
        }
        self.live_by_id(&id).await
    }

    async fn live_by_id(&self, id: &str) -> Result<Arc<ClientRecord>> {
        // Only well-formed ids reach the database (a NUL would be a PostgreSQL error).
        if !valid_client_id(id) || self.revocations.set().is_client_revoked(id) {
            return Err(Error::NotFound("client"));
        }
        let now = clock::now();
        if let Some(c) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|c| now - c.fetched_at < CACHE_TTL_SECS)
        {
            return Ok(c.client.clone());
        }
        let client = self
            .store
            .client_by_id(id)
            .await?
            .filter(|c| c.deleted_at.is_none())
            .map(Arc::new)
            .ok_or(Error::NotFound("client"))?;
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(
            id.to_string(),
            Cached {
                client: client.clone(),
                fetched_at: now,
            },
        );
        Ok(client)
    }

    /// Authenticates a client (RFC 6749 §2.3): a confidential client by its secret, a
    /// public one by its id alone (it must then prove itself with PKCE). Every failure
    /// is the same `invalid_client`.
    pub async fn authenticate(
        &self,
        presented: &PresentedClient,
    ) -> std::result::Result<Arc<ClientRecord>, OAuthError> {
        let refused = || OAuthError::invalid_client("client authentication failed");
        let client = match self.live(&presented.id).await {
            Ok(c) => c,
            Err(Error::NotFound(_)) => return Err(refused()),
            Err(e) => return Err(e.into()),
        };
        match (&client.secret_hash, &presented.secret) {
            (Some(hash), Some(secret))
                if secret::constant_time_eq(&secret::digest_hex(secret), hash) =>
            {
                Ok(client)
            }
            (None, None) => Ok(client),
            _ => Err(refused()),
        }
    }

    /// Whether a failed authentication presenting `id` should be audited now: only for
    /// a client that exists, and at most once per interval each.
    pub async fn failure_worth_auditing(&self, id: &str) -> bool {
        if self.live(id).await.is_err() {
            return false;
        }
        let now = clock::now();
        let mut last = self
            .failures_audited
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.len() >= CACHE_CAPACITY {
            last.clear();
        }
        match last.get(id) {
            Some(at) if now - at < FAILURE_AUDIT_INTERVAL_SECS => false,
            _ => {
                last.insert(id.to_string(), now);
                true
            }
        }
    }

    fn forget(&self, id: &str) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// `<name as a slug>-<8 hex digits>`: readable in logs and configuration, never guessed.
fn generated_id(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 32 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "client" } else { slug };
    let suffix: String = secret::random_bytes::<4>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{slug}-{suffix}")
}

fn metadata_error(detail: impl Into<String>) -> Error {
    Error::invalid("invalid_client_metadata", detail)
}

/// Checks `spec` and writes its settings over `base` (which carries id, secret and
/// timestamps).
fn validate(spec: ClientSpec, base: ClientRecord) -> Result<ClientRecord> {
    if !valid_client_id(&base.id) {
        return Err(metadata_error(format!(
            "invalid client id '{}': expected 1-48 characters of a-z 0-9 - _ . starting with a letter or digit (and not 'tollgate')",
            base.id
        )));
    }
    let name = spec.name.trim();
    if name.is_empty()
        || name.chars().count() > 100
        || name
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c))
    {
        return Err(metadata_error(
            "the client name must be 1-100 printable characters (no direction overrides or invisible characters)",
        ));
    }
    let mut grants = spec.grant_types.clone();
    if grants.is_empty() {
        grants = if spec.redirect_uris.is_empty() {
            vec![CLIENT_CREDENTIALS.to_string()]
        } else {
            vec![AUTHORIZATION_CODE.to_string(), REFRESH_TOKEN.to_string()]
        };
    }
    grants.sort();
    grants.dedup();
    if let Some(bad) = grants.iter().find(|g| !GRANTS.contains(&g.as_str())) {
        return Err(metadata_error(format!(
            "unknown grant type '{bad}': expected authorization_code, refresh_token, client_credentials, {TOKEN_EXCHANGE} or {DEVICE_CODE}"
        )));
    }
    let has = |g: &str| grants.iter().any(|x| x == g);
    if spec.public && has(CLIENT_CREDENTIALS) {
        return Err(metadata_error(
            "a public client cannot use client_credentials: it has no secret",
        ));
    }
    if has(REFRESH_TOKEN) && !has(AUTHORIZATION_CODE) && !has(DEVICE_CODE) {
        return Err(metadata_error(
            "refresh_token needs authorization_code or the device grant: refresh tokens come from those",
        ));
    }
    if spec.public && has(TOKEN_EXCHANGE) {
        return Err(metadata_error(
            "a public client cannot use token exchange: it cannot authenticate",
        ));
    }
    if has(AUTHORIZATION_CODE) && spec.redirect_uris.is_empty() {
        return Err(metadata_error(
            "authorization_code needs at least one redirect URI",
        ));
    }
    if spec.redirect_uris.len() > MAX_URIS || spec.post_logout_redirect_uris.len() > MAX_URIS {
        return Err(metadata_error(format!(
            "at most {MAX_URIS} URIs of each kind"
        )));
    }
    for uri in spec
        .redirect_uris
        .iter()
        .chain(&spec.post_logout_redirect_uris)
    {
        check_redirect_uri(uri, spec.public).map_err(metadata_error)?;
    }
    let mut scopes = spec.scopes.clone();
    scopes.sort();
    scopes.dedup();
    if let Some(bad) = scopes.iter().find(|s| !valid_scope(s)) {
        return Err(metadata_error(format!("invalid scope '{bad}'")));
    }
    let id_token_alg = match spec.id_token_signed_response_alg.as_deref() {
        // Absent: what the client had (an update), else the default.
        None if !base.id_token_alg.is_empty() => base.id_token_alg.as_str(),
        None | Some("RS256") => "RS256",
        Some("EdDSA") => "EdDSA",
        Some(other) => {
            return Err(metadata_error(format!(
                "id_token_signed_response_alg must be RS256 or EdDSA, got '{other}'"
            )));
        }
    };
    let mut redirect_uris = spec.redirect_uris;
    redirect_uris.dedup();
    let mut post_logout = spec.post_logout_redirect_uris;
    post_logout.dedup();
    Ok(ClientRecord {
        name: name.to_string(),
        redirect_uris,
        post_logout_redirect_uris: post_logout,
        grant_types: grants,
        scopes,
        skip_consent: spec.skip_consent,
        id_token_alg: id_token_alg.to_string(),
        ..base.clone()
    })
}

/// Characters that change how a name reads without being seen: zero-width ones and the
/// bidirectional overrides (a consent page must show the name it says).
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// A redirect URI a client may register (RFC 9700 §2.1, RFC 8252 §7).
pub fn check_redirect_uri(uri: &str, public: bool) -> std::result::Result<(), String> {
    let refuse = |why: &str| Err(format!("redirect URI '{uri}': {why}"));
    if uri.len() > 2000 || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("too long, or contains spaces or control characters");
    }
    // Browsers read `\` as `/`, other HTTP clients do not: `http://127.0.0.1\@evil/` is
    // a loopback address to one and evil's to another.
    if uri.contains('\\') {
        return refuse("must not contain a backslash");
    }
    let Ok(url) = url::Url::parse(uri) else {
        return refuse("not an absolute URI");
    };
    if url.fragment().is_some() {
        return refuse("must not contain a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("must not contain credentials");
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Domain("localhost")) => Ok(()),
            _ => refuse("plain http is only allowed on a loopback host"),
        },
        "javascript" | "data" | "file" | "vbscript" | "ftp" => refuse("scheme not allowed"),
        // A native app's private-use scheme, named after a domain it controls.
        scheme if public && scheme.contains('.') => Ok(()),
        _ => refuse(
            "expected https, http on a loopback host, or (public clients) a private-use scheme like com.example.app",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uris: &[&str], public: bool, grants: &[&str]) -> ClientSpec {
        ClientSpec {
            name: "Docs app".into(),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            public,
            grant_types: grants.iter().map(|s| s.to_string()).collect(),
            ..ClientSpec::default()
        }
    }

    fn base() -> ClientRecord {
        ClientRecord {
            id: "docs-1".into(),
            ..ClientRecord::default()
        }
    }

    #[test]
    fn redirect_uris_are_vetted() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:8000/cb",
            "http://[::1]/cb",
            "http://localhost:3000/callback?x=1",
        ] {
            assert!(check_redirect_uri(ok, false).is_ok(), "{ok}");
        }
        assert!(check_redirect_uri("com.example.app:/cb", true).is_ok());
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "/relative",
            "javascript:alert(1)",
            "com.example.app:/cb",
            "https://app.example.com/a b",
            "http://127.0.0.1\\@evil.example/cb",
        ] {
            assert!(check_redirect_uri(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn grants_default_by_shape_and_must_fit_the_client() {
        let web = validate(spec(&["https://a.example/cb"], false, &[]), base()).unwrap();
        assert_eq!(web.grant_types, [AUTHORIZATION_CODE, REFRESH_TOKEN]);
        let service = validate(spec(&[], false, &[]), base()).unwrap();
        assert_eq!(service.grant_types, [CLIENT_CREDENTIALS]);
        assert!(validate(spec(&[], true, &[CLIENT_CREDENTIALS]), base()).is_err());
        assert!(validate(spec(&[], false, &[AUTHORIZATION_CODE]), base()).is_err());
        assert!(
            validate(
                spec(&["https://a.example/cb"], false, &[REFRESH_TOKEN]),
                base()
            )
            .is_err()
        );
        assert!(validate(spec(&[], false, &["password"]), base()).is_err());
    }

    #[test]
    fn names_say_what_they_show() {
        for bad in [
            "Tollgate \u{202e}liamG",
            "\u{200b}",
            "a\u{2066}b",
            "\u{feff}x",
        ] {
            let s = ClientSpec {
                name: bad.into(),
                ..spec(&[], false, &[])
            };
            assert!(validate(s, base()).is_err(), "{bad:?}");
        }
        let s = ClientSpec {
            name: "Équipe 文档".into(),
            ..spec(&[], false, &[])
        };
        assert!(validate(s, base()).is_ok());
    }

    #[test]
    fn ids_are_plain_and_generated_ids_carry_the_name() {
        assert!(valid_client_id("reports"));
        assert!(!valid_client_id("Reports"));
        assert!(!valid_client_id("-x"));
        assert!(!valid_client_id("tollgate"));
        assert!(!valid_client_id(&"a".repeat(49)));
        assert!(!valid_client_id("0190a0b0-0000-7000-8000-000000000000"));
        let id = generated_id("My Docs App!");
        assert!(
            id.starts_with("my-docs-app-") && valid_client_id(&id),
            "{id}"
        );
        assert!(generated_id("!!!").starts_with("client-"));
    }
}
