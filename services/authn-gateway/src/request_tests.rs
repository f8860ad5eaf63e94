//! One test per row of the anomaly table (and manual A's extra cases): the
//! faulty request, signed as a real SP would sign it, and the exact answer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Duration, Utc};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use spid_xml::Node;
use spid_xml::dsig::SigningKey;

use super::*;
use crate::registry::parse_metadata;

pub(crate) const SP: &str = "https://sp.example.it";
pub(crate) const IDP: &str = "https://idp.example.it";
pub(crate) const SSO_POST: &str = "https://idp.example.it/saml/sso/post";
pub(crate) const SSO_REDIRECT: &str = "https://idp.example.it/saml/sso/redirect";

pub(crate) fn now() -> DateTime<Utc> {
    "2026-12-02T10:00:00Z".parse().unwrap()
}

pub(crate) fn sp_key() -> SigningKey {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let certificate = spid_secrets::self_signed_certificate(&key, &[(Nid::COMMONNAME, "sp")], 30).unwrap();
    SigningKey { key, certificate }
}

pub(crate) fn sp_metadata(k: &SigningKey) -> String {
    let cert = B64.encode(k.certificate.to_der().unwrap());
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{SP}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" AuthnRequestsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{SP}/slo"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:transient</md:NameIDFormat>
    <md:AssertionConsumerService index="0" isDefault="true" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{SP}/acs"/>
    <md:AssertionConsumerService index="1" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{SP}/acs2"/>
    <md:AssertionConsumerService index="2" Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{SP}/acs3"/>
    <md:AttributeConsumingService index="0"><md:ServiceName xml:lang="it">Servizio</md:ServiceName>
      <md:RequestedAttribute Name="fiscalNumber"/><md:RequestedAttribute Name="name"/><md:RequestedAttribute Name="familyName"/><md:RequestedAttribute Name="dateOfBirth"/>
    </md:AttributeConsumingService>
    <md:AttributeConsumingService index="1"><md:ServiceName xml:lang="it">Minimo</md:ServiceName><md:RequestedAttribute Name="spidCode"/></md:AttributeConsumingService>
  </md:SPSSODescriptor>
</md:EntityDescriptor>"#
    )
}

pub(crate) fn registry(k: &SigningKey) -> Registry {
    let registry = Registry::default();
    for sp in parse_metadata(sp_metadata(k).as_bytes(), None, "test").unwrap() {
        registry.add(sp);
    }
    registry
}

/// A correct level-2 request.
pub(crate) fn request(id: &str) -> Element {
    let saml = |l: &str| Element::new(Some("saml"), l, Some(SAML));
    let samlp = |l: &str| Element::new(Some("samlp"), l, Some(SAMLP));
    samlp("AuthnRequest")
        .declare(Some("samlp"), SAMLP)
        .declare(Some("saml"), SAML)
        .attr("ID", id)
        .attr("Version", "2.0")
        .attr("IssueInstant", "2026-12-02T09:59:58Z")
        .attr("Destination", SSO_POST)
        .attr("ForceAuthn", "true")
        .attr("AssertionConsumerServiceIndex", "0")
        .attr("AttributeConsumingServiceIndex", "0")
        .child(saml("Issuer").attr("Format", ENTITY_FORMAT).attr("NameQualifier", SP).text(SP))
        .child(samlp("NameIDPolicy").attr("Format", TRANSIENT))
        .child(
            samlp("RequestedAuthnContext")
                .attr("Comparison", "minimum")
                .child(saml("AuthnContextClassRef").text("https://www.spid.gov.it/SpidL2")),
        )
}

pub(crate) fn set(mut e: Element, name: &str, value: Option<&str>) -> Element {
    e.attrs.retain(|a| !(a.ns.is_none() && a.local == name));
    if let Some(v) = value {
        e = e.attr(name, v);
    }
    e
}

