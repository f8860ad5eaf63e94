//! Signatures made here verify with `xmlsec1` and ours; signatures made by
//! `xmlsec1` verify here; the XML Signature Wrapping variants, altered
//! content, SHA-1 and foreign keys are refused.

use std::path::Path;
use std::process::Command;

use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;

use super::*;
use crate::dom::{Limits, parse};
use crate::ns::{SAML, SAMLP};

fn key() -> SigningKey {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let certificate = spid_secrets::self_signed_certificate(&key, &[(Nid::COMMONNAME, "test")], 1).unwrap();
    SigningKey { key, certificate }
}

fn public(k: &SigningKey) -> PKey<Public> {
    k.certificate.public_key().unwrap()
}

fn request() -> Element {
    Element::new(Some("samlp"), "AuthnRequest", Some(SAMLP))
        .declare(Some("samlp"), SAMLP)
        .declare(Some("saml"), SAML)
        .attr("ID", "_req1")
        .attr("Version", "2.0")
        .child(Element::new(Some("saml"), "Issuer", Some(SAML)).text("https://sp.example.it"))
        .child(
            Element::new(Some("samlp"), "NameIDPolicy", Some(SAMLP))
                .attr("Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"),
        )
}

fn signed(k: &SigningKey) -> String {
    let mut doc = request();
    k.sign_enveloped(&mut doc, &[], 1).unwrap();
    doc.to_xml()
}

fn xmlsec1(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("xmlsec1")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("xmlsec1 is installed by deploy/dev/ensure-test-env.sh (Debian package xmlsec1)")
}

#[test]
fn our_signature_verifies_here_and_with_xmlsec1() {
    let k = key();
    let xml = signed(&k);
    let doc = parse(xml.as_bytes(), Limits::default()).unwrap();
    verify_root(&doc, &[public(&k)]).unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), k.certificate.to_pem().unwrap()).unwrap();
    std::fs::write(dir.path().join("doc.xml"), &xml).unwrap();
    let out = xmlsec1(
        &["--verify", "--pubkey-cert-pem", "cert.pem", "--id-attr:ID", &format!("{SAMLP}:AuthnRequest"), "doc.xml"],
        dir.path(),
    );
    assert!(out.status.success(), "xmlsec1: {}", String::from_utf8_lossy(&out.stderr));

    // The same document altered by one character fails in both.
    let altered = xml.replace("https://sp.example.it", "https://sp.example.iT");
    std::fs::write(dir.path().join("altered.xml"), &altered).unwrap();
    let out = xmlsec1(
        &["--verify", "--pubkey-cert-pem", "cert.pem", "--id-attr:ID", &format!("{SAMLP}:AuthnRequest"), "altered.xml"],
        dir.path(),
    );
    assert!(!out.status.success());
    let doc = parse(altered.as_bytes(), Limits::default()).unwrap();
    assert_eq!(verify_root(&doc, &[public(&k)]), Err(DsigError::Digest));
}

#[test]
fn xmlsec1_signatures_verify_here() {
    let k = key();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.pem"), k.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    // Indented, with an InclusiveNamespaces list and a comment: what other
    // implementations send.
    let template = format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<samlp:AuthnRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="_x1" Version="2.0">
    <saml:Issuer Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity">https://sp.example.it</saml:Issuer>
    <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
      <ds:SignedInfo>
        <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
        <ds:Reference URI="#_x1">
          <ds:Transforms>
            <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
            <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/></ds:Transform>
          </ds:Transforms>
          <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
          <ds:DigestValue></ds:DigestValue>
        </ds:Reference>
      </ds:SignedInfo>
      <ds:SignatureValue></ds:SignatureValue>
    </ds:Signature>
    <!-- a comment -->
    <samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient" Note="a&#xA;b	c &amp; &lt;"/>
    <saml:Conditions NotBefore="2026-01-01T00:00:00Z">x &gt; y &#xD; é</saml:Conditions>
</samlp:AuthnRequest>
"##
    );
    std::fs::write(dir.path().join("tmpl.xml"), template).unwrap();
    let out = xmlsec1(
        &[
            "--sign",
            "--privkey-pem",
            "key.pem",
            "--id-attr:ID",
            &format!("{SAMLP}:AuthnRequest"),
            "--output",
            "signed.xml",
            "tmpl.xml",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "xmlsec1: {}", String::from_utf8_lossy(&out.stderr));
    let xml = std::fs::read(dir.path().join("signed.xml")).unwrap();
    let doc = parse(&xml, Limits::default()).unwrap();
    verify_root(&doc, &[public(&k)]).unwrap();
    // Another key does not verify it.
    assert_eq!(verify_root(&doc, &[public(&key())]), Err(DsigError::Invalid));
}

#[test]
fn ecdsa_signatures_round_trip() {
    let group = openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
    let certificate = spid_secrets::self_signed_certificate(&key, &[(Nid::COMMONNAME, "ec")], 1).unwrap();
    let k = SigningKey { key, certificate };
    let xml = signed(&k);
    verify_root(&parse(xml.as_bytes(), Limits::default()).unwrap(), &[public(&k)]).unwrap();
}

