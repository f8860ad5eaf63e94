//! The login transaction end to end, with identity-manager and otp-service
//! played by fakes: every outcome of the table's user rows, the level-1
//! session, and the Responses checked by `xmlsec1`, an independent XML
//! signature implementation.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Duration;
use prost::Message;
use spid_proto::events::v1::{Authentication, Envelope, SamlTransaction};
use spid_types::ManualClock;
use spid_xml::ns::{SAML, SAMLP, XSI};
use spid_xml::{Element, Limits};
use sqlx::Row;

use crate::anomaly::ErrorCode;
use crate::keys::IdpKeys;
use crate::level::{IdentityKind, Level};
use crate::login::*;
use crate::request::tests::{IDP, SP, SSO_POST, SSO_REDIRECT, now, post, registry, request, set, sp_key};

const CODE: &str = "123456";
/// The test browser's id (its `spid_browser` cookie).
const B: &str = "0123456789abcdef0123456789abcdef";

struct People;

#[async_trait]
impl Directory for People {
    async fn check_password(
        &self,
        username: &str,
        password: &str,
        _: &str,
        _: &str,
    ) -> Result<PasswordCheck, Unavailable> {
        Ok(match (username, password) {
            ("mario@example.it", "Giusta#2026") => PasswordCheck::Ok {
                spid_code: "XIDP0000000001".into(),
                max_level: Level::L2,
                kind: IdentityKind::Private,
            },
            ("anna@example.it", "Giusta#2026") => PasswordCheck::Ok {
                spid_code: "XIDP0000000002".into(),
                max_level: Level::L1,
                kind: IdentityKind::Private,
            },
            ("studio@example.it", "Giusta#2026") => PasswordCheck::Ok {
                spid_code: "XIDP0000000003".into(),
                max_level: Level::L2,
                kind: IdentityKind::ProfessionalNatural,
            },
            ("sospeso@example.it", "Giusta#2026") => PasswordCheck::NotActive,
            _ => PasswordCheck::Wrong,
        })
    }

    async fn attributes(&self, spid_code: &str, names: &[String]) -> Result<HashMap<String, String>, Unavailable> {
        let all: HashMap<&str, String> = [
            ("spidCode", spid_code.to_owned()),
            ("fiscalNumber", "TINIT-RSSMRA80A01H501U".to_owned()),
            ("name", "Mario".to_owned()),
            ("familyName", "Rossi".to_owned()),
            ("dateOfBirth", "1980-01-01".to_owned()),
        ]
        .into_iter()
        .collect();
        Ok(names.iter().filter_map(|n| all.get(n.as_str()).map(|v| (n.clone(), v.clone()))).collect())
    }

    async fn is_active(&self, spid_code: &str) -> Result<bool, Unavailable> {
        Ok(!SUSPENDED.lock().unwrap().contains(&spid_code.to_owned()))
    }
}

/// Identities the fake directory reports as no longer active.
static SUSPENDED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Default)]
struct Codes(Mutex<u32>);

#[async_trait]
impl SecondFactor for Codes {
    async fn methods(&self, _: &str) -> Result<Vec<String>, Unavailable> {
        Ok(vec!["sms".into(), "totp".into(), "push".into()])
    }

    async fn start(&self, _: &str, _: &str, _: &str, _: &str, method: &str) -> Result<Option<Challenge>, Unavailable> {
        Ok(Some(Challenge {
            id: format!("ch-{method}"),
            method: method.into(),
            destination: "+39 3** *** **12".into(),
            qr_payload: None,
        }))
    }

    async fn verify(&self, challenge: &str, _: &str, code: &str, _: &str) -> Result<CodeCheck, Unavailable> {
        let mut wrong = self.0.lock().unwrap();
        if challenge == "ch-push" {
            // The app answers on the second look: a refusal.
            *wrong += 1;
            return Ok(if *wrong == 1 { CodeCheck::Pending } else { CodeCheck::Refused });
        }
        if code == CODE {
            return Ok(CodeCheck::Ok);
        }
        *wrong += 1;
        Ok(if *wrong >= 3 { CodeCheck::Exhausted } else { CodeCheck::Wrong })
    }
}

