//! Code challenges sent by SMS or e-mail (OTP-1, OTP-5, OTP-8): six digits
//! from the operating system's generator, bound to one authentication
//! transaction and one identity, valid for a short time, single use, at
//! most three wrong tries, and a limit on how many an identity and a
//! client address may ask for. Only a keyed hash of the code is kept (in
//! the cache: Redis in production), compared in constant time.
//!
//! An identity has one live challenge: a new one replaces the previous, and
//! the identity's suspension or revocation drops it. (Two `Start`s of one
//! identity at the same instant may both stay live until they expire: the
//! cache offers no atomic swap.)

use std::sync::Arc;
use std::time::Duration;

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde::{Deserialize, Serialize};
use spid_cache::Cache;
use spid_secrets::SecretKey;
use spid_types::{Clock, ErrorKind, ServiceError};

use crate::authenticator::{Authenticators, Check};

/// Where the code comes from: a message we send, or the holder's
/// authenticator app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Sms,
    Email,
    Totp,
    /// Approved on the bound app, notified of the challenge (OTP-3).
    Push,
    /// Approved on the bound app, which scans the page's QR code (OTP-4).
    Qr,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Sms => "sms",
            Method::Email => "email",
            Method::Totp => "totp",
            Method::Push => "push",
            Method::Qr => "qr",
        }
    }

    /// Approved on the bound app rather than typed.
    pub fn by_approval(self) -> bool {
        matches!(self, Method::Push | Method::Qr)
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    /// OTP-1: 5 minutes (manual B).
    pub validity: Duration,
    /// Wrong codes before the challenge is dropped.
    pub max_attempts: u32,
    /// Challenges one identity may ask for per `window`.
    pub per_identity: u64,
    /// Challenges one client address may ask for per `window`.
    pub per_address: u64,
    pub window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            validity: Duration::from_secs(300),
            max_attempts: 3,
            per_identity: 5,
            per_address: 30,
            window: Duration::from_secs(900),
        }
    }
}

/// A challenge just issued. `code` is for the message to the holder only
/// (empty for the app, which makes its own).
pub struct Issued {
    pub challenge_id: String,
    pub code: String,
    /// For approvals: the random value the app signs with the decision.
    pub nonce: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("challenge_id", &self.challenge_id).field("code", &"..").finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Right code, or approved on the app: the challenge is used up.
    Ok,
    /// Not yet approved or refused on the app.
    Pending,
    /// Refused on the app: the challenge is gone.
    Refused,
    Wrong {
        attempts_left: u32,
    },
    /// Unknown, expired, already used or dropped: the same answer for all.
    Expired,
    /// The last allowed wrong code: the challenge is dropped.
    TooManyAttempts,
}

/// What the cache keeps of a challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    spid_code: String,
    transaction_id: String,
    method: Method,
    /// HMAC-SHA256 of the challenge id and the code (empty for the app).
    mac: String,
    expires_at: i64,
    /// For approvals: what the app signs, and what it shows the holder.
    #[serde(default)]
    nonce: String,
    #[serde(default)]
    context: String,
}

/// A challenge waiting for the holder's approval on the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub challenge_id: String,
    pub nonce: String,
    /// The service provider the holder is logging in to.
    pub context: String,
    pub method: Method,
    pub expires_at: i64,
}

/// OTP-4: a QR code is valid for 120 seconds, then replaced.
pub const QR_VALIDITY: Duration = Duration::from_secs(120);

pub struct Codes {
    cache: Arc<dyn Cache>,
    mac_key: SecretKey,
    clock: Arc<dyn Clock>,
    policy: Policy,
}

pub(crate) fn cache_err(e: spid_cache::CacheError) -> ServiceError {
    ServiceError::new(ErrorKind::Unavailable, "cache.unavailable", e.to_string())
}

const MAX_ID: usize = 128;

