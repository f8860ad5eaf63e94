//! Registration evidence at rest (REG-10, EMI-3): document scans, signed
//! forms, video recordings, source-check answers. Envelope encryption:
//! each piece gets its own data key (AES-256-GCM, bound to the evidence
//! id); the data key is kept wrapped by a key-encryption key that never
//! leaves the [`KeyManager`] — key files in development, an HSM in
//! production. Rotating the key-encryption key re-wraps data keys without
//! touching the content ([`rewrap`]); forgetting a wrapped key erases the
//! evidence for good.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use spid_secrets::SecretKey;

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence key {0} is not available")]
    UnknownKey(String),
    #[error("evidence {0} was altered or does not belong to this id")]
    Altered(String),
    #[error("evidence keys: {0}")]
    Keys(#[from] spid_secrets::SecretError),
}

/// Wraps and unwraps data keys with key-encryption keys it keeps to
/// itself. The local implementation is [`KeyFiles`]; an HSM
/// implementation does the same through PKCS#11 `C_WrapKey` /
/// `C_UnwrapKey` (CKM_AES_KEY_WRAP_PAD) on a key that never leaves it.
#[async_trait]
pub trait KeyManager: Send + Sync {
    /// The key-encryption key new data keys are wrapped with.
    fn current(&self) -> String;
    async fn wrap(&self, kek: &str, key: &SecretKey, context: &[u8]) -> Result<Vec<u8>, EvidenceError>;
    async fn unwrap(&self, kek: &str, wrapped: &[u8], context: &[u8]) -> Result<SecretKey, EvidenceError>;
}

/// Key-encryption keys in a directory: `kek-0001.key`, `kek-0002.key`, …
/// (base64 of 32 bytes); the highest wraps new data keys.
pub struct KeyFiles {
    keys: BTreeMap<String, SecretKey>,
}

impl KeyFiles {
    /// Loads the directory; with `generate` (development) creates the first
    /// key if there is none.
    pub fn load(dir: &Path, generate: bool) -> Result<Self, EvidenceError> {
        if generate && (!dir.exists() || spid_secrets::numbered_keys(dir, KEK)?.is_empty()) {
            spid_secrets::add_numbered_key(dir, KEK)?;
        }
        let keys: BTreeMap<String, SecretKey> = spid_secrets::numbered_keys(dir, KEK)?
            .into_iter()
            .map(|(n, key)| (spid_secrets::numbered_key_id(KEK, n), key))
            .collect();
        if keys.is_empty() {
            return Err(EvidenceError::UnknownKey(format!("{}/{KEK}-NNNN.key", dir.display())));
        }
        Ok(Self { keys })
    }
}

/// Key-encryption keys are `kek-NNNN.key`.
const KEK: &str = "kek";

#[async_trait]
impl KeyManager for KeyFiles {
    fn current(&self) -> String {
        self.keys.keys().next_back().cloned().unwrap_or_default()
    }

    async fn wrap(&self, kek: &str, key: &SecretKey, context: &[u8]) -> Result<Vec<u8>, EvidenceError> {
        let k = self.keys.get(kek).ok_or_else(|| EvidenceError::UnknownKey(kek.to_owned()))?;
        Ok(k.seal(context, key.bytes())?)
    }

    async fn unwrap(&self, kek: &str, wrapped: &[u8], context: &[u8]) -> Result<SecretKey, EvidenceError> {
        let k = self.keys.get(kek).ok_or_else(|| EvidenceError::UnknownKey(kek.to_owned()))?;
        let plain = k
            .open(context, wrapped)
            .ok_or_else(|| EvidenceError::Altered(String::from_utf8_lossy(context).into_owned()))?;
        let bytes: [u8; spid_secrets::KEY_LEN] =
            plain.try_into().map_err(|_| EvidenceError::Altered(String::from_utf8_lossy(context).into_owned()))?;
        Ok(SecretKey::from_bytes(bytes))
    }
}

/// A piece of evidence as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvidence {
    pub kek: String,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// SHA-256 of the content (hex): what the audit log records.
    pub content_sha256: String,
}

