//! Identification by qualified signature and by CNS card (IDN-1 c, d).
//!
//! IDN-1 lets an applicant prove who they are without an operator in two
//! ways that rest on certificates issued by Italian trust service providers:
//!
//! - (d) the request form signed with a qualified electronic signature: a
//!   CAdES `.p7m` file (CMS `SignedData` with the form attached), as DER, as
//!   PEM (`-----BEGIN PKCS7-----` or `-----BEGIN CMS-----`) or as bare
//!   base64. The signer's codice fiscale must match the applicant's, and a
//!   certificate issued on the basis of a SPID identity (policy
//!   `1.3.76.16.5`) must be refused: a SPID identity cannot bootstrap
//!   another one.
//! - (c) a CNS / TS-CNS smart card: the ingress terminates TLS with client
//!   authentication and passes the client certificate on, as PEM or
//!   percent-escaped PEM (nginx's `$ssl_client_escaped_cert`). The card's
//!   codice fiscale must match. The TLS handshake proved possession of the
//!   card's key; this module only checks the certificate, so the header must
//!   be accepted from the ingress alone.
//!
//! [`verify_signed_form`] checks, in this order: the structure (one signer,
//! content attached, the signer's certificate included), the signature over
//! the content, the signer's chain up to a certificate of the [`TrustList`]
//! at the given time (intermediate certificates may come from the `.p7m`),
//! the absence of the SPID policy (or any policy under its arc), the
//! `nonRepudiation` key usage when the certificate restricts key usage, and
//! the codice fiscale. [`verify_client_certificate`] checks the chain at the
//! given time and the codice fiscale.
//!
//! The codice fiscale is read from the subject `serialNumber` attribute
//! (`TINIT-<code>` as in ETSI EN 319 412-1, `IT:<code>`, or the bare code)
//! and, on CNS certificates, first from the common name
//! (`<code>/<card serial>.<hash>`). Only its shape (16 letters and digits) is
//! checked here, upper-cased: the caller compares it with the applicant's.
//!
//! Not checked: revocation (CRL, OCSP), nested signatures (a `.p7m` inside
//! a `.p7m`), signer identifiers by subject key identifier (CMS version 3
//! signer infos) and the signing-time attribute — validity is judged at the
//! time passed in.

use chrono::{DateTime, Utc};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::{Stack, StackRef};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509, X509KeyUsage, X509NameRef, X509Ref, X509StoreContext};
use sha2::{Digest, Sha256};

/// Why a signed form or a client certificate is refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// Not a signed document or a certificate we can read.
    #[error("not a readable signed document or certificate: {0}")]
    Malformed(String),
    /// The document carries several signatures (or none).
    #[error("the document carries {0} signatures; exactly one is expected")]
    SignerCount(usize),
    /// The signature does not match the content (altered after signing).
    #[error("the signature does not match the signed content")]
    BadSignature,
    /// The certificate does not chain to the trust list; openssl's reason.
    #[error("the certificate is not issued by a trusted authority: {0}")]
    UntrustedChain(String),
    /// The certificate (or one of its issuers) had expired at the time given.
    #[error("the certificate has expired")]
    Expired,
    /// The certificate (or one of its issuers) was not yet valid.
    #[error("the certificate is not yet valid")]
    NotYetValid,
    /// The certificate was issued on the basis of a SPID identity.
    #[error("the certificate was issued on the basis of a SPID identity (policy 1.3.76.16.5)")]
    SpidDerivedCertificate,
    /// Neither the common name nor the serialNumber carry a codice fiscale.
    #[error("the certificate does not carry a codice fiscale")]
    NoCodiceFiscale,
    /// The certificate's key usage excludes signatures with legal value.
    #[error("the certificate is not meant for qualified signatures (no nonRepudiation key usage)")]
    NotForSigning,
    /// The trust list cannot be read or holds no certificate.
    #[error("trust list: {0}")]
    Trust(String),
    /// openssl failed for reasons unrelated to the input.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SignatureError {
    /// Stable code for clients and evidence (`signature.invalid`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "signature.malformed",
            Self::SignerCount(_) => "signature.signer_count",
            Self::BadSignature => "signature.invalid",
            Self::UntrustedChain(_) => "signature.untrusted",
            Self::Expired => "signature.expired",
            Self::NotYetValid => "signature.not_yet_valid",
            Self::SpidDerivedCertificate => "signature.spid_certificate",
            Self::NoCodiceFiscale => "signature.no_codice_fiscale",
            Self::NotForSigning => "signature.key_usage",
            Self::Trust(_) => "signature.trust_list",
            Self::Internal(_) => "signature.internal",
        }
    }

    /// The applicant-facing message in Italian (`Display` is English and
    /// carries details for logs).
    pub fn message_it(&self) -> String {
        match self {
            Self::Malformed(_) => "Il file non è un documento firmato leggibile (.p7m) o un certificato valido.".into(),
            Self::SignerCount(n) => format!("Il documento contiene {n} firme: ne è attesa una sola, la tua."),
            Self::BadSignature => "La firma non corrisponde al contenuto: il documento è stato modificato.".into(),
            Self::UntrustedChain(_) => {
                "Il certificato non è rilasciato da un prestatore di fiducia riconosciuto.".into()
            }
            Self::Expired => "Il certificato è scaduto.".into(),
            Self::NotYetValid => "Il certificato non è ancora valido.".into(),
            Self::SpidDerivedCertificate => {
                "Il certificato è stato rilasciato sulla base di un'identità SPID e non può essere usato.".into()
            }
            Self::NoCodiceFiscale => "Il certificato non riporta un codice fiscale.".into(),
            Self::NotForSigning => "Il certificato non è destinato alla firma qualificata.".into(),
            Self::Trust(_) | Self::Internal(_) => "Verifica non disponibile, riprova più tardi.".into(),
        }
    }
}