/// The POST binding: the request signed with an enveloped signature.
pub(crate) fn post(k: &SigningKey, mut e: Element, relay: Option<&str>) -> Incoming {
    k.sign_enveloped(&mut e, &[], 1).unwrap();
    let mut body = format!(
        "SAMLRequest={}",
        url::form_urlencoded::byte_serialize(B64.encode(e.to_xml()).as_bytes()).collect::<String>()
    );
    if let Some(r) = relay {
        body.push_str(&format!(
            "&RelayState={}",
            url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
        ));
    }
    Incoming::from_post(&body).unwrap()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The Redirect binding's query string, signed over the raw parameters.
pub(crate) fn redirect_query(k: &SigningKey, e: &Element, relay: Option<&str>) -> String {
    let mut signed = format!("SAMLRequest={}", enc(&spid_events::registry::deflate_base64(e.to_xml().as_bytes())));
    if let Some(r) = relay {
        signed.push_str(&format!("&RelayState={}", enc(r)));
    }
    signed.push_str(&format!("&SigAlg={}", enc(SignatureAlgorithm::RsaSha256.uri())));
    let signature = k.sign_bytes(signed.as_bytes()).unwrap();
    format!("{signed}&Signature={}", enc(&B64.encode(signature)))
}

fn context<'a>(registry: &'a Registry, locations: &'a [String]) -> Context<'a> {
    Context {
        registry,
        entity_id: IDP,
        sso_locations: locations,
        now: now(),
        max_age: Duration::seconds(300),
        skew: Duration::seconds(60),
    }
}

struct Env {
    key: SigningKey,
    registry: Registry,
    locations: Vec<String>,
}

impl Env {
    fn new() -> Self {
        let key = sp_key();
        let registry = registry(&key);
        Env { key, registry, locations: vec![SSO_REDIRECT.to_owned(), SSO_POST.to_owned()] }
    }

    fn check(&self, incoming: &Incoming) -> Result<Checked, Refusal> {
        check(incoming, &context(&self.registry, &self.locations))
    }

    fn post(&self, e: Element) -> Result<Checked, Refusal> {
        self.check(&post(&self.key, e, Some("relay-1")))
    }

    fn redirect(&self, e: &Element) -> Result<Checked, Refusal> {
        self.check(&Incoming::from_redirect(&redirect_query(&self.key, e, Some("relay-2"))).unwrap())
    }
}

/// The answer expected for a request the SP is told about.
fn to_sp(result: Result<Checked, Refusal>) -> (ErrorCode, String) {
    match result {
        Err(Refusal::ToSp { code, acs_url, .. }) => (code, acs_url),
        other => panic!("expected a SAML answer, got {other:?}"),
    }
}

fn page(result: Result<Checked, Refusal>) -> ErrorCode {
    match result {
        Err(Refusal::Page(code)) => code,
        other => panic!("expected an error page, got {other:?}"),
    }
}

#[test]
fn valid_requests_in_both_bindings() {
    let env = Env::new();
    let c = env.post(request("_r1")).unwrap();
    assert_eq!(c.level, Level::L2);
    assert_eq!(c.acs_url, format!("{SP}/acs"));
    assert_eq!(c.attributes, ["fiscalNumber", "name", "familyName", "dateOfBirth"]);
    assert_eq!(c.relay_state.as_deref(), Some("relay-1"));
    assert!(c.force_authn);

    let e = set(set(request("_r2"), "Destination", Some(SSO_REDIRECT)), "AssertionConsumerServiceIndex", None);
    let e = set(set(e, "AssertionConsumerServiceURL", Some(&format!("{SP}/acs2"))), "ProtocolBinding", Some(HTTP_POST));
    let c = env.redirect(&e).unwrap();
    assert_eq!(c.acs_url, format!("{SP}/acs2"));
    assert_eq!(c.relay_state.as_deref(), Some("relay-2"));
    // The entityID is also a valid Destination (Avviso SPID 11).
    env.post(set(request("_r3"), "Destination", Some(IDP))).unwrap();
    // Without AttributeConsumingServiceIndex: no attributes.
    assert!(env.post(set(request("_r4"), "AttributeConsumingServiceIndex", None)).unwrap().attributes.is_empty());
    // Comparison "better" raises the level.
    let mut e = request("_r5");
    if let Some(Node::Element(rac)) = e.children.get_mut(2) {
        *rac = set(rac.clone(), "Comparison", Some("better"));
        rac.children = vec![Node::Element(
            Element::new(Some("saml"), "AuthnContextClassRef", Some(SAML)).text("https://www.spid.gov.it/SpidL1"),
        )];
    }
    assert_eq!(env.post(e).unwrap().level, Level::L2);
}

#[test]
fn nr04_binding_format() {
    let env = Env::new();
    let q = redirect_query(&env.key, &request("_a"), None);
    let without =
        |name: &str| q.split('&').filter(|p| !p.starts_with(&format!("{name}="))).collect::<Vec<_>>().join("&");
    for missing in ["SAMLRequest", "SigAlg", "Signature"] {
        assert_eq!(Incoming::from_redirect(&without(missing)).unwrap_err(), ErrorCode::Nr04, "{missing}");
    }
    assert_eq!(Incoming::from_redirect(&format!("{q}&SigAlg=x")).unwrap_err(), ErrorCode::Nr04, "duplicate");
    assert_eq!(Incoming::from_redirect("SAMLRequest=%%%&SigAlg=a&Signature=b").unwrap_err(), ErrorCode::Nr04);
    assert_eq!(Incoming::from_post("RelayState=x").unwrap_err(), ErrorCode::Nr04);
    assert_eq!(Incoming::from_post("SAMLRequest=not-base64!").unwrap_err(), ErrorCode::Nr04);
    let long = "x".repeat(81);
    assert_eq!(
        Incoming::from_post(&format!("SAMLRequest=PGEvPg%3D%3D&RelayState={long}")).unwrap_err(),
        ErrorCode::Nr04
    );
    // A DEFLATE bomb: 10 MiB of zeros compress to a few KiB.
    let bomb = enc(&spid_events::registry::deflate_base64(&vec![b' '; 10 * 1024 * 1024]));
    assert_eq!(
        Incoming::from_redirect(&format!("SAMLRequest={bomb}&SigAlg=a&Signature=b")).unwrap_err(),
        ErrorCode::Nr04
    );
    // Not XML, or XML with a DTD.
    let not_xml = Incoming::from_post(&format!("SAMLRequest={}", enc(&B64.encode("<a>")))).unwrap();
    assert_eq!(page(env.check(&not_xml)), ErrorCode::Nr04);
    let xxe = r#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&x;</samlp:AuthnRequest>"#;
    let xxe = Incoming::from_post(&format!("SAMLRequest={}", enc(&B64.encode(xxe)))).unwrap();
    assert_eq!(page(env.check(&xxe)), ErrorCode::Nr04);
}

#[test]
fn nr05_redirect_signature() {
    let env = Env::new();
    let e = set(request("_a"), "Destination", Some(SSO_REDIRECT));
    // Signed by another key.
    let q = redirect_query(&sp_key(), &e, None);
    assert_eq!(page(env.check(&Incoming::from_redirect(&q).unwrap())), ErrorCode::Nr05);
    // A parameter changed after signing.
    let q = redirect_query(&env.key, &e, Some("a"));
    let tampered = q.replace("RelayState=a", "RelayState=b");
    assert_eq!(page(env.check(&Incoming::from_redirect(&tampered).unwrap())), ErrorCode::Nr05);
    // SHA-1 is not accepted, even correctly signed with the SP's key.
    let signed = q
        .split("&Signature=")
        .next()
        .unwrap()
        .replace(&enc(SignatureAlgorithm::RsaSha256.uri()), &enc("http://www.w3.org/2000/09/xmldsig#rsa-sha1"));
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha1(), &env.key.key).unwrap();
    signer.update(signed.as_bytes()).unwrap();
    let sha1 = format!("{signed}&Signature={}", enc(&B64.encode(signer.sign_to_vec().unwrap())));
    assert_eq!(page(env.check(&Incoming::from_redirect(&sha1).unwrap())), ErrorCode::Nr05);
}