impl Codes {
    pub fn new(cache: Arc<dyn Cache>, mac_key: SecretKey, clock: Arc<dyn Clock>, policy: Policy) -> Self {
        Self { cache, mac_key, clock, policy }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn mac(&self, challenge_id: &str, code: &str) -> Result<String, ServiceError> {
        let key = PKey::hmac(self.mac_key.bytes()).map_err(ServiceError::internal)?;
        let mut signer = Signer::new(MessageDigest::sha256(), &key).map_err(ServiceError::internal)?;
        signer.update(challenge_id.as_bytes()).map_err(ServiceError::internal)?;
        signer.update(&[0]).map_err(ServiceError::internal)?;
        signer.update(code.as_bytes()).map_err(ServiceError::internal)?;
        Ok(hex::encode(signer.sign_to_vec().map_err(ServiceError::internal)?))
    }

    /// Issues a challenge for `spid_code` in `transaction_id`, replacing
    /// the identity's previous one. Refused with `otp.rate_limited` past
    /// the per-identity or per-address limit.
    pub async fn issue(
        &self,
        spid_code: &str,
        transaction_id: &str,
        method: Method,
        client_ip: &str,
        context: &str,
    ) -> Result<Issued, ServiceError> {
        if context.len() > 200 {
            return Err(ServiceError::invalid("service_provider.invalid", "service_provider: at most 200 characters"));
        }
        for (name, value) in [("spid_code", spid_code), ("transaction_id", transaction_id)] {
            if value.is_empty() || value.len() > MAX_ID {
                return Err(ServiceError::invalid(
                    format!("{name}.invalid"),
                    format!("{name} is required (at most {MAX_ID} characters)"),
                ));
            }
        }
        let client_ip: std::net::IpAddr = client_ip
            .parse()
            .map_err(|_| ServiceError::invalid("client_ip.invalid", "client_ip must be an IP address"))?;
        let window = self.policy.window;
        // A QR code is replaced every 120 s while the login page is open:
        // it costs no message and works only with the bound app's
        // signature, so it does not count against the identity's limit.
        let by_identity = if method == Method::Qr {
            0
        } else {
            self.cache.increment(&format!("otp:rate:id:{spid_code}"), window).await.map_err(cache_err)?
        };
        let by_address = self.cache.increment(&format!("otp:rate:ip:{client_ip}"), window).await.map_err(cache_err)?;
        if by_identity > self.policy.per_identity || by_address > self.policy.per_address {
            return Err(ServiceError::new(
                ErrorKind::RateLimited,
                "otp.rate_limited",
                "too many codes asked for; try again later",
            ));
        }
        let challenge_id = uuid::Uuid::new_v4().to_string();
        let code = match method {
            Method::Totp | Method::Push | Method::Qr => String::new(),
            Method::Sms | Method::Email => format!("{:06}", random_below(1_000_000)?),
        };
        let nonce = if method.by_approval() {
            let mut bytes = [0u8; 16];
            openssl::rand::rand_bytes(&mut bytes).map_err(ServiceError::internal)?;
            hex::encode(bytes)
        } else {
            String::new()
        };
        let validity = if method == Method::Qr { self.policy.validity.min(QR_VALIDITY) } else { self.policy.validity };
        let expires_at =
            self.clock.now() + chrono::Duration::from_std(validity).unwrap_or(chrono::Duration::minutes(2));
        let stored = Stored {
            spid_code: spid_code.to_owned(),
            transaction_id: transaction_id.to_owned(),
            method,
            mac: if code.is_empty() { String::new() } else { self.mac(&challenge_id, &code)? },
            expires_at: expires_at.timestamp(),
            nonce: nonce.clone(),
            context: context.to_owned(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(ServiceError::internal)?;
        self.cache.set(&challenge_key(&challenge_id), &bytes, validity).await.map_err(cache_err)?;
        // One live challenge per identity: the previous one goes.
        let current = identity_key(spid_code);
        if let Some(previous) = self.cache.get(&current).await.map_err(cache_err)? {
            let previous = String::from_utf8_lossy(&previous).into_owned();
            self.cache.delete(&challenge_key(&previous)).await.map_err(cache_err)?;
        }
        self.cache.set(&current, challenge_id.as_bytes(), self.policy.validity).await.map_err(cache_err)?;
        Ok(Issued { challenge_id, code, nonce, expires_at })
    }

    /// Checks a typed code (for the app's challenges, against the holder's
    /// authenticator). The challenge is used up by the right code, by the
    /// last allowed wrong one, and by its expiry; a code for another
    /// transaction counts as wrong.
    pub async fn verify(
        &self,
        challenge_id: &str,
        transaction_id: &str,
        code: &str,
        app: &Authenticators,
    ) -> Result<(Verdict, Method, String), ServiceError> {
        let unknown = (Verdict::Expired, Method::Sms, String::new());
        if challenge_id.is_empty() || challenge_id.len() > MAX_ID {
            return Ok(unknown);
        }
        let key = challenge_key(challenge_id);
        let Some(bytes) = self.cache.get(&key).await.map_err(cache_err)? else {
            return Ok(unknown);
        };
        let stored: Stored = serde_json::from_slice(&bytes).map_err(ServiceError::internal)?;
        let about = |v: Verdict| (v, stored.method, stored.spid_code.clone());
        if self.clock.now().timestamp() >= stored.expires_at {
            self.cache.delete(&key).await.map_err(cache_err)?;
            return Ok(about(Verdict::Expired));
        }
        if stored.method.by_approval() {
            if stored.transaction_id != transaction_id {
                return Ok(about(Verdict::Pending));
            }
            let decision = self.cache.get(&approval_key(challenge_id)).await.map_err(cache_err)?;
            return Ok(about(match decision.as_deref() {
                None => Verdict::Pending,
                Some(b"approved") => match self.cache.take(&key).await.map_err(cache_err)? {
                    Some(_) => Verdict::Ok,
                    None => Verdict::Expired,
                },
                Some(_) => {
                    self.cache.delete(&key).await.map_err(cache_err)?;
                    Verdict::Refused
                }
            }));
        }
        let attempts = self
            .cache
            .increment(&format!("otp:attempts:{challenge_id}"), self.policy.validity)
            .await
            .map_err(cache_err)?;
        if attempts > u64::from(self.policy.max_attempts) {
            self.cache.delete(&key).await.map_err(cache_err)?;
            return Ok(about(Verdict::TooManyAttempts));
        }
        let typed = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) { code } else { "" };
        let same_transaction = stored.transaction_id == transaction_id;
        let right = match stored.method {
            Method::Totp => {
                same_transaction && !typed.is_empty() && app.check(&stored.spid_code, typed).await? == Check::Accepted
            }
            Method::Push | Method::Qr => false,
            Method::Sms | Method::Email => {
                let given = self.mac(challenge_id, typed)?;
                openssl::memcmp::eq(given.as_bytes(), stored.mac.as_bytes()) && !typed.is_empty() && same_transaction
            }
        };
        if right {
            // Single use even against a concurrent verification.
            return Ok(about(match self.cache.take(&key).await.map_err(cache_err)? {
                Some(_) => {
                    // Forget it as the identity's live challenge unless a
                    // newer one took its place.
                    let current = identity_key(&stored.spid_code);
                    if self.cache.get(&current).await.map_err(cache_err)?.as_deref() == Some(challenge_id.as_bytes()) {
                        self.cache.delete(&current).await.map_err(cache_err)?;
                    }
                    Verdict::Ok
                }
                None => Verdict::Expired,
            }));
        }
        let left = self.policy.max_attempts.saturating_sub(u32::try_from(attempts).unwrap_or(u32::MAX));
        if left == 0 {
            self.cache.delete(&key).await.map_err(cache_err)?;
            return Ok(about(Verdict::TooManyAttempts));
        }
        Ok(about(Verdict::Wrong { attempts_left: left }))
    }

    /// The identity's challenge waiting for approval on its app, if any.
    pub async fn awaiting_approval(&self, spid_code: &str) -> Result<Option<Approval>, ServiceError> {
        let Some(id) = self.cache.get(&identity_key(spid_code)).await.map_err(cache_err)? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        let Some(bytes) = self.cache.get(&challenge_key(&id)).await.map_err(cache_err)? else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_slice(&bytes).map_err(ServiceError::internal)?;
        let decided = self.cache.get(&approval_key(&id)).await.map_err(cache_err)?.is_some();
        let waiting = stored.method == Method::Push && !decided && self.clock.now().timestamp() < stored.expires_at;
        Ok(waiting.then_some(Approval {
            challenge_id: id,
            nonce: stored.nonce,
            context: stored.context,
            method: stored.method,
            expires_at: stored.expires_at,
        }))
    }

    /// The challenge an approval is about, if it is live and awaits one.
    pub async fn approval(&self, challenge_id: &str) -> Result<Option<(String, Approval)>, ServiceError> {
        if challenge_id.is_empty() || challenge_id.len() > MAX_ID {
            return Ok(None);
        }
        let Some(bytes) = self.cache.get(&challenge_key(challenge_id)).await.map_err(cache_err)? else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_slice(&bytes).map_err(ServiceError::internal)?;
        if !stored.method.by_approval() || self.clock.now().timestamp() >= stored.expires_at {
            return Ok(None);
        }
        let approval = Approval {
            challenge_id: challenge_id.to_owned(),
            nonce: stored.nonce,
            context: stored.context,
            method: stored.method,
            expires_at: stored.expires_at,
        };
        Ok(Some((stored.spid_code, approval)))
    }

    /// Records the app's decision, once; `false` if one was recorded already.
    pub async fn decide(&self, challenge_id: &str, approve: bool) -> Result<bool, ServiceError> {
        let value: &[u8] = if approve { b"approved" } else { b"refused" };
        self.cache.set_if_absent(&approval_key(challenge_id), value, self.policy.validity).await.map_err(cache_err)
    }

    /// Drops one challenge (its code could not be sent).
    pub async fn discard(&self, challenge_id: &str) -> Result<(), ServiceError> {
        self.cache.delete(&challenge_key(challenge_id)).await.map_err(cache_err)
    }

    /// Drops the identity's live challenge (suspension, revocation).
    /// Returns whether there was one.
    pub async fn drop_for(&self, spid_code: &str) -> Result<bool, ServiceError> {
        let Some(id) = self.cache.take(&identity_key(spid_code)).await.map_err(cache_err)? else {
            return Ok(false);
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        Ok(self.cache.take(&challenge_key(&id)).await.map_err(cache_err)?.is_some())
    }
}

fn challenge_key(id: &str) -> String {
    format!("otp:challenge:{id}")
}

fn approval_key(id: &str) -> String {
    format!("otp:approval:{id}")
}

fn identity_key(spid_code: &str) -> String {
    format!("otp:current:{spid_code}")
}

/// A uniform number below `bound` from the operating system's generator
/// (rejection sampling: no modulo bias).
fn random_below(bound: u32) -> Result<u32, ServiceError> {
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let mut bytes = [0u8; 4];
        openssl::rand::rand_bytes(&mut bytes).map_err(ServiceError::internal)?;
        let v = u32::from_be_bytes(bytes);
        if v < zone {
            return Ok(v % bound);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spid_cache::MemoryCache;
    use spid_types::ManualClock;

    struct Fixture {
        c: Codes,
        clock: Arc<ManualClock>,
        cache: Arc<MemoryCache>,
        app: Authenticators,
        _dir: tempfile::TempDir,
    }

    async fn codes() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (app, clock, _) = crate::authenticator::tests::authenticators(dir.path()).await;
        let cache = Arc::new(MemoryCache::new());
        let c = Codes::new(cache.clone(), SecretKey::random().unwrap(), clock.clone(), Policy::default());
        Fixture { c, clock, cache, app, _dir: dir }
    }

    const IP: &str = "203.0.113.7";

    #[tokio::test]
    async fn the_right_code_works_once_for_its_transaction_only() {
        let Fixture { c, cache, app, _dir, .. } = codes().await;
        let issued = c.issue("XIDPABCDEFGHIJ", "tx-1", Method::Sms, IP, "").await.unwrap();
        assert_eq!(issued.code.len(), 6);
        assert!(issued.code.bytes().all(|b| b.is_ascii_digit()));
        assert!(!format!("{issued:?}").contains(&issued.code), "no code in Debug output");
        let raw = cache.get(&challenge_key(&issued.challenge_id)).await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains(&issued.code), "only a keyed hash is kept");

        assert_eq!(
            c.verify(&issued.challenge_id, "tx-2", &issued.code, &app).await.unwrap().0,
            Verdict::Wrong { attempts_left: 2 }
        );
        assert_eq!(c.verify(&issued.challenge_id, "tx-1", &issued.code, &app).await.unwrap().0, Verdict::Ok);
        assert_eq!(
            c.verify(&issued.challenge_id, "tx-1", &issued.code, &app).await.unwrap().0,
            Verdict::Expired,
            "replay"
        );
    }

    #[tokio::test]
    async fn three_wrong_codes_end_the_challenge() {
        let Fixture { c, app, _dir, .. } = codes().await;
        let issued = c.issue("XIDPABCDEFGHIJ", "tx-1", Method::Sms, IP, "").await.unwrap();
        let wrong = if issued.code == "000000" { "000001" } else { "000000" };
        assert_eq!(
            c.verify(&issued.challenge_id, "tx-1", wrong, &app).await.unwrap().0,
            Verdict::Wrong { attempts_left: 2 }
        );
        assert_eq!(
            c.verify(&issued.challenge_id, "tx-1", "12ab56", &app).await.unwrap().0,
            Verdict::Wrong { attempts_left: 1 }
        );
        assert_eq!(c.verify(&issued.challenge_id, "tx-1", wrong, &app).await.unwrap().0, Verdict::TooManyAttempts);
        assert_eq!(
            c.verify(&issued.challenge_id, "tx-1", &issued.code, &app).await.unwrap().0,
            Verdict::Expired,
            "gone"
        );
    }

    #[tokio::test]
    async fn codes_expire_and_a_new_challenge_replaces_the_old() {
        let Fixture { c, clock, app, _dir, .. } = codes().await;
        let first = c.issue("XIDPABCDEFGHIJ", "tx-1", Method::Email, IP, "").await.unwrap();
        let second = c.issue("XIDPABCDEFGHIJ", "tx-1", Method::Email, IP, "").await.unwrap();
        assert_eq!(
            c.verify(&first.challenge_id, "tx-1", &first.code, &app).await.unwrap().0,
            Verdict::Expired,
            "replaced"
        );
        clock.advance(chrono::Duration::seconds(301));
        assert_eq!(c.verify(&second.challenge_id, "tx-1", &second.code, &app).await.unwrap().0, Verdict::Expired);
    }

    #[tokio::test]
    async fn identities_and_addresses_are_rate_limited() {
        let Fixture { c, _dir, .. } = codes().await;
        for _ in 0..5 {
            c.issue("XIDPABCDEFGHIJ", "tx", Method::Sms, IP, "").await.unwrap();
        }
        let err = c.issue("XIDPABCDEFGHIJ", "tx", Method::Sms, "198.51.100.1", "").await.unwrap_err();
        assert_eq!((err.kind, err.code.as_str()), (ErrorKind::RateLimited, "otp.rate_limited"));
        for n in 0..25 {
            c.issue(&format!("XIDPOTHER{n:05}"), "tx", Method::Sms, IP, "").await.unwrap();
        }
        let err = c.issue("XIDPNEWCOMER001", "tx", Method::Sms, IP, "").await.unwrap_err();
        assert_eq!(err.code, "otp.rate_limited", "the address is over its limit");
        assert_eq!(c.issue("XIDPA", "tx", Method::Sms, "not-an-ip", "").await.unwrap_err().code, "client_ip.invalid");
    }

    #[tokio::test]
    async fn a_suspension_drops_the_live_challenge() {
        let Fixture { c, app, _dir, .. } = codes().await;
        let issued = c.issue("XIDPABCDEFGHIJ", "tx-1", Method::Sms, IP, "").await.unwrap();
        assert!(c.drop_for("XIDPABCDEFGHIJ").await.unwrap());
        assert!(!c.drop_for("XIDPABCDEFGHIJ").await.unwrap());
        assert_eq!(c.verify(&issued.challenge_id, "tx-1", &issued.code, &app).await.unwrap().0, Verdict::Expired);
    }

    #[tokio::test]
    async fn app_challenges_check_the_holders_authenticator() {
        let Fixture { c, clock, app, _dir, .. } = codes().await;
        let e = app.enrol("XIDPABCDEFGHIJ", "mario").await.unwrap();
        let seed = crate::authenticator::tests::seed_of(&e.provisioning_uri);
        let now = |clock: &ManualClock| clock.now().timestamp() as u64;
        assert!(
            app.confirm("XIDPABCDEFGHIJ", &e.token_id, &crate::totp::DEFAULT.code_at(&seed, now(&clock)).unwrap())
                .await
                .unwrap()
        );
        clock.advance(chrono::Duration::seconds(30));
        let issued = c.issue("XIDPABCDEFGHIJ", "tx-1", Method::Totp, IP, "").await.unwrap();
        assert!(issued.code.is_empty(), "the app makes the code");
        let code = crate::totp::DEFAULT.code_at(&seed, now(&clock)).unwrap();
        let (verdict, method, spid_code) = c.verify(&issued.challenge_id, "tx-1", &code, &app).await.unwrap();
        assert_eq!((verdict, method, spid_code.as_str()), (Verdict::Ok, Method::Totp, "XIDPABCDEFGHIJ"));
        // The same code in a new challenge: its step is used.
        let again = c.issue("XIDPABCDEFGHIJ", "tx-2", Method::Totp, IP, "").await.unwrap();
        assert_eq!(
            c.verify(&again.challenge_id, "tx-2", &code, &app).await.unwrap().0,
            Verdict::Wrong { attempts_left: 2 }
        );
    }

    #[test]
    fn codes_are_uniform_over_six_digits() {
        let mut buckets = [0u32; 10];
        for _ in 0..20_000 {
            buckets[(random_below(1_000_000).unwrap() / 100_000) as usize] += 1;
        }
        assert!(buckets.iter().all(|b| (1700..2300).contains(b)), "{buckets:?}");
    }
}
