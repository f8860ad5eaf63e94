//! Registration to login, through the domain services on a real database
//! (SQLite, or Postgres with `SPID_TEST_DATABASE_URL`).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{Duration, Utc};
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
    pub registrar: Arc<Registrar>,
    pub identification: Arc<crate::identification::Identification>,
    pub backoffice: crate::backoffice::Backoffice,
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
    world_with(crate::sources::LocalData::sample()).await
}

pub(crate) async fn world_with(sources: crate::sources::LocalData) -> World {
    world_trusting(sources, None).await
}

pub(crate) async fn world_trusting(
    sources: crate::sources::LocalData,
    trust: Option<crate::signature::TrustList>,
) -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = spid_server::testkit::database(dir.path(), "identity").await.unwrap();
    crate::migrate(&db).await.unwrap();
    // Now: the certificates the openssl tool makes are valid from now.
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let keys = crate::evidence::KeyFiles::load(&dir.path().join("keys"), true).unwrap();
    let outbox = Arc::new(Outbox::default());
    let registrar = Arc::new(Registrar::new(
        db.clone(),
        test_hasher(),
        Arc::new(keys),
        spid_secrets::SecretKey::random().unwrap(),
        outbox.clone(),
        clock.clone(),
        Settings {
            code_validity: Duration::minutes(15),
            idp_code: "TEST".into(),
            cache: Arc::new(spid_cache::MemoryCache::new()),
        },
    ));
    let sources = crate::sources::Sources::local(sources, clock.clone());
    let identification = Arc::new(crate::identification::Identification::new(registrar.clone(), sources, trust, None));
    let backoffice = crate::backoffice::Backoffice::new(registrar.clone(), identification.clone());
    let credentials = Credentials::new(db.clone(), test_hasher(), clock.clone()).await.unwrap();
    World {
        registrar,
        identification,
        backoffice,
        credentials,
        requests: RequestStore::new(db),
        outbox,
        clock,
        _dir: dir,
    }
}

const PDF: &[u8] = b"%PDF-1.7 scansione del documento";

