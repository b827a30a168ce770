//! The device authorization grant (RFC 8628) for CLIs, TVs and agents without a browser:
//! the device asks for a device code and a user code, shows the person the user code and
//! `/ui/device`, and polls the token endpoint while the person signs in there and allows
//! or denies it.
//!
//! User codes are 8 letters from an alphabet without vowels (no words, no look-alikes:
//! `BCDFGHJKLMNPQRSTVWXZ`, §6.1), about 34.6 bits; typing them is rate-limited per
//! address (`device-code-ip`), and a code lives `[oauth] device_code_ttl` (10 minutes).
//! Both codes are stored hashed. A device polling sooner than its interval gets
//! `slow_down` and 5 more seconds of interval (§3.5).

use super::authorize::BrowserSession;
use super::clients::DEVICE_CODE;
use super::error::OAuthError;
use super::grants::{Params, TokenResponse, param};
use super::{OidcProvider, scope};
use crate::audit::{Context, Outcome};
use crate::clock;
use crate::error::Result;
use crate::secret;
use crate::session::{ClientInfo, SessionTerms};
use crate::store::{ClientRecord, DeviceDecision, DeviceRecord, NewDeviceAuthorization, Polled};

const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// What the device is told (RFC 8628 §3.2).
#[derive(Debug, serde::Serialize)]
pub struct DeviceStart {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: u64,
    pub interval: u64,
}

/// A pending request, as the person sees it before deciding.
#[derive(Debug)]
pub struct DeviceRequest {
    /// The code as the device shows it (`XXXX-XXXX`), for the person to compare.
    pub user_code: String,
    pub client: std::sync::Arc<ClientRecord>,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
}

/// A new user code, shown as `XXXX-XXXX`.
fn new_user_code() -> String {
    let bytes = secret::random_bytes::<USER_CODE_LEN>();
    let mut code = String::with_capacity(USER_CODE_LEN + 1);
    for (i, b) in bytes.iter().enumerate() {
        if i == USER_CODE_LEN / 2 {
            code.push('-');
        }
        // 256 is not a multiple of 20: the first 240 values map evenly, the rest are
        // folded in with a bias of under 0.4 bits over the whole code.
        code.push(USER_CODE_ALPHABET[*b as usize % USER_CODE_ALPHABET.len()] as char);
    }
    code
}

