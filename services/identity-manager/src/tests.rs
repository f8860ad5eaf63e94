//! Registration to login, through the domain services on a real database
//! (SQLite, or Postgres with `SPID_TEST_DATABASE_URL`).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use spid_types::{Clock, ManualClock, ServiceError};

use crate::application::{Application, IdentityType, sample};
use crate::identity::{Credentials, Outcome, Status};
use crate::notify::{Message, Messenger};
use crate::password::{Cost, Hasher};
use crate::registration::{ContactKind, DOCUMENTS, Registrar, Settings, StartError, Upload};
use crate::request::{Action, Actor, Method, RequestState};
use crate::store::RequestStore;

/// Keeps what would have gone to the notification service.
#[derive(Default)]
pub(crate) struct Outbox(Mutex<Vec<Message>>);

impl Outbox {
    /// The last code sent to `recipient`.
    pub(crate) fn code_for(&self, recipient: &str) -> String {
        let sent = self.0.lock().unwrap();
        sent.iter().rev().find(|m| m.recipient == recipient).map(|m| m.data["code"].clone()).unwrap_or_default()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[async_trait]
impl Messenger for Outbox {
    async fn send(&self, m: Message) -> Result<(), ServiceError> {
        self.0.lock().unwrap().push(m);
        Ok(())
    }
}

pub(crate) struct World {
    pub registrar: Registrar,
    pub credentials: Credentials,
    pub requests: RequestStore,
    pub outbox: Arc<Outbox>,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl World {
    pub(crate) fn outbox_len(&self) -> usize {
        self.outbox.count()
    }
}

/// The cheapest Argon2id parameters: tests exercise the logic, not the cost.
pub(crate) fn test_hasher() -> Hasher {
    Hasher::new(Cost { memory_kib: 64, iterations: 1, parallelism: 1 }).unwrap()
}

pub(crate) async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = spid_server::testkit::database(dir.path(), "identity").await.unwrap();
    crate::migrate(&db).await.unwrap();
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()));
    let keys = crate::evidence::KeyFiles::load(&dir.path().join("keys"), true).unwrap();
    let outbox = Arc::new(Outbox::default());
    let registrar = Registrar::new(
        db.clone(),
        test_hasher(),
        Arc::new(keys),
        spid_secrets::SecretKey::random().unwrap(),
        outbox.clone(),
        clock.clone(),
        Settings { code_validity: Duration::minutes(15), idp_code: "TEST".into() },
    );
    let credentials = Credentials::new(db.clone(), test_hasher(), clock.clone()).await.unwrap();
    World { registrar, credentials, requests: RequestStore::new(db), outbox, clock, _dir: dir }
}

const PDF: &[u8] = b"%PDF-1.7 scansione del documento";

async fn count(w: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(w.registrar.db().pool()).await.unwrap()
}

/// Registration by the applicant up to submission.
pub(crate) async fn register(w: &World, a: &Application) -> (String, String) {
    let started = w.registrar.start(a, false).await.unwrap();
    let (id, token) = (started.request_id, started.applicant_token);
    let email = crate::application::normalise_email(&a.email);
    let code = w.outbox.code_for(&email);
    w.registrar.verify_contact(&id, &token, ContactKind::Email, &code).await.unwrap();
    let code = w.outbox.code_for(&a.mobile);
    w.registrar.verify_contact(&id, &token, ContactKind::Mobile, &code).await.unwrap();
    let all: Vec<(String, String)> = DOCUMENTS.iter().map(|(d, v)| ((*d).into(), (*v).into())).collect();
    w.registrar.accept_documents(&id, &token, &all).await.unwrap();
    w.registrar.upload(&id, &token, Upload::DocumentFront, PDF).await.unwrap();
    w.registrar.upload(&id, &token, Upload::DocumentBack, PDF).await.unwrap();
    assert_eq!(w.registrar.submit(&id, &token).await.unwrap(), RequestState::Submitted);
    (id, token)
}

