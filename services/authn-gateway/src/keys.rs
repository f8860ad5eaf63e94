//! The IdP's signing keys (SAML-5): `signing.key` / `signing.crt` sign
//! every Response, Assertion and the metadata; `next-signing.crt` (with its
//! key), when present, is published beside the current one so that service
//! providers learn it before the rollover. Development generates a 3072-bit
//! RSA key and a self-signed certificate at first start; production reads
//! what the provider's PKI issued and never generates.

use std::path::{Path, PathBuf};

use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::X509;
use spid_secrets::{SecretError, file_err, write_private};
use spid_xml::dsig::SigningKey;

pub const KEY: &str = "signing.key";
pub const CERT: &str = "signing.crt";
pub const NEXT_KEY: &str = "next-signing.key";
pub const NEXT_CERT: &str = "next-signing.crt";
/// SPID asks 3072 bits for new keys.
pub const RSA_BITS: u32 = 3072;

pub struct IdpKeys {
    pub current: SigningKey,
    /// Published, not yet used to sign.
    pub next: Option<X509>,
}

impl std::fmt::Debug for IdpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpKeys").field("next", &self.next.is_some()).finish_non_exhaustive()
    }
}

impl IdpKeys {
    /// Loads the keys of `dir`; with `generate` (development) creates a
    /// missing current key first.
    pub fn load(dir: &Path, generate: bool, entity_id: &str) -> Result<Self, SecretError> {
        if generate && !dir.join(KEY).exists() {
            std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
            generate_pair(dir, KEY, CERT, entity_id)?;
        }
        let current = read_pair(&dir.join(KEY), &dir.join(CERT))?;
        let next = if dir.join(NEXT_CERT).exists() { Some(read_cert(&dir.join(NEXT_CERT))?) } else { None };
        Ok(IdpKeys { current, next })
    }

    /// The certificates to publish, current first.
    pub fn published(&self) -> Vec<&X509> {
        std::iter::once(&self.current.certificate).chain(self.next.as_ref()).collect()
    }

    /// Development and tests: a fresh key in memory.
    pub fn ephemeral(bits: u32) -> Result<Self, SecretError> {
        let (key, certificate) = new_pair(bits, "test").map_err(crypto)?;
        Ok(IdpKeys { current: SigningKey { key, certificate }, next: None })
    }
}

fn crypto(e: openssl::error::ErrorStack) -> SecretError {
    SecretError::Crypto(e.to_string())
}

fn new_pair(bits: u32, entity_id: &str) -> Result<(PKey<openssl::pkey::Private>, X509), openssl::error::ErrorStack> {
    let key = PKey::from_rsa(Rsa::generate(bits)?)?;
    let cn: String = entity_id.chars().take(64).collect();
    let cert = spid_secrets::self_signed_certificate(
        &key,
        &[(Nid::COMMONNAME, &cn), (Nid::ORGANIZATIONNAME, "SPID IdP (development)"), (Nid::COUNTRYNAME, "IT")],
        730,
    )?;
    Ok((key, cert))
}

/// Writes a new key pair (never replacing one): `idp keys next` uses it
/// for a rollover; development for the first key.
pub fn generate_pair(dir: &Path, key_name: &str, cert_name: &str, entity_id: &str) -> Result<PathBuf, SecretError> {
    let (key, cert) = new_pair(RSA_BITS, entity_id).map_err(crypto)?;
    write_private(&dir.join(key_name), &key.private_key_to_pem_pkcs8().map_err(crypto)?)?;
    write_private(&dir.join(cert_name), &cert.to_pem().map_err(crypto)?)?;
    Ok(dir.join(cert_name))
}

fn read_cert(path: &Path) -> Result<X509, SecretError> {
    let pem = std::fs::read(path).map_err(|e| file_err(path, e))?;
    X509::from_pem(&pem).map_err(|_| file_err(path, "not a PEM certificate"))
}

fn read_pair(key_path: &Path, cert_path: &Path) -> Result<SigningKey, SecretError> {
    let pem = std::fs::read(key_path).map_err(|e| file_err(key_path, e))?;
    let key = PKey::private_key_from_pem(&pem).map_err(|_| file_err(key_path, "not a PEM private key"))?;
    let certificate = read_cert(cert_path)?;
    let matches = certificate.public_key().map(|p| p.public_eq(&key)).unwrap_or(false);
    if !matches {
        return Err(file_err(cert_path, "the certificate is not for the signing key"));
    }
    if key.bits() < 2048 {
        return Err(file_err(key_path, "keys shorter than 2048 bits are not accepted (SAML-5)"));
    }
    Ok(SigningKey { key, certificate })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_loaded_with_the_next_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let keys = IdpKeys::load(dir.path(), true, "https://idp.example.it").unwrap();
        assert_eq!(keys.current.key.bits(), 3072);
        assert_eq!(keys.published().len(), 1);
        let again = IdpKeys::load(dir.path(), false, "https://idp.example.it").unwrap();
        assert!(again.current.key.public_eq(&keys.current.key));

        generate_pair(dir.path(), NEXT_KEY, NEXT_CERT, "https://idp.example.it").unwrap();
        let rolling = IdpKeys::load(dir.path(), false, "https://idp.example.it").unwrap();
        assert_eq!(rolling.published().len(), 2);

        // A certificate that does not match the key is refused.
        std::fs::remove_file(dir.path().join(CERT)).unwrap();
        std::fs::copy(dir.path().join(NEXT_CERT), dir.path().join(CERT)).unwrap();
        assert!(IdpKeys::load(dir.path(), false, "x").is_err());
        assert!(IdpKeys::load(tempfile::tempdir().unwrap().path(), false, "x").is_err(), "production never generates");
    }
}