struct World {
    login: Login,
    sp: spid_xml::dsig::SigningKey,
    clock: Arc<ManualClock>,
    db: spid_db::Db,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = spid_server::testkit::database(dir.path(), "gateway").await.unwrap();
    crate::migrate(&db).await.unwrap();
    let sp = sp_key();
    let clock = Arc::new(ManualClock::new(now()));
    let cache: Arc<dyn spid_cache::Cache> = Arc::new(spid_cache::MemoryCache::new());
    let login = Login {
        settings: Settings {
            entity_id: IDP.into(),
            sso_locations: vec![SSO_REDIRECT.into(), SSO_POST.into()],
            slo_locations: vec![format!("{IDP}/saml/slo")],
            request_max_age: std::time::Duration::from_secs(300),
            clock_skew: std::time::Duration::from_secs(60),
            login_timeout: std::time::Duration::from_secs(900),
            password_attempts: 3,
            assertion_validity: std::time::Duration::from_secs(300),
        },
        keys: Arc::new(IdpKeys::ephemeral(2048).unwrap()),
        registry: Arc::new(registry(&sp)),
        cache: cache.clone(),
        sessions: Arc::new(crate::sessions::Sessions { cache, lifetime: std::time::Duration::from_secs(3600) }),
        directory: Arc::new(People),
        second_factor: Arc::new(Codes::default()),
        db: db.clone(),
        relay_wake: Arc::new(|| {}),
        clock: clock.clone(),
    };
    World { login, sp, clock, db, _dir: dir }
}

fn level(e: Element, uri: &str) -> Element {
    let mut e = e;
    if let Some(spid_xml::Node::Element(rac)) = e.children.get_mut(2) {
        rac.children =
            vec![spid_xml::Node::Element(Element::new(Some("saml"), "AuthnContextClassRef", Some(SAML)).text(uri))];
    }
    e
}

impl World {
    async fn start(&self, e: Element, sso: Option<&str>) -> View {
        self.login.receive(Ok(post(&self.sp, e, Some("rs"))), "203.0.113.7", sso, B).await.unwrap()
    }

    async fn audit(&self) -> Vec<Envelope> {
        let rows = sqlx::query("SELECT payload FROM outbox ORDER BY id").fetch_all(self.db.pool()).await.unwrap();
        rows.iter().map(|r| Envelope::decode(r.get::<Vec<u8>, _>("payload").as_slice()).unwrap()).collect()
    }
}

fn tx_of(view: &View) -> String {
    match view {
        View::Password { tx, .. } | View::Code { tx, .. } | View::Consent { tx, .. } => tx.clone(),
        other => panic!("no transaction in {other:?}"),
    }
}

/// The Response of a `View::Post`, parsed.
fn response(view: &View) -> (String, Element) {
    let View::Post { saml_response, relay_state, acs_url } = view else { panic!("expected a Response, got {view:?}") };
    assert_eq!(relay_state.as_deref(), Some("rs"));
    assert_eq!(acs_url, &format!("{SP}/acs"));
    let xml = String::from_utf8(B64.decode(saml_response).unwrap()).unwrap();
    let root = spid_xml::parse(xml.as_bytes(), Limits::default()).unwrap();
    (xml, root)
}

fn status(root: &Element) -> (String, Option<String>, Option<String>) {
    let status = root.first(SAMLP, "Status").unwrap();
    let code = status.first(SAMLP, "StatusCode").unwrap();
    let sub = code.first(SAMLP, "StatusCode").and_then(|s| s.attribute("Value")).map(str::to_owned);
    let message = status.first(SAMLP, "StatusMessage").and_then(Element::text_content);
    (code.attribute("Value").unwrap().to_owned(), sub, message)
}

fn assert_failure(view: &View, code: ErrorCode) {
    let (_, root) = response(view);
    let (top, sub, message) = status(&root);
    assert_eq!(top, "urn:oasis:names:tc:SAML:2.0:status:Responder");
    assert_eq!(sub.as_deref(), Some("urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"));
    assert_eq!(message, Some(code.message()));
    assert!(root.first(SAML, "Assertion").is_none(), "no Assertion on failure");
}