#[test]
fn nr07_post_signature() {
    let env = Env::new();
    // Unsigned.
    let body = format!("SAMLRequest={}", enc(&B64.encode(request("_a").to_xml())));
    assert_eq!(page(env.check(&Incoming::from_post(&body).unwrap())), ErrorCode::Nr07);
    // Signed by another key.
    assert_eq!(page(env.check(&post(&sp_key(), request("_b"), None))), ErrorCode::Nr07);
    // Altered after signing.
    let mut e = request("_c");
    env.key.sign_enveloped(&mut e, &[], 1).unwrap();
    let xml = e.to_xml().replace("SpidL2", "SpidL1");
    let altered = Incoming::from_post(&format!("SAMLRequest={}", enc(&B64.encode(xml)))).unwrap();
    assert_eq!(page(env.check(&altered)), ErrorCode::Nr07);
}

#[test]
fn nr10_issuer() {
    let env = Env::new();
    // Unknown issuer, empty issuer, no issuer.
    let mut e = request("_a");
    if let Some(Node::Element(issuer)) = e.children.get_mut(0) {
        issuer.children = vec![Node::Text("https://unknown.example".into())];
    }
    assert_eq!(page(env.post(e.clone())), ErrorCode::Nr10);
    if let Some(Node::Element(issuer)) = e.children.get_mut(0) {
        issuer.children.clear();
    }
    assert_eq!(page(env.post(e.clone())), ErrorCode::Nr10);
    e.children.remove(0);
    assert_eq!(page(env.post(e)), ErrorCode::Nr10);
    // Format wrong or NameQualifier missing (manual A 318, 319).
    for (name, value) in [
        ("Format", Some("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified")),
        ("NameQualifier", None),
        ("Format", None),
    ] {
        let mut e = request("_b");
        if let Some(Node::Element(issuer)) = e.children.get_mut(0) {
            *issuer = set(issuer.clone(), name, value);
        }
        assert_eq!(page(env.post(e)), ErrorCode::Nr10, "{name}");
    }
}