/// Identification and verification by operators, then activation.
pub(crate) async fn identify_and_activate(w: &World, id: &str, token: &str) -> (String, String) {
    let clock = w.clock.as_ref() as &dyn Clock;
    w.requests
        .apply(id, &Action::StartIdentification { method: Method::Counter }, Actor::Operator, "op-1", clock)
        .await
        .unwrap();
    w.requests.apply(id, &Action::Identify, Actor::Operator, "op-1", clock).await.unwrap();
    w.requests.apply(id, &Action::Verify, Actor::Verifier, "ver-1", clock).await.unwrap();
    w.requests.apply(id, &Action::OfferDocuments, Actor::Verifier, "ver-1", clock).await.unwrap();
    let e = w.registrar.activate(id, token).await.unwrap();
    (e.identity_id, e.spid_code)
}

#[tokio::test]
async fn an_applicant_registers_and_logs_in() {
    let w = world().await;
    let a = sample("Mario.Rossi@Example.it");
    let (id, token) = register(&w, &a).await;
    let (_, spid_code) = identify_and_activate(&w, &id, &token).await;
    assert_eq!(spid_code.len(), 14);
    assert!(spid_code.starts_with("TEST") && spid_code[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(!w.registrar.email_available("mario.rossi@example.it").await.unwrap());

    match w.credentials.check("MARIO.ROSSI@example.it", &a.password).await.unwrap() {
        Outcome::Ok(v) => {
            assert_eq!(v.spid_code, spid_code);
            assert_eq!((v.status, v.max_level), (Status::Active, 2));
            assert_eq!(v.second_factors, ["sms", "email"]);
        }
        other => panic!("{other:?}"),
    }
    let attrs = w
        .credentials
        .attributes(&spid_code, &["fiscalNumber".into(), "familyName".into(), "mobilePhone".into(), "x".into()])
        .await
        .unwrap();
    assert_eq!(attrs["fiscalNumber"], "TINIT-RSSMRA80B01H501T");
    assert_eq!(attrs["familyName"], "Rossi");
    assert_eq!(attrs["mobilePhone"], "+393471234567");
    assert!(!attrs.contains_key("x"));

    // The trail: a lifecycle event and a message for the activation, an
    // audit event for every step.
    assert_eq!(count(&w, "SELECT COUNT(*) FROM outbox WHERE topic = 'spid.lifecycle.v1'").await, 1);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM outbox WHERE topic = 'spid.notification.v1'").await, 1);
    let audit = count(&w, "SELECT COUNT(*) FROM outbox WHERE topic = 'spid.audit.v1'").await;
    // draft, 2 contacts, 4 documents, 2 uploads, 6 transitions, activation
    assert_eq!(audit, 1 + 2 + 4 + 2 + 6 + 1);
    let evidence = count(&w, "SELECT COUNT(*) FROM evidence").await;
    assert_eq!(evidence, 2);
}

#[tokio::test]
async fn wrong_credentials_look_alike_and_lock_after_ten() {
    let w = world().await;
    let a = sample("mario.rossi@example.it");
    let (id, token) = register(&w, &a).await;
    let (_, spid_code) = identify_and_activate(&w, &id, &token).await;
    assert_eq!(w.credentials.check("nobody@example.it", &a.password).await.unwrap(), Outcome::WrongCredentials);
    assert_eq!(w.credentials.check("mario.rossi@example.it", "Lampone#2027").await.unwrap(), Outcome::WrongCredentials);
    // A right password resets the count.
    assert!(matches!(w.credentials.check("mario.rossi@example.it", &a.password).await.unwrap(), Outcome::Ok(_)));
    for _ in 0..10 {
        assert_eq!(w.credentials.check("mario.rossi@example.it", "x").await.unwrap(), Outcome::WrongCredentials);
    }
    assert!(matches!(w.credentials.check("mario.rossi@example.it", &a.password).await.unwrap(), Outcome::Ok(_)));
    for _ in 0..11 {
        w.credentials.check("mario.rossi@example.it", "x").await.unwrap();
    }
    // Locked: a wrong password still says only "wrong"; the right one says why.
    assert_eq!(w.credentials.check("mario.rossi@example.it", "x").await.unwrap(), Outcome::WrongCredentials);
    match w.credentials.check("mario.rossi@example.it", &a.password).await.unwrap() {
        Outcome::NotActive(v) => assert_eq!((v.status, v.spid_code.as_str()), (Status::CredentialsLocked, &*spid_code)),
        other => panic!("{other:?}"),
    }
    let locked = count(&w, "SELECT COUNT(*) FROM outbox WHERE headers LIKE '%identity.credentials_locked%'").await;
    assert_eq!(locked, 2, "one lifecycle and one audit event, once");

    w.clock.advance(Duration::days(181));
    let (id2, token2) = register(&w, &sample("luigi@example.it")).await;
    identify_and_activate(&w, &id2, &token2).await;
    w.clock.advance(Duration::days(181));
    assert!(matches!(w.credentials.check("luigi@example.it", &a.password).await.unwrap(), Outcome::PasswordExpired(_)));
}

#[tokio::test]
async fn invalid_applications_change_nothing() {
    let w = world().await;
    let mut a = sample("mario.rossi@example.it");
    a.codice_fiscale = "RSSMRA80B01H501A".into();
    a.password = "password".into();
    let Err(StartError::Invalid(problems)) = w.registrar.start(&a, false).await else { panic!("accepted") };
    let codes: Vec<&str> = problems.iter().map(|p| p.code.as_str()).collect();
    assert!(codes.contains(&"codice_fiscale.check_character") && codes.contains(&"password.no_uppercase"));
    assert_eq!(count(&w, "SELECT COUNT(*) FROM holders").await, 0);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM outbox").await, 0);
    assert_eq!(w.outbox.count(), 0);

    register(&w, &sample("mario.rossi@example.it")).await;
    let Err(StartError::Invalid(problems)) = w.registrar.start(&sample("MARIO.rossi@example.it"), false).await else {
        panic!("accepted a taken e-mail")
    };
    assert_eq!(problems[0].code, "email.taken");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM holders").await, 1);
}

#[tokio::test]
async fn each_step_refuses_what_does_not_fit() {
    let w = world().await;
    let a = sample("mario.rossi@example.it");
    let s = w.registrar.start(&a, false).await.unwrap();
    let (id, token) = (s.request_id.as_str(), s.applicant_token.as_str());
    assert_eq!(w.outbox.count(), 2, "e-mail and SMS codes");
    let code = |e: ServiceError| e.code;

    assert_eq!(code(w.registrar.progress(id, "forged").await.unwrap_err()), "request.token_invalid");
    assert_eq!(code(w.registrar.submit(id, token).await.unwrap_err()), "submit.contact_unverified");
    let right = w.outbox.code_for("mario.rossi@example.it");
    let wrong = if right == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        let e = w.registrar.verify_contact(id, token, ContactKind::Email, wrong).await.unwrap_err();
        assert_eq!(e.code, "contact.code_wrong");
    }
    let e = w.registrar.verify_contact(id, token, ContactKind::Email, &right).await.unwrap_err();
    assert_eq!(e.code, "contact.code_exhausted", "the right code after five wrong ones");
    w.registrar.send_code(id, token, ContactKind::Email).await.unwrap();
    w.clock.advance(Duration::minutes(16));
    let fresh = w.outbox.code_for("mario.rossi@example.it");
    let e = w.registrar.verify_contact(id, token, ContactKind::Email, &fresh).await.unwrap_err();
    assert_eq!(e.code, "contact.code_expired");
    w.registrar.send_code(id, token, ContactKind::Email).await.unwrap();
    let fresh = w.outbox.code_for("mario.rossi@example.it");
    w.registrar.verify_contact(id, token, ContactKind::Email, &fresh).await.unwrap();
    let e = w.registrar.send_code(id, token, ContactKind::Email).await.unwrap_err();
    assert_eq!(e.code, "contact.already_verified");
    let e = w.registrar.verify_contact(id, token, ContactKind::Pec, "123456").await.unwrap_err();
    assert_eq!(e.code, "contact.no_code");
    let m = w.outbox.code_for(&a.mobile);
    let e = w.registrar.verify_contact(id, token, ContactKind::Mobile, &m).await.unwrap_err();
    assert_eq!(e.code, "contact.code_expired", "sent at the start, 16 minutes ago");
    w.registrar.send_code(id, token, ContactKind::Mobile).await.unwrap();
    let m = w.outbox.code_for(&a.mobile);
    w.registrar.verify_contact(id, token, ContactKind::Mobile, &m).await.unwrap();

    assert_eq!(code(w.registrar.submit(id, token).await.unwrap_err()), "submit.documents_not_accepted");
    let old = vec![("terms".to_owned(), "2019.1".to_owned())];
    assert_eq!(code(w.registrar.accept_documents(id, token, &old).await.unwrap_err()), "documents.version_outdated");
    let unknown = vec![("blank_cheque".to_owned(), "1".to_owned())];
    assert_eq!(code(w.registrar.accept_documents(id, token, &unknown).await.unwrap_err()), "documents.unknown");
    let all: Vec<(String, String)> = DOCUMENTS.iter().map(|(d, v)| ((*d).into(), (*v).into())).collect();
    w.registrar.accept_documents(id, token, &all).await.unwrap();

    assert_eq!(code(w.registrar.submit(id, token).await.unwrap_err()), "submit.upload_missing");
    let e = w.registrar.upload(id, token, Upload::DocumentFront, b"MZ\x90\x00 not a scan").await.unwrap_err();
    assert_eq!(e.code, "evidence.format");
    let big = [b"%PDF-".as_slice(), &vec![0u8; crate::registration::MAX_UPLOAD]].concat();
    assert_eq!(
        code(w.registrar.upload(id, token, Upload::DocumentFront, &big).await.unwrap_err()),
        "evidence.too_large"
    );
    let front = w.registrar.upload(id, token, Upload::DocumentFront, PDF).await.unwrap();
    w.registrar.upload(id, token, Upload::DocumentBack, b"\xFF\xD8\xFF\xE0 jpeg").await.unwrap();
    let (kind, content) = w.registrar.open_evidence(&front).await.unwrap();
    assert_eq!((kind.as_str(), content.as_slice()), ("document_front", PDF));
    let p = w.registrar.progress(id, token).await.unwrap();
    assert!(p.uploads_missing.is_empty() && p.documents_to_accept.is_empty() && p.contacts.iter().all(|c| c.verified));
    w.registrar.submit(id, token).await.unwrap();
    assert_eq!(code(w.registrar.submit(id, token).await.unwrap_err()), "request.illegal_transition");
    assert_eq!(code(w.registrar.activate(id, token).await.unwrap_err()), "request.illegal_transition");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM identities").await, 0);
}

#[tokio::test]
async fn a_denied_request_frees_its_email_and_professional_needs_proof() {
    let w = world().await;
    let (id, _) = register(&w, &sample("mario.rossi@example.it")).await;
    let clock = w.clock.as_ref() as &dyn Clock;
    w.requests
        .apply(&id, &Action::Deny { reason: "documento illeggibile".into() }, Actor::Verifier, "v", clock)
        .await
        .unwrap();
    assert!(w.registrar.email_available("mario.rossi@example.it").await.unwrap(), "VER-3: start again");

    let mut pro = sample("studio.rossi@example.it");
    pro.identity_type = IdentityType::ProfessionalNatural;
    pro.organisation = Some(crate::application::Organisation {
        company_name: "Studio Rossi".into(),
        legal_seat: pro.domicile.clone(),
        vat_number: "12345670017".into(),
        codice_fiscale: "12345670017".into(),
        representation_proof: "chamber_of_commerce_extract".into(),
    });
    let s = w.registrar.start(&pro, false).await.unwrap();
    let p = w.registrar.progress(&s.request_id, &s.applicant_token).await.unwrap();
    assert_eq!(p.uploads_missing, ["document_front", "document_back", "representation_proof"]);
}