/// `xmlsec1` checks a signature of `xml` with the IdP's certificate.
fn xmlsec1_verifies(dir: &Path, keys: &IdpKeys, xml: &str, signature_xpath: &str) {
    std::fs::write(dir.join("idp.pem"), keys.current.certificate.to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("response.xml"), xml).unwrap();
    let out = Command::new("xmlsec1")
        .args([
            "--verify",
            "--pubkey-cert-pem",
            "idp.pem",
            "--id-attr:ID",
            &format!("{SAMLP}:Response"),
            "--id-attr:ID",
            &format!("{SAML}:Assertion"),
            "--node-xpath",
            signature_xpath,
            "response.xml",
        ])
        .current_dir(dir)
        .output()
        .expect("xmlsec1 is installed by deploy/dev/ensure-test-env.sh");
    assert!(out.status.success(), "xmlsec1 {signature_xpath}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn level_2_login_with_a_wrong_password_and_a_wrong_code() {
    let w = world().await;
    let view = w.start(request("_l2"), None).await;
    let View::Password { level, attempts_left, notice: None, .. } = &view else { panic!("{view:?}") };
    assert_eq!((*level, *attempts_left), (Level::L2, 3));
    let tx = tx_of(&view);

    let view = w.login.password(&tx, B, "mario@example.it", "Sbagliata#1").await.unwrap();
    assert!(
        matches!(view, View::Password { notice: Some(Notice::WrongCredentials), attempts_left: 2, .. }),
        "{view:?}"
    );
    let view = w.login.password(&tx, B, "mario@example.it", "Giusta#2026").await.unwrap();
    let View::Code { challenge, .. } = &view else { panic!("{view:?}") };
    assert_eq!(challenge.method, "sms");
    let view = w.login.code(&tx, B, "000000").await.unwrap();
    assert!(matches!(view, View::Code { notice: Some(Notice::WrongCode), .. }), "{view:?}");
    let view = w.login.code(&tx, B, " 123 456 ").await.unwrap();
    let View::Consent { attributes, .. } = &view else { panic!("{view:?}") };
    assert_eq!(
        attributes.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>(),
        ["fiscalNumber=TINIT-RSSMRA80A01H501U", "name=Mario", "familyName=Rossi", "dateOfBirth=1980-01-01"]
    );
    let mut sso = None;
    let view = w.login.consent(&tx, B, true, &mut sso).await.unwrap();
    assert!(sso.is_none(), "no session at level 2 (SAML-7)");
    let (xml, root) = response(&view);

    // The Response, as SPID wants it.
    assert_eq!(status(&root).0, "urn:oasis:names:tc:SAML:2.0:status:Success");
    assert_eq!(root.attribute("InResponseTo"), Some("_l2"));
    assert_eq!(root.attribute("Destination"), Some(format!("{SP}/acs").as_str()));
    assert_eq!(root.attribute("Version"), Some("2.0"));
    let assertion = root.first(SAML, "Assertion").unwrap();
    let issuer = assertion.first(SAML, "Issuer").unwrap();
    assert_eq!(issuer.attribute("Format"), Some("urn:oasis:names:tc:SAML:2.0:nameid-format:entity"));
    assert_eq!(issuer.text_content().as_deref(), Some(IDP));
    let subject = assertion.first(SAML, "Subject").unwrap();
    let name_id = subject.first(SAML, "NameID").unwrap();
    assert_eq!(name_id.attribute("Format"), Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient"));
    assert_eq!(name_id.attribute("NameQualifier"), Some(IDP));
    let confirmation = subject.first(SAML, "SubjectConfirmation").unwrap();
    assert_eq!(confirmation.attribute("Method"), Some("urn:oasis:names:tc:SAML:2.0:cm:bearer"));
    let data = confirmation.first(SAML, "SubjectConfirmationData").unwrap();
    assert_eq!(data.attribute("Recipient"), Some(format!("{SP}/acs").as_str()));
    assert_eq!(data.attribute("InResponseTo"), Some("_l2"));
    assert_eq!(data.attribute("NotOnOrAfter"), Some("2026-12-02T10:05:00.000Z"));
    let conditions = assertion.first(SAML, "Conditions").unwrap();
    let audience = conditions.first(SAML, "AudienceRestriction").unwrap().first(SAML, "Audience").unwrap();
    assert_eq!(audience.text_content().as_deref(), Some(SP));
    let statement = assertion.first(SAML, "AuthnStatement").unwrap();
    assert_eq!(statement.attribute("SessionIndex"), None, "SessionIndex only at level 1");
    let class = statement.first(SAML, "AuthnContext").unwrap().first(SAML, "AuthnContextClassRef").unwrap();
    assert_eq!(class.text_content().as_deref(), Some("https://www.spid.gov.it/SpidL2"));
    let attributes: Vec<(String, String, String)> = assertion
        .first(SAML, "AttributeStatement")
        .unwrap()
        .children_named(SAML, "Attribute")
        .map(|a| {
            assert_eq!(a.attribute("NameFormat"), Some("urn:oasis:names:tc:SAML:2.0:attrname-format:basic"));
            let v = a.first(SAML, "AttributeValue").unwrap();
            (
                a.attribute("Name").unwrap().to_owned(),
                v.ns_attribute(XSI, "type").unwrap().to_owned(),
                v.text_content().unwrap(),
            )
        })
        .collect();
    assert_eq!(attributes.len(), 4);
    assert_eq!(attributes[3], ("dateOfBirth".into(), "xs:date".into(), "1980-01-01".into()));
    assert_eq!(attributes[0].1, "xs:string");

    // Both signatures, checked by another implementation, and by ours.
    let dir = tempfile::tempdir().unwrap();
    xmlsec1_verifies(dir.path(), &w.login.keys, &xml, "/*[local-name()='Response']/*[local-name()='Signature']");
    xmlsec1_verifies(
        dir.path(),
        &w.login.keys,
        &xml,
        "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']",
    );
    let idp_key = w.login.keys.current.certificate.public_key().unwrap();
    spid_xml::dsig::verify_root(&root, std::slice::from_ref(&idp_key)).unwrap();

    // The transaction registry and the holder's authentication record.
    let events = w.audit().await;
    let registry = events.iter().find(|e| e.r#type == "saml.transaction").unwrap();
    let t = spid_events::envelope::payload_of::<SamlTransaction>(registry).unwrap();
    assert_eq!(
        (t.authn_request_id.as_str(), t.binding.as_str(), t.spid_code.as_str()),
        ("_l2", "HTTP-POST", "XIDP0000000001")
    );
    assert_eq!(t.subject_name_id, name_id.text_content().unwrap());
    assert_eq!(t.subject_name_qualifier, IDP);
    let request_xml = spid_events::registry::inflate_base64(&t.authn_request, 1 << 20).unwrap();
    assert!(String::from_utf8(request_xml).unwrap().contains("ID=\"_l2\""));
    let response_xml = spid_events::registry::inflate_base64(&t.response, 1 << 20).unwrap();
    assert_eq!(String::from_utf8(response_xml).unwrap(), xml);
    let auth = events.iter().find(|e| e.r#type == "authentication").unwrap();
    let a = spid_events::envelope::payload_of::<Authentication>(auth).unwrap();
    assert_eq!((a.outcome.as_str(), a.level.as_str()), ("success", "https://www.spid.gov.it/SpidL2"));

    // The transaction is gone: a second consent cannot send it again.
    assert_eq!(w.login.consent(&tx, B, true, &mut None).await.unwrap(), View::Error(ErrorCode::Nr21));
}

#[tokio::test]
async fn third_wrong_password_is_nr19() {
    let w = world().await;
    let tx = tx_of(&w.start(request("_p"), None).await);
    for left in [2, 1] {
        let view = w.login.password(&tx, B, "mario@example.it", "no").await.unwrap();
        assert!(matches!(view, View::Password { attempts_left, .. } if attempts_left == left), "{view:?}");
    }
    assert_failure(&w.login.password(&tx, B, "nessuno@example.it", "no").await.unwrap(), ErrorCode::Nr19);
}

#[tokio::test]
async fn user_outcomes_nr20_to_nr25() {
    let w = world().await;
    // nr25: cancel.
    let tx = tx_of(&w.start(request("_c"), None).await);
    assert_failure(&w.login.cancel(&tx, B).await.unwrap(), ErrorCode::Nr25);
    // nr23: suspended or revoked.
    let tx = tx_of(&w.start(request("_s"), None).await);
    assert_failure(&w.login.password(&tx, B, "sospeso@example.it", "Giusta#2026").await.unwrap(), ErrorCode::Nr23);
    // nr20: level-1 credentials only, level 2 asked.
    let tx = tx_of(&w.start(request("_n"), None).await);
    assert_failure(&w.login.password(&tx, B, "anna@example.it", "Giusta#2026").await.unwrap(), ErrorCode::Nr20);
    // nr20 at once for level 3 (not offered).
    assert_failure(&w.start(level(request("_l3"), "https://www.spid.gov.it/SpidL3"), None).await, ErrorCode::Nr20);
    // nr22: consent refused.
    let tx = tx_of(&w.start(level(request("_d"), "https://www.spid.gov.it/SpidL1"), None).await);
    assert!(matches!(w.login.password(&tx, B, "anna@example.it", "Giusta#2026").await.unwrap(), View::Consent { .. }));
    assert_failure(&w.login.consent(&tx, B, false, &mut None).await.unwrap(), ErrorCode::Nr22);
    // nr19 after the third wrong code.
    let tx = tx_of(&w.start(request("_o"), None).await);
    w.login.password(&tx, B, "mario@example.it", "Giusta#2026").await.unwrap();
    w.login.code(&tx, B, "1").await.unwrap();
    w.login.code(&tx, B, "2").await.unwrap();
    assert_failure(&w.login.code(&tx, B, "3").await.unwrap(), ErrorCode::Nr19);
}

#[tokio::test]
async fn timeout_is_nr21_and_replays_are_nr11() {
    let w = world().await;
    let tx = tx_of(&w.start(request("_t"), None).await);
    w.clock.advance(Duration::seconds(901));
    assert_failure(&w.login.password(&tx, B, "mario@example.it", "Giusta#2026").await.unwrap(), ErrorCode::Nr21);

    let w = world().await;
    let signed = post(&w.sp, request("_replayed"), Some("rs"));
    assert!(matches!(w.login.receive(Ok(signed.clone()), "ip", None, B).await.unwrap(), View::Password { .. }));
    let (_, root) = response(&w.login.receive(Ok(signed), "ip", None, B).await.unwrap());
    assert_eq!(status(&root).2.as_deref(), Some("ErrorCode nr11"));
    assert_eq!(root.attribute("InResponseTo"), Some("_replayed"));
}

#[tokio::test]
async fn level_1_session_is_reused_unless_forced_and_never_for_level_2() {
    let w = world().await;
    let l1 = |id: &str| set(level(request(id), "https://www.spid.gov.it/SpidL1"), "ForceAuthn", None);
    let tx = tx_of(&w.start(l1("_s1"), None).await);
    w.login.password(&tx, B, "mario@example.it", "Giusta#2026").await.unwrap();
    let mut sso = None;
    let (_, root) = response(&w.login.consent(&tx, B, true, &mut sso).await.unwrap());
    let sso = sso.expect("a level-1 session");
    let statement = root.first(SAML, "Assertion").unwrap().first(SAML, "AuthnStatement").unwrap();
    let index = statement.attribute("SessionIndex").expect("SessionIndex at level 1").to_owned();

    // The next level-1 request goes straight to consent, same session.
    let view = w.start(l1("_s2"), Some(&sso)).await;
    let View::Consent { tx, .. } = &view else { panic!("{view:?}") };
    let mut again = None;
    let (_, root) = response(&w.login.consent(tx, B, true, &mut again).await.unwrap());
    assert_eq!(again, None, "the reused session is kept, not doubled");
    let statement = root.first(SAML, "Assertion").unwrap().first(SAML, "AuthnStatement").unwrap();
    assert_eq!(statement.attribute("SessionIndex"), Some(index.as_str()));

    // A request for professional identities does not reuse a private
    // identity's session.
    let mut professional = l1("_s2b");
    professional.children.insert(
        1,
        spid_xml::Node::Element(
            Element::new(Some("samlp"), "Extensions", Some(SAMLP)).child(
                Element::new(Some("spid"), "Purpose", Some(crate::request::SPID_EXTENSIONS))
                    .declare(Some("spid"), crate::request::SPID_EXTENSIONS)
                    .text("P"),
            ),
        ),
    );
    assert!(matches!(w.start(professional, Some(&sso)).await, View::Password { .. }));
    // ForceAuthn, level 2, an ended session, a forged cookie: a new login.
    assert!(matches!(w.start(set(l1("_s3"), "ForceAuthn", Some("true")), Some(&sso)).await, View::Password { .. }));
    assert!(matches!(w.start(request("_s4"), Some(&sso)).await, View::Password { .. }));
    assert!(matches!(w.start(l1("_s5"), Some("0123456789abcdef0123456789abcdef")).await, View::Password { .. }));
    // A suspension not yet known through the lifecycle topic: the
    // identity-manager's answer ends the session.
    SUSPENDED.lock().unwrap().push("XIDP0000000001".into());
    assert!(matches!(w.start(l1("_s6"), Some(&sso)).await, View::Password { .. }));
    SUSPENDED.lock().unwrap().clear();
    assert!(matches!(w.start(l1("_s7"), Some(&sso)).await, View::Password { .. }), "and it stays ended");
}

#[tokio::test]
async fn request_refusals_answer_the_sp_or_show_a_page() {
    let w = world().await;
    // nr15 goes back to the SP's default ACS with the request's ID.
    let (_, root) = response(&w.start(set(request("_p"), "IsPassive", Some("true")), None).await);
    let (top, sub, message) = status(&root);
    assert_eq!(top, "urn:oasis:names:tc:SAML:2.0:status:Requester");
    assert_eq!(sub.as_deref(), Some("urn:oasis:names:tc:SAML:2.0:status:NoPassive"));
    assert_eq!(message.as_deref(), Some("ErrorCode nr15"));
    // A bad signature is a page; nothing is recorded.
    let before = w.audit().await.len();
    let view = w.login.receive(Ok(post(&sp_key(), request("_x"), None)), "ip", None, B).await.unwrap();
    assert_eq!(view, View::Error(ErrorCode::Nr07));
    assert_eq!(w.audit().await.len(), before);
}

#[test]
fn metadata_is_signed_and_complete() {
    let keys = IdpKeys::ephemeral(2048).unwrap();
    let description = crate::metadata::IdpDescription {
        entity_id: IDP,
        origin: IDP,
        organization_name: "IdP di prova",
        organization_url: "https://idp.example.it/",
    };
    let xml = description.metadata(&keys.current, &keys.published()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("idp.pem"), keys.current.certificate.to_pem().unwrap()).unwrap();
    std::fs::write(dir.path().join("md.xml"), &xml).unwrap();
    let out = Command::new("xmlsec1")
        .args([
            "--verify",
            "--pubkey-cert-pem",
            "idp.pem",
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor",
            "md.xml",
        ])
        .current_dir(dir.path())
        .output()
        .expect("xmlsec1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = spid_xml::parse(xml.as_bytes(), Limits::metadata()).unwrap();
    let md = spid_xml::ns::MD;
    let idp = root.first(md, "IDPSSODescriptor").unwrap();
    assert_eq!(idp.attribute("WantAuthnRequestsSigned"), Some("true"));
    assert_eq!(idp.children_named(md, "NameIDFormat").count(), 1);
    let sso: Vec<_> = idp.children_named(md, "SingleSignOnService").map(|s| s.attribute("Location").unwrap()).collect();
    assert_eq!(sso, [SSO_REDIRECT, SSO_POST]);
    assert_eq!(idp.children_named(md, "SingleLogoutService").count(), 2);
    assert_eq!(idp.children_named(SAML, "Attribute").count(), 23);
    assert_eq!(root.first(spid_xml::ns::DSIG, "Signature").map(|_| ()), Some(()));
}

/// `idpctl sp`: an operator's addition and removal are stored, audited,
/// survive reloads of the sources, and another replica sees them through
/// the generation counter.
#[tokio::test]
async fn operators_add_and_remove_service_providers_for_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let db = spid_server::testkit::database(dir.path(), "gateway").await.unwrap();
    crate::migrate(&db).await.unwrap();
    let md_dir = dir.path().join("sp-metadata");
    std::fs::create_dir_all(&md_dir).unwrap();
    let sp = sp_key();
    std::fs::write(md_dir.join("sp.xml"), crate::request::tests::sp_metadata(&sp)).unwrap();
    let admin = |registry: Arc<crate::registry::Registry>| {
        crate::sp_admin::SpAdmin::new(
            db.clone(),
            registry,
            crate::registry::Sources::with_anchors(vec![md_dir.clone()], vec![], None).unwrap(),
            reqwest::Client::new(),
            Arc::new(ManualClock::new(now())),
            Arc::new(|| {}),
        )
    };
    let one = admin(Arc::new(crate::registry::Registry::default()));
    let other = admin(Arc::new(crate::registry::Registry::default()));
    one.reload().await.unwrap();
    other.reload().await.unwrap();
    assert!(one.registry.get(SP).is_some());

    // An SP added by an operator.
    let extra = crate::request::tests::sp_metadata(&sp_key()).replace(SP, "https://altro.example.it");
    let added = one.add("turno-1", &extra).await.unwrap();
    assert_eq!(added.source, "idpctl");
    assert!(one.add("turno-1", "<not-metadata/>").await.is_err());
    assert!(one.add("", &extra).await.is_err(), "the operator is named");
    // Removing one that a file lists holds across reloads.
    one.remove("turno-1", SP).await.unwrap();
    assert!(matches!(
        one.remove("turno-1", "https://nessuno.example").await,
        Err(crate::sp_admin::AdminError::NotFound(_))
    ));
    one.reload().await.unwrap();
    assert!(one.registry.get(SP).is_none() && one.registry.get("https://altro.example.it").is_some());
    // The other replica applies both on its next reload.
    other.reload().await.unwrap();
    assert!(other.registry.get(SP).is_none() && other.registry.get("https://altro.example.it").is_some());
    // Added again, it is back.
    one.add("turno-1", &crate::request::tests::sp_metadata(&sp)).await.unwrap();
    assert!(one.registry.get(SP).is_some());
    let report = one.refresh("turno-1").await.unwrap();
    assert_eq!((report.loaded, report.errors.len()), (2, 0));

    let rows = sqlx::query("SELECT payload FROM outbox ORDER BY id").fetch_all(db.pool()).await.unwrap();
    let types: Vec<String> =
        rows.iter().map(|r| Envelope::decode(r.get::<Vec<u8>, _>("payload").as_slice()).unwrap().r#type).collect();
    assert_eq!(types, ["sp.added", "sp.removed", "sp.added", "sp.refreshed"]);
}

/// Single logout: the SP's signed LogoutRequest ends the level-1 session its
/// SessionIndex names and gets a signed LogoutResponse; a malformed one is
/// answered Requester and ends nothing.
#[tokio::test]
async fn single_logout_ends_the_level_1_session() {
    let w = world().await;
    let l1 = |id: &str| set(level(request(id), "https://www.spid.gov.it/SpidL1"), "ForceAuthn", None);
    let tx = tx_of(&w.start(l1("_a"), None).await);
    w.login.password(&tx, B, "mario@example.it", "Giusta#2026").await.unwrap();
    let mut sso = None;
    let (_, root) = response(&w.login.consent(&tx, B, true, &mut sso).await.unwrap());
    let sso = sso.unwrap();
    let assertion = root.first(SAML, "Assertion").unwrap();
    let index = assertion.first(SAML, "AuthnStatement").unwrap().attribute("SessionIndex").unwrap().to_owned();
    let name_id = assertion.first(SAML, "Subject").unwrap().first(SAML, "NameID").unwrap().clone();

    let logout_request = |id: &str, index: Option<&str>| {
        let mut e = Element::new(Some("samlp"), "LogoutRequest", Some(SAMLP))
            .declare(Some("samlp"), SAMLP)
            .declare(Some("saml"), SAML)
            .attr("ID", id)
            .attr("Version", "2.0")
            .attr("IssueInstant", "2026-12-02T09:59:59Z")
            .attr("Destination", format!("{IDP}/saml/slo"))
            .child(
                Element::new(Some("saml"), "Issuer", Some(SAML))
                    .attr("Format", crate::request::ENTITY_FORMAT)
                    .attr("NameQualifier", SP)
                    .text(SP),
            )
            .child(name_id.clone());
        if let Some(i) = index {
            e = e.child(Element::new(Some("samlp"), "SessionIndex", Some(SAMLP)).text(i));
        }
        post(&w.sp, e, Some("rs"))
    };
    let status_of = |view: &View| {
        let View::Post { saml_response, acs_url, .. } = view else { panic!("{view:?}") };
        assert_eq!(acs_url, &format!("{SP}/slo"));
        let xml = B64.decode(saml_response).unwrap();
        let root = spid_xml::parse(&xml, Limits::default()).unwrap();
        assert!(root.is(SAMLP, "LogoutResponse"));
        spid_xml::dsig::verify_root(&root, &[w.login.keys.current.certificate.public_key().unwrap()]).unwrap();
        (root.attribute("InResponseTo").unwrap().to_owned(), status(&root).0)
    };
    // Without a SessionIndex: refused, the session stays.
    let (view, ended) = w.login.logout(Ok(logout_request("_lo1", None))).await.unwrap();
    assert_eq!(status_of(&view), ("_lo1".into(), "urn:oasis:names:tc:SAML:2.0:status:Requester".into()));
    assert!(!ended && w.login.sessions.get(&sso).await.unwrap().is_some());
    // The right one ends it, once.
    let (view, ended) = w.login.logout(Ok(logout_request("_lo2", Some(&index)))).await.unwrap();
    assert_eq!(status_of(&view), ("_lo2".into(), "urn:oasis:names:tc:SAML:2.0:status:Success".into()));
    assert!(ended && w.login.sessions.get(&sso).await.unwrap().is_none());
    let (view, ended) = w.login.logout(Ok(logout_request("_lo2", Some(&index)))).await.unwrap();
    assert_eq!(status_of(&view).1, "urn:oasis:names:tc:SAML:2.0:status:Requester", "a replay");
    assert!(!ended);
    // Signed by a stranger: a page.
    let mut e = request("_x");
    e.local = "LogoutRequest".into();
    assert_eq!(w.login.logout(Ok(post(&sp_key(), e, None))).await.unwrap(), (View::Error(ErrorCode::Nr07), false));
    // The SP's own AuthnRequest sent to the logout endpoint is not a logout.
    assert_eq!(
        w.login.logout(Ok(post(&w.sp, request("_y"), None))).await.unwrap(),
        (View::Error(ErrorCode::Nr04), false)
    );
}

/// The holder switches from the SMS code to the authenticator app; a push
/// waits for the app and a refusal on the app cancels the login (nr25).
#[tokio::test]
async fn second_factor_methods_can_be_switched_and_push_waits_for_the_app() {
    let w = world().await;
    let tx = tx_of(&w.start(request("_m1"), None).await);
    let view = w.login.password(&tx, B, "mario@example.it", "Giusta#2026").await.unwrap();
    let View::Code { challenge, others, .. } = &view else { panic!("{view:?}") };
    assert_eq!((challenge.method.as_str(), others.clone()), ("sms", vec!["totp".to_owned(), "push".to_owned()]));
    assert_eq!(w.login.switch_method(&tx, B, "qr").await.unwrap(), View::Error(ErrorCode::Nr04), "not offered");
    let view = w.login.switch_method(&tx, B, "totp").await.unwrap();
    let View::Code { challenge, .. } = &view else { panic!("{view:?}") };
    assert_eq!(challenge.method, "totp");
    // A language change shows the same page, nothing spent.
    assert!(matches!(w.login.show(&tx, B).await.unwrap(), View::Code { .. }));
    assert!(matches!(w.login.code(&tx, B, CODE).await.unwrap(), View::Consent { .. }));

    let tx = tx_of(&w.start(request("_m2"), None).await);
    w.login.password(&tx, B, "mario@example.it", "Giusta#2026").await.unwrap();
    w.login.switch_method(&tx, B, "push").await.unwrap();
    let view = w.login.code(&tx, B, "").await.unwrap();
    assert!(matches!(view, View::Code { notice: Some(Notice::Pending), .. }), "{view:?}");
    assert_failure(&w.login.code(&tx, B, "").await.unwrap(), ErrorCode::Nr25);
}

/// A federation aggregate fetched over HTTP: loaded when its signature
/// verifies with a trust anchor (one broken entry skipped, the others
/// kept); refused when altered or signed by anyone else, the previous
/// entries staying in place.
#[tokio::test]
async fn a_signed_federation_aggregate_is_loaded_from_a_url() {
    use std::io::{Read as _, Write as _};
    let federation = sp_key();
    let sp1 = sp_key();
    let good = crate::request::tests::sp_metadata(&sp1);
    let other = good.replace(SP, "https://secondo.example.it");
    let broken = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://rotto.example.it"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></md:EntityDescriptor>"#;
    let inner = format!("{}{}{}", strip_decl(&good), strip_decl(&other), broken);
    let aggregate = |key: &spid_xml::dsig::SigningKey| {
        let wrapped = format!(
            r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" ID="_fed1" Name="federation">{inner}</md:EntitiesDescriptor>"#
        );
        let mut root = spid_xml::parse(wrapped.as_bytes(), Limits::metadata()).unwrap();
        key.sign_enveloped(&mut root, &[], 0).unwrap();
        root.to_xml()
    };
    let served = Arc::new(Mutex::new(aggregate(&federation)));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let b = body.lock().unwrap().clone();
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len());
        }
    });
    let sources = crate::registry::Sources {
        paths: vec![],
        urls: vec![format!("http://127.0.0.1:{port}/metadata.xml").parse().unwrap()],
        anchors: vec![federation.certificate.public_key().unwrap()],
    };
    let registry = crate::registry::Registry::default();
    let http = reqwest::Client::new();
    let report = registry.reload(&sources, &http, &[]).await;
    assert_eq!((report.loaded, report.errors.len()), (2, 0), "{:?}", report.errors);
    assert!(registry.get(SP).is_some() && registry.get("https://secondo.example.it").is_some());
    assert!(registry.get("https://rotto.example.it").is_none());

    // Altered in transit, or signed by someone else: refused, entries kept.
    *served.lock().unwrap() = aggregate(&federation).replace("secondo.example.it", "terzo.example.it");
    let report = registry.reload(&sources, &http, &[]).await;
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].contains("signature"), "{:?}", report.errors);
    assert!(registry.get("https://secondo.example.it").is_some() && registry.get("https://terzo.example.it").is_none());
    *served.lock().unwrap() = aggregate(&sp_key());
    assert_eq!(registry.reload(&sources, &http, &[]).await.errors.len(), 1);
    assert_eq!(registry.list().len(), 2);
}