pub async fn seal(km: &dyn KeyManager, evidence_id: &str, content: &[u8]) -> Result<SealedEvidence, EvidenceError> {
    let key = SecretKey::random()?;
    let kek = km.current();
    Ok(SealedEvidence {
        wrapped_key: km.wrap(&kek, &key, evidence_id.as_bytes()).await?,
        ciphertext: key.seal(evidence_id.as_bytes(), content)?,
        content_sha256: hex::encode(Sha256::digest(content)),
        kek,
    })
}

pub async fn open(km: &dyn KeyManager, evidence_id: &str, e: &SealedEvidence) -> Result<Vec<u8>, EvidenceError> {
    let key = km.unwrap(&e.kek, &e.wrapped_key, evidence_id.as_bytes()).await?;
    let content = key
        .open(evidence_id.as_bytes(), &e.ciphertext)
        .ok_or_else(|| EvidenceError::Altered(evidence_id.to_owned()))?;
    if hex::encode(Sha256::digest(&content)) != e.content_sha256 {
        return Err(EvidenceError::Altered(evidence_id.to_owned()));
    }
    Ok(content)
}

/// Wraps the data key again with the current key-encryption key; the
/// content is not touched.
pub async fn rewrap(
    km: &dyn KeyManager,
    evidence_id: &str,
    e: &SealedEvidence,
) -> Result<SealedEvidence, EvidenceError> {
    let key = km.unwrap(&e.kek, &e.wrapped_key, evidence_id.as_bytes()).await?;
    let kek = km.current();
    Ok(SealedEvidence { wrapped_key: km.wrap(&kek, &key, evidence_id.as_bytes()).await?, kek, ..e.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCAN: &[u8] = b"%PDF-1.7 carta d'identita fronte/retro";

    #[tokio::test]
    async fn sealed_per_piece_and_bound_to_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let km = KeyFiles::load(dir.path(), true).unwrap();
        let a = seal(&km, "ev-1", SCAN).await.unwrap();
        let b = seal(&km, "ev-2", SCAN).await.unwrap();
        assert_eq!(a.kek, "kek-0001");
        assert_ne!(a.wrapped_key, b.wrapped_key, "a data key per piece");
        assert!(!a.ciphertext.windows(8).any(|w| w == b"identita"));
        assert_eq!(open(&km, "ev-1", &a).await.unwrap(), SCAN);
        assert_eq!(a.content_sha256, hex::encode(Sha256::digest(SCAN)));

        // Another id, another piece's key, altered bytes: all refused.
        assert!(matches!(open(&km, "ev-2", &a).await, Err(EvidenceError::Altered(_))));
        let swapped = SealedEvidence { wrapped_key: b.wrapped_key.clone(), ..a.clone() };
        assert!(open(&km, "ev-1", &swapped).await.is_err());
        let mut altered = a.clone();
        altered.ciphertext[20] ^= 1;
        assert!(open(&km, "ev-1", &altered).await.is_err());
        let lying = SealedEvidence { content_sha256: "00".repeat(32), ..a.clone() };
        assert!(open(&km, "ev-1", &lying).await.is_err());
    }

    #[tokio::test]
    async fn key_encryption_keys_rotate_without_touching_content() {
        let dir = tempfile::tempdir().unwrap();
        let km = KeyFiles::load(dir.path(), true).unwrap();
        let old = seal(&km, "ev-1", SCAN).await.unwrap();
        SecretKey::generate(&dir.path().join("kek-0002.key")).unwrap();
        let km = KeyFiles::load(dir.path(), false).unwrap();
        assert_eq!(km.current(), "kek-0002");
        assert_eq!(open(&km, "ev-1", &old).await.unwrap(), SCAN, "old keys still read");
        let moved = rewrap(&km, "ev-1", &old).await.unwrap();
        assert_eq!((moved.kek.as_str(), &moved.ciphertext), ("kek-0002", &old.ciphertext));
        std::fs::remove_file(dir.path().join("kek-0001.key")).unwrap();
        let km = KeyFiles::load(dir.path(), false).unwrap();
        assert_eq!(open(&km, "ev-1", &moved).await.unwrap(), SCAN);
        assert!(matches!(open(&km, "ev-1", &old).await, Err(EvidenceError::UnknownKey(_))));
    }

    #[test]
    fn production_never_generates() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(KeyFiles::load(dir.path(), false), Err(EvidenceError::UnknownKey(_))));
    }
}
