//! Identification by CIE 3.0 (IDN-1 c): the applicant authenticates with
//! the electronic identity card at the Ministry of the Interior's OpenID
//! provider ("Entra con CIE"); the ID token it issues to us is the
//! evidence. Checked here: the RS256 signature against the provider's keys,
//! the issuer, our client id in the audience, the validity window, the
//! nonce bound to the identity request, and the fiscal-number claim, which
//! must then match the applicant's codice fiscale.
//!
//! The authorisation-code exchange that obtains the token is the relying
//! party's (the front end's) business; whoever brings the token cannot
//! alter it, reuse it for another request (nonce) or after it expires.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;

/// The claim carrying the holder's codice fiscale (`TINIT-…`).
pub const FISCAL_NUMBER_CLAIM: &str = "https://attributes.eid.gov.it/fiscal_number";
/// Clock skew tolerated on `iat` and `exp`.
pub const SKEW_SECONDS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CieError {
    #[error("not a signed ID token")]
    Malformed,
    #[error("the ID token's algorithm {0} is not accepted (RS256 only)")]
    Algorithm(String),
    #[error("the ID token's signature is not the CIE provider's")]
    Signature,
    #[error("the ID token was issued by {0}, not the CIE provider")]
    Issuer(String),
    #[error("the ID token was issued to another client")]
    Audience,
    #[error("the ID token has expired or is not yet valid")]
    Expired,
    #[error("the ID token belongs to another request")]
    Nonce,
    #[error("the ID token carries no fiscal number")]
    NoFiscalNumber,
    #[error("CIE provider keys: {0}")]
    Keys(String),
}

impl CieError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "cie.malformed",
            Self::Algorithm(_) => "cie.algorithm",
            Self::Signature => "cie.signature",
            Self::Issuer(_) => "cie.issuer",
            Self::Audience => "cie.audience",
            Self::Expired => "cie.expired",
            Self::Nonce => "cie.nonce",
            Self::NoFiscalNumber => "cie.no_fiscal_number",
            Self::Keys(_) => "cie.keys",
        }
    }
}

/// The CIE OpenID provider as we trust it.
#[derive(Clone)]
pub struct CieProvider {
    issuer: String,
    client_id: String,
    keys: Vec<PKey<Public>>,
}

impl std::fmt::Debug for CieProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CieProvider").field("issuer", &self.issuer).field("keys", &self.keys.len()).finish()
    }
}

fn part(s: &str) -> Result<serde_json::Value, CieError> {
    let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| CieError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| CieError::Malformed)
}

impl CieProvider {
    /// The provider `issuer`, our `client_id`, and its signing keys as PEM
    /// public keys (one or more, for its key rollover).
    pub fn new(issuer: &str, client_id: &str, keys_pem: &[u8]) -> Result<Self, CieError> {
        let text = std::str::from_utf8(keys_pem).map_err(|e| CieError::Keys(e.to_string()))?;
        let mut keys = Vec::new();
        for block in text.split_inclusive("-----END PUBLIC KEY-----").filter(|b| b.contains("BEGIN PUBLIC KEY")) {
            keys.push(PKey::public_key_from_pem(block.trim().as_bytes()).map_err(|e| CieError::Keys(e.to_string()))?);
        }
        if keys.is_empty() {
            return Err(CieError::Keys("no public key".into()));
        }
        Ok(Self { issuer: issuer.to_owned(), client_id: client_id.to_owned(), keys })
    }