fn internal(e: ErrorStack) -> SignatureError {
    SignatureError::Internal(e.to_string())
}

/// The certificates signers' and card holders' chains must reach: the
/// certification authorities of the qualified trust service providers (and
/// of the CNS issuers). Any certificate of the list is a trust anchor, even
/// if it is not self-signed (as in the EU trusted lists).
#[derive(Clone)]
pub struct TrustList {
    certificates: Vec<X509>,
}

impl std::fmt::Debug for TrustList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustList").field("certificates", &self.certificates.len()).finish()
    }
}

impl TrustList {
    /// A PEM bundle of one or more certificates.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SignatureError> {
        Self::parse(pem).map_err(SignatureError::Trust)
    }

    /// Reads a PEM bundle from a file.
    pub fn load(path: &std::path::Path) -> Result<Self, SignatureError> {
        let in_file = |e: String| SignatureError::Trust(format!("{}: {e}", path.display()));
        let pem = std::fs::read(path).map_err(|e| in_file(e.to_string()))?;
        Self::parse(&pem).map_err(in_file)
    }

    fn parse(pem: &[u8]) -> Result<Self, String> {
        let certificates = X509::stack_from_pem(pem).map_err(|e| e.to_string())?;
        if certificates.is_empty() {
            return Err("no certificate in the bundle".into());
        }
        Ok(Self { certificates })
    }

    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// A store judging validity at `at`. Built per verification: the time
    /// is a parameter of the store, which openssl copies into each
    /// verification context.
    fn store_at(&self, at: DateTime<Utc>) -> Result<X509Store, SignatureError> {
        let mut param = X509VerifyParam::new().map_err(internal)?;
        param.set_time(at.timestamp());
        param.set_flags(X509VerifyFlags::PARTIAL_CHAIN).map_err(internal)?;
        let mut builder = X509StoreBuilder::new().map_err(internal)?;
        for certificate in &self.certificates {
            builder.add_cert(certificate.clone()).map_err(internal)?;
        }
        builder.set_param(&param).map_err(internal)?;
        Ok(builder.build())
    }
}

/// A verified signed request form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedForm {
    /// The signed content (the form), as signed.
    pub content: Vec<u8>,
    /// Upper-case.
    pub signer_codice_fiscale: String,
    /// The signer certificate's subject, `TYPE=value` in certificate order.
    pub signer_subject: String,
    /// SHA-256 of the signer certificate's DER, lower-case hex.
    pub certificate_sha256: String,
}

/// Verifies a `.p7m` (DER, PEM or base64) at time `at` and returns the
/// signed content and the signer's codice fiscale (IDN-1 d).
pub fn verify_signed_form(p7m: &[u8], trust: &TrustList, at: DateTime<Utc>) -> Result<SignedForm, SignatureError> {
    let der = p7m_der(p7m)?;
    let p7 = Pkcs7::from_der(&der).map_err(|_| SignatureError::Malformed("not a PKCS#7 / CMS structure".into()))?;
    let Some(signed) = p7.signed() else {
        return Err(SignatureError::Malformed("not a SignedData structure".into()));
    };
    let reencoded = p7.to_der().map_err(internal)?;
    match has_attached_content(&reencoded) {
        Some(true) => {}
        Some(false) => return Err(SignatureError::Malformed("the signed content is not attached".into())),
        None => return Err(SignatureError::Malformed("unreadable SignedData".into())),
    }
    let none = Stack::<X509>::new().map_err(internal)?;
    let embedded: &StackRef<X509> = signed.certificates().unwrap_or(&none);
    let signers = p7
        .signers(&none, Pkcs7Flags::empty())
        .map_err(|_| SignatureError::Malformed("no signer, or the signer's certificate is not included".into()))?;
    let signer = match signers.iter().collect::<Vec<_>>().as_slice() {
        [one] => (*one).to_owned(),
        others => return Err(SignatureError::SignerCount(others.len())),
    };

    // Signature and content digest only: the chain is judged below, at `at`
    // and without openssl's S/MIME purpose rules.
    let store = trust.store_at(at)?;
    let mut content = Vec::new();
    p7.verify(&none, &store, None, Some(&mut content), Pkcs7Flags::NOVERIFY)
        .map_err(|_| SignatureError::BadSignature)?;

    verify_chain(&store, &signer, embedded)?;
    let signer_der = signer.to_der().map_err(internal)?;
    match has_spid_policy(&signer_der) {
        Some(false) => {}
        Some(true) => return Err(SignatureError::SpidDerivedCertificate),
        None => return Err(SignatureError::Malformed("unreadable certificate extensions".into())),
    }
    if signer.key_usage().is_some_and(|usage| !usage.contains(X509KeyUsage::NON_REPUDIATION)) {
        return Err(SignatureError::NotForSigning);
    }
    let subject = signer.subject_name();
    let codice_fiscale = codice_fiscale_from_serial_number(subject).ok_or(SignatureError::NoCodiceFiscale)?;
    Ok(SignedForm {
        content,
        signer_codice_fiscale: codice_fiscale,
        signer_subject: subject_line(subject),
        certificate_sha256: hex::encode(Sha256::digest(&signer_der)),
    })
}

