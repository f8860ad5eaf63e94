//! What the audit keys do: encrypt records (AES-256-GCM through
//! `spid_secrets`, the event id as associated data so a ciphertext cannot
//! be moved to another record),
//! blind search keys (HMAC-SHA-256), signatures (ECDSA P-256) and detached
//! CMS signatures for extracts.

use hmac::{Hmac, Mac};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::sign::{Signer, Verifier};
use sha2::Sha256;
use spid_types::ServiceError;

use crate::keys::AuditKeys;

/// Length of a blind index value.
pub const BLIND_LEN: usize = 16;

/// Encrypts with the active data key: returns the key id and
/// `nonce ‖ ciphertext ‖ tag`.
pub fn encrypt(keys: &AuditKeys, aad: &[u8], plaintext: &[u8]) -> Result<(u32, Vec<u8>), ServiceError> {
    let (id, key) = keys.active();
    Ok((id, key.seal(aad, plaintext).map_err(ServiceError::internal)?))
}

/// Decrypts what [`encrypt`] produced; `None` if the key is unknown or the
/// ciphertext, its associated data or its tag were altered.
pub fn decrypt(keys: &AuditKeys, key_id: u32, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    keys.data_key(key_id)?.open(aad, sealed)
}

/// The blind index value of a searchable field: the same input always gives
/// the same value, which says nothing about the input without the key.
pub fn blind(keys: &AuditKeys, kind: &str, value: &str) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(keys.index.bytes()) else { return Vec::new() };
    mac.update(kind.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    mac.finalize().into_bytes()[..BLIND_LEN].to_vec()
}

/// ECDSA-SHA-256 signature (DER) by the audit key.
pub fn sign(keys: &AuditKeys, data: &[u8]) -> Result<Vec<u8>, ServiceError> {
    let mut signer = Signer::new(MessageDigest::sha256(), &keys.signing_key).map_err(ServiceError::internal)?;
    signer.sign_oneshot_to_vec(data).map_err(ServiceError::internal)
}

pub fn verify_signature(keys: &AuditKeys, data: &[u8], signature: &[u8]) -> bool {
    let Ok(public) = keys.certificate.public_key() else { return false };
    Verifier::new(MessageDigest::sha256(), &public).and_then(|mut v| v.verify_oneshot(signature, data)).unwrap_or(false)
}

/// A detached CMS SignedData (DER) over `data`, with the signer's
/// certificate included: `openssl cms -verify -binary -inform DER`.
pub fn cms_detached(keys: &AuditKeys, data: &[u8]) -> Result<Vec<u8>, ServiceError> {
    let flags = CMSOptions::DETACHED | CMSOptions::BINARY;
    let cms = CmsContentInfo::sign(Some(&keys.certificate), Some(&keys.signing_key), None, Some(data), flags)
        .map_err(ServiceError::internal)?;
    cms.to_der().map_err(ServiceError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, AuditKeys) {
        let dir = tempfile::tempdir().unwrap();
        let keys = AuditKeys::load(dir.path(), true).unwrap();
        (dir, keys)
    }

    #[test]
    fn encryption_is_bound_to_its_record() {
        let (_dir, keys) = keys();
        let (id, sealed) = encrypt(&keys, b"event-1", b"personal data").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"personal"));
        assert_eq!(decrypt(&keys, id, b"event-1", &sealed).unwrap(), b"personal data");
        assert!(decrypt(&keys, id, b"event-2", &sealed).is_none(), "moved to another record");
        let mut flipped = sealed.clone();
        flipped[14] ^= 1;
        assert!(decrypt(&keys, id, b"event-1", &flipped).is_none(), "altered ciphertext");
        assert!(decrypt(&keys, id + 1, b"event-1", &sealed).is_none(), "unknown key");
        assert!(decrypt(&keys, id, b"event-1", &sealed[..10]).is_none(), "truncated");
        // Fresh nonce each time.
        assert_ne!(encrypt(&keys, b"event-1", b"personal data").unwrap().1, sealed);
    }

    #[test]
    fn blind_index_is_stable_and_keyed() {
        let (_dir, keys) = keys();
        let (_other_dir, other) = super::tests::keys();
        let a = blind(&keys, "spid", "SPID0000000001");
        assert_eq!(a.len(), BLIND_LEN);
        assert_eq!(a, blind(&keys, "spid", "SPID0000000001"));
        assert_ne!(a, blind(&keys, "sp", "SPID0000000001"), "kinds are separated");
        assert_ne!(a, blind(&other, "spid", "SPID0000000001"), "depends on the key");
    }

    #[test]
    fn signatures_verify_only_for_the_signed_data() {
        let (_dir, keys) = keys();
        let sig = sign(&keys, b"seal").unwrap();
        assert!(verify_signature(&keys, b"seal", &sig));
        assert!(!verify_signature(&keys, b"seal!", &sig));
        assert!(!verify_signature(&keys, b"seal", b"garbage"));
    }
}