fn strip_decl(xml: &str) -> &str {
    xml.trim_start().strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#).unwrap_or(xml).trim()
}

/// Login CSRF: a transaction is driven only from the browser it started in;
/// another browser's step is refused and leaves it intact.
#[tokio::test]
async fn a_login_is_driven_only_from_its_own_browser() {
    let w = world().await;
    let tx = tx_of(&w.start(request("_csrf"), None).await);
    let other = "fedcba9876543210fedcba9876543210";
    assert_eq!(
        w.login.password(&tx, other, "mario@example.it", "Giusta#2026").await.unwrap(),
        View::Error(ErrorCode::Nr04)
    );
    assert_eq!(w.login.cancel(&tx, "").await.unwrap(), View::Error(ErrorCode::Nr04));
    // Its owner goes on.
    assert!(matches!(w.login.password(&tx, B, "mario@example.it", "Giusta#2026").await.unwrap(), View::Code { .. }));
}

/// nr30: a professional identity where the service wants a private one (no
/// `spid:Purpose`), and a private identity where it asks professional use.
#[tokio::test]
async fn identity_types_the_service_does_not_accept_are_nr30() {
    let w = world().await;
    let tx = tx_of(&w.start(request("_t1"), None).await);
    assert_failure(&w.login.password(&tx, B, "studio@example.it", "Giusta#2026").await.unwrap(), ErrorCode::Nr30);

    let purpose = |id: &str, value: &str| {
        let mut e = request(id);
        e.children.insert(
            1,
            spid_xml::Node::Element(
                Element::new(Some("samlp"), "Extensions", Some(SAMLP)).child(
                    Element::new(Some("spid"), "Purpose", Some(crate::request::SPID_EXTENSIONS))
                        .declare(Some("spid"), crate::request::SPID_EXTENSIONS)
                        .text(value),
                ),
            ),
        );
        e
    };
    let tx = tx_of(&w.start(purpose("_t2", "P"), None).await);
    assert_failure(&w.login.password(&tx, B, "mario@example.it", "Giusta#2026").await.unwrap(), ErrorCode::Nr30);
    let tx = tx_of(&w.start(purpose("_t3", "PF"), None).await);
    assert!(matches!(w.login.password(&tx, B, "studio@example.it", "Giusta#2026").await.unwrap(), View::Code { .. }));
    // An unknown purpose is a malformed request (nr08).
    let (_, root) = response(&w.start(purpose("_t4", "ZZ"), None).await);
    assert_eq!(status(&root).2.as_deref(), Some("ErrorCode nr08"));
}
