//! The provider's mobile app bound to an identity (OTP-3, OTP-4, OTP-6):
//! binding with a one-time activation code from the reserved area, the
//! device's public key (ECDSA P-256) that signs every approval, the PIN
//! rules checked at binding, and dropping bindings when the identity is
//! suspended or revoked.

use std::sync::Arc;
use std::time::Duration;

use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::sha::sha256;
use spid_cache::Cache;
use spid_db::Db;
use spid_types::{Clock, ServiceError};
use sqlx::Row;

use crate::challenge::cache_err;

/// How long an activation code from the reserved area stays valid.
pub const ACTIVATION_VALIDITY: Duration = Duration::from_secs(600);

/// Why a PIN is refused (OTP-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinRule {
    /// Exactly 6 characters.
    Length,
    /// Letters and digits only.
    Characters,
    /// More than 2 identical characters in a row.
    Repeated,
    /// Three or more consecutive letters or digits, up or down (abc, 321).
    Sequence,
    /// A first name.
    Name,
}

impl PinRule {
    pub fn code(self) -> &'static str {
        match self {
            PinRule::Length => "pin.length",
            PinRule::Characters => "pin.characters",
            PinRule::Repeated => "pin.repeated",
            PinRule::Sequence => "pin.sequence",
            PinRule::Name => "pin.name",
        }
    }
}

/// Common Italian first names of up to 6 letters: a PIN may not be one
/// (compared without case).
const NAMES: &[&str] = &[
    "marco", "luca", "andrea", "giulia", "sara", "anna", "paolo", "maria", "laura", "mario", "marta", "chiara",
    "franco", "elena", "luigi", "carlo", "piero", "pietro", "sofia", "aurora", "alice", "giorgia", "matteo", "davide",
    "simone", "fabio", "enrico", "ilaria", "silvia", "monica", "rita", "rosa", "angela", "teresa", "giulio", "bruno",
    "sergio", "mauro", "nicola", "nadia", "emma", "gianni", "lucia", "marina", "dario", "ugo", "ettore", "irene",
    "valeria", "viola", "greta", "tommaso", "diego", "pablo", "adele", "agnese", "alba", "ada", "edoardo", "elisa",
    "emilia", "ester", "flavio", "franca", "gino", "ivo", "lia", "lino", "livia", "lorena", "lorenzo", "loris",
];

/// Every OTP-6 rule `pin` breaks (empty: acceptable).
pub fn check_pin(pin: &str) -> Vec<PinRule> {
    let mut broken = Vec::new();
    let chars: Vec<char> = pin.chars().collect();
    if chars.len() != 6 {
        broken.push(PinRule::Length);
    }
    if !chars.iter().all(char::is_ascii_alphanumeric) {
        broken.push(PinRule::Characters);
    }
    if chars.windows(3).any(|w| w[0] == w[1] && w[1] == w[2]) {
        broken.push(PinRule::Repeated);
    }
    let lower: Vec<char> = chars.iter().map(char::to_ascii_lowercase).collect();
    let step = |a: char, b: char| (b as i32) - (a as i32);
    let same_kind = |a: char, b: char| {
        (a.is_ascii_digit() && b.is_ascii_digit()) || (a.is_ascii_alphabetic() && b.is_ascii_alphabetic())
    };
    if lower.windows(3).any(|w| {
        same_kind(w[0], w[1])
            && same_kind(w[1], w[2])
            && step(w[0], w[1]) == step(w[1], w[2])
            && step(w[0], w[1]).abs() == 1
    }) {
        broken.push(PinRule::Sequence);
    }
    let word: String = lower.iter().collect();
    if NAMES.iter().any(|n| word == *n || (n.len() >= 4 && word.contains(n))) {
        broken.push(PinRule::Name);
    }
    broken
}

/// A bound device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub spid_code: String,
    pub name: String,
}

pub struct Devices {
    db: Db,
    cache: Arc<dyn Cache>,
    clock: Arc<dyn Clock>,
}

fn db_err(e: sqlx::Error) -> ServiceError {
    ServiceError::internal(e)
}

/// Parses a device key: a P-256 public key, PEM or DER (SubjectPublicKeyInfo).
pub fn parse_key(bytes: &[u8]) -> Result<PKey<Public>, ServiceError> {
    let bad = || ServiceError::invalid("device_key.invalid", "the device key must be an EC P-256 public key");
    let key = PKey::public_key_from_pem(bytes).or_else(|_| PKey::public_key_from_der(bytes)).map_err(|_| bad())?;
    let ec: EcKey<Public> = key.ec_key().map_err(|_| bad())?;
    if ec.group().curve_name() != Some(Nid::X9_62_PRIME256V1) || ec.check_key().is_err() {
        return Err(bad());
    }
    Ok(key)
}

