//! Secrets the services keep: 32-byte keys in owner-only files (generated
//! at first start in development, mounted from the secret store in
//! production), and AES-256-GCM authenticated encryption bound to
//! associated data.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

pub const KEY_LEN: usize = 32;
const NONCE: usize = 12;
const TAG: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("cryptography failed: {0}")]
    Crypto(String),
}

pub fn file_err(path: &Path, reason: impl ToString) -> SecretError {
    SecretError::File { path: path.to_owned(), reason: reason.to_string() }
}

/// Secret bytes that never show in `Debug` output or logs.
#[derive(Clone)]
pub struct SecretKey([u8; KEY_LEN]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn random() -> Result<Self, SecretError> {
        let mut key = [0u8; KEY_LEN];
        openssl::rand::rand_bytes(&mut key).map_err(|e| SecretError::Crypto(e.to_string()))?;
        Ok(Self(key))
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Reads a key file: base64 of 32 bytes.
    pub fn read(path: &Path) -> Result<Self, SecretError> {
        let text = fs::read_to_string(path).map_err(|e| file_err(path, e))?;
        let bytes = STANDARD.decode(text.trim()).map_err(|_| file_err(path, "not base64"))?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| file_err(path, "not a 32-byte key"))?;
        Ok(Self(key))
    }

    /// Reads a key file; with `generate` (development), first creates it,
    /// and its directory, when missing.
    pub fn load(path: &Path, generate: bool) -> Result<Self, SecretError> {
        if generate && !path.exists() {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
            }
            Self::generate(path)?;
        }
        Self::read(path)
    }

    /// Writes a new random key file (never replacing one).
    pub fn generate(path: &Path) -> Result<(), SecretError> {
        let key = Self::random()?;
        write_private(path, format!("{}\n", STANDARD.encode(key.0)).as_bytes())
    }

    /// AES-256-GCM: `nonce ‖ ciphertext ‖ tag`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE];
        openssl::rand::rand_bytes(&mut nonce).map_err(|e| SecretError::Crypto(e.to_string()))?;
        let mut tag = [0u8; TAG];
        let ciphertext = encrypt_aead(Cipher::aes_256_gcm(), &self.0, Some(&nonce), aad, plaintext, &mut tag)
            .map_err(|e| SecretError::Crypto(e.to_string()))?;
        let mut out = Vec::with_capacity(NONCE + ciphertext.len() + TAG);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens what [`SecretKey::seal`] produced; `None` if the ciphertext,
    /// its associated data or its tag were altered, or the key is another.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE + TAG {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG);
        decrypt_aead(Cipher::aes_256_gcm(), &self.0, Some(nonce), aad, ciphertext, tag).ok()
    }
}

/// The keys in `dir` named `<prefix>-NNNN.key`, by number: a key ring
/// whose highest number is the one in use, older ones kept to read.
pub fn numbered_keys(dir: &Path, prefix: &str) -> Result<std::collections::BTreeMap<u32, SecretKey>, SecretError> {
    let mut keys = std::collections::BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(|e| file_err(dir, e))? {
        let entry = entry.map_err(|e| file_err(dir, e))?;
        if let Some(n) = key_number(&entry.file_name().to_string_lossy(), prefix) {
            keys.insert(n, SecretKey::read(&entry.path())?);
        }
    }
    Ok(keys)
}

/// Adds `<prefix>-NNNN.key` with the next number to the ring in `dir`
/// (creating `dir`); returns the number.
pub fn add_numbered_key(dir: &Path, prefix: &str) -> Result<u32, SecretError> {
    fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let next = fs::read_dir(dir)
        .map_err(|e| file_err(dir, e))?
        .filter_map(|e| e.ok().and_then(|e| key_number(&e.file_name().to_string_lossy(), prefix)))
        .max()
        .unwrap_or(0)
        + 1;
    SecretKey::generate(&dir.join(format!("{}.key", numbered_key_id(prefix, next))))?;
    Ok(next)
}