/// The holder of a verified CNS client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardHolder {
    /// Upper-case.
    pub codice_fiscale: String,
    /// The certificate's subject, `TYPE=value` in certificate order.
    pub subject: String,
    /// SHA-256 of the certificate's DER, lower-case hex.
    pub certificate_sha256: String,
}

/// Verifies the client certificate the ingress passed on (PEM, possibly
/// percent-escaped; DER or bare base64 DER are accepted too) at time `at`
/// and returns the card holder's codice fiscale (IDN-1 c). Certificates
/// after the first in a PEM input are used as intermediates.
pub fn verify_client_certificate(
    pem_or_escaped: &[u8],
    trust: &TrustList,
    at: DateTime<Utc>,
) -> Result<CardHolder, SignatureError> {
    let mut certificates = client_certificates(pem_or_escaped)?.into_iter();
    let Some(certificate) = certificates.next() else {
        return Err(SignatureError::Malformed("no certificate".into()));
    };
    let mut intermediates = Stack::<X509>::new().map_err(internal)?;
    for c in certificates {
        intermediates.push(c).map_err(internal)?;
    }
    verify_chain(&trust.store_at(at)?, &certificate, &intermediates)?;
    let subject = certificate.subject_name();
    let codice_fiscale = subject
        .entries_by_nid(Nid::COMMONNAME)
        .filter_map(|entry| entry.data().to_string().ok())
        .find_map(|cn| cn.split('/').next().and_then(codice_fiscale_shape))
        .or_else(|| codice_fiscale_from_serial_number(subject))
        .ok_or(SignatureError::NoCodiceFiscale)?;
    let der = certificate.to_der().map_err(internal)?;
    Ok(CardHolder {
        codice_fiscale,
        subject: subject_line(subject),
        certificate_sha256: hex::encode(Sha256::digest(&der)),
    })
}

/// `X509_V_ERR_CERT_NOT_YET_VALID` and `X509_V_ERR_CERT_HAS_EXPIRED`
/// (`openssl/x509_vfy.h`, stable values).
const X509_V_ERR_CERT_NOT_YET_VALID: i32 = 9;
const X509_V_ERR_CERT_HAS_EXPIRED: i32 = 10;

/// Builds and checks the chain from `certificate` to the store's trust
/// anchors, with `untrusted` as candidate intermediates.
fn verify_chain(store: &X509Store, certificate: &X509Ref, untrusted: &StackRef<X509>) -> Result<(), SignatureError> {
    let mut context = X509StoreContext::new().map_err(internal)?;
    let (valid, result) = context
        .init(store, certificate, untrusted, |c| Ok((c.verify_cert()?, c.error())))
        .map_err(|e| SignatureError::UntrustedChain(e.to_string()))?;
    if valid {
        return Ok(());
    }
    Err(match result.as_raw() {
        X509_V_ERR_CERT_HAS_EXPIRED => SignatureError::Expired,
        X509_V_ERR_CERT_NOT_YET_VALID => SignatureError::NotYetValid,
        _ => SignatureError::UntrustedChain(result.error_string().to_owned()),
    })
}

/// The codice fiscale in a subject `serialNumber` attribute: `TINIT-<code>`
/// (ETSI EN 319 412-1 semantics identifier), `IT:<code>` or the bare code.
fn codice_fiscale_from_serial_number(subject: &X509NameRef) -> Option<String> {
    subject.entries_by_nid(Nid::SERIALNUMBER).filter_map(|entry| entry.data().to_string().ok()).find_map(|value| {
        let value = value.trim().to_ascii_uppercase();
        let code = value.strip_prefix("TINIT-").or_else(|| value.strip_prefix("IT:")).unwrap_or(&value);
        codice_fiscale_shape(code)
    })
}

/// `code` upper-cased if it has the shape of a natural person's codice
/// fiscale: 16 ASCII letters and digits.
fn codice_fiscale_shape(code: &str) -> Option<String> {
    let code = code.trim();
    (code.len() == 16 && code.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| code.to_ascii_uppercase())
}