pub(crate) async fn count(w: &World, sql: &str) -> i64 {
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

mod identification {
    use super::*;
    use crate::backoffice::Role;
    use crate::sources::{LocalData, Report, ReportedDocument};

    const MP4: &[u8] = b"\x00\x00\x00\x18ftypmp42 video";

    async fn operators(w: &World) {
        let b = &w.backoffice;
        b.add_operator(None, "admin", "Amministratore", Role::Administrator).await.unwrap();
        b.add_operator(Some("admin"), "counter-1", "Sportello 1", Role::Counter).await.unwrap();
        b.add_operator(Some("admin"), "video-1", "Video 1", Role::VideoDesk).await.unwrap();
        b.add_operator(Some("admin"), "verifier-1", "Verifica 1", Role::Verifier).await.unwrap();
    }

    fn tomorrow(w: &World) -> chrono::DateTime<Utc> {
        w.clock.now() + Duration::days(1)
    }

    #[tokio::test]
    async fn operators_and_roles() {
        let w = world().await;
        let b = &w.backoffice;
        let e = b.add_operator(None, "counter-0", "Sportello", Role::Counter).await.unwrap_err();
        assert_eq!(e.code, "operator.not_allowed", "the first operator is an administrator");
        operators(&w).await;
        let e = b.add_operator(None, "admin-2", "Secondo", Role::Administrator).await.unwrap_err();
        assert_eq!(e.code, "operator.not_allowed", "afterwards only an administrator adds");
        let e = b.add_operator(Some("counter-1"), "x-1", "X", Role::Counter).await.unwrap_err();
        assert_eq!(e.code, "operator.not_allowed");
        let e = b.add_operator(Some("admin"), "counter-1", "Again", Role::Counter).await.unwrap_err();
        assert_eq!(e.code, "operator.exists");
        assert_eq!(b.queue("nobody", None, None, 10).await.unwrap_err().code, "operator.unknown");
        assert_eq!(b.operators().await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn at_the_counter() {
        let w = world().await;
        operators(&w).await;
        let a = sample("mario.rossi@example.it");
        let (id, token) = register(&w, &a).await;
        let e = w.identification.choose_method(&id, &token, Method::Counter, None).await.unwrap_err();
        assert_eq!(e.code, "appointment.missing");
        let far = w.clock.now() + Duration::days(31);
        let e = w.identification.choose_method(&id, &token, Method::Counter, Some(far)).await.unwrap_err();
        assert_eq!(e.code, "appointment.out_of_range");
        w.identification.choose_method(&id, &token, Method::Counter, Some(tomorrow(&w))).await.unwrap();
        let queue =
            w.backoffice.queue("counter-1", Some(RequestState::AwaitingIdentification), Some(Method::Counter), 10);
        assert_eq!(queue.await.unwrap().len(), 1);

        let e = w.backoffice.identify("counter-1", &id, "documento originale visionato").await.unwrap_err();
        assert_eq!(e.code, "identification.appointment_unconfirmed");
        let e = w.backoffice.confirm_appointment("video-1", &id, tomorrow(&w)).await.unwrap_err();
        assert_eq!(e.code, "operator.not_allowed", "the video desk does not hold counter appointments");
        w.backoffice.confirm_appointment("counter-1", &id, tomorrow(&w)).await.unwrap();
        assert_eq!(
            count(&w, "SELECT COUNT(*) FROM outbox WHERE topic = 'spid.notification.v1'").await,
            2,
            "appointment confirmed by e-mail and SMS"
        );
        let e = w.backoffice.identify("video-1", &id, "x").await.unwrap_err();
        assert_eq!(e.code, "operator.not_allowed");
        let state = w.backoffice.identify("counter-1", &id, "documento originale visionato").await.unwrap();
        assert_eq!(state, RequestState::AwaitingAcceptance, "all three sources confirmed");

        let view = w.backoffice.view("verifier-1", &id).await.unwrap();
        assert_eq!(view.source_checks.len(), 3);
        assert!(view.source_checks.iter().all(|c| c.verdict == "confirmed"), "{:?}", view.source_checks);
        let kinds: Vec<&str> = view.evidence.iter().map(|e| e.kind.as_str()).collect();
        for k in ["source_check.agenzia_entrate", "source_check.scipafi", "source_check.document_registry"] {
            assert!(kinds.contains(&k), "{kinds:?}");
        }
        let check = view.evidence.iter().find(|e| e.kind == "source_check.scipafi").unwrap();
        let (_, content) = w.backoffice.open_evidence("verifier-1", &check.id).await.unwrap();
        let stored: serde_json::Value = serde_json::from_slice(&content).unwrap();
        assert!(stored["request"].as_str().unwrap().contains("CA12345AB"), "the call itself is evidence");
        assert_eq!(view.holder["codice_fiscale"], "RSSMRA80B01H501T");
        let looked = count(&w, "SELECT COUNT(*) FROM outbox WHERE headers LIKE '%request.viewed%'").await;
        let opened = count(&w, "SELECT COUNT(*) FROM outbox WHERE headers LIKE '%evidence.opened%'").await;
        assert_eq!((looked, opened), (1, 1), "operators' looks are audited");

        let e = identify_and_activate_ready(&w, &id, &token).await;
        assert!(e.spid_code.starts_with("TEST"));
    }

    async fn identify_and_activate_ready(w: &World, id: &str, token: &str) -> crate::identity::Emitted {
        w.registrar.activate(id, token).await.unwrap()
    }

    #[tokio::test]
    async fn by_video_with_codes_read_back() {
        let w = world().await;
        operators(&w).await;
        let a = sample("mario.rossi@example.it");
        let (id, token) = register(&w, &a).await;
        w.identification.choose_method(&id, &token, Method::Video, Some(tomorrow(&w))).await.unwrap();
        let e = w.backoffice.identify("video-1", &id, "ok").await.unwrap_err();
        assert_eq!(e.code, "identification.video_missing");
        assert_eq!(w.backoffice.video_challenge("counter-1", &id).await.unwrap_err().code, "operator.not_allowed");
        w.backoffice.video_challenge("video-1", &id).await.unwrap();
        let sms = w.outbox.code_for(&a.mobile);
        let email = w.outbox.code_for("mario.rossi@example.it");
        let e = w.backoffice.video_session("video-1", &id, &sms, &email, b"not a video").await.unwrap_err();
        assert_eq!(e.code, "evidence.format");
        let wrong = if email == "111111" { "222222" } else { "111111" };
        let e = w.backoffice.video_session("video-1", &id, &sms, wrong, MP4).await.unwrap_err();
        assert_eq!(e.code, "contact.code_wrong");
        w.backoffice.video_session("video-1", &id, &sms, &email, MP4).await.unwrap();
        assert_eq!(
            w.backoffice.identify("video-1", &id, "gesti richiesti eseguiti").await.unwrap(),
            RequestState::AwaitingAcceptance
        );
        w.registrar.activate(&id, &token).await.unwrap();
    }

    #[tokio::test]
    async fn by_self_video_and_bank_transfer() {
        let w = world().await;
        operators(&w).await;
        let (id, token) = register(&w, &sample("mario.rossi@example.it")).await;
        let e = w.identification.choose_method(&id, &token, Method::VideoWithTransfer, Some(tomorrow(&w))).await;
        assert_eq!(e.unwrap_err().code, "appointment.unexpected");
        w.identification.choose_method(&id, &token, Method::VideoWithTransfer, None).await.unwrap();
        assert_eq!(w.backoffice.identify("video-1", &id, "ok").await.unwrap_err().code, "identification.video_missing");
        w.identification.upload_self_video(&id, &token, MP4).await.unwrap();
        let e = w.backoffice.identify("video-1", &id, "ok").await.unwrap_err();
        assert_eq!(e.code, "identification.transfer_missing");
        let late = w.clock.now() + Duration::days(11);
        w.backoffice.record_transfer("video-1", &id, "TRN-1", 1, late).await.unwrap();
        assert_eq!(w.backoffice.identify("video-1", &id, "ok").await.unwrap_err().code, "identification.transfer_late");

        let (id, token) = register(&w, &sample("luigi@example.it")).await;
        w.identification.choose_method(&id, &token, Method::VideoWithTransfer, None).await.unwrap();
        w.identification.upload_self_video(&id, &token, MP4).await.unwrap();
        let e = w.backoffice.record_transfer("counter-1", &id, "TRN-2", 1, w.clock.now()).await.unwrap_err();
        assert_eq!(e.code, "operator.not_allowed");
        w.backoffice.record_transfer("video-1", &id, "TRN-2", 1, w.clock.now()).await.unwrap();
        assert_eq!(w.backoffice.identify("video-1", &id, "ok").await.unwrap(), RequestState::AwaitingAcceptance);
    }

    #[tokio::test]
    async fn by_an_existing_level_2_identity_for_a_professional_one() {
        let w = world().await;
        let (id, token) = register(&w, &sample("mario.rossi@example.it")).await;
        let e = w.identification.choose_method(&id, &token, Method::ExistingIdentity, None).await.unwrap_err();
        assert_eq!(e.code, "identification.method_not_allowed", "private identities are not identified this way");
        let (_, spid_code) = {
            let clock = w.clock.as_ref() as &dyn Clock;
            w.requests
                .apply(&id, &Action::StartIdentification { method: Method::Counter }, Actor::Operator, "op", clock)
                .await
                .unwrap();
            w.requests.apply(&id, &Action::Identify, Actor::Operator, "op", clock).await.unwrap();
            w.identification.verify_sources(&id).await.unwrap();
            let e = w.registrar.activate(&id, &token).await.unwrap();
            (e.identity_id, e.spid_code)
        };

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
        let (pid, ptoken) = (s.request_id.as_str(), s.applicant_token.as_str());
        for (kind, to) in [(ContactKind::Email, "studio.rossi@example.it"), (ContactKind::Mobile, pro.mobile.as_str())]
        {
            let code = w.outbox.code_for(to);
            w.registrar.verify_contact(pid, ptoken, kind, &code).await.unwrap();
        }
        let all: Vec<(String, String)> = DOCUMENTS.iter().map(|(d, v)| ((*d).into(), (*v).into())).collect();
        w.registrar.accept_documents(pid, ptoken, &all).await.unwrap();
        for u in [Upload::DocumentFront, Upload::DocumentBack, Upload::RepresentationProof] {
            w.registrar.upload(pid, ptoken, u, PDF).await.unwrap();
        }
        w.registrar.submit(pid, ptoken).await.unwrap();
        w.identification.choose_method(pid, ptoken, Method::ExistingIdentity, None).await.unwrap();
        let e = w.identification.identify_with_existing_identity(pid, ptoken, "TESTNOSUCHCODE1").await.unwrap_err();
        assert_eq!(e.code, "identification.identity_unknown");
        let state = w.identification.identify_with_existing_identity(pid, ptoken, &spid_code).await.unwrap();
        assert_eq!(state, RequestState::AwaitingAcceptance);
    }

    async fn self_identified(w: &World, id: &str, token: &str) -> RequestState {
        w.identification.choose_method(id, token, Method::VideoWithTransfer, None).await.unwrap();
        w.identification.upload_self_video(id, token, MP4).await.unwrap();
        w.backoffice.record_transfer("video-1", id, "TRN", 1, w.clock.now()).await.unwrap();
        w.backoffice.identify("video-1", id, "ok").await.unwrap()
    }

    #[tokio::test]
    async fn a_refused_source_check_waits_for_a_verifier() {
        let mut data = LocalData::sample();
        data.reported_documents.push(ReportedDocument {
            kind: "carta_identita_elettronica".into(),
            number: "CA12345AB".into(),
            report: Report::Stolen,
            reported_on: None,
        });
        let w = world_with(data).await;
        operators(&w).await;
        let (id, token) = register(&w, &sample("mario.rossi@example.it")).await;
        assert_eq!(self_identified(&w, &id, &token).await, RequestState::Identified, "waits for a verifier");
        let view = w.backoffice.view("verifier-1", &id).await.unwrap();
        let refused: Vec<&str> =
            view.source_checks.iter().filter(|c| c.verdict == "refused").map(|c| c.source.as_str()).collect();
        assert_eq!(refused, ["scipafi", "document_registry"], "{:?}", view.source_checks);
        assert!(view.source_checks.iter().all(|c| c.verdict == "confirmed" || c.reasons == "document.reported_stolen"));
        let queue = w.backoffice.queue("verifier-1", Some(RequestState::Identified), None, 10).await.unwrap();
        assert_eq!(queue.len(), 1);

        assert_eq!(w.backoffice.approve("counter-1", &id, "ok").await.unwrap_err().code, "operator.not_allowed");
        assert_eq!(w.backoffice.approve("verifier-1", &id, " ").await.unwrap_err().code, "request.reason_missing");
        w.backoffice.ask_documents("verifier-1", &id, "denuncia di ritrovamento del documento").await.unwrap();
        let state = w.backoffice.approve("verifier-1", &id, "denuncia ritirata, documento ritrovato").await.unwrap();
        assert_eq!(state, RequestState::AwaitingAcceptance);

        let (id2, token2) = register(&w, &sample("luigi@example.it")).await;
        self_identified(&w, &id2, &token2).await;
        w.backoffice.deny("verifier-1", &id2, "documento rubato").await.unwrap();
        assert_eq!(w.registrar.request(&id2).await.unwrap().state, RequestState::Denied);
        assert!(w.registrar.email_available("luigi@example.it").await.unwrap());
        let denied = count(&w, "SELECT COUNT(*) FROM outbox WHERE topic = 'spid.notification.v1' AND headers LIKE '%notification.requested%'").await;
        assert!(denied >= 3, "documents asked, final documents, denial: {denied}");
    }

    #[tokio::test]
    async fn pending_requests_lapse_once() {
        let w = world().await;
        let (id, token) = register(&w, &sample("mario.rossi@example.it")).await;
        w.identification.choose_method(&id, &token, Method::VideoWithTransfer, None).await.unwrap();
        let (other, _) = register(&w, &sample("luigi@example.it")).await;
        w.clock.advance(Duration::days(10) + Duration::minutes(1));
        assert_eq!(crate::lapse::lapse_due(&w.registrar, w.clock.now()).await.unwrap(), 1, "10 days without transfer");
        assert_eq!(w.registrar.request(&id).await.unwrap().state, RequestState::Lapsed);
        assert_eq!(w.registrar.request(&other).await.unwrap().state, RequestState::Submitted);
        w.clock.advance(Duration::days(20));
        assert_eq!(crate::lapse::lapse_due(&w.registrar, w.clock.now()).await.unwrap(), 1, "30 days unidentified");
        assert_eq!(crate::lapse::lapse_due(&w.registrar, w.clock.now()).await.unwrap(), 0, "once");
        let history = w.requests.history(&other).await.unwrap();
        assert_eq!(history.last().map(|t| t.actor.as_str()), Some("scheduler"));
        assert!(w.registrar.email_available("mario.rossi@example.it").await.unwrap());
    }
}

mod electronic {
    //! Methods (c) and (d) with certificates and signatures made by the
    //! `openssl` command-line tool.

    use super::*;
    use crate::signature::TrustList;
    use crate::signature::tests::{CONFIG, certificate, openssl};
    use crate::sources::LocalData;

    struct Pki {
        dir: tempfile::TempDir,
        trust: TrustList,
    }

    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("openssl.cnf"), CONFIG).unwrap();
        certificate(d, "root", "/C=IT/O=Test QTSP/CN=Test Root", "ca", None, "3650");
        let person = "/C=IT/GN=Mario/SN=Rossi/CN=Mario Rossi";
        certificate(
            d,
            "mario",
            &format!("{person}/serialNumber=TINIT-RSSMRA80B01H501T"),
            "qualified",
            Some("root"),
            "365",
        );
        certificate(
            d,
            "luigi",
            "/C=IT/CN=Luigi Bianchi/serialNumber=TINIT-BNCLGU80A01H501A",
            "qualified",
            Some("root"),
            "365",
        );
        certificate(d, "spid", &format!("{person}/serialNumber=TINIT-RSSMRA80B01H501T"), "spid", Some("root"), "365");
        certificate(
            d,
            "card",
            "/C=IT/O=Test CNS/CN=RSSMRA80B01H501T\\/7420000300000123.abcd",
            "cns",
            Some("root"),
            "365",
        );
        let trust = TrustList::from_pem(&std::fs::read(d.join("root.pem")).unwrap()).unwrap();
        Pki { dir, trust }
    }

    impl Pki {
        fn sign(&self, signer: &str, content: &[u8]) -> Vec<u8> {
            let d = self.dir.path();
            std::fs::write(d.join("form.txt"), content).unwrap();
            let (pem, key) = (format!("{signer}.pem"), format!("{signer}.key"));
            openssl(
                d,
                &[
                    "cms",
                    "-sign",
                    "-binary",
                    "-nodetach",
                    "-cades",
                    "-md",
                    "sha256",
                    "-in",
                    "form.txt",
                    "-signer",
                    &pem,
                    "-inkey",
                    &key,
                    "-outform",
                    "DER",
                    "-out",
                    "form.p7m",
                ],
            );
            std::fs::read(d.join("form.p7m")).unwrap()
        }

        fn cert(&self, name: &str) -> Vec<u8> {
            std::fs::read(self.dir.path().join(format!("{name}.pem"))).unwrap()
        }
    }

    #[tokio::test]
    async fn by_a_form_signed_with_a_qualified_signature() {
        let pki = pki();
        let w = world_trusting(LocalData::sample(), Some(pki.trust.clone())).await;
        let (id, token) = register(&w, &sample("mario.rossi@example.it")).await;
        w.identification.choose_method(&id, &token, Method::SignedForm, None).await.unwrap();
        let form = w.identification.form(&id, &token).await.unwrap();
        assert!(form.contains(&id) && form.contains("RSSMRA80B01H501T"));
        let code = |r: Result<RequestState, ServiceError>| r.unwrap_err().code;

        let other_text = pki.sign("mario", b"un altro documento");
        assert_eq!(
            code(w.identification.identify_with_signed_form(&id, &token, &other_text).await),
            "identification.form_mismatch"
        );
        let someone_else = pki.sign("luigi", form.as_bytes());
        assert_eq!(
            code(w.identification.identify_with_signed_form(&id, &token, &someone_else).await),
            "identification.codice_fiscale_mismatch"
        );
        let spid_derived = pki.sign("spid", form.as_bytes());
        assert_eq!(
            code(w.identification.identify_with_signed_form(&id, &token, &spid_derived).await),
            "signature.spid_certificate"
        );
        let mut tampered = pki.sign("mario", form.as_bytes());
        let at = tampered.windows(id.len()).position(|win| win == id.as_bytes()).unwrap();
        tampered[at] ^= 1;
        assert_eq!(code(w.identification.identify_with_signed_form(&id, &token, &tampered).await), "signature.invalid");
        assert_eq!(
            w.registrar.request(&id).await.unwrap().state,
            RequestState::AwaitingIdentification,
            "nothing changed"
        );

        let signed = pki.sign("mario", form.as_bytes());
        let state = w.identification.identify_with_signed_form(&id, &token, &signed).await.unwrap();
        assert_eq!(state, RequestState::AwaitingAcceptance);
        let history = w.requests.history(&id).await.unwrap();
        let identified = history.iter().find(|t| t.to == "identified").unwrap();
        assert_eq!((identified.actor.as_str(), identified.actor_id.as_str()), ("system", "signed_form"));
        assert_eq!(count(&w, "SELECT COUNT(*) FROM evidence WHERE kind = 'signed_form'").await, 1);
    }

    #[tokio::test]
    async fn by_a_cns_card() {
        let pki = pki();
        let w = world_trusting(LocalData::sample(), Some(pki.trust.clone())).await;
        let (id, token) = register(&w, &sample("mario.rossi@example.it")).await;
        w.identification.choose_method(&id, &token, Method::ElectronicDocument, None).await.unwrap();
        let e = w.identification.identify_with_cns(&id, &token, &pki.cert("luigi")).await.unwrap_err();
        assert_eq!(e.code, "identification.codice_fiscale_mismatch");
        let e =
            w.identification.identify_with_cns(&id, &token, b"-----BEGIN CERTIFICATE-----\nnope").await.unwrap_err();
        assert_eq!(e.code, "signature.malformed");
        let state = w.identification.identify_with_cns(&id, &token, &pki.cert("card")).await.unwrap();
        assert_eq!(state, RequestState::AwaitingAcceptance);
    }

    #[tokio::test]
    async fn by_a_cie_card_through_the_cie_openid_provider() {
        use crate::cie::tests::{CLIENT, ISSUER, claims, keys, token};
        let dir = tempfile::tempdir().unwrap();
        let provider = crate::cie::CieProvider::new(ISSUER, CLIENT, &keys(dir.path())).unwrap();
        let mut w = world().await;
        w.identification = Arc::new(crate::identification::Identification::new(
            w.registrar.clone(),
            crate::sources::Sources::local(LocalData::sample(), w.clock.clone()),
            None,
            Some(provider),
        ));
        let (id, token_) = register(&w, &sample("mario.rossi@example.it")).await;
        w.identification.choose_method(&id, &token_, Method::ElectronicDocument, None).await.unwrap();
        let nonce = w.identification.cie_nonce(&id, &token_).await.unwrap();
        let (other, other_token) = register(&w, &sample("luigi@example.it")).await;
        let other_nonce = w.identification.cie_nonce(&other, &other_token).await.unwrap();
        assert_ne!(nonce, other_nonce, "a nonce per request");
        let now = w.clock.now();
        let for_other = token(dir.path(), "RS256", &claims(&other_nonce, now));
        let e = w.identification.identify_with_cie(&id, &token_, &for_other).await.unwrap_err();
        assert_eq!(e.code, "cie.nonce", "another request's token");
        let mut someone_else = claims(&nonce, now);
        someone_else[crate::cie::FISCAL_NUMBER_CLAIM] = "TINIT-BNCLGU80A01H501A".into();
        let e = w.identification.identify_with_cie(&id, &token_, &token(dir.path(), "RS256", &someone_else)).await;
        assert_eq!(e.unwrap_err().code, "identification.codice_fiscale_mismatch");
        let good = token(dir.path(), "RS256", &claims(&nonce, now));
        let state = w.identification.identify_with_cie(&id, &token_, &good).await.unwrap();
        assert_eq!(state, RequestState::AwaitingAcceptance);
        assert_eq!(count(&w, "SELECT COUNT(*) FROM evidence WHERE kind = 'cie_id_token'").await, 1);
    }

    #[tokio::test]
    async fn without_a_trust_list_these_methods_are_not_offered() {
        let w = world().await;
        let (id, token) = register(&w, &sample("mario.rossi@example.it")).await;
        let e = w.identification.choose_method(&id, &token, Method::SignedForm, None).await.unwrap_err();
        assert_eq!(e.code, "identification.method_unavailable");
    }
}

#[tokio::test]
async fn refused_transitions_change_nothing() {
    let w = world().await;
    let (id, _) = register(&w, &sample("mario.rossi@example.it")).await;
    let clock = w.clock.as_ref() as &dyn Clock;
    let code = |r: Result<RequestState, ServiceError>| r.unwrap_err().code;
    assert_eq!(
        code(w.requests.apply(&id, &Action::Identify, Actor::Operator, "op-7", clock).await),
        "request.illegal_transition"
    );
    let start = Action::StartIdentification { method: Method::Counter };
    assert_eq!(code(w.requests.apply(&id, &start, Actor::Verifier, "v", clock).await), "request.actor_not_allowed");
    let blank = Action::Deny { reason: " ".into() };
    assert_eq!(code(w.requests.apply(&id, &blank, Actor::Verifier, "v", clock).await), "request.reason_missing");
    let deny = Action::Deny { reason: "documento contraffatto".into() };
    w.requests.apply(&id, &deny, Actor::Verifier, "v", clock).await.unwrap();
    assert_eq!(
        code(w.requests.apply(&id, &Action::Lapse, Actor::Scheduler, "scheduler", clock).await),
        "request.illegal_transition",
        "denied is final"
    );
    let history = w.requests.history(&id).await.unwrap();
    assert_eq!(history.iter().map(|t| t.to.as_str()).collect::<Vec<_>>(), ["submitted", "denied"]);
    assert_eq!(history[1].reason.as_deref(), Some("documento contraffatto"));
    assert_eq!(w.requests.get("nope").await.unwrap_err().code, "request.not_found");
}

#[tokio::test]
async fn codes_are_capped_per_contact() {
    let w = world().await;
    let s = w.registrar.start(&sample("mario.rossi@example.it"), false).await.unwrap();
    let (id, token) = (s.request_id.as_str(), s.applicant_token.as_str());
    // The start sent the first; nine more are allowed.
    for _ in 1..crate::registration::CODE_SENDS {
        w.registrar.send_code(id, token, ContactKind::Email).await.unwrap();
    }
    let e = w.registrar.send_code(id, token, ContactKind::Email).await.unwrap_err();
    assert_eq!(e.code, "contact.too_many_codes");
    assert_eq!(e.kind, spid_types::ErrorKind::RateLimited);
    // The last code still works; a success clears the count.
    let code = w.outbox.code_for("mario.rossi@example.it");
    w.registrar.verify_contact(id, token, ContactKind::Email, &code).await.unwrap();
    assert_eq!(count(&w, "SELECT COUNT(*) FROM contact_codes WHERE kind = 'email'").await, 0);
}

#[tokio::test]
async fn a_password_changes_under_the_rules_of_reg_6() {
    use crate::identity::ChangeError;
    let w = world().await;
    let a = sample("mario.rossi@example.it");
    let (id, token) = register(&w, &a).await;
    identify_and_activate(&w, &id, &token).await;
    let codes = |r: Result<chrono::DateTime<Utc>, ChangeError>| match r {
        Err(ChangeError::Invalid(v)) => v.iter().map(|v| v.code().to_owned()).collect::<Vec<_>>(),
        Err(ChangeError::Refused(e)) => vec![e.code],
        Ok(_) => vec![],
    };
    let user = "mario.rossi@example.it";
    assert_eq!(codes(w.credentials.change_password(user, "Sbagliata#1", "Ciliegia#2027").await), ["credentials.wrong"]);
    assert_eq!(
        codes(w.credentials.change_password(user, &a.password, "Rossi#20270").await),
        ["password.personal_data"]
    );
    assert_eq!(codes(w.credentials.change_password(user, &a.password, &a.password).await), ["password.reused"]);
    let variant = "lamPONE?2031";
    assert_eq!(codes(w.credentials.change_password(user, &a.password, variant).await), ["password.reused_variant"]);
    w.clock.advance(Duration::days(1));
    let expires = w.credentials.change_password(user, &a.password, "Ciliegia#2027").await.unwrap();
    assert_eq!(expires, w.clock.now() + Duration::days(180));
    assert!(matches!(w.credentials.check(user, "Ciliegia#2027").await.unwrap(), Outcome::Ok(_)));
    assert_eq!(w.credentials.check(user, &a.password).await.unwrap(), Outcome::WrongCredentials);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM outbox WHERE headers LIKE '%credentials.changed%'").await, 2);
}

#[tokio::test]
async fn codes_to_one_recipient_are_capped_across_requests() {
    let w = world().await;
    let mut applicants = Vec::new();
    // Five requests with the same mobile number: ten codes by SMS is the day's cap.
    for n in 0..5 {
        let s = w.registrar.start(&sample(&format!("a{n}@example.it")), false).await.unwrap();
        applicants.push(s);
    }
    let first = &applicants[0];
    w.registrar.send_code(&first.request_id, &first.applicant_token, ContactKind::Mobile).await.unwrap();
    for s in &applicants[1..] {
        w.registrar.send_code(&s.request_id, &s.applicant_token, ContactKind::Mobile).await.unwrap();
    }
    let e = w.registrar.send_code(&first.request_id, &first.applicant_token, ContactKind::Mobile).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.kind), ("contact.recipient_rate_limited", spid_types::ErrorKind::RateLimited));
    // Other recipients are not affected.
    w.registrar.send_code(&first.request_id, &first.applicant_token, ContactKind::Email).await.unwrap();
}

#[tokio::test]
async fn second_factor_contacts_are_the_verified_ones_with_type_and_status() {
    let w = world().await;
    let a = sample("mario.rossi@example.it");
    let (id, token) = register(&w, &a).await;
    let (_, spid_code) = identify_and_activate(&w, &id, &token).await;
    let c = w.credentials.second_factor_contacts(&spid_code).await.unwrap();
    assert_eq!(c.email.as_deref(), Some("mario.rossi@example.it"));
    assert_eq!(c.mobile.as_deref(), Some(a.mobile.as_str()));
    assert_eq!((c.identity_type.as_str(), c.status), ("private", Status::Active));
    assert_eq!(c.date_of_birth.as_deref(), Some(a.birth_date.to_string().as_str()));
    let err = w.credentials.second_factor_contacts("XIDPNOSUCHCODE").await.unwrap_err();
    assert_eq!(err.code, "identity.not_found");
}