#[test]
fn nr08_nr09_nr11_structure_version_and_id() {
    let env = Env::new();
    let mut wrong_root = request("_a");
    wrong_root.local = "LogoutRequest".into();
    assert_eq!(to_sp(env.post(wrong_root)).0, ErrorCode::Nr08);
    assert_eq!(to_sp(env.post(set(request("_a"), "Version", Some("1.1")))).0, ErrorCode::Nr09);
    assert_eq!(to_sp(env.post(set(request("_a"), "Version", None))).0, ErrorCode::Nr09);
    assert_eq!(to_sp(env.post(set(request("1abc"), "ID", Some("1abc")))).0, ErrorCode::Nr11);
}

#[test]
fn nr12_requested_authn_context() {
    let env = Env::new();
    let with_context = |comparison: Option<&str>, refs: &[&str]| {
        let mut e = request("_a");
        let mut rac = Element::new(Some("samlp"), "RequestedAuthnContext", Some(SAMLP));
        if let Some(c) = comparison {
            rac = rac.attr("Comparison", c);
        }
        for r in refs {
            rac = rac.child(Element::new(Some("saml"), "AuthnContextClassRef", Some(SAML)).text(*r));
        }
        e.children[2] = Node::Element(rac);
        e
    };
    let l1 = "https://www.spid.gov.it/SpidL1";
    for (comparison, refs) in [
        (None, vec![l1]),
        (Some(""), vec![l1]),
        (Some("minimum"), vec![]),
        (Some("minimum"), vec![""]),
        (Some("minimum"), vec!["https://www.spid.gov.it/SpidL0"]),
        (Some("minimum"), vec!["urn:oasis:names:tc:SAML:2.0:ac:classes:SpidL1"]),
        (Some("minimum"), vec![l1, "https://www.spid.gov.it/SpidL2"]),
    ] {
        let (code, _) = to_sp(env.post(with_context(comparison, &refs)));
        assert_eq!(code, ErrorCode::Nr12, "{comparison:?} {refs:?}");
    }
    let mut e = request("_b");
    e.children.remove(2);
    assert_eq!(to_sp(env.post(e)).0, ErrorCode::Nr12);
    // exact is accepted (a warning in AgID's tool, not an error).
    assert_eq!(env.post(with_context(Some("exact"), &[l1])).unwrap().level, Level::L1);
}

#[test]
fn nr13_issue_instant() {
    let env = Env::new();
    for instant in [
        None,
        Some("yesterday"),
        Some("2026-12-02T10:00:00+01:00"),
        Some("2026-12-02T10:05:00Z"),
        Some("2026-12-02T09:50:00Z"),
    ] {
        assert_eq!(to_sp(env.post(set(request("_a"), "IssueInstant", instant))).0, ErrorCode::Nr13, "{instant:?}");
    }
    env.post(set(request("_b"), "IssueInstant", Some("2026-12-02T10:00:30.123Z"))).unwrap();
}

#[test]
fn nr14_destination() {
    let env = Env::new();
    for d in [None, Some(""), Some("https://other-idp.example.it/sso")] {
        assert_eq!(to_sp(env.post(set(request("_a"), "Destination", d))).0, ErrorCode::Nr14, "{d:?}");
    }
}

#[test]
fn nr15_is_passive() {
    let env = Env::new();
    assert_eq!(to_sp(env.post(set(request("_a"), "IsPassive", Some("true")))).0, ErrorCode::Nr15);
    env.post(set(request("_b"), "IsPassive", Some("false"))).unwrap();
}

