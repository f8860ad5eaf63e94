//! The encoding of protocol messages kept in the transaction registry
//! (AUD-2): the XML deflated (raw RFC 1951, as the SAML HTTP-Redirect
//! binding does) and base64-encoded.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryEncodingError {
    #[error("not base64")]
    Base64,
    #[error("not a deflate stream")]
    Deflate,
    #[error("inflates to more than {0} bytes")]
    TooLarge(usize),
}

/// Deflates and base64-encodes a message.
pub fn deflate_base64(message: &[u8]) -> String {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let compressed = encoder.write_all(message).and_then(|()| encoder.finish()).unwrap_or_default();
    STANDARD.encode(compressed)
}

/// Decodes what [`deflate_base64`] produced, refusing output larger than
/// `max` bytes (a deflate bomb).
pub fn inflate_base64(encoded: &str, max: usize) -> Result<Vec<u8>, RegistryEncodingError> {
    let compressed = STANDARD.decode(encoded.trim()).map_err(|_| RegistryEncodingError::Base64)?;
    let mut out = Vec::new();
    let mut decoder = flate2::read::DeflateDecoder::new(compressed.as_slice()).take(max as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|_| RegistryEncodingError::Deflate)?;
    if out.len() > max {
        return Err(RegistryEncodingError::TooLarge(max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_input() {
        let xml = b"<samlp:AuthnRequest ID=\"_1\"/>".repeat(20);
        let encoded = deflate_base64(&xml);
        assert!(encoded.len() < xml.len());
        assert_eq!(inflate_base64(&encoded, 10_000).unwrap(), xml);
        assert_eq!(inflate_base64(&encoded, 100), Err(RegistryEncodingError::TooLarge(100)));
        assert_eq!(inflate_base64("%%%", 100), Err(RegistryEncodingError::Base64));
        assert_eq!(inflate_base64(&STANDARD.encode([0xff, 0xff, 0xff]), 100), Err(RegistryEncodingError::Deflate));
    }
}
