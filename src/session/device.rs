//! Device cookies (OWASP, "Slow Brute Force Attacks" / device cookies): a browser that logged
//! into an account successfully gets a signed mark of it. A password check from a browser
//! holding a valid mark for the account counts its failures against that mark instead of the
//! account, so a stranger who exhausts the account's failures does not lock its owner out.
//!
//! The cookie (`auth.device_cookie_name`) holds up to [`MAX_ACCOUNTS`] entries, one per account
//! the browser logged into, newest first: `<user id>.<issued ms>.<signature>` separated by `~`.
//! The signature is HMAC-SHA256 over the user id and the issue time, keyed with a key derived
//! from `session.secret`; an entry is valid for `auth.device_cookie_ttl_secs` after it was
//! issued. Entries that do not verify or have expired are ignored and dropped at the next login.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::config::Settings;
use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::store::redis::login_failures::Bucket;

type HmacSha256 = Hmac<Sha256>;

/// Accounts one browser's cookie remembers. An entry is under 100 bytes, so the cookie stays
/// far below the 4 KB browsers keep per cookie, and verifying it costs a handful of HMACs.
pub(crate) const MAX_ACCOUNTS: usize = 8;

/// How far in the future an issue time may lie (clocks of the processes differ slightly).
const CLOCK_SKEW_MS: i64 = 60_000;

/// Separates the key derived for device cookies from every other use of `session.secret`.
const KEY_CONTEXT: &[u8] = b"chat-server device cookie v1";

const ENTRY_SEPARATOR: char = '~';

/// One account this browser logged into, at `issued_ms` (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    user_id: UserId,
    issued_ms: i64,
}

/// The verified, unexpired entries of the request's device cookie.
pub(crate) struct DeviceCookie {
    mac: HmacSha256,
    entries: Vec<Entry>,
    name: String,
    ttl_secs: u64,
    secure: bool,
}

impl DeviceCookie {
    /// Reads the request's device cookie; a missing or malformed cookie has no entries.
    pub(crate) fn from_request(req: &HttpRequest, settings: &Settings) -> AppResult<Self> {
        let mac = derive_key(settings)?;
        let auth = &settings.auth;
        let now = chrono::Utc::now().timestamp_millis();
        let ttl_ms = i64::try_from(auth.device_cookie_ttl_secs.get().saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let entries = req
            .cookie(&auth.device_cookie_name)
            .map(|cookie| {
                cookie
                    .value()
                    .split(ENTRY_SEPARATOR)
                    .take(MAX_ACCOUNTS)
                    .filter_map(|raw| verify(&mac, raw))
                    .filter(|e| {
                        e.issued_ms <= now.saturating_add(CLOCK_SKEW_MS)
                            && now < e.issued_ms.saturating_add(ttl_ms)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            mac,
            entries,
            name: auth.device_cookie_name.clone(),
            ttl_secs: auth.device_cookie_ttl_secs.get(),
            secure: settings.server.secure_cookies,
        })
    }

    /// Where a failed password check of `user_id` from this browser counts: its entry for the
    /// account if it has one, else the account.
    pub(crate) fn failure_bucket(&self, user_id: UserId) -> Bucket {
        match self.entries.iter().find(|e| e.user_id == user_id) {
            Some(entry) => Bucket::Device {
                user_id,
                issued_ms: entry.issued_ms,
            },
            None => Bucket::Account(user_id),
        }
    }

    /// The cookie to set after `user_id` logged in: a fresh entry for them first, then the
    /// other accounts' valid entries, at most [`MAX_ACCOUNTS`] in all.
    pub(crate) fn renewed_for(&self, user_id: UserId) -> Cookie<'static> {
        let fresh = Entry {
            user_id,
            issued_ms: chrono::Utc::now().timestamp_millis(),
        };
        let value = std::iter::once(fresh)
            .chain(
                self.entries
                    .iter()
                    .copied()
                    .filter(|e| e.user_id != user_id),
            )
            .take(MAX_ACCOUNTS)
            .map(|e| format!("{}.{}.{}", e.user_id.0, e.issued_ms, sign(&self.mac, e)))
            .collect::<Vec<_>>()
            .join(&ENTRY_SEPARATOR.to_string());
        Cookie::build(self.name.clone(), value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure)
            .max_age(Duration::seconds(
                i64::try_from(self.ttl_secs).unwrap_or(i64::MAX),
            ))
            .finish()
    }
}

/// HMAC-SHA256 keyed with HMAC-SHA256(`session.secret`, context): the session secret itself is
/// never the key, so a signature made here is no signature anywhere else.
fn derive_key(settings: &Settings) -> AppResult<HmacSha256> {
    let mut extract = mac_with(settings.session.secret.expose_secret().as_bytes())?;
    extract.update(KEY_CONTEXT);
    mac_with(&extract.finalize().into_bytes())
}

fn mac_with(key: &[u8]) -> AppResult<HmacSha256> {
    // HMAC takes keys of any length; the error exists only for other MACs of the trait.
    HmacSha256::new_from_slice(key)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("device cookie key: {e}")))
}

fn signed_message(mac: &HmacSha256, entry: Entry) -> HmacSha256 {
    let mut mac = mac.clone();
    mac.update(format!("{}.{}", entry.user_id.0, entry.issued_ms).as_bytes());
    mac
}

fn sign(mac: &HmacSha256, entry: Entry) -> String {
    signed_message(mac, entry)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entry `raw` holds if its signature is right (compared in constant time).
fn verify(mac: &HmacSha256, raw: &str) -> Option<Entry> {
    let mut parts = raw.splitn(3, '.');
    let user_id = UserId(parts.next()?.parse().ok()?);
    let issued_ms: i64 = parts.next()?.parse().ok()?;
    let signature = from_hex(parts.next()?)?;
    let entry = Entry { user_id, issued_ms };
    signed_message(mac, entry)
        .verify_slice(&signature)
        .ok()
        .map(|()| entry)
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &[u8]) -> HmacSha256 {
        mac_with(secret).unwrap()
    }

    #[test]
    fn a_signed_entry_verifies_and_a_changed_one_does_not() {
        let mac = key(b"one secret");
        let entry = Entry {
            user_id: UserId(42),
            issued_ms: 1_700_000_000_000,
        };
        let signature = sign(&mac, entry);
        let raw = format!("42.1700000000000.{signature}");
        assert_eq!(verify(&mac, &raw), Some(entry));
        assert_eq!(verify(&mac, &format!("43.1700000000000.{signature}")), None);
        assert_eq!(verify(&mac, &format!("42.1700000000001.{signature}")), None);
        assert_eq!(verify(&key(b"another secret"), &raw), None);
        assert_eq!(verify(&mac, "42.1700000000000.zz"), None);
        assert_eq!(verify(&mac, "42.1700000000000"), None);
    }
}