#[test]
fn nr16_assertion_consumer_service_goes_to_the_default_acs() {
    let env = Env::new();
    let default = format!("{SP}/acs");
    let cases = [
        set(request("_a"), "AssertionConsumerServiceIndex", Some("7")),
        set(request("_b"), "AssertionConsumerServiceIndex", Some("one")),
        // Index together with URL.
        set(
            set(request("_c"), "AssertionConsumerServiceURL", Some(&format!("{SP}/acs2"))),
            "ProtocolBinding",
            Some(HTTP_POST),
        ),
        // Neither.
        set(request("_d"), "AssertionConsumerServiceIndex", None),
        // A URL not in the metadata, a URL without binding, a Redirect binding.
        set(
            set(
                set(request("_e"), "AssertionConsumerServiceIndex", None),
                "AssertionConsumerServiceURL",
                Some("https://evil.example/acs"),
            ),
            "ProtocolBinding",
            Some(HTTP_POST),
        ),
        set(
            set(request("_f"), "AssertionConsumerServiceIndex", None),
            "AssertionConsumerServiceURL",
            Some(&format!("{SP}/acs2")),
        ),
        set(
            set(
                set(request("_g"), "AssertionConsumerServiceIndex", None),
                "AssertionConsumerServiceURL",
                Some(&format!("{SP}/acs3")),
            ),
            "ProtocolBinding",
            Some(crate::registry::HTTP_REDIRECT),
        ),
        // An index whose binding is not HTTP-POST is not usable.
        set(request("_h"), "AssertionConsumerServiceIndex", Some("2")),
    ];
    for (i, e) in cases.into_iter().enumerate() {
        assert_eq!(to_sp(env.post(e)), (ErrorCode::Nr16, default.clone()), "case {i}");
    }
}

#[test]
fn nr17_name_id_policy() {
    let env = Env::new();
    let mut e = request("_a");
    e.children[1] = Node::Element(set(
        Element::new(Some("samlp"), "NameIDPolicy", Some(SAMLP)),
        "Format",
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"),
    ));
    assert_eq!(to_sp(env.post(e)).0, ErrorCode::Nr17);
    let mut e = request("_b");
    e.children.remove(1);
    assert_eq!(to_sp(env.post(e)).0, ErrorCode::Nr17);
    // An unexpected AllowCreate is ignored.
    let mut e = request("_c");
    if let Some(Node::Element(p)) = e.children.get_mut(1) {
        *p = set(p.clone(), "AllowCreate", Some("true"));
    }
    env.post(e).unwrap();
}

#[test]
fn nr18_attribute_consuming_service_index() {
    let env = Env::new();
    for index in ["", "-2", "9", "x"] {
        assert_eq!(
            to_sp(env.post(set(request("_a"), "AttributeConsumingServiceIndex", Some(index)))).0,
            ErrorCode::Nr18,
            "{index}"
        );
    }
}

#[test]
fn subject_and_conditions_are_checked() {
    let env = Env::new();
    let saml = |l: &str| Element::new(Some("saml"), l, Some(SAML));
    let mut e = request("_a");
    e.children.insert(1, Node::Element(saml("Subject").child(saml("NameID").attr("Format", UNSPECIFIED[0]).text("x"))));
    assert_eq!(to_sp(env.post(e)).0, ErrorCode::Nr08, "NameQualifier missing");
    let mut e = request("_b");
    e.children.insert(
        1,
        Node::Element(
            saml("Subject").child(saml("NameID").attr("Format", UNSPECIFIED[0]).attr("NameQualifier", SP).text("x")),
        ),
    );
    env.post(e).unwrap();
    let mut e = request("_c");
    e.children.push(Node::Element(saml("Conditions").attr("NotOnOrAfter", "2026-12-02T09:00:00Z")));
    assert_eq!(to_sp(env.post(e)).0, ErrorCode::Nr08, "expired conditions");
    let mut e = request("_d");
    e.children.push(Node::Element(saml("Conditions").attr("NotBefore", "2026-12-02T11:00:00Z")));
    assert_eq!(to_sp(env.post(e)).0, ErrorCode::Nr08, "conditions not yet valid");
}

/// Errors that go to the SP carry the request's ID and RelayState.
#[test]
fn refusals_to_the_sp_keep_the_request_id_and_relay_state() {
    let env = Env::new();
    match env.post(set(request("_keep"), "IsPassive", Some("1"))) {
        Err(Refusal::ToSp { request_id, relay_state, .. }) => {
            assert_eq!(request_id.as_deref(), Some("_keep"));
            assert_eq!(relay_state.as_deref(), Some("relay-1"));
        }
        other => panic!("{other:?}"),
    }
}

