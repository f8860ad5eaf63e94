//! The master key behind every TOTP seed (OTP-7): a seed is derived from
//! the master key and a per-token derivation key with HKDF-SHA256, so the
//! database holds no seed at all, only derivation keys, which are useless
//! without the master key. In production the master key stays in an HSM
//! and the derivation runs there (PKCS#11 `CKM_HKDF_DERIVE`); the local key
//! file serves development and tests.

use std::path::{Path, PathBuf};

use openssl::md::Md;
use openssl::pkey::Id;
use openssl::pkey_ctx::{HkdfMode, PkeyCtx};
use spid_secrets::SecretKey;

/// Length of a derived TOTP seed: 20 bytes, the HMAC-SHA1 block RFC 4226
/// recommends (160 bits).
pub const SEED_LEN: usize = 20;

/// Length of a per-token derivation key.
pub const DERIVATION_KEY_LEN: usize = 32;

/// A seed, never printed.
pub struct Seed(pub [u8; SEED_LEN]);

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("master key: {0}")]
    Unavailable(String),
    #[error("key derivation failed: {0}")]
    Crypto(String),
}

/// Where the master key lives and the derivation happens.
pub trait MasterKey: Send + Sync {
    /// The seed of the token whose derivation key is `derivation_key`.
    fn derive_seed(&self, derivation_key: &[u8]) -> Result<Seed, KeyError>;
    /// Short description for logs and health (never key material).
    fn describe(&self) -> String;
}

/// Fixed context of the derivation: a seed derived for another purpose
/// (or another version of this scheme) is a different seed.
const INFO: &[u8] = b"spid-idp otp-service totp-seed v1";

fn hkdf(master: &[u8], derivation_key: &[u8]) -> Result<Seed, KeyError> {
    let crypto = |e: openssl::error::ErrorStack| KeyError::Crypto(e.to_string());
    let mut ctx = PkeyCtx::new_id(Id::HKDF).map_err(crypto)?;
    ctx.derive_init().map_err(crypto)?;
    ctx.set_hkdf_mode(HkdfMode::EXTRACT_THEN_EXPAND).map_err(crypto)?;
    ctx.set_hkdf_md(Md::sha256()).map_err(crypto)?;
    ctx.set_hkdf_key(master).map_err(crypto)?;
    ctx.set_hkdf_salt(derivation_key).map_err(crypto)?;
    ctx.add_hkdf_info(INFO).map_err(crypto)?;
    let mut seed = [0u8; SEED_LEN];
    ctx.derive(Some(&mut seed)).map_err(crypto)?;
    Ok(Seed(seed))
}

/// The master key in an owner-only file (base64 of 32 bytes), created at
/// first start in development.
pub struct LocalKeyFile {
    key: SecretKey,
    path: PathBuf,
}

impl LocalKeyFile {
    /// Reads the key; with `generate`, creates it first when missing.
    pub fn open(path: &Path, generate: bool) -> Result<Self, KeyError> {
        let unavailable = |e: spid_secrets::SecretError| KeyError::Unavailable(e.to_string());
        let key = SecretKey::load(path, generate).map_err(unavailable)?;
        Ok(Self { key, path: path.to_owned() })
    }
}

impl MasterKey for LocalKeyFile {
    fn derive_seed(&self, derivation_key: &[u8]) -> Result<Seed, KeyError> {
        hkdf(self.key.bytes(), derivation_key)
    }

    fn describe(&self) -> String {
        format!("local key file {}", self.path.display())
    }
}

/// The master key in an HSM, used through its PKCS#11 module: the key
/// object labelled `key_label` in `slot`, the derivation done by the token
/// (`CKM_HKDF_DERIVE` with the same salt and info as [`LocalKeyFile`]), so
/// the master key never leaves it.
///
/// This build carries no PKCS#11 client library: every derivation fails
/// with [`KeyError::Unavailable`], and the service refuses to start with it
/// rather than pretend.
pub struct Pkcs11 {
    pub module: PathBuf,
    pub slot: u64,
    pub key_label: String,
}

impl MasterKey for Pkcs11 {
    fn derive_seed(&self, _derivation_key: &[u8]) -> Result<Seed, KeyError> {
        Err(KeyError::Unavailable(format!(
            "PKCS#11 module {} (slot {}, key {:?}): this build has no PKCS#11 client",
            self.module.display(),
            self.slot,
            self.key_label
        )))
    }

    fn describe(&self) -> String {
        format!("PKCS#11 {} slot {} key {:?}", self.module.display(), self.slot, self.key_label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_depend_on_both_keys_and_match_rfc5869() {
        // RFC 5869 test case 1 (IKM, salt) with this scheme's info: the
        // first 20 bytes of OKM computed independently with `openssl kdf`.
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00u8..=0x0c).collect();
        let seed = hkdf(&ikm, &salt).unwrap();
        let expected = std::process::Command::new("openssl")
            .args(["kdf", "-keylen", "20", "-kdfopt", "digest:SHA256"])
            .arg("-kdfopt")
            .arg(format!("hexkey:{}", hex::encode(ikm)))
            .arg("-kdfopt")
            .arg(format!("hexsalt:{}", hex::encode(&salt)))
            .arg("-kdfopt")
            .arg(format!("hexinfo:{}", hex::encode(INFO)))
            .arg("HKDF")
            .output()
            .unwrap();
        assert!(expected.status.success(), "{}", String::from_utf8_lossy(&expected.stderr));
        let text = String::from_utf8(expected.stdout).unwrap().replace(':', "").trim().to_lowercase();
        assert_eq!(hex::encode(seed.0), text);

        let other_salt = hkdf(&ikm, &[1u8; 13]).unwrap();
        let other_master = hkdf(&[0x0cu8; 22], &salt).unwrap();
        assert_ne!(seed.0, other_salt.0);
        assert_ne!(seed.0, other_master.0);
        assert_eq!(format!("{seed:?}"), "Seed(..)");
    }

    #[test]
    fn the_local_key_is_created_once_and_refused_when_missing_in_production() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otp-master.key");
        assert!(matches!(LocalKeyFile::open(&path, false), Err(KeyError::Unavailable(_))));
        let a = LocalKeyFile::open(&path, true).unwrap();
        let b = LocalKeyFile::open(&path, false).unwrap();
        let k = [7u8; DERIVATION_KEY_LEN];
        assert_eq!(a.derive_seed(&k).unwrap().0, b.derive_seed(&k).unwrap().0);
        let hsm = Pkcs11 { module: "/usr/lib/softhsm/libsofthsm2.so".into(), slot: 0, key_label: "otp".into() };
        assert!(matches!(hsm.derive_seed(&k), Err(KeyError::Unavailable(_))));
    }
}