/// What a device signs to approve or refuse a challenge: a fixed
/// context, the challenge id, its nonce and the decision.
pub fn approval_message(challenge_id: &str, nonce: &str, approve: bool) -> Vec<u8> {
    let decision = if approve { "approve" } else { "refuse" };
    format!("spid-idp approval v1\n{challenge_id}\n{nonce}\n{decision}").into_bytes()
}

fn activation_key(code: &str) -> String {
    format!("otp:activation:{}", hex::encode(sha256(code.as_bytes())))
}

impl Devices {
    pub fn new(db: Db, cache: Arc<dyn Cache>, clock: Arc<dyn Clock>) -> Self {
        Self { db, cache, clock }
    }

    /// A one-time activation code for the reserved area to show (as text
    /// and QR code) to the holder, valid 10 minutes.
    pub async fn activation_code(&self, spid_code: &str) -> Result<String, ServiceError> {
        let mut bytes = [0u8; 15];
        openssl::rand::rand_bytes(&mut bytes).map_err(ServiceError::internal)?;
        let code = crate::totp::base32(&bytes);
        let key = activation_key(&code);
        self.cache.set(&key, spid_code.as_bytes(), ACTIVATION_VALIDITY).await.map_err(cache_err)?;
        // The identity's live activation code, so a suspension can cancel it
        // (a newer code replaces the older).
        let pointer = format!("otp:activation-of:{spid_code}");
        if let Some(old) = self.cache.get(&pointer).await.map_err(cache_err)? {
            self.cache.delete(&String::from_utf8_lossy(&old)).await.map_err(cache_err)?;
        }
        self.cache.set(&pointer, key.as_bytes(), ACTIVATION_VALIDITY).await.map_err(cache_err)?;
        Ok(code)
    }

    /// The identity an activation code would bind to, without using it.
    pub async fn activation_owner(&self, activation_code: &str) -> Result<Option<String>, ServiceError> {
        if activation_code.len() > 64 {
            return Ok(None);
        }
        Ok(self
            .cache
            .get(&activation_key(activation_code))
            .await
            .map_err(cache_err)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Binds the app that presents `activation_code` (once), with its
    /// public key. The PIN the holder chose is checked against OTP-6 and
    /// not kept: it unlocks the device key on the device only.
    pub async fn bind(
        &self,
        activation_code: &str,
        device_key: &[u8],
        name: &str,
        pin: &str,
    ) -> Result<Device, ServiceError> {
        let broken = check_pin(pin);
        if let Some(first) = broken.first() {
            let codes: Vec<&str> = broken.iter().map(|r| r.code()).collect();
            return Err(ServiceError::invalid(first.code(), format!("the PIN breaks: {}", codes.join(", "))));
        }
        if name.is_empty() || name.len() > 64 {
            return Err(ServiceError::invalid("device_name.invalid", "device name: 1 to 64 characters"));
        }
        let key = parse_key(device_key)?;
        let der = key.public_key_to_der().map_err(ServiceError::internal)?;
        if activation_code.len() > 64 {
            return Err(ServiceError::invalid("activation_code.invalid", "unknown or expired activation code"));
        }
        let cache_key = activation_key(activation_code);
        let spid_code = self
            .cache
            .take(&cache_key)
            .await
            .map_err(cache_err)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .ok_or_else(|| ServiceError::invalid("activation_code.invalid", "unknown or expired activation code"))?;
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        // One app per identity: binding a new one unbinds the old.
        sqlx::query("UPDATE devices SET status = 'dropped' WHERE spid_code = $1 AND status = 'active'")
            .bind(&spid_code)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO devices (id, spid_code, public_key, name, status, created_at)
             VALUES ($1, $2, $3, $4, 'active', $5)",
        )
        .bind(&id)
        .bind(&spid_code)
        .bind(der)
        .bind(name)
        .bind(self.clock.now().timestamp_micros())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Device { id, spid_code, name: name.to_owned() })
    }