    /// The codice fiscale an ID token vouches for, if every check passes.
    pub fn verify(&self, id_token: &str, nonce: &str, now: DateTime<Utc>) -> Result<String, CieError> {
        let mut parts = id_token.trim().split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(CieError::Malformed);
        };
        let header = part(h)?;
        match header["alg"].as_str() {
            Some("RS256") => {}
            other => return Err(CieError::Algorithm(other.unwrap_or("none").to_owned())),
        }
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| CieError::Malformed)?;
        let signed = format!("{h}.{p}");
        let valid = self.keys.iter().any(|key| {
            Verifier::new(MessageDigest::sha256(), key)
                .and_then(|mut v| {
                    v.update(signed.as_bytes())?;
                    v.verify(&signature)
                })
                .unwrap_or(false)
        });
        if !valid {
            return Err(CieError::Signature);
        }
        let claims = part(p)?;
        let iss = claims["iss"].as_str().unwrap_or_default();
        if iss != self.issuer {
            return Err(CieError::Issuer(iss.to_owned()));
        }
        let audience_ok = match &claims["aud"] {
            serde_json::Value::String(a) => a == &self.client_id,
            serde_json::Value::Array(a) => a.iter().any(|x| x.as_str() == Some(&self.client_id)),
            _ => false,
        };
        if !audience_ok {
            return Err(CieError::Audience);
        }
        let t = now.timestamp();
        let (exp, iat) = (claims["exp"].as_i64(), claims["iat"].as_i64());
        let valid_now = exp.is_some_and(|e| t <= e + SKEW_SECONDS) && iat.is_some_and(|i| i <= t + SKEW_SECONDS);
        if !valid_now {
            return Err(CieError::Expired);
        }
        // Constant-time: the nonce is derived from a secret.
        let given = claims["nonce"].as_str().unwrap_or_default();
        if given.len() != nonce.len() || !openssl::memcmp::eq(given.as_bytes(), nonce.as_bytes()) {
            return Err(CieError::Nonce);
        }
        let number = claims[FISCAL_NUMBER_CLAIM].as_str().ok_or(CieError::NoFiscalNumber)?;
        let code = number.strip_prefix("TINIT-").unwrap_or(number).to_ascii_uppercase();
        if code.len() != 16 {
            return Err(CieError::NoFiscalNumber);
        }
        Ok(code)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! ID tokens signed by the `openssl` command-line tool.

    use std::path::Path;
    use std::process::Command;

    use super::*;

    pub(crate) const ISSUER: &str = "https://id.servizicie.interno.gov.it";
    pub(crate) const CLIENT: &str = "https://login.idp.example.it/cie";

    /// A provider key pair in `dir`: `cie.key` and `cie.pub`.
    pub(crate) fn keys(dir: &Path) -> Vec<u8> {
        let run = |args: &[&str]| {
            let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        };
        run(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "cie.key"]);
        run(&["pkey", "-in", "cie.key", "-pubout", "-out", "cie.pub"]);
        std::fs::read(dir.join("cie.pub")).unwrap()
    }

    /// An ID token with `claims`, signed with `openssl dgst -sha256 -sign`.
    pub(crate) fn token(dir: &Path, alg: &str, claims: &serde_json::Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg": alg, "typ": "JWT", "kid": "k1"}).to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        std::fs::write(dir.join("signed.txt"), format!("{h}.{p}")).unwrap();
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(["dgst", "-sha256", "-sign", "cie.key", "signed.txt"])
            .output()
            .unwrap();
        assert!(out.status.success());
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
    }

    pub(crate) fn claims(nonce: &str, now: DateTime<Utc>) -> serde_json::Value {
        serde_json::json!({
            "iss": ISSUER, "aud": [CLIENT], "sub": "opaque-subject", "nonce": nonce,
            "iat": now.timestamp(), "exp": now.timestamp() + 300,
            FISCAL_NUMBER_CLAIM: "TINIT-RSSMRA80B01H501T",
        })
    }

    #[test]
    fn every_check_of_the_id_token() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let provider = CieProvider::new(ISSUER, CLIENT, &keys(d)).unwrap();
        let now = Utc::now();
        let good = token(d, "RS256", &claims("n-1", now));
        assert_eq!(provider.verify(&good, "n-1", now).unwrap(), "RSSMRA80B01H501T");
        let code = |t: &str, nonce: &str| provider.verify(t, nonce, now).unwrap_err().code();
        assert_eq!(code(&good, "n-2"), "cie.nonce");
        assert_eq!(
            provider.verify(&good, "n-1", now + chrono::Duration::seconds(400)).unwrap_err().code(),
            "cie.expired"
        );
        let mut other = claims("n-1", now);
        other["aud"] = "https://someone-else.example".into();
        assert_eq!(code(&token(d, "RS256", &other), "n-1"), "cie.audience");
        let mut other = claims("n-1", now);
        other["iss"] = "https://fake.example".into();
        assert_eq!(code(&token(d, "RS256", &other), "n-1"), "cie.issuer");
        let mut other = claims("n-1", now);
        other.as_object_mut().unwrap().remove(FISCAL_NUMBER_CLAIM);
        assert_eq!(code(&token(d, "RS256", &other), "n-1"), "cie.no_fiscal_number");
        // Another payload under the good signature.
        let parts: Vec<&str> = good.split('.').collect();
        let mut forged = claims("n-1", now);
        forged[FISCAL_NUMBER_CLAIM] = "TINIT-BNCLGU80A01H501A".into();
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(forged.to_string()), parts[2]);
        assert_eq!(code(&forged, "n-1"), "cie.signature");
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(code(&none, "n-1"), "cie.algorithm");
        assert_eq!(code("not.a.token.at.all", "n-1"), "cie.malformed");
        // A key the provider does not hold.
        let other_dir = tempfile::tempdir().unwrap();
        let stranger = CieProvider::new(ISSUER, CLIENT, &keys(other_dir.path())).unwrap();
        assert_eq!(stranger.verify(&good, "n-1", now).unwrap_err().code(), "cie.signature");
        assert_eq!(CieProvider::new(ISSUER, CLIENT, b"nothing").unwrap_err().code(), "cie.keys");
    }
}