/// The signature-wrapping family against the intake: a signed request
/// moved under a forged root, a forged request carrying a real signature,
/// and the signed request's content changed in a comment-safe way — all
/// refused as unauthenticated (nr07); deep, huge and entity-laden documents
/// refused as malformed (nr04).
#[test]
fn wrapping_oversized_nested_and_entity_documents_are_refused() {
    let env = Env::new();
    let mut signed = request("_orig");
    env.key.sign_enveloped(&mut signed, &[], 1).unwrap();
    let sig = signed.first(spid_xml::ns::DSIG, "Signature").unwrap().clone();
    let as_post = |e: &Element| Incoming::from_post(&format!("SAMLRequest={}", enc(&B64.encode(e.to_xml())))).unwrap();

    // Forged root (level 1, another ACS) with the original inside Extensions.
    let mut forged = set(level_one(request("_orig")), "AssertionConsumerServiceIndex", Some("1"));
    forged.children.insert(1, Node::Element(sig.clone()));
    forged.children.push(Node::Element(Element::new(Some("samlp"), "Extensions", Some(SAMLP)).child(signed.clone())));
    assert_eq!(page(env.check(&as_post(&forged))), ErrorCode::Nr07);
    // Forged root with its own ID referencing nothing it signed.
    let mut forged = set(level_one(request("_forged")), "ID", Some("_forged"));
    forged.children.insert(1, Node::Element(sig));
    assert_eq!(page(env.check(&as_post(&forged))), ErrorCode::Nr07);
    // A comment inside the signed Issuer does not change what is read.
    let xml = signed.to_xml().replace(">https://sp.example.it<", ">https://sp.example<!---->.it<");
    let c = env.check(&Incoming::from_post(&format!("SAMLRequest={}", enc(&B64.encode(xml)))).unwrap()).unwrap();
    assert_eq!(c.sp.entity_id, SP);

    // Nested 1000 deep inside a signed request; a billion-laughs DTD; 200 KiB.
    let deep = format!("{}{}", "<a>".repeat(1000), "</a>".repeat(1000));
    let xml = signed.to_xml().replace("</samlp:AuthnRequest>", &format!("{deep}</samlp:AuthnRequest>"));
    assert_eq!(
        page(env.check(&Incoming::from_post(&format!("SAMLRequest={}", enc(&B64.encode(xml)))).unwrap())),
        ErrorCode::Nr04
    );
    let laughs = format!(
        r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>{}"#,
        signed.to_xml()
    );
    assert_eq!(
        page(env.check(&Incoming::from_post(&format!("SAMLRequest={}", enc(&B64.encode(laughs)))).unwrap())),
        ErrorCode::Nr04
    );
    // Past the binding's limit (64 KiB encoded) before any parsing.
    let huge = format!("SAMLRequest={}", enc(&B64.encode("x".repeat(200 * 1024))));
    assert_eq!(Incoming::from_post(&huge).unwrap_err(), ErrorCode::Nr04);
}

fn level_one(mut e: Element) -> Element {
    if let Some(Node::Element(rac)) = e.children.get_mut(2) {
        rac.children = vec![Node::Element(
            Element::new(Some("saml"), "AuthnContextClassRef", Some(SAML)).text("https://www.spid.gov.it/SpidL1"),
        )];
    }
    e
}

/// What the registry refuses to trust: plain-http ACS off this machine,
/// keys shorter than SPID allows, metadata past its validUntil.
#[test]
fn metadata_with_weak_keys_plain_http_or_expired_is_refused() {
    let k = sp_key();
    let good = sp_metadata(&k);
    assert!(parse_metadata(good.as_bytes(), None, "t").is_ok());
    let http = good.replace(&format!("Location=\"{SP}/acs\""), "Location=\"http://sp.example.it/acs\"");
    assert!(parse_metadata(http.as_bytes(), None, "t").unwrap_err().to_string().contains("https"));
    let expired = good.replacen("entityID=", "validUntil=\"2020-01-01T00:00:00Z\" entityID=", 1);
    assert!(parse_metadata(expired.as_bytes(), None, "t").unwrap_err().to_string().contains("validUntil"));
    let small = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    let cert = spid_secrets::self_signed_certificate(&small, &[(Nid::COMMONNAME, "weak")], 30).unwrap();
    let weak = sp_metadata(&SigningKey { key: small, certificate: cert });
    assert!(parse_metadata(weak.as_bytes(), None, "t").unwrap_err().to_string().contains("shorter"));
}
