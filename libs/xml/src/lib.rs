//! Hardened XML for the SAML endpoints.
//!
//! - [`dom`]: a small document tree parsed with no DTD at all (a DOCTYPE is
//!   refused, so external entities and entity-expansion bombs cannot
//!   exist), only the five predefined entities and character references,
//!   limits on size, depth and node count, namespaces resolved and
//!   prefixes kept (canonicalisation needs them).
//! - [`c14n`]: Exclusive XML Canonicalization 1.0 without comments, with the
//!   `InclusiveNamespaces` prefix list.
//! - [`dsig`]: enveloped XML signatures of a document's root element
//!   (verification against keys the caller trusts, never against the key a
//!   document carries) and of elements we build (signing).
//!
//! Only the root element's signature is ever verified and the caller then
//! reads that same root: a signature elsewhere in the document, a second
//! element with the same `ID`, or a reference to anything but the root is
//! refused, which closes the XML Signature Wrapping family of attacks.

pub mod c14n;
pub mod dom;
pub mod dsig;

pub use dom::{Attr, Element, Limits, Node, ParseError, parse};

/// Base64 as XML and SAML bindings carry it: line breaks and other white
/// space inside are ignored (signature values, certificates, a POSTed
/// `SAMLRequest` wrapped at 76 columns).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok()
}

/// Namespace URIs used across SAML and XML signatures.
pub mod ns {
    pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
    pub const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
    pub const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
    pub const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
    pub const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
    pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
    pub const XS: &str = "http://www.w3.org/2001/XMLSchema";
    pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
}
