//! One-time passwords from a shared seed: HOTP (RFC 4226) and TOTP
//! (RFC 6238), the provisioning URI authenticator apps read, and the
//! verification rule of OTP-2/OTP-8 — a window of one step either side,
//! and a step once accepted never accepted again.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// The HMAC of RFC 6238 (SHA-1 is RFC 4226's and what most apps expect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    fn digest(self) -> MessageDigest {
        match self {
            Algorithm::Sha1 => MessageDigest::sha1(),
            Algorithm::Sha256 => MessageDigest::sha256(),
            Algorithm::Sha512 => MessageDigest::sha512(),
        }
    }

    pub fn uri_name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    #[error("HMAC failed: {0}")]
    Crypto(String),
    #[error("digits must be 6 to 8")]
    Digits,
}

fn crypto(e: openssl::error::ErrorStack) -> OtpError {
    OtpError::Crypto(e.to_string())
}

/// HOTP value of `counter` (RFC 4226 §5.3: dynamic truncation).
pub fn hotp(seed: &[u8], counter: u64, digits: u32, algorithm: Algorithm) -> Result<String, OtpError> {
    if !(6..=8).contains(&digits) {
        return Err(OtpError::Digits);
    }
    let key = PKey::hmac(seed).map_err(crypto)?;
    let mut signer = Signer::new(algorithm.digest(), &key).map_err(crypto)?;
    signer.update(&counter.to_be_bytes()).map_err(crypto)?;
    let mac = signer.sign_to_vec().map_err(crypto)?;
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let slice: [u8; 4] = mac
        .get(offset..offset + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| OtpError::Crypto("HMAC shorter than its truncation".into()))?;
    let binary = u32::from_be_bytes(slice) & 0x7fff_ffff;
    let value = binary % 10u32.pow(digits);
    Ok(format!("{value:0width$}", width = digits as usize))
}

/// The parameters of one TOTP token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totp {
    pub digits: u32,
    pub period: u64,
    pub algorithm: Algorithm,
}

/// What the apps of this IdP and the common authenticator apps use.
pub const DEFAULT: Totp = Totp { digits: 6, period: 30, algorithm: Algorithm::Sha1 };

/// A code was right for this time step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub step: u64,
}

impl Totp {
    pub fn step(&self, unix_seconds: u64) -> u64 {
        unix_seconds / self.period
    }

    pub fn code_at(&self, seed: &[u8], unix_seconds: u64) -> Result<String, OtpError> {
        hotp(seed, self.step(unix_seconds), self.digits, self.algorithm)
    }

    /// Checks `code` against the steps around `unix_seconds` (one either
    /// side, for clock drift), newer than `last_used_step` only: a step
    /// that was accepted once is refused ever after, so an intercepted code
    /// cannot be replayed (OTP-8). Every candidate is computed and compared
    /// in constant time.
    pub fn verify(
        &self,
        seed: &[u8],
        code: &str,
        unix_seconds: u64,
        last_used_step: Option<u64>,
    ) -> Result<Option<Accepted>, OtpError> {
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let now = self.step(unix_seconds);
        let mut found = None;
        for step in [now.saturating_sub(1), now, now + 1] {
            let expected = hotp(seed, step, self.digits, self.algorithm)?;
            let fresh = last_used_step.is_none_or(|last| step > last);
            if openssl::memcmp::eq(expected.as_bytes(), code.as_bytes()) && fresh && found.is_none() {
                found = Some(Accepted { step });
            }
        }
        Ok(found)
    }

    /// The `otpauth://` URI an authenticator app reads (from a QR code).
    pub fn provisioning_uri(&self, seed: &[u8], issuer: &str, account: &str) -> String {
        let label = format!("{}:{}", encode_component(issuer), encode_component(account));
        format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
            base32(seed),
            encode_component(issuer),
            self.algorithm.uri_name(),
            self.digits,
            self.period
        )
    }
}

/// RFC 4648 base32 without padding (what `otpauth://` URIs carry).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// RFC 4648 base32 (upper case, padding optional) back to bytes: what an
/// authenticator app does with the URI's secret. `None` on a bad character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Percent-encoding of everything but unreserved characters (RFC 3986).
fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC4226_SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d_vectors() {
        let expected =
            ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC4226_SEED, counter as u64, 6, Algorithm::Sha1).unwrap(), *code, "counter {counter}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, c1, c256, c512) in table {
            let t = |algorithm| Totp { digits: 8, period: 30, algorithm };
            assert_eq!(t(Algorithm::Sha1).code_at(&sha1, time).unwrap(), c1, "SHA1 at {time}");
            assert_eq!(t(Algorithm::Sha256).code_at(&sha256, time).unwrap(), c256, "SHA256 at {time}");
            assert_eq!(t(Algorithm::Sha512).code_at(&sha512, time).unwrap(), c512, "SHA512 at {time}");
        }
    }

    #[test]
    fn one_step_of_drift_either_side_and_never_the_same_step_twice() {
        let seed = b"an example seed of twenty bytes!";
        let now = 1_800_000_015;
        let code = |t: u64| DEFAULT.code_at(seed, t).unwrap();
        let ok = DEFAULT.verify(seed, &code(now), now, None).unwrap().unwrap();
        assert_eq!(ok.step, now / 30);
        assert!(DEFAULT.verify(seed, &code(now - 30), now, None).unwrap().is_some(), "previous step");
        assert!(DEFAULT.verify(seed, &code(now + 30), now, None).unwrap().is_some(), "next step");
        assert!(DEFAULT.verify(seed, &code(now - 60), now, None).unwrap().is_none(), "two steps old");
        assert!(DEFAULT.verify(seed, &code(now + 60), now, None).unwrap().is_none(), "two steps ahead");
        // Replay: the accepted step, and anything before it, is refused.
        assert!(DEFAULT.verify(seed, &code(now), now, Some(ok.step)).unwrap().is_none());
        assert!(DEFAULT.verify(seed, &code(now - 30), now, Some(ok.step)).unwrap().is_none());
        assert!(DEFAULT.verify(seed, &code(now + 30), now + 30, Some(ok.step)).unwrap().is_some());
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert!(DEFAULT.verify(seed, bad, now, None).unwrap().is_none(), "{bad:?}");
        }
    }

    #[test]
    fn provisioning_uri_carries_the_seed_in_base32() {
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("MZXW6YTBOI").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZXW6YQ=").unwrap(), b"foob");
        assert_eq!(base32_decode("mzxw"), None, "lower case is not base32 here");
        let uri = DEFAULT.provisioning_uri(b"12345678901234567890", "SPID XIDP", "mario.rossi@example.it");
        assert_eq!(
            uri,
            "otpauth://totp/SPID%20XIDP:mario.rossi%40example.it?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=SPID%20XIDP&algorithm=SHA1&digits=6&period=30"
        );
    }
}
