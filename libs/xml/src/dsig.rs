//! Enveloped XML signatures (XML-DSig 1.1 as SAML profiles it).
//!
//! Verification accepts exactly one shape: a `ds:Signature` child of the
//! document's root element, exclusive canonicalisation, one `Reference` to
//! the root's own `ID`, the enveloped-signature and exclusive-c14n
//! transforms only, SHA-256 or stronger digests, RSA (PKCS#1 v1.5) or ECDSA
//! with SHA-256 or stronger. The key comes from the caller (the metadata
//! registered for the sender); a `KeyInfo` in the document is ignored.
//! Every `ID` in the document must be unique.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private};
use openssl::sign::{Signer as OsslSigner, Verifier};
use openssl::x509::X509;

use crate::c14n::exclusive;
use crate::dom::{Element, Node};
use crate::ns::{DSIG, EXC_C14N};

pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// A signature algorithm of XML-DSig (also used by the SAML HTTP-Redirect
/// binding's `SigAlg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

impl SignatureAlgorithm {
    /// SHA-1 and anything unknown are refused.
    pub fn from_uri(uri: &str) -> Option<Self> {
        Some(match uri {
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => Self::RsaSha256,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => Self::RsaSha384,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => Self::RsaSha512,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => Self::EcdsaSha256,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => Self::EcdsaSha384,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" => Self::EcdsaSha512,
            _ => return None,
        })
    }

    pub fn uri(self) -> &'static str {
        match self {
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            Self::RsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            Self::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            Self::EcdsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            Self::EcdsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
            Self::EcdsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Self::RsaSha256 | Self::EcdsaSha256 => MessageDigest::sha256(),
            Self::RsaSha384 | Self::EcdsaSha384 => MessageDigest::sha384(),
            Self::RsaSha512 | Self::EcdsaSha512 => MessageDigest::sha512(),
        }
    }

    fn is_ecdsa(self) -> bool {
        matches!(self, Self::EcdsaSha256 | Self::EcdsaSha384 | Self::EcdsaSha512)
    }

    /// Checks `signature` over `data` with `key` (XML-DSig encodes ECDSA
    /// signatures as r‖s, not DER).
    pub fn verify<T: HasPublic>(self, key: &PKeyRef<T>, data: &[u8], signature: &[u8]) -> bool {
        let key_matches = match key.id() {
            Id::RSA => !self.is_ecdsa(),
            Id::EC => self.is_ecdsa(),
            _ => false,
        };
        if !key_matches {
            return false;
        }
        let der;
        let signature = if self.is_ecdsa() {
            if signature.is_empty() || !signature.len().is_multiple_of(2) {
                return false;
            }
            let (r, s) = signature.split_at(signature.len() / 2);
            let Ok(sig) = BigNum::from_slice(r)
                .and_then(|r| BigNum::from_slice(s).and_then(|s| EcdsaSig::from_private_components(r, s)))
                .and_then(|sig| sig.to_der())
            else {
                return false;
            };
            der = sig;
            der.as_slice()
        } else {
            signature
        };
        Verifier::new(self.digest(), key)
            .and_then(|mut v| {
                v.update(data)?;
                v.verify(signature)
            })
            .unwrap_or(false)
    }
}

