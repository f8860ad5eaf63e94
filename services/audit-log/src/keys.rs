//! The audit key material, kept in one directory (a mounted secret in
//! production; generated at first start in development):
//!
//! - `data-NNNN.key`: AES-256 keys encrypting the records. The highest
//!   number encrypts new records; older ones stay to read older records, so
//!   rotating is adding a file ([`AuditKeys::rotate`]).
//! - `index.key`: the key of the blind search index (HMAC-SHA-256).
//! - `signing.key.pem`, `signing.crt.pem`: the audit signing key (P-256)
//!   and its certificate: daily seals and holders' extracts.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use spid_secrets::{SecretKey, write_private};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("audit.keys_dir: {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("audit.keys_dir: {dir}: no data-NNNN.key file")]
    NoDataKey { dir: PathBuf },
    #[error("audit key generation failed: {0}")]
    Generate(String),
}

fn file_err(path: &Path, reason: impl ToString) -> KeyError {
    KeyError::File { path: path.to_owned(), reason: reason.to_string() }
}

impl From<spid_secrets::SecretError> for KeyError {
    fn from(e: spid_secrets::SecretError) -> Self {
        match e {
            spid_secrets::SecretError::File { path, reason } => KeyError::File { path, reason },
            spid_secrets::SecretError::Crypto(reason) => KeyError::Generate(reason),
        }
    }
}

pub struct AuditKeys {
    data: BTreeMap<u32, SecretKey>,
    active: u32,
    pub(crate) index: SecretKey,
    pub(crate) signing_key: PKey<Private>,
    pub(crate) certificate: X509,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKeys").field("data_keys", &self.data.keys()).field("active", &self.active).finish()
    }
}

/// Data keys are `data-NNNN.key`.
const DATA: &str = "data";
const INDEX: &str = "index.key";
const SIGNING_KEY: &str = "signing.key.pem";
const CERTIFICATE: &str = "signing.crt.pem";

impl AuditKeys {
    /// Loads the key directory; with `generate`, first creates whatever is
    /// missing (development).
    pub fn load(dir: &Path, generate: bool) -> Result<Self, KeyError> {
        if generate {
            generate_missing(dir)?;
        }
        let data = spid_secrets::numbered_keys(dir, DATA)?;
        let active = *data.keys().next_back().ok_or_else(|| KeyError::NoDataKey { dir: dir.to_owned() })?;
        let index = SecretKey::read(&dir.join(INDEX))?;
        let pem = fs::read(dir.join(SIGNING_KEY)).map_err(|e| file_err(&dir.join(SIGNING_KEY), e))?;
        let signing_key = PKey::private_key_from_pem(&pem).map_err(|e| file_err(&dir.join(SIGNING_KEY), e))?;
        let pem = fs::read(dir.join(CERTIFICATE)).map_err(|e| file_err(&dir.join(CERTIFICATE), e))?;
        let certificate = X509::from_pem(&pem).map_err(|e| file_err(&dir.join(CERTIFICATE), e))?;
        let matches = certificate.public_key().is_ok_and(|public| public.public_eq(&signing_key));
        if !matches {
            return Err(file_err(&dir.join(CERTIFICATE), "does not certify signing.key.pem"));
        }
        Ok(Self { data, active, index, signing_key, certificate })
    }

    /// Adds a new data key; it encrypts the records written from the next
    /// start on. Returns its number.
    pub fn rotate(dir: &Path) -> Result<u32, KeyError> {
        Ok(spid_secrets::add_numbered_key(dir, DATA)?)
    }

    /// The key encrypting new records.
    pub fn active(&self) -> (u32, &SecretKey) {
        (self.active, &self.data[&self.active])
    }

    pub fn data_key(&self, id: u32) -> Option<&SecretKey> {
        self.data.get(&id)
    }

    pub fn certificate_pem(&self) -> String {
        self.certificate.to_pem().map(|p| String::from_utf8_lossy(&p).into_owned()).unwrap_or_default()
    }
}

fn generate_missing(dir: &Path) -> Result<(), KeyError> {
    fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    if spid_secrets::numbered_keys(dir, DATA)?.is_empty() {
        spid_secrets::add_numbered_key(dir, DATA)?;
    }
    if !dir.join(INDEX).exists() {
        SecretKey::generate(&dir.join(INDEX))?;
    }
    if !dir.join(SIGNING_KEY).exists() {
        let (key, cert) = self_signed("SPID IdP audit (development)").map_err(|e| KeyError::Generate(e.to_string()))?;
        write_private(
            &dir.join(SIGNING_KEY),
            &key.private_key_to_pem_pkcs8().map_err(|e| KeyError::Generate(e.to_string()))?,
        )?;
        write_private(&dir.join(CERTIFICATE), &cert.to_pem().map_err(|e| KeyError::Generate(e.to_string()))?)?;
    }
    Ok(())
}

/// A P-256 key and a self-signed certificate for it, valid ten years.
pub fn self_signed(common_name: &str) -> Result<(PKey<Private>, X509), openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let cert =
        spid_secrets::self_signed_certificate(&key, &[(Nid::COMMONNAME, common_name), (Nid::COUNTRYNAME, "IT")], 3650)?;
    Ok((key, cert))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_loaded_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let keys = AuditKeys::load(dir.path(), true).unwrap();
        assert_eq!(keys.active().0, 1);
        let first = *keys.active().1.bytes();
        // A second start keeps the same keys.
        let again = AuditKeys::load(dir.path(), true).unwrap();
        assert_eq!(again.active().1.bytes(), &first);
        assert_eq!(again.certificate_pem(), keys.certificate_pem());

        assert_eq!(AuditKeys::rotate(dir.path()).unwrap(), 2);
        let rotated = AuditKeys::load(dir.path(), false).unwrap();
        assert_eq!(rotated.active().0, 2);
        assert_eq!(rotated.data_key(1).unwrap().bytes(), &first);
        assert_ne!(rotated.active().1.bytes(), &first);
        assert_eq!(format!("{:?}", rotated.active().1), "SecretKey(..)");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("index.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
    }

    #[test]
    fn production_never_generates_and_names_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let err = AuditKeys::load(dir.path(), false).unwrap_err();
        assert!(matches!(err, KeyError::NoDataKey { .. }), "{err}");
        AuditKeys::load(dir.path(), true).unwrap();
        fs::write(dir.path().join("index.key"), "short").unwrap();
        let err = AuditKeys::load(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("index.key") && err.contains("not"), "{err}");
    }
}
