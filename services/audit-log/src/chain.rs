//! The hash chain (AUD-4 "unalterable, integrity protected"). Each record's
//! digest covers its position, its recording time and its full content;
//! each chain value covers the previous chain value and the digest, so
//! changing, removing, inserting or reordering any record changes every
//! chain value after it, up to the signed daily seal.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The chain value before the first record.
pub const GENESIS: Hash = [0; 32];

/// SHA-256 of the record's content (the encoded event envelope).
pub fn content_hash(envelope: &[u8]) -> Hash {
    Sha256::digest(envelope).into()
}

pub fn record_digest(sequence: u64, recorded_at_micros: i64, content: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(b"spid-audit-record-v1\0");
    h.update(sequence.to_be_bytes());
    h.update(recorded_at_micros.to_be_bytes());
    h.update(content);
    h.finalize().into()
}

pub fn link(previous: &Hash, digest: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(b"spid-audit-chain-v1\0");
    h.update(previous);
    h.update(digest);
    h.finalize().into()
}

pub fn to_hash(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_moves_the_chain() {
        let content = content_hash(b"event");
        let base = link(&GENESIS, &record_digest(1, 10, &content));
        assert_ne!(base, link(&GENESIS, &record_digest(2, 10, &content)));
        assert_ne!(base, link(&GENESIS, &record_digest(1, 11, &content)));
        assert_ne!(base, link(&GENESIS, &record_digest(1, 10, &content_hash(b"evenT"))));
        assert_ne!(base, link(&[1; 32], &record_digest(1, 10, &content)));
        // Known answer: SHA-256 of the empty input.
        assert_eq!(hex::encode(content_hash(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
