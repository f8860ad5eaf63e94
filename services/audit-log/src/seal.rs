//! Daily seals (AUD-4 "daily logs are electronically signed"): the chain
//! value at the end of each UTC day, signed by the audit key, chained to the
//! previous day's seal and time-stamped by a time-stamping authority.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};
use spid_types::{Clock, ServiceError};

use crate::crypto;
use crate::keys::AuditKeys;
use crate::store::SealRow;

/// The text a seal signs. Stable: changing it invalidates every seal.
pub fn seal_text(day: &str, first: u64, last: u64, records: u64, chain: &[u8], previous: &[u8]) -> String {
    format!(
        "spid-audit-seal-v1\nday={day}\nfirst={first}\nlast={last}\nrecords={records}\nchain={}\nprevious={}\n",
        hex::encode(chain),
        hex::encode(previous)
    )
}

pub fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Whether a stored seal is what the audit key signed.
pub fn seal_is_authentic(keys: &AuditKeys, s: &SealRow) -> bool {
    let text = seal_text(&s.day, s.first_seq, s.last_seq, s.records, &s.chain, &s.previous);
    digest(&text).as_slice() == s.digest.as_slice() && crypto::verify_signature(keys, text.as_bytes(), &s.signature)
}

pub fn day_of(micros: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default().date_naive()
}

pub fn start_of(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros()).unwrap_or(0)
}

/// A time-stamping authority for the seals' digests.
#[async_trait]
pub trait Timestamper: Send + Sync {
    /// Names the authority in the seal (`rfc3161:<url>`, `local`, `none`).
    fn authority(&self) -> String;
    /// The token for `digest`.
    async fn stamp(&self, digest: &[u8; 32]) -> Result<Vec<u8>, ServiceError>;
}

/// No time-stamping: the seal is signed only. Named `none` in the seal.
pub struct NoTimestamp;

#[async_trait]
impl Timestamper for NoTimestamp {
    fn authority(&self) -> String {
        "none".into()
    }
    async fn stamp(&self, _digest: &[u8; 32]) -> Result<Vec<u8>, ServiceError> {
        Ok(Vec::new())
    }
}

/// Development: the audit key itself attests the time (`local`). Not a
/// qualified time stamp, and named as such in every seal.
pub struct LocalTimestamper {
    pub keys: Arc<AuditKeys>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl Timestamper for LocalTimestamper {
    fn authority(&self) -> String {
        "local".into()
    }
    async fn stamp(&self, digest: &[u8; 32]) -> Result<Vec<u8>, ServiceError> {
        use base64::Engine;
        let text = format!(
            "spid-audit-local-timestamp-v1\ntime={}\ndigest={}\n",
            self.clock.now().to_rfc3339(),
            hex::encode(digest)
        );
        let signature = crypto::sign(&self.keys, text.as_bytes())?;
        Ok(format!("{text}signature={}\n", base64::engine::general_purpose::STANDARD.encode(signature)).into_bytes())
    }
}

/// An RFC 3161 time-stamping authority over HTTP(S): posts a
/// `TimeStampReq` for the SHA-256 digest and keeps the whole
/// `TimeStampResp` (verifiable with `openssl ts -verify`).
pub struct Rfc3161 {
    url: url::Url,
    client: reqwest::Client,
}

impl Rfc3161 {
    pub fn new(url: url::Url) -> Result<Self, ServiceError> {
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(ServiceError::internal)?;
        Ok(Self { url, client })
    }
}

#[async_trait]
impl Timestamper for Rfc3161 {
    fn authority(&self) -> String {
        format!("rfc3161:{}", self.url)
    }