    /// The identity's bound device, if any.
    pub async fn bound(&self, spid_code: &str) -> Result<Option<Device>, ServiceError> {
        let row = sqlx::query("SELECT id, name FROM devices WHERE spid_code = $1 AND status = 'active'")
            .bind(spid_code)
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(Device {
                id: r.try_get("id").map_err(db_err)?,
                spid_code: spid_code.to_owned(),
                name: r.try_get("name").map_err(db_err)?,
            })
        })
        .transpose()
    }

    /// Checks a device's signature (DER ECDSA over SHA-256 of `message`);
    /// returns the identity the device is bound to.
    pub async fn verify_signature(
        &self,
        device_id: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<Option<String>, ServiceError> {
        let row = sqlx::query("SELECT spid_code, public_key FROM devices WHERE id = $1 AND status = 'active'")
            .bind(device_id)
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let der: Vec<u8> = row.try_get("public_key").map_err(db_err)?;
        let key = PKey::public_key_from_der(&der).map_err(ServiceError::internal)?;
        let ec = key.ec_key().map_err(ServiceError::internal)?;
        let Ok(sig) = EcdsaSig::from_der(signature) else { return Ok(None) };
        let ok = sig.verify(&sha256(message), &ec).unwrap_or(false);
        ok.then(|| row.try_get("spid_code")).transpose().map_err(db_err)
    }

    /// Unbinds every device of the identity and cancels its activation code
    /// (suspension, revocation).
    pub async fn drop_for(&self, spid_code: &str) -> Result<u64, ServiceError> {
        if let Some(key) = self.cache.take(&format!("otp:activation-of:{spid_code}")).await.map_err(cache_err)? {
            self.cache.delete(&String::from_utf8_lossy(&key)).await.map_err(cache_err)?;
        }
        let r = sqlx::query("UPDATE devices SET status = 'dropped' WHERE spid_code = $1 AND status = 'active'")
            .bind(spid_code)
            .execute(self.db.pool())
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use openssl::ec::EcGroup;
    use openssl::pkey::Private;

    #[test]
    fn pin_rules_of_otp6() {
        assert!(check_pin("a7k2m9").is_empty());
        assert!(check_pin("Q4x8Z1").is_empty());
        assert_eq!(check_pin("a7k2m"), [PinRule::Length]);
        assert_eq!(check_pin("a7k2m9x"), [PinRule::Length]);
        assert_eq!(check_pin("a7k-m9"), [PinRule::Characters]);
        assert_eq!(check_pin("a7kkk9"), [PinRule::Repeated]);
        assert_eq!(check_pin("a7kk29"), Vec::<PinRule>::new(), "two alike are allowed");
        assert_eq!(check_pin("x123y9"), [PinRule::Sequence]);
        assert_eq!(check_pin("x9cba7"), [PinRule::Sequence], "downwards too");
        assert_eq!(check_pin("xAbC79"), [PinRule::Sequence], "without case");
        assert!(check_pin("9a0b1c").is_empty(), "alternating is not a sequence");
        assert_eq!(check_pin("Giulia"), [PinRule::Name]);
        assert_eq!(check_pin("luca12"), [PinRule::Name]);
        assert_eq!(check_pin("x9sara"), [PinRule::Name], "a name inside the PIN");
        assert_eq!(check_pin("111111"), [PinRule::Repeated]);
        assert_eq!(check_pin("123456"), [PinRule::Sequence]);
    }

    pub(crate) fn device_key() -> (EcKey<Private>, Vec<u8>) {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = EcKey::generate(&group).unwrap();
        let pem = PKey::from_ec_key(key.clone()).unwrap().public_key_to_pem().unwrap();
        (key, pem)
    }

    pub(crate) fn sign(key: &EcKey<Private>, message: &[u8]) -> Vec<u8> {
        EcdsaSig::sign(&sha256(message), key).unwrap().to_der().unwrap()
    }

    #[tokio::test]
    async fn binding_takes_one_activation_code_a_p256_key_and_a_good_pin() {
        let dir = tempfile::tempdir().unwrap();
        let (_, clock, db) = crate::authenticator::tests::authenticators(dir.path()).await;
        let d = Devices::new(db, Arc::new(spid_cache::MemoryCache::new()), clock);
        let code = d.activation_code("XIDPABCDEFGHIJ").await.unwrap();
        let (key, pem) = device_key();
        assert_eq!(d.bind(&code, &pem, "Pixel", "123456").await.unwrap_err().code, "pin.sequence");
        assert_eq!(d.bind(&code, b"not a key", "Pixel", "a7k2m9").await.unwrap_err().code, "device_key.invalid");
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap().public_key_to_pem().unwrap();
        assert_eq!(d.bind(&code, &rsa, "Pixel", "a7k2m9").await.unwrap_err().code, "device_key.invalid");
        let device = d.bind(&code, &pem, "Pixel", "a7k2m9").await.unwrap();
        assert_eq!(device.spid_code, "XIDPABCDEFGHIJ");
        assert_eq!(d.bind(&code, &pem, "Pixel", "a7k2m9").await.unwrap_err().code, "activation_code.invalid", "once");
        assert_eq!(d.bound("XIDPABCDEFGHIJ").await.unwrap().unwrap().id, device.id);

        let m = approval_message("ch-1", "n-1", true);
        let who = d.verify_signature(&device.id, &m, &sign(&key, &m)).await.unwrap();
        assert_eq!(who.as_deref(), Some("XIDPABCDEFGHIJ"));
        let refused = approval_message("ch-1", "n-1", false);
        assert_eq!(d.verify_signature(&device.id, &refused, &sign(&key, &m)).await.unwrap(), None, "other message");
        let (other, _) = device_key();
        assert_eq!(d.verify_signature(&device.id, &m, &sign(&other, &m)).await.unwrap(), None, "other key");
        assert_eq!(d.drop_for("XIDPABCDEFGHIJ").await.unwrap(), 1);
        assert_eq!(d.verify_signature(&device.id, &m, &sign(&key, &m)).await.unwrap(), None, "unbound");
    }
}