/// `C=IT, O=..., CN=...`: short attribute names (the numeric OID when
/// unknown), values with `,` `+` `\` escaped.
fn subject_line(name: &X509NameRef) -> String {
    name.entries()
        .map(|entry| {
            let object = entry.object();
            let kind = object.nid().short_name().map(str::to_owned).unwrap_or_else(|_| object.to_string());
            let value = entry.data().to_string().unwrap_or_default();
            let mut escaped = String::with_capacity(value.len());
            for c in value.chars() {
                if matches!(c, ',' | '+' | '\\') {
                    escaped.push('\\');
                }
                escaped.push(c);
            }
            format!("{kind}={escaped}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The DER of a `.p7m` given as DER (BER too: openssl reads it), PEM with
/// any label, or bare base64.
fn p7m_der(input: &[u8]) -> Result<Vec<u8>, SignatureError> {
    if input.first() == Some(&TAG_SEQUENCE) {
        return Ok(input.to_vec());
    }
    base64_body(input).ok_or_else(|| SignatureError::Malformed("neither DER, PEM nor base64".into()))
}

/// The base64 body of a PEM block (the first one), or of the whole input
/// when there is no PEM armour; whitespace is ignored.
fn base64_body(input: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    const BEGIN: &[u8] = b"-----BEGIN ";
    let body = match find(input, BEGIN) {
        Some(begin) => {
            let label = input.get(begin + BEGIN.len()..)?;
            let body = label.get(find(label, b"-----")? + 5..)?;
            body.get(..find(body, b"-----END")?)?
        }
        None => input,
    };
    let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).ok().filter(|der| !der.is_empty())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The certificates in a client-certificate header: DER as is; otherwise
/// text, whose percent-escapes are decoded first (raw PEM and base64 hold no
/// `%`), then PEM or bare base64 DER.
fn client_certificates(input: &[u8]) -> Result<Vec<X509>, SignatureError> {
    let unreadable = |_| SignatureError::Malformed("not a certificate".into());
    if input.first() == Some(&TAG_SEQUENCE) {
        return X509::from_der(input).map(|c| vec![c]).map_err(unreadable);
    }
    let decoded =
        percent_decode(input.trim_ascii()).ok_or_else(|| SignatureError::Malformed("invalid percent-escape".into()))?;
    if find(&decoded, b"-----BEGIN").is_some() {
        return X509::stack_from_pem(&decoded).map_err(unreadable);
    }
    let der = base64_body(&decoded).ok_or_else(|| SignatureError::Malformed("neither PEM, DER nor base64".into()))?;
    X509::from_der(&der).map(|c| vec![c]).map_err(unreadable)
}

/// Decodes `%XX` escapes (any case); other bytes, `+` included, are kept.
fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    fn hex_digit(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter().copied();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let high = hex_digit(bytes.next()?)?;
            let low = hex_digit(bytes.next()?)?;
            out.push(high << 4 | low);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

// A minimal DER reader for the two things openssl does not expose: whether
// the content is attached, and the certificate policies.

const TAG_BOOLEAN: u8 = 0x01;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
/// `[0]` constructed: SignedData inside ContentInfo, eContent inside
/// EncapsulatedContentInfo.
const TAG_CONTEXT_0: u8 = 0xA0;
/// `[3]` constructed: the extensions of a TBSCertificate.
const TAG_CONTEXT_3: u8 = 0xA3;
/// 2.5.29.32 (id-ce-certificatePolicies), DER contents.
const OID_CERTIFICATE_POLICIES: &[u8] = &[0x55, 0x1D, 0x20];
/// 1.3.76.16.5 (AgID: certificate issued on the basis of a SPID identity),
/// DER contents: 40 * 1 + 3, 76, 16, 5.
const OID_SPID_POLICY: &[u8] = &[0x2B, 0x4C, 0x10, 0x05];

/// The first element of `input`: tag, contents, and what follows. `None`
/// for high tag numbers, indefinite or over-long lengths and truncation.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        (bytes.iter().fold(0usize, |n, b| n << 8 | usize::from(*b)), rest)
    };
    let (contents, rest) = rest.split_at_checked(length)?;
    Some((tag, contents, rest))
}

/// All the elements of `contents`, as (tag, contents).
fn der_elements(mut contents: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut elements = Vec::new();
    while !contents.is_empty() {
        let (tag, inner, rest) = der_next(contents)?;
        elements.push((tag, inner));
        contents = rest;
    }
    Some(elements)
}

/// Whether a DER ContentInfo holding SignedData carries its content
/// (`encapContentInfo.eContent` present); `None` if unreadable.
fn has_attached_content(content_info: &[u8]) -> Option<bool> {
    let (TAG_SEQUENCE, content_info, _) = der_next(content_info)? else { return None };
    let [(TAG_OID, _), (TAG_CONTEXT_0, explicit)] = der_elements(content_info)?[..] else { return None };
    let (TAG_SEQUENCE, signed_data, _) = der_next(explicit)? else { return None };
    let fields = der_elements(signed_data)?;
    let Some(&(TAG_SEQUENCE, encapsulated)) = fields.get(2) else { return None };
    let encapsulated = der_elements(encapsulated)?;
    Some(matches!(encapsulated.get(1), Some((TAG_CONTEXT_0, _))))
}

/// Whether a DER certificate's certificatePolicies name 1.3.76.16.5 or a
/// policy under it; `None` if the extensions are unreadable.
fn has_spid_policy(certificate: &[u8]) -> Option<bool> {
    let (TAG_SEQUENCE, certificate, _) = der_next(certificate)? else { return None };
    let (TAG_SEQUENCE, tbs, _) = der_next(certificate)? else { return None };
    let Some((_, explicit)) = der_elements(tbs)?.into_iter().find(|(tag, _)| *tag == TAG_CONTEXT_3) else {
        return Some(false);
    };
    let (TAG_SEQUENCE, extensions, _) = der_next(explicit)? else { return None };
    for (tag, extension) in der_elements(extensions)? {
        if tag != TAG_SEQUENCE {
            return None;
        }
        let value = match der_elements(extension)?[..] {
            [(TAG_OID, oid), (TAG_OCTET_STRING, value)]
            | [(TAG_OID, oid), (TAG_BOOLEAN, _), (TAG_OCTET_STRING, value)]
                if oid == OID_CERTIFICATE_POLICIES =>
            {
                value
            }
            [(TAG_OID, _), (TAG_OCTET_STRING, _)] | [(TAG_OID, _), (TAG_BOOLEAN, _), (TAG_OCTET_STRING, _)] => continue,
            _ => return None,
        };
        let (TAG_SEQUENCE, policies, _) = der_next(value)? else { return None };
        for (tag, information) in der_elements(policies)? {
            if tag != TAG_SEQUENCE {
                return None;
            }
            let (TAG_OID, policy, _) = der_next(information)? else { return None };
            // 0x05 ends its arc, so a longer value is a policy under it.
            if policy.starts_with(OID_SPID_POLICY) {
                return Some(true);
            }
        }
    }
    Some(false)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Fixtures are made by the `openssl` command-line tool, independently
    //! of the code under test: a trusted root with an intermediate, an
    //! untrusted root, signer and card certificates, and `.p7m` files from
    //! `openssl cms -sign`.

    use std::collections::BTreeMap;
    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;

    use chrono::Duration;

    use super::*;

    const FORM: &[u8] = b"Modulo di richiesta identita SPID\nRichiedente: Mario Rossi\n";
    const CNS_CN: &str = "RSSMRA80B01H501T\\/7420000300000123.abcd";

    pub(crate) const CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[qualified]
basicConstraints = CA:FALSE
keyUsage = critical, nonRepudiation
certificatePolicies = 1.3.76.16.6
[spid]
basicConstraints = CA:FALSE
keyUsage = critical, nonRepudiation
certificatePolicies = 1.3.76.16.6, 1.3.76.16.5
[spid_sub]
basicConstraints = CA:FALSE
certificatePolicies = 1.3.76.16.5.1
[policy_50]
basicConstraints = CA:FALSE
certificatePolicies = critical, 1.3.76.16.50
[digsig]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
certificatePolicies = 1.3.76.16.6
[no_key_usage]
basicConstraints = CA:FALSE
[cns]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
";

    struct Fixtures {
        root: Vec<u8>,
        intermediate: Vec<u8>,
        /// A root the trust list does not hold.
        other: Vec<u8>,
        /// PEM certificates by name.
        certs: BTreeMap<&'static str, Vec<u8>>,
        /// `.p7m` files by name.
        p7m: BTreeMap<&'static str, Vec<u8>>,
        /// `openssl dgst -sha256` of the DER certificates, by name.
        sha256: BTreeMap<&'static str, String>,
    }

    pub(crate) fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// A key and a certificate `<name>.pem` / `<name>.key`, signed by `ca`
    /// (self-signed if `None`), with the extensions of `section`.
    pub(crate) fn certificate(dir: &Path, name: &str, subject: &str, section: &str, ca: Option<&str>, days: &str) {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let mut args = vec!["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        args.extend(["-config", "openssl.cnf", "-extensions", section, "-subj", subject, "-days", days]);
        args.extend(["-keyout", &key, "-out", &pem]);
        let (ca_pem, ca_key) = ca.map(|ca| (format!("{ca}.pem"), format!("{ca}.key"))).unzip();
        if let (Some(ca_pem), Some(ca_key)) = (&ca_pem, &ca_key) {
            args.extend(["-CA", ca_pem, "-CAkey", ca_key]);
        }
        openssl(dir, &args);
    }

    /// `openssl cms -sign` of form.txt by `signers`, DER unless `pem`.
    fn sign(dir: &Path, out: &str, signers: &[&str], extra: &[&str]) {
        let files: Vec<(String, String)> = signers.iter().map(|s| (format!("{s}.pem"), format!("{s}.key"))).collect();
        let mut args = vec!["cms", "-sign", "-binary", "-md", "sha256", "-in", "form.txt", "-out", out];
        for (pem, key) in &files {
            args.extend(["-signer", pem, "-inkey", key]);
        }
        args.extend(extra);
        openssl(dir, &args);
    }

    fn fixtures() -> &'static Fixtures {
        static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
        FIXTURES.get_or_init(|| {
            let temp = tempfile::tempdir().unwrap();
            let dir = temp.path();
            std::fs::write(dir.join("openssl.cnf"), CONFIG).unwrap();
            std::fs::write(dir.join("form.txt"), FORM).unwrap();
            certificate(dir, "root", "/C=IT/O=Test QTSP/CN=Test Qualified Root", "ca", None, "3650");
            certificate(dir, "intermediate", "/C=IT/O=Test QTSP/CN=Test Qualified CA 1", "ca", Some("root"), "3650");
            certificate(dir, "other", "/C=IT/O=Unknown/CN=Unknown Root", "ca", None, "3650");
            let person = "/C=IT/GN=Mario/SN=Rossi/CN=Mario Rossi";
            let with = |serial: &str| format!("{person}/serialNumber={serial}");
            let leaves: &[(&str, String, &str, &str)] = &[
                ("tinit", with("TINIT-rssmra80b01h501t"), "qualified", "root"),
                ("it", with("IT:RSSMRA80B01H501T"), "qualified", "root"),
                ("bare", with("RSSMRA80B01H501T"), "no_key_usage", "intermediate"),
                ("spid", with("TINIT-RSSMRA80B01H501T"), "spid", "root"),
                ("spid_sub", with("TINIT-RSSMRA80B01H501T"), "spid_sub", "root"),
                ("policy_50", with("TINIT-RSSMRA80B01H501T"), "policy_50", "root"),
                ("untrusted", with("TINIT-RSSMRA80B01H501T"), "qualified", "other"),
                ("no_cf", with("PNOIT-AA1234567"), "qualified", "root"),
                ("digsig", with("TINIT-RSSMRA80B01H501T"), "digsig", "root"),
                ("cns", format!("/C=IT/O=Test CNS/CN={CNS_CN}"), "cns", "root"),
                ("cns_untrusted", format!("/C=IT/CN={CNS_CN}"), "cns", "other"),
                ("cns_serial", "/C=IT/CN=Mario Rossi/serialNumber=IT:RSSMRA80B01H501T".into(), "cns", "root"),
                ("cns_no_cf", "/C=IT/CN=Mario Rossi".into(), "cns", "root"),
            ];
            for (name, subject, section, ca) in leaves {
                certificate(dir, name, subject, section, Some(ca), "365");
            }
            let der = ["-outform", "DER"];
            sign(dir, "tinit.p7m", &["tinit"], &["-nodetach", "-cades", "-outform", "DER"]);
            sign(dir, "it.p7m", &["it"], &["-nodetach", "-outform", "PEM"]);
            sign(dir, "bare.p7m", &["bare"], &["-nodetach", "-certfile", "intermediate.pem", "-outform", "DER"]);
            sign(dir, "bare_alone.p7m", &["bare"], &["-nodetach", "-outform", "DER"]);
            for name in ["spid", "untrusted", "no_cf", "digsig"] {
                sign(dir, &format!("{name}.p7m"), &[name], &["-nodetach", der[0], der[1]]);
            }
            sign(dir, "detached.p7m", &["tinit"], &der);
            sign(dir, "two.p7m", &["tinit", "it"], &["-nodetach", der[0], der[1]]);
            let base64 = openssl(dir, &["base64", "-in", "tinit.p7m"]);
            let read = |file: &str| std::fs::read(dir.join(file)).unwrap();
            let names = ["tinit", "it", "bare", "spid", "spid_sub", "policy_50", "cns", "cns_untrusted"];
            let names = names.into_iter().chain(["cns_serial", "cns_no_cf"]);
            let mut certs = BTreeMap::new();
            let mut sha256 = BTreeMap::new();
            for name in names {
                let der_file = format!("{name}.der");
                openssl(dir, &["x509", "-in", &format!("{name}.pem"), "-outform", "DER", "-out", &der_file]);
                let digest = String::from_utf8(openssl(dir, &["dgst", "-sha256", "-r", &der_file])).unwrap();
                sha256.insert(name, digest.split_whitespace().next().unwrap().to_owned());
                certs.insert(name, read(&format!("{name}.pem")));
            }
            let mut p7m = BTreeMap::new();
            for name in ["tinit", "it", "bare", "bare_alone", "spid", "untrusted", "no_cf", "digsig", "detached", "two"]
            {
                p7m.insert(name, read(&format!("{name}.p7m")));
            }
            p7m.insert("base64", base64);
            Fixtures {
                root: read("root.pem"),
                intermediate: read("intermediate.pem"),
                other: read("other.pem"),
                certs,
                p7m,
                sha256,
            }
        })
    }

    fn trust() -> TrustList {
        TrustList::from_pem(&fixtures().root).unwrap()
    }

    fn verify(name: &str) -> Result<SignedForm, SignatureError> {
        verify_signed_form(&fixtures().p7m[name], &trust(), Utc::now())
    }

    fn code_of<T: std::fmt::Debug>(result: Result<T, SignatureError>) -> &'static str {
        result.unwrap_err().code()
    }

    #[test]
    fn a_qualified_signature_gives_the_form_and_the_codice_fiscale() {
        let f = fixtures();
        let form = verify("tinit").unwrap();
        assert_eq!(form.content, FORM);
        assert_eq!(form.signer_codice_fiscale, "RSSMRA80B01H501T", "TINIT- form, upper-cased");
        assert_eq!(form.certificate_sha256, f.sha256["tinit"]);
        assert!(form.signer_subject.contains("CN=Mario Rossi"), "{}", form.signer_subject);
        assert!(form.signer_subject.contains("serialNumber=TINIT-rssmra80b01h501t"), "{}", form.signer_subject);

        let pem = verify("it").unwrap();
        assert!(f.p7m["it"].starts_with(b"-----BEGIN CMS-----"));
        assert_eq!((pem.content.as_slice(), pem.signer_codice_fiscale.as_str()), (FORM, "RSSMRA80B01H501T"));
        assert_eq!(pem.certificate_sha256, f.sha256["it"]);

        let base64 = verify("base64").unwrap();
        assert_eq!(base64, form, "the same file, base64-encoded");
    }

    #[test]
    fn pkcs7_pem_armour_and_a_bare_code_through_an_intermediate() {
        let f = fixtures();
        // Same bytes under the PKCS7 label.
        let cms = String::from_utf8(f.p7m["it"].clone()).unwrap();
        let pkcs7 = cms
            .replace("-----BEGIN CMS-----", "-----BEGIN PKCS7-----")
            .replace("-----END CMS-----", "-----END PKCS7-----");
        assert_eq!(verify_signed_form(pkcs7.as_bytes(), &trust(), Utc::now()).unwrap(), verify("it").unwrap());
        let crlf = cms.replace('\n', "\r\n");
        assert_eq!(verify_signed_form(crlf.as_bytes(), &trust(), Utc::now()).unwrap(), verify("it").unwrap());

        // Signed under an intermediate carried in the .p7m; no keyUsage at all.
        let bare = verify("bare").unwrap();
        assert_eq!((bare.content.as_slice(), bare.signer_codice_fiscale.as_str()), (FORM, "RSSMRA80B01H501T"));
        assert_eq!(bare.certificate_sha256, f.sha256["bare"]);
        // Without the intermediate, the chain cannot be built...
        assert_eq!(code_of(verify("bare_alone")), "signature.untrusted");
        // ...unless the trust list holds it (a trust anchor need not be a root).
        let intermediate = TrustList::from_pem(&f.intermediate).unwrap();
        assert_eq!(verify_signed_form(&f.p7m["bare_alone"], &intermediate, Utc::now()).unwrap(), bare);
    }

    #[test]
    fn an_altered_form_is_refused() {
        let mut p7m = fixtures().p7m["tinit"].clone();
        let at = find(&p7m, b"Mario Rossi").unwrap();
        p7m[at] = b'D';
        let err = verify_signed_form(&p7m, &trust(), Utc::now()).unwrap_err();
        assert!(matches!(err, SignatureError::BadSignature), "{err:?}");
    }

    #[test]
    fn an_unknown_authority_is_refused() {
        let err = verify("untrusted").unwrap_err();
        assert!(matches!(err, SignatureError::UntrustedChain(_)), "{err:?}");
        // Trusting only the other root does not help the genuine form.
        let other = TrustList::from_pem(&fixtures().other).unwrap();
        assert_eq!(code_of(verify_signed_form(&fixtures().p7m["tinit"], &other, Utc::now())), "signature.untrusted");
    }

    #[test]
    fn validity_is_judged_at_the_time_given() {
        let p7m = &fixtures().p7m["tinit"];
        let later = Utc::now() + Duration::days(400);
        let err = verify_signed_form(p7m, &trust(), later).unwrap_err();
        assert!(matches!(err, SignatureError::Expired), "{err:?}");
        let earlier = Utc::now() - Duration::days(2);
        let err = verify_signed_form(p7m, &trust(), earlier).unwrap_err();
        assert!(matches!(err, SignatureError::NotYetValid), "{err:?}");
        assert!(verify_signed_form(p7m, &trust(), Utc::now() + Duration::days(300)).is_ok());
    }

    #[test]
    fn a_certificate_issued_through_spid_is_refused() {
        let err = verify("spid").unwrap_err();
        assert!(matches!(err, SignatureError::SpidDerivedCertificate), "{err:?}");
        assert_eq!(err.code(), "signature.spid_certificate");
        let der = |name: &str| X509::from_pem(&fixtures().certs[name]).unwrap().to_der().unwrap();
        assert_eq!(has_spid_policy(&der("spid")), Some(true));
        assert_eq!(has_spid_policy(&der("spid_sub")), Some(true), "a policy under the arc");
        assert_eq!(has_spid_policy(&der("policy_50")), Some(false), "1.3.76.16.50 is another arc");
        assert_eq!(has_spid_policy(&der("tinit")), Some(false));
        assert_eq!(has_spid_policy(&der("bare")), Some(false));
        assert_eq!(has_spid_policy(&der("cns")), Some(false));
        assert_eq!(has_spid_policy(b"\x30\x03\x02\x01"), None, "truncated");
    }

    #[test]
    fn the_certificate_must_carry_a_codice_fiscale_and_be_for_signing() {
        let err = verify("no_cf").unwrap_err();
        assert!(matches!(err, SignatureError::NoCodiceFiscale), "a passport number is not a codice fiscale: {err:?}");
        let err = verify("digsig").unwrap_err();
        assert!(matches!(err, SignatureError::NotForSigning), "{err:?}");
        assert_eq!(err.code(), "signature.key_usage");
    }

    #[test]
    fn what_is_not_one_attached_signature_is_refused() {
        let f = fixtures();
        assert_eq!(code_of(verify("detached")), "signature.malformed", "content not attached");
        let err = verify("two").unwrap_err();
        assert!(matches!(err, SignatureError::SignerCount(2)), "{err:?}");
        let garbage: [&[u8]; 6] = [
            b"",
            b"not a signed file",
            b"\x30\x82\x01\x00garbage",
            b"-----BEGIN CMS-----\nbm90IGRlcg==\n-----END CMS-----\n",
            b"-----BEGIN CMS-----\n%%%\n-----END CMS-----\n",
            &f.certs["tinit"],
        ];
        for input in garbage {
            let err = verify_signed_form(input, &trust(), Utc::now()).unwrap_err();
            assert!(matches!(err, SignatureError::Malformed(_)), "{:?}: {err:?}", String::from_utf8_lossy(input));
        }
        let truncated = &f.p7m["tinit"][..200];
        assert_eq!(code_of(verify_signed_form(truncated, &trust(), Utc::now())), "signature.malformed");
    }

    /// Escapes like nginx's `$ssl_client_escaped_cert`: everything but
    /// letters, digits and `-._~`.
    fn escape(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in input {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b);
            } else {
                out.extend(format!("%{b:02X}").bytes());
            }
        }
        out
    }

    #[test]
    fn a_cns_card_gives_the_codice_fiscale_of_its_common_name() {
        let f = fixtures();
        let pem = &f.certs["cns"];
        let holder = verify_client_certificate(pem, &trust(), Utc::now()).unwrap();
        assert_eq!(holder.codice_fiscale, "RSSMRA80B01H501T");
        assert_eq!(holder.certificate_sha256, f.sha256["cns"]);
        assert!(holder.subject.contains("CN=RSSMRA80B01H501T/7420000300000123.abcd"), "{}", holder.subject);

        let escaped = escape(pem);
        assert!(escaped.starts_with(b"-----BEGIN%20CERTIFICATE-----%0A"));
        assert_eq!(verify_client_certificate(&escaped, &trust(), Utc::now()).unwrap(), holder);
        let lower = String::from_utf8(escaped).unwrap().replace("%0A", "%0a");
        assert_eq!(verify_client_certificate(lower.as_bytes(), &trust(), Utc::now()).unwrap(), holder);
        let der = X509::from_pem(pem).unwrap().to_der().unwrap();
        assert_eq!(verify_client_certificate(&der, &trust(), Utc::now()).unwrap(), holder);
        // The PEM body alone, escaped (as Traefik passes it on).
        let body: String =
            String::from_utf8(pem.clone()).unwrap().lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(verify_client_certificate(&escape(body.as_bytes()), &trust(), Utc::now()).unwrap(), holder);

        let by_serial = verify_client_certificate(&f.certs["cns_serial"], &trust(), Utc::now()).unwrap();
        assert_eq!(by_serial.codice_fiscale, "RSSMRA80B01H501T", "falls back to serialNumber");
        assert_eq!(
            code_of(verify_client_certificate(&f.certs["cns_no_cf"], &trust(), Utc::now())),
            "signature.no_codice_fiscale"
        );
    }

    #[test]
    fn a_cns_card_must_chain_to_the_trust_list_at_the_time_given() {
        let f = fixtures();
        let err = verify_client_certificate(&escape(&f.certs["cns_untrusted"]), &trust(), Utc::now()).unwrap_err();
        assert!(matches!(err, SignatureError::UntrustedChain(_)), "{err:?}");
        let later = Utc::now() + Duration::days(400);
        assert_eq!(code_of(verify_client_certificate(&f.certs["cns"], &trust(), later)), "signature.expired");
        for input in [
            &b""[..],
            b"-----BEGIN CERTIFICATE-----%ZZ",
            b"hello",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert_eq!(
                code_of(verify_client_certificate(input, &trust(), Utc::now())),
                "signature.malformed",
                "{input:?}"
            );
        }
        // A leaf followed by its issuer: the issuer is only an intermediate.
        let mut chain = f.certs["bare"].clone();
        chain.extend(&f.intermediate);
        let trust_other = TrustList::from_pem(&f.other).unwrap();
        assert_eq!(code_of(verify_client_certificate(&chain, &trust_other, Utc::now())), "signature.untrusted");
        assert_eq!(verify_client_certificate(&chain, &trust(), Utc::now()).unwrap().codice_fiscale, "RSSMRA80B01H501T");
    }

    #[test]
    fn the_trust_list_needs_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(TrustList::from_pem(b"").unwrap_err().code(), "signature.trust_list");
        assert_eq!(TrustList::from_pem(b"just text\n").unwrap_err().code(), "signature.trust_list");
        let key = openssl(dir.path(), &["genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
        assert!(key.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        assert_eq!(TrustList::from_pem(&key).unwrap_err().code(), "signature.trust_list");
        let missing = TrustList::load(&dir.path().join("missing.pem")).unwrap_err();
        assert_eq!(missing.code(), "signature.trust_list");
        assert!(missing.to_string().starts_with("trust list: ") && missing.to_string().contains("missing.pem"));
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        let empty = TrustList::load(&dir.path().join("empty.pem")).unwrap_err().to_string();
        assert!(empty.contains("empty.pem: no certificate"), "{empty}");
        let file = dir.path().join("bundle.pem");
        let mut bundle = fixtures().root.clone();
        bundle.extend(&fixtures().intermediate);
        std::fs::write(&file, bundle).unwrap();
        assert_eq!(TrustList::load(&file).unwrap().len(), 2);
    }

    #[test]
    fn percent_decoding_and_codes() {
        assert_eq!(percent_decode(b"a%2Bb+c%2f%0a").unwrap(), b"a+b+c/\n");
        assert_eq!(percent_decode(b"%4"), None);
        assert_eq!(percent_decode(b"%G0"), None);
        assert_eq!(codice_fiscale_shape(" rssmra80b01h501t ").as_deref(), Some("RSSMRA80B01H501T"));
        assert_eq!(codice_fiscale_shape("RSSMRA80B01H501"), None);
        assert_eq!(codice_fiscale_shape("RSSMRA80B01H501T/"), None);
        let all = [
            SignatureError::Malformed(String::new()),
            SignatureError::SignerCount(0),
            SignatureError::BadSignature,
            SignatureError::UntrustedChain(String::new()),
            SignatureError::Expired,
            SignatureError::NotYetValid,
            SignatureError::SpidDerivedCertificate,
            SignatureError::NoCodiceFiscale,
            SignatureError::NotForSigning,
            SignatureError::Trust(String::new()),
            SignatureError::Internal(String::new()),
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(SignatureError::code).collect();
        assert_eq!(codes.len(), all.len(), "one code per reason");
        assert!(codes.iter().all(|c| c.starts_with("signature.")));
        assert!(all.iter().all(|e| !e.message_it().is_empty() && e.message_it() != e.to_string()));
    }
}