/// `<prefix>-NNNN`: how a numbered key is named (and its file, plus `.key`).
pub fn numbered_key_id(prefix: &str, n: u32) -> String {
    format!("{prefix}-{n:04}")
}

fn key_number(file: &str, prefix: &str) -> Option<u32> {
    let n = file.strip_suffix(".key")?.strip_prefix(prefix)?.strip_prefix('-')?;
    if n.len() < 4 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Writes a new owner-only file, all at once: written aside, then linked
/// into place, so a process starting at the same moment never reads half a
/// key, and an existing file is never replaced.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), SecretError> {
    use std::io::Write;
    let aside = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&aside).map_err(|e| file_err(&aside, e))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(|e| file_err(&aside, e))?;
    let linked = fs::hard_link(&aside, path);
    let _ = fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(file_err(path, e)),
    }
}

/// A self-signed certificate for `key` (development keys generated at first
/// start; production certificates come from the provider's PKI), valid
/// `days` days from now, for digital signatures.
pub fn self_signed_certificate(
    key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
    subject: &[(openssl::nid::Nid, &str)],
    days: u32,
) -> Result<openssl::x509::X509, openssl::error::ErrorStack> {
    use openssl::asn1::{Asn1Integer, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::{BasicConstraints, KeyUsage};
    use openssl::x509::{X509Builder, X509NameBuilder};

    let mut name = X509NameBuilder::new()?;
    for (nid, value) in subject {
        name.append_entry_by_nid(*nid, value)?;
    }
    let name = name.build();
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(key)?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(days)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    builder.append_extension(KeyUsage::new().critical().digital_signature().non_repudiation().build()?)?;
    builder.sign(key, MessageDigest::sha256())?;
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_a_key_only_when_asked_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("k.key");
        assert!(SecretKey::load(&path, false).is_err(), "production: never generated");
        let first = SecretKey::load(&path, true).unwrap();
        let again = SecretKey::load(&path, true).unwrap();
        assert_eq!(first.bytes(), again.bytes(), "created once");
        assert_eq!(SecretKey::load(&path, false).unwrap().bytes(), first.bytes());
    }

    #[test]
    fn sealing_is_bound_to_key_and_associated_data() {
        let key = SecretKey::random().unwrap();
        let sealed = key.seal(b"record-1", b"personal data").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"personal"));
        assert_eq!(key.open(b"record-1", &sealed).unwrap(), b"personal data");
        assert!(key.open(b"record-2", &sealed).is_none(), "moved to another record");
        let mut flipped = sealed.clone();
        flipped[NONCE + 2] ^= 1;
        assert!(key.open(b"record-1", &flipped).is_none(), "altered ciphertext");
        assert!(SecretKey::random().unwrap().open(b"record-1", &sealed).is_none(), "another key");
        assert!(key.open(b"record-1", &sealed[..10]).is_none(), "truncated");
        assert_ne!(key.seal(b"record-1", b"personal data").unwrap(), sealed, "fresh nonce");
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
    }

    #[test]
    fn key_files_are_owner_only_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        SecretKey::generate(&path).unwrap();
        let first = SecretKey::read(&path).unwrap();
        SecretKey::generate(&path).unwrap();
        assert_eq!(SecretKey::read(&path).unwrap().bytes(), first.bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o077, 0);
        }
        assert_eq!(add_numbered_key(dir.path(), "data").unwrap(), 1);
        assert_eq!(add_numbered_key(dir.path(), "data").unwrap(), 2);
        fs::write(dir.path().join("data-x.key.tmp-1"), "junk").unwrap();
        let ring = numbered_keys(dir.path(), "data").unwrap();
        assert_eq!(ring.keys().copied().collect::<Vec<_>>(), vec![1, 2], "only data-NNNN.key files");
        assert!(numbered_keys(dir.path(), "kek").unwrap().is_empty());
        fs::write(dir.path().join("short.key"), "c2hvcnQ=").unwrap();
        let err = SecretKey::read(&dir.path().join("short.key")).unwrap_err().to_string();
        assert!(err.contains("short.key") && err.contains("32-byte"), "{err}");
    }
}