fn digest_from_uri(uri: &str) -> Option<MessageDigest> {
    match uri {
        "http://www.w3.org/2001/04/xmlenc#sha256" => Some(MessageDigest::sha256()),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Some(MessageDigest::sha384()),
        "http://www.w3.org/2001/04/xmlenc#sha512" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

const SHA256_URI: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// Real signers list a handful (`xs`, `xsi`, `#default`).
const MAX_INCLUSIVE_PREFIXES: usize = 16;

/// Why a signature was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsigError {
    #[error("the document is not signed")]
    Missing,
    #[error("the signature is malformed: {0}")]
    Malformed(&'static str),
    #[error("unsupported algorithm {0}")]
    Algorithm(String),
    #[error("the signature does not reference the signed element")]
    Reference,
    #[error("the document holds the ID {0} more than once")]
    DuplicateId(String),
    #[error("the signed content was altered")]
    Digest,
    #[error("the signature does not verify with any trusted key")]
    Invalid,
}

fn one<'a>(parent: &'a Element, local: &'static str) -> Result<&'a Element, DsigError> {
    let mut it = parent.children_named(DSIG, local);
    match (it.next(), it.next()) {
        (Some(e), None) => Ok(e),
        (None, _) => Err(DsigError::Malformed(local)),
        (Some(_), Some(_)) => Err(DsigError::Malformed("an element appears twice")),
    }
}

fn b64(e: &Element) -> Result<Vec<u8>, DsigError> {
    let text = e.text_content().ok_or(DsigError::Malformed("base64 value"))?;
    crate::decode_base64(&text).ok_or(DsigError::Malformed("base64 value"))
}

/// Whether `root` carries a `ds:Signature` child at all.
pub fn is_signed(root: &Element) -> bool {
    root.first(DSIG, "Signature").is_some()
}

/// Checks the enveloped signature of the document's root element against
/// the trusted keys; on success the caller may read `root`, and only it.
pub fn verify_root<T: HasPublic>(root: &Element, keys: &[PKey<T>]) -> Result<(), DsigError> {
    let mut sigs = root.children_named(DSIG, "Signature");
    let signature = sigs.next().ok_or(DsigError::Missing)?;
    if sigs.next().is_some() {
        return Err(DsigError::Malformed("more than one Signature"));
    }
    let id = root.attribute("ID").filter(|id| !id.is_empty()).ok_or(DsigError::Reference)?;
    unique_ids(root)?;

    let signed_info = one(signature, "SignedInfo")?;
    let c14n_method = one(signed_info, "CanonicalizationMethod")?;
    if c14n_method.attribute("Algorithm") != Some(EXC_C14N) {
        return Err(DsigError::Algorithm(c14n_method.attribute("Algorithm").unwrap_or_default().to_owned()));
    }
    let sig_method = one(signed_info, "SignatureMethod")?;
    let sig_uri = sig_method.attribute("Algorithm").unwrap_or_default();
    let algorithm = SignatureAlgorithm::from_uri(sig_uri).ok_or_else(|| DsigError::Algorithm(sig_uri.to_owned()))?;
    let reference = one(signed_info, "Reference")?;
    if reference.attribute("URI").and_then(|u| u.strip_prefix('#')) != Some(id) {
        return Err(DsigError::Reference);
    }
    let mut inclusive: Vec<String> = Vec::new();
    let mut exc = false;
    if let Some(transforms) = reference.first(DSIG, "Transforms") {
        for t in transforms.elements() {
            if !t.is(DSIG, "Transform") {
                return Err(DsigError::Malformed("Transforms"));
            }
            match t.attribute("Algorithm").unwrap_or_default() {
                ENVELOPED => {}
                EXC_C14N => {
                    exc = true;
                    if let Some(list) = t.first(EXC_C14N, "InclusiveNamespaces") {
                        inclusive = list
                            .attribute("PrefixList")
                            .unwrap_or_default()
                            .split_whitespace()
                            .map(str::to_owned)
                            .collect();
                        inclusive.sort_unstable();
                        inclusive.dedup();
                        if inclusive.len() > MAX_INCLUSIVE_PREFIXES {
                            return Err(DsigError::Malformed("InclusiveNamespaces lists too many prefixes"));
                        }
                    }
                }
                other => return Err(DsigError::Algorithm(other.to_owned())),
            }
        }
    }
    if !exc {
        return Err(DsigError::Algorithm("a Reference without exclusive canonicalisation".into()));
    }
    let digest_uri = one(reference, "DigestMethod")?.attribute("Algorithm").unwrap_or_default();
    let digest = digest_from_uri(digest_uri).ok_or_else(|| DsigError::Algorithm(digest_uri.to_owned()))?;
    let expected = b64(one(reference, "DigestValue")?)?;

    // SignedInfo first: the transforms' parameters (the prefix list) are
    // then authenticated before the whole document is canonicalised.
    let value = b64(one(signature, "SignatureValue")?)?;
    let mut scope = root.ns_decls.clone();
    scope.extend(signature.ns_decls.iter().cloned());
    let signed_info_c14n = exclusive(signed_info, &scope, None, &[]);
    if !keys.iter().any(|k| algorithm.verify(k, signed_info_c14n.as_bytes(), &value)) {
        return Err(DsigError::Invalid);
    }

    let canonical = exclusive(root, &[], Some(signature), &inclusive);
    let actual = hash(digest, canonical.as_bytes()).map_err(|_| DsigError::Digest)?;
    if actual.as_ref() != expected.as_slice() {
        return Err(DsigError::Digest);
    }
    Ok(())
}

fn unique_ids(root: &Element) -> Result<(), DsigError> {
    let mut seen = std::collections::HashSet::new();
    for e in root.descendants() {
        for a in &e.attrs {
            if a.ns.is_none()
                && (a.local == "ID" || a.local == "Id" || a.local == "id")
                && !seen.insert(a.value.as_str())
            {
                return Err(DsigError::DuplicateId(a.value.clone()));
            }
        }
    }
    Ok(())
}

/// Our signing key with the certificate published for it.
pub struct SigningKey {
    pub key: PKey<Private>,
    pub certificate: X509,
}

#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(String);

impl SignError {
    pub fn from_openssl(e: &openssl::error::ErrorStack) -> Self {
        SignError(e.to_string())
    }
}

impl SigningKey {
    pub fn algorithm(&self) -> SignatureAlgorithm {
        if self.key.id() == Id::EC { SignatureAlgorithm::EcdsaSha256 } else { SignatureAlgorithm::RsaSha256 }
    }

    /// Signs raw bytes (the HTTP-Redirect binding, and XML-DSig below).
    pub fn sign_bytes(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let err = |e: openssl::error::ErrorStack| SignError(e.to_string());
        let mut signer = OsslSigner::new(MessageDigest::sha256(), &self.key).map_err(err)?;
        signer.update(data).map_err(err)?;
        let sig = signer.sign_to_vec().map_err(err)?;
        if self.key.id() != Id::EC {
            return Ok(sig);
        }
        // DER → r‖s, each padded to the curve's field size.
        let ec = self.key.ec_key().map_err(err)?;
        let size = (ec.group().degree() as usize).div_ceil(8);
        let parsed = EcdsaSig::from_der(&sig).map_err(err)?;
        let mut out = parsed.r().to_vec_padded(size as i32).map_err(err)?;
        out.extend(parsed.s().to_vec_padded(size as i32).map_err(err)?);
        Ok(out)
    }

    /// Signs `target` (identified by its `ID`) with an enveloped signature
    /// inserted as its child at `position` (after `Issuer` for SAML
    /// elements). `inherited` are the declarations of `target`'s ancestors
    /// in the document it will be placed in.
    pub fn sign_enveloped(
        &self,
        target: &mut Element,
        inherited: &[(Option<String>, String)],
        position: usize,
    ) -> Result<(), SignError> {
        let id = target.attribute("ID").ok_or_else(|| SignError("the element has no ID".into()))?.to_owned();
        let canonical = exclusive(target, inherited, None, &[]);
        let digest = hash(MessageDigest::sha256(), canonical.as_bytes()).map_err(|e| SignError(e.to_string()))?;
        let ds = |local: &str| Element::new(Some("ds"), local, Some(DSIG));
        let signed_info = ds("SignedInfo")
            .child(ds("CanonicalizationMethod").attr("Algorithm", EXC_C14N))
            .child(ds("SignatureMethod").attr("Algorithm", self.algorithm().uri()))
            .child(
                ds("Reference")
                    .attr("URI", format!("#{id}"))
                    .child(
                        ds("Transforms")
                            .child(ds("Transform").attr("Algorithm", ENVELOPED))
                            .child(ds("Transform").attr("Algorithm", EXC_C14N)),
                    )
                    .child(ds("DigestMethod").attr("Algorithm", SHA256_URI))
                    .child(ds("DigestValue").text(B64.encode(digest))),
            );
        let signed_info_c14n = exclusive(&signed_info, &[(Some("ds".into()), DSIG.into())], None, &[]);
        let value = self.sign_bytes(signed_info_c14n.as_bytes())?;
        let der = self.certificate.to_der().map_err(|e| SignError(e.to_string()))?;
        let signature = ds("Signature")
            .declare(Some("ds"), DSIG)
            .child(signed_info)
            .child(ds("SignatureValue").text(B64.encode(value)))
            .child(ds("KeyInfo").child(ds("X509Data").child(ds("X509Certificate").text(B64.encode(der)))));
        let position = position.min(target.children.len());
        target.children.insert(position, Node::Element(signature));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