/// A typed user code in its one stored form: letters only, upper case; `None` when it
/// cannot be one.
pub fn normalise_user_code(typed: &str) -> Option<String> {
    let letters: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (letters.len() == USER_CODE_LEN && letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(letters)
}

fn user_code_hash(normalised: &str) -> String {
    secret::digest_hex(&format!("user-code:{normalised}"))
}

impl OidcProvider {
    /// Starts a device authorization for `client` (RFC 8628 §3.1).
    pub async fn start_device(
        &self,
        client: &ClientRecord,
        params: &Params,
    ) -> std::result::Result<DeviceStart, OAuthError> {
        if !client.allows_grant(DEVICE_CODE) {
            return Err(OAuthError::unauthorized_client(
                "this client may not use the device authorization grant",
            ));
        }
        let scopes = scope::parse(param(params, "scope"))?;
        scope::check_allowed(&scopes, &client.scopes)?;
        let resource = self.resource_param(params)?;
        let device_code = secret::generate();
        let now = clock::now();
        let ttl = self.oauth.device_code_ttl.as_secs();
        let interval = self.oauth.device_poll_interval.as_secs();
        for _ in 0..5 {
            let user_code = new_user_code();
            let normalised = normalise_user_code(&user_code).unwrap_or_default();
            let inserted = self
                .store
                .insert_device_authorization(&NewDeviceAuthorization {
                    device_code_hash: &secret::digest_hex(&device_code),
                    user_code_hash: &user_code_hash(&normalised),
                    client_id: &client.id,
                    scope: &scopes.join(" "),
                    resource: resource.as_deref(),
                    now,
                    expires_at: now + ttl as i64,
                    interval_secs: interval as i64,
                })
                .await?;
            if inserted {
                let page = format!("{}/ui/device", self.issuer);
                return Ok(DeviceStart {
                    device_code,
                    verification_uri_complete: format!("{page}?user_code={user_code}"),
                    verification_uri: page,
                    user_code,
                    expires_in: ttl,
                    interval,
                });
            }
        }
        Err(OAuthError::temporarily_unavailable(
            "could not draw a free user code; try again",
        ))
    }

    /// The pending request a typed user code names, for the person to decide on.
    pub async fn device_request(&self, typed: &str) -> Result<Option<DeviceRequest>> {
        let Some(code) = normalise_user_code(typed) else {
            return Ok(None);
        };
        let Some(d) = self
            .store
            .pending_device(&user_code_hash(&code), clock::now())
            .await?
        else {
            return Ok(None);
        };
        let Ok(client) = self.clients.live(&d.client_id).await else {
            return Ok(None);
        };
        Ok(Some(DeviceRequest {
            user_code: format!(
                "{}-{}",
                &code[..USER_CODE_LEN / 2],
                &code[USER_CODE_LEN / 2..]
            ),
            scopes: d
                .scope
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect(),
            client,
            resource: d.resource,
        }))
    }

    /// Records the person's answer; `false` when the code is no longer pending.
    pub async fn decide_device(
        &self,
        typed: &str,
        session: &BrowserSession,
        approve: bool,
        ctx: &Context,
    ) -> Result<bool> {
        let Some(code) = normalise_user_code(typed) else {
            return Ok(false);
        };
        let (action, outcome) = if approve {
            ("oauth.device_approved", Outcome::Success)
        } else {
            ("oauth.device_denied", Outcome::Denied)
        };
        let audit = ctx.entry(action, outcome, Some(&session.user_id));
        Ok(self
            .store
            .decide_device(
                &user_code_hash(&code),
                &DeviceDecision {
                    approve,
                    user_id: &session.user_id,
                    browser_session: &session.session_id,
                    auth_time: session.auth_time,
                    amr: &session.amr,
                    now: clock::now(),
                },
                &audit,
            )
            .await?)
    }

    /// The device's poll of the token endpoint (RFC 8628 §3.4, §3.5).
    pub(super) async fn device_token(
        &self,
        client: &ClientRecord,
        params: &Params,
        info: &ClientInfo,
    ) -> std::result::Result<TokenResponse, OAuthError> {
        let device_code = param(params, "device_code")
            .ok_or_else(|| OAuthError::invalid_request("device_code is missing"))?;
        let hash = secret::digest_hex(device_code);
        let unknown = || {
            OAuthError::invalid_grant("the device code is unknown or was issued to another client")
        };
        let now = clock::now();
        let d: DeviceRecord = match self.store.poll_device(&hash, now).await? {
            Polled::Unknown => return Err(unknown()),
            Polled::TooSoon => {
                return Err(OAuthError::slow_down(
                    "polled sooner than the interval; it is now 5 seconds longer",
                ));
            }
            Polled::Found(d) if d.client_id != client.id => return Err(unknown()),
            Polled::Found(d) => d,
        };
        if d.expires_at <= now {
            return Err(OAuthError::expired_token(
                "the device code has expired; start again",
            ));
        }
        match d.status.as_str() {
            "pending" => {
                return Err(OAuthError::authorization_pending(
                    "the user has not answered yet",
                ));
            }
            "denied" => return Err(OAuthError::access_denied("the user denied access")),
            "approved" => {}
            _ => {
                return Err(OAuthError::invalid_grant(
                    "the device code was already used",
                ));
            }
        }
        let (Some(user_id), Some(browser_session), Some(auth_time), Some(amr)) =
            (&d.user_id, &d.browser_session, d.auth_time, &d.amr)
        else {
            return Err(unknown());
        };
        let granted = scope::still_allowed(
            &d.scope
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>(),
            &client.scopes,
        )
        .join(" ");
        let draft = self
            .sessions
            .draft(client.allows_grant(super::clients::REFRESH_TOKEN));
        let terms = SessionTerms {
            client_id: &client.id,
            scope: Some(&granted),
            parent_id: Some(browser_session),
            auth_time,
            amr,
            resource: d.resource.as_deref(),
        };
        let new = draft.session(user_id, &terms, info);
        let audit = Context::client(&client.id, info.clone())
            .entry("oauth.device_redeemed", Outcome::Success, Some(user_id))
            .with("session_id", new.id)
            .with("scope", granted.as_str());
        if !self.store.redeem_device(&hash, &new, &audit).await? {
            return Err(OAuthError::invalid_grant(
                "the device code was already used, or the approving session has ended",
            ));
        }
        let user = self.store.user_by_id(user_id).await?.ok_or_else(unknown)?;
        let issued = self
            .sessions
            .issue(user, &new.record(), draft.refresh, None)?;
        self.respond(client, issued, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_typed_forgivingly_and_checked_strictly() {
        for _ in 0..50 {
            let code = new_user_code();
            assert_eq!(code.len(), 9);
            let n = normalise_user_code(&code).unwrap();
            assert_eq!(normalise_user_code(&code.to_lowercase()), Some(n.clone()));
            assert_eq!(normalise_user_code(&n), Some(n.clone()));
        }
        assert_eq!(
            normalise_user_code("bcdf ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        for bad in ["BCDFGHJ", "BCDFGHJKL", "ABCDEFGH", "BCDF-GHJ1", ""] {
            assert_eq!(normalise_user_code(bad), None, "{bad}");
        }
    }
}