    async fn stamp(&self, digest: &[u8; 32]) -> Result<Vec<u8>, ServiceError> {
        let mut nonce = [0u8; 8];
        openssl::rand::rand_bytes(&mut nonce).map_err(ServiceError::internal)?;
        let unavailable =
            |e: String| ServiceError::unavailable("tsa.unavailable", format!("time-stamping authority: {e}"));
        let response = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/timestamp-query")
            .body(timestamp_request(digest, nonce))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        let body = response.bytes().await.map_err(|e| unavailable(e.to_string()))?.to_vec();
        match response_status(&body) {
            Some(0 | 1) => Ok(body),
            Some(status) => Err(unavailable(format!("refused the request (PKIStatus {status})"))),
            None => Err(unavailable("the answer is not a TimeStampResp".into())),
        }
    }
}

/// DER `TimeStampReq` (RFC 3161 §2.4.1): version 1, SHA-256 imprint, a
/// nonce, certReq true.
pub fn timestamp_request(digest: &[u8; 32], mut nonce: [u8; 8]) -> Vec<u8> {
    // A positive, minimally encoded INTEGER: first byte in 0x40..=0x7f.
    nonce[0] = (nonce[0] & 0x3f) | 0x40;
    const SHA256_ALGORITHM: [u8; 15] =
        [0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00];
    let mut imprint = vec![0x30, 0x31];
    imprint.extend_from_slice(&SHA256_ALGORITHM);
    imprint.extend_from_slice(&[0x04, 0x20]);
    imprint.extend_from_slice(digest);
    let mut body = vec![0x02, 0x01, 0x01];
    body.extend_from_slice(&imprint);
    body.extend_from_slice(&[0x02, 0x08]);
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&[0x01, 0x01, 0xff]);
    let mut out = vec![0x30, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// Reads a DER header at `at`: (tag, content start, content length).
fn der_header(b: &[u8], at: usize) -> Option<(u8, usize, usize)> {
    let tag = *b.get(at)?;
    let first = *b.get(at + 1)?;
    if first < 0x80 {
        return Some((tag, at + 2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | usize::from(*b.get(at + 2 + i)?);
    }
    Some((tag, at + 2 + n, len))
}

/// The PKIStatus of a DER `TimeStampResp`.
pub fn response_status(b: &[u8]) -> Option<u32> {
    let (tag, start, len) = der_header(b, 0)?;
    if tag != 0x30 || start + len != b.len() {
        return None;
    }
    let (tag, info, _) = der_header(b, start)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, value, len) = der_header(b, info)?;
    if tag != 0x02 || len == 0 || len > 4 {
        return None;
    }
    Some(b.get(value..value + len)?.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_request_is_well_formed_der() {
        let req = timestamp_request(&[7; 32], [0xff; 8]);
        assert_eq!(req.len(), 2 + 0x43);
        assert_eq!(der_header(&req, 0), Some((0x30, 2, 0x43)));
        // version 1, then the imprint carrying the digest.
        assert_eq!(&req[2..5], &[0x02, 0x01, 0x01]);
        assert!(req.windows(34).any(|w| w[..2] == [0x04, 0x20] && w[2..] == [7; 32]));
        // nonce positive and minimal.
        let nonce_at = req.windows(2).position(|w| w == [0x02, 0x08]).unwrap();
        assert_eq!(req[nonce_at + 2] & 0xc0, 0x40);
    }

    #[test]
    fn response_status_reads_granted_and_refusals() {
        // SEQUENCE { SEQUENCE { INTEGER 0 } }
        assert_eq!(response_status(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00]), Some(0));
        assert_eq!(response_status(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02]), Some(2));
        // Long-form length.
        let mut long = vec![0x30, 0x81, 0x85, 0x30, 0x03, 0x02, 0x01, 0x00, 0x04, 0x7e];
        long.extend_from_slice(&[0; 0x7e]);
        assert_eq!(response_status(&long), Some(0));
        assert_eq!(response_status(b"<html>"), None);
        assert_eq!(response_status(&[0x30, 0x09, 0x30]), None);
    }

    #[test]
    fn seal_text_covers_every_field() {
        let base = seal_text("2026-11-23", 1, 9, 9, &[1; 32], &[0; 32]);
        for other in [
            seal_text("2026-11-24", 1, 9, 9, &[1; 32], &[0; 32]),
            seal_text("2026-11-23", 2, 9, 9, &[1; 32], &[0; 32]),
            seal_text("2026-11-23", 1, 8, 9, &[1; 32], &[0; 32]),
            seal_text("2026-11-23", 1, 9, 8, &[1; 32], &[0; 32]),
            seal_text("2026-11-23", 1, 9, 9, &[2; 32], &[0; 32]),
            seal_text("2026-11-23", 1, 9, 9, &[1; 32], &[3; 32]),
        ] {
            assert_ne!(digest(&base), digest(&other));
        }
    }
}

/// The RFC 3161 client against an independent TSA: `openssl ts -reply`
/// behind a minimal HTTP endpoint; the token it returns verifies with
/// `openssl ts -verify` for our digest.
#[cfg(test)]
mod rfc3161_tests {
    use std::path::Path;
    use std::process::Command;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn tsa_certificate(dir: &Path) {
        use openssl::asn1::Asn1Time;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::hash::MessageDigest;
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
        use openssl::x509::{X509Builder, X509NameBuilder};

        let key =
            PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap())
                .unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, "Test TSA").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
        b.append_extension(BasicConstraints::new().build().unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().digital_signature().build().unwrap()).unwrap();
        b.append_extension(ExtendedKeyUsage::new().critical().time_stamping().build().unwrap()).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        std::fs::write(dir.join("tsa.key"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        std::fs::write(dir.join("tsa.crt"), b.build().to_pem().unwrap()).unwrap();
        std::fs::write(dir.join("tsaserial"), "01\n").unwrap();
        let config = format!(
            "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\ndir = {}\nserial = $dir/tsaserial\ncrypto_device = builtin\n\
             signer_cert = $dir/tsa.crt\ncerts = $dir/tsa.crt\nsigner_key = $dir/tsa.key\nsigner_digest = sha256\n\
             default_policy = 1.2.3.4.1\ndigests = sha256\naccuracy = secs:1\nordering = yes\ntsa_name = no\n\
             ess_cert_id_chain = no\ness_cert_id_alg = sha256\n",
            dir.display()
        );
        std::fs::write(dir.join("tsa.cnf"), config).unwrap();
    }

    /// Answers each POST with `openssl ts -reply` for its body.
    async fn serve_tsa(listener: tokio::net::TcpListener, dir: std::path::PathBuf) {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            let body = loop {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                    .unwrap();
                if request.len() >= end + 4 + length {
                    assert!(head.contains("content-type: application/timestamp-query"), "{head}");
                    break request[end + 4..end + 4 + length].to_vec();
                }
            };
            std::fs::write(dir.join("q.tsq"), body).unwrap();
            let out = Command::new("openssl")
                .args(["ts", "-reply", "-config"])
                .arg(dir.join("tsa.cnf"))
                .arg("-queryfile")
                .arg(dir.join("q.tsq"))
                .arg("-out")
                .arg(dir.join("r.tsr"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let reply = std::fs::read(dir.join("r.tsr")).unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/timestamp-reply\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                reply.len()
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.write_all(&reply).await.unwrap();
        }
    }

    #[tokio::test]
    async fn tokens_from_a_real_tsa_verify_for_our_digest() {
        let dir = tempfile::tempdir().unwrap();
        tsa_certificate(dir.path());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!("http://{}/tsa", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(serve_tsa(listener, dir.path().to_owned()));

        let digest = digest("spid-audit-seal-v1\nday=2026-11-23\n");
        let tsa = Rfc3161::new(url.clone()).unwrap();
        assert_eq!(tsa.authority(), format!("rfc3161:{url}"));
        let token = tsa.stamp(&digest).await.unwrap();
        assert_eq!(response_status(&token), Some(0));
        std::fs::write(dir.path().join("token.tsr"), &token).unwrap();
        let verify = |hex_digest: &str| {
            Command::new("openssl")
                .args(["ts", "-verify", "-digest", hex_digest, "-in"])
                .arg(dir.path().join("token.tsr"))
                .arg("-CAfile")
                .arg(dir.path().join("tsa.crt"))
                .output()
                .unwrap()
        };
        let ok = verify(&hex::encode(digest));
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        assert!(!verify(&hex::encode([0u8; 32])).status.success(), "another digest must not verify");

        // An authority that is down is an error, never a silent success.
        let down = Rfc3161::new(url::Url::parse("http://127.0.0.1:9/tsa").unwrap()).unwrap();
        assert_eq!(down.stamp(&digest).await.unwrap_err().code, "tsa.unavailable");
    }
}