/// The classic wrapping attacks: the signed element moved elsewhere and a
/// forged root put in front of it.
#[test]
fn signature_wrapping_is_refused() {
    let k = key();
    let keys = [public(&k)];
    let original = signed(&k);
    let orig = parse(original.as_bytes(), Limits::default()).unwrap();
    let sig = orig.first(DSIG, "Signature").unwrap().clone();

    // 1. A forged root with its own ID and the original signature.
    let mut forged = request();
    forged.attrs.retain(|a| a.local != "ID");
    forged = forged.attr("ID", "_evil");
    forged.children.insert(1, Node::Element(sig.clone()));
    let doc = parse(forged.to_xml().as_bytes(), Limits::default()).unwrap();
    assert_eq!(verify_root(&doc, &keys), Err(DsigError::Reference));

    // 2. A forged root with the same ID, the original wrapped inside it.
    let mut forged = request();
    if let Some(Node::Element(issuer)) = forged.children.first_mut() {
        issuer.children = vec![Node::Text("https://evil.example".into())];
    }
    forged.children.insert(1, Node::Element(sig.clone()));
    forged.children.push(Node::Element(Element::new(Some("samlp"), "Extensions", Some(SAMLP)).child(orig.clone())));
    let doc = parse(forged.to_xml().as_bytes(), Limits::default()).unwrap();
    assert_eq!(verify_root(&doc, &keys), Err(DsigError::DuplicateId("_req1".into())));

    // 3. The original root, its signature in place, with a copy of itself
    // (ID removed) wrapped inside: the root no longer matches its digest.
    let mut inner = orig.clone();
    inner.attrs.retain(|a| a.local != "ID");
    let mut forged2 = orig.clone();
    forged2.children.push(Node::Element(Element::new(Some("samlp"), "Extensions", Some(SAMLP)).child(inner)));
    let doc = parse(forged2.to_xml().as_bytes(), Limits::default()).unwrap();
    assert_eq!(verify_root(&doc, &keys), Err(DsigError::Digest));

    // 4. An unsigned root whose signed part is a child: no signature on the root.
    let wrapper = Element::new(Some("samlp"), "AuthnRequest", Some(SAMLP))
        .declare(Some("samlp"), SAMLP)
        .attr("ID", "_outer")
        .child(orig.clone());
    let doc = parse(wrapper.to_xml().as_bytes(), Limits::default()).unwrap();
    assert_eq!(verify_root(&doc, &keys), Err(DsigError::Missing));

    // 5. Two signatures on the root.
    let mut twice = orig.clone();
    twice.children.push(Node::Element(sig));
    let doc = parse(twice.to_xml().as_bytes(), Limits::default()).unwrap();
    assert_eq!(verify_root(&doc, &keys), Err(DsigError::Malformed("more than one Signature")));
}

/// A comment inside a signed value changes nothing in the canonical form,
/// so the signature holds — and the value read is the whole text, not the
/// part before the comment.
#[test]
fn comments_in_signed_values_do_not_truncate_them() {
    let k = key();
    let xml = signed(&k).replace("https://sp.example.it", "https://sp.example<!-- x -->.it");
    let doc = parse(xml.as_bytes(), Limits::default()).unwrap();
    verify_root(&doc, &[public(&k)]).unwrap();
    assert_eq!(doc.first(SAML, "Issuer").unwrap().text_content().as_deref(), Some("https://sp.example.it"));
}

#[test]
fn weak_or_unknown_algorithms_are_refused() {
    let k = key();
    let xml = signed(&k);
    for (from, to) in [
        ("xmldsig-more#rsa-sha256", "xmldsig#rsa-sha1"),
        ("xmlenc#sha256", "xmldsig#sha1"),
        ("xml-exc-c14n#\"/><ds:SignatureMethod", "xml-c14n-20010315\"/><ds:SignatureMethod"),
    ] {
        let doc = parse(xml.replacen(from, to, 1).as_bytes(), Limits::default()).unwrap();
        assert!(matches!(verify_root(&doc, &[public(&k)]), Err(DsigError::Algorithm(_))), "{to}");
    }
    let doc = parse(request().to_xml().as_bytes(), Limits::default()).unwrap();
    assert_eq!(verify_root(&doc, &[public(&k)]), Err(DsigError::Missing));
    // A prefix list long enough to make canonicalisation expensive is
    // refused before any canonicalisation.
    let prefixes: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
    let list = format!(
        r#"<ds:Transform Algorithm="{EXC_C14N}"><ec:InclusiveNamespaces xmlns:ec="{EXC_C14N}" PrefixList="{}"/></ds:Transform>"#,
        prefixes.join(" ")
    );
    let long = xml.replacen(&format!(r#"<ds:Transform Algorithm="{EXC_C14N}"/>"#), &list, 1);
    assert_ne!(long, xml);
    let doc = parse(long.as_bytes(), Limits::default()).unwrap();
    assert_eq!(
        verify_root(&doc, &[public(&k)]),
        Err(DsigError::Malformed("InclusiveNamespaces lists too many prefixes"))
    );
}
