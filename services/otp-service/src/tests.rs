//! The second factor end to end in one process, with identity-manager and
//! notification replaced by in-memory fakes: who may use what, codes
//! reaching the sender and working once, the authenticator, the lifecycle
//! drop, and the audit trail (which never holds a code).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use prost::Message;
use spid_proto::events::v1::{Envelope, IdentityState, IdentityStateChanged, SecondFactor};
use spid_types::{Clock, ErrorKind, ManualClock, ServiceError};
use sqlx::Row;

use crate::challenge::{Codes, Method, Policy, Verdict};
use crate::service::{CodeMessage, CodeSender, Contacts, Directory, Otp};

#[derive(Default)]
struct People(Mutex<std::collections::HashMap<String, Contacts>>);

#[async_trait]
impl Directory for People {
    async fn contacts(&self, spid_code: &str) -> Result<Contacts, ServiceError> {
        self.0
            .lock()
            .unwrap()
            .get(spid_code)
            .cloned()
            .ok_or_else(|| ServiceError::not_found("identity.not_found", "no such identity"))
    }
}

#[derive(Default)]
struct Outbox(Mutex<Vec<CodeMessage>>, std::sync::atomic::AtomicBool);

#[async_trait]
impl CodeSender for Outbox {
    async fn send(&self, m: CodeMessage) -> Result<(), ServiceError> {
        if self.1.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ServiceError::unavailable("notification.unavailable", "down"));
        }
        self.0.lock().unwrap().push(m);
        Ok(())
    }
}

struct World {
    otp: Arc<Otp>,
    people: Arc<People>,
    sent: Arc<Outbox>,
    clock: Arc<ManualClock>,
    db: spid_db::Db,
    _dir: tempfile::TempDir,
}

const IP: &str = "203.0.113.9";

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (authenticators, clock, db) = crate::authenticator::tests::authenticators(dir.path()).await;
    let bus = spid_server::testkit::bus(dir.path()).await.unwrap();
    let relay = spid_events::OutboxRelay::new(db.clone(), bus, spid_telemetry::Metrics::new("t").unwrap(), "t");
    let people = Arc::new(People::default());
    let sent = Arc::new(Outbox::default());
    let cache = Arc::new(spid_cache::MemoryCache::new());
    let codes = Codes::new(cache, spid_secrets::SecretKey::random().unwrap(), clock.clone(), Policy::default());
    let devices = crate::devices::Devices::new(db.clone(), Arc::new(spid_cache::MemoryCache::new()), clock.clone());
    let otp = Arc::new(Otp {
        codes,
        authenticators,
        devices,
        directory: people.clone(),
        sender: sent.clone(),
        db: db.clone(),
        relay,
        clock: clock.clone(),
    });
    World { otp, people, sent, clock, db, _dir: dir }
}

impl World {
    fn person(&self, spid_code: &str, c: Contacts) {
        self.people.0.lock().unwrap().insert(spid_code.to_owned(), c);
    }

    fn last_code(&self) -> CodeMessage {
        self.sent.0.lock().unwrap().last().cloned().unwrap()
    }

    async fn audit(&self) -> Vec<(String, SecondFactor)> {
        let rows = sqlx::query("SELECT payload FROM outbox ORDER BY id").fetch_all(self.db.pool()).await.unwrap();
        rows.iter()
            .map(|r| {
                let e = Envelope::decode(r.get::<Vec<u8>, _>("payload").as_slice()).unwrap();
                let p = spid_events::envelope::payload_of::<SecondFactor>(&e).unwrap();
                (e.r#type, p)
            })
            .collect()
    }
}

fn private(mobile: bool) -> Contacts {
    Contacts {
        mobile: mobile.then(|| "+393331234567".into()),
        email: Some("mario.rossi@example.it".into()),
        legal_person: false,
        minor: false,
        active: true,
    }
}

#[tokio::test]
async fn an_sms_code_reaches_the_holder_and_opens_the_login_once() {
    let w = world().await;
    w.person("XIDPABCDEFGHIJ", private(true));
    assert_eq!(w.otp.methods("XIDPABCDEFGHIJ").await.unwrap(), [Method::Sms]);
    let s = w.otp.start("XIDPABCDEFGHIJ", "tx-1", Method::Sms, IP, "INPS").await.unwrap();
    assert_eq!(s.masked_destination, "+39 3*******67");
    let m = w.last_code();
    assert_eq!((m.method, m.recipient.as_str(), m.minutes), (Method::Sms, "+393331234567", 5));
    assert_eq!(m.idempotency_key, format!("otp:{}", s.challenge_id));
    assert_eq!(w.otp.verify(&s.challenge_id, "tx-1", &m.code, IP).await.unwrap(), Verdict::Ok);
    assert_eq!(w.otp.verify(&s.challenge_id, "tx-1", &m.code, IP).await.unwrap(), Verdict::Expired);
    let audit = w.audit().await;
    let outcomes: Vec<_> = audit.iter().map(|(t, p)| (t.as_str(), p.outcome.as_str())).collect();
    assert_eq!(outcomes, [("otp.issued", "issued"), ("otp.verified", "verified")]);
    assert!(audit.iter().all(|(_, p)| p.reference == s.challenge_id && p.client_ip == IP));
    let raw = sqlx::query("SELECT payload FROM outbox").fetch_all(w.db.pool()).await.unwrap();
    assert!(raw.iter().all(|r| !String::from_utf8_lossy(&r.get::<Vec<u8>, _>("payload")).contains(&m.code)));
}

#[tokio::test]
async fn email_codes_only_for_legal_persons_and_minors_without_a_mobile() {
    let w = world().await;
    w.person("XIDPPRIVATE0001", private(true));
    w.person("XIDPLEGAL000001", Contacts { legal_person: true, ..private(true) });
    w.person("XIDPMINOR000001", Contacts { minor: true, ..private(false) });
    w.person("XIDPMINOR000002", Contacts { minor: true, ..private(true) });
    w.person("XIDPSUSPENDED01", Contacts { active: false, ..private(true) });
    let err = w.otp.start("XIDPPRIVATE0001", "tx", Method::Email, IP, "INPS").await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::FailedPrecondition, "otp.method_not_allowed"));
    assert_eq!(w.otp.methods("XIDPLEGAL000001").await.unwrap(), [Method::Sms, Method::Email]);
    assert_eq!(w.otp.methods("XIDPMINOR000001").await.unwrap(), [Method::Email], "MIN-8");
    assert_eq!(w.otp.methods("XIDPMINOR000002").await.unwrap(), [Method::Sms], "a minor with a mobile gets SMS");
    let s = w.otp.start("XIDPMINOR000001", "tx", Method::Email, IP, "INPS").await.unwrap();
    assert_eq!(s.masked_destination, "m***@example.it");
    assert_eq!(w.last_code().recipient, "mario.rossi@example.it");
    let err = w.otp.start("XIDPSUSPENDED01", "tx", Method::Sms, IP, "INPS").await.unwrap_err();
    assert_eq!(err.code, "identity.not_active");
    assert_eq!(w.sent.0.lock().unwrap().len(), 1, "nothing sent for refused starts");
}

#[tokio::test]
async fn the_app_is_offered_once_enrolled_and_suspension_drops_it_and_the_challenge() {
    let w = world().await;
    w.person("XIDPABCDEFGHIJ", private(true));
    let e = w.otp.enrol("XIDPABCDEFGHIJ", "mario.rossi@example.it").await.unwrap();
    let seed = crate::authenticator::tests::seed_of(&e.provisioning_uri);
    let code = |w: &World| crate::totp::DEFAULT.code_at(&seed, w.clock.now().timestamp() as u64).unwrap();
    assert!(w.otp.confirm("XIDPABCDEFGHIJ", &e.token_id, &code(&w)).await.unwrap());
    assert_eq!(w.otp.methods("XIDPABCDEFGHIJ").await.unwrap(), [Method::Sms, Method::Totp]);
    w.clock.advance(chrono::Duration::seconds(30));
    let s = w.otp.start("XIDPABCDEFGHIJ", "tx-1", Method::Totp, IP, "INPS").await.unwrap();
    assert!(s.masked_destination.is_empty());
    assert_eq!(w.otp.verify(&s.challenge_id, "tx-1", &code(&w), IP).await.unwrap(), Verdict::Ok);

    let pending = w.otp.start("XIDPABCDEFGHIJ", "tx-2", Method::Sms, IP, "INPS").await.unwrap();
    let sms = w.last_code();
    let changed = spid_events::EventBuilder::new("identity-manager", "identity.suspended", "XIDPABCDEFGHIJ", &*w.clock)
        .payload(&IdentityStateChanged {
            spid_code: "XIDPABCDEFGHIJ".into(),
            previous: IdentityState::Active as i32,
            current: IdentityState::Suspended as i32,
            ..Default::default()
        })
        .build();
    let delivery = spid_events::Delivery {
        topic: spid_types::topics::LIFECYCLE.into(),
        partition: 0,
        offset: 0,
        key: "XIDPABCDEFGHIJ".into(),
        payload: changed.encode_to_vec(),
        headers: vec![],
    };
    let consumer = crate::lifecycle::Lifecycle { otp: w.otp.clone() };
    spid_events::MessageHandler::handle(&consumer, &delivery).await.unwrap();
    assert_eq!(w.otp.verify(&pending.challenge_id, "tx-2", &sms.code, IP).await.unwrap(), Verdict::Expired);
    assert_eq!(w.otp.methods("XIDPABCDEFGHIJ").await.unwrap(), [Method::Sms], "the app must be enrolled again");
    let types: Vec<String> = w.audit().await.into_iter().map(|(t, _)| t).collect();
    assert!(types.contains(&"otp.enrolled".to_owned()) && types.contains(&"otp.confirmed".to_owned()));
    assert_eq!(types.last().unwrap(), "otp.dropped");
}

#[tokio::test]
async fn a_code_that_could_not_be_sent_is_not_left_valid() {
    let w = world().await;
    w.person("XIDPABCDEFGHIJ", private(true));
    let first = w.otp.start("XIDPABCDEFGHIJ", "tx-1", Method::Sms, IP, "INPS").await.unwrap();
    let code = w.last_code().code;
    w.sent.1.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = w.otp.start("XIDPABCDEFGHIJ", "tx-1", Method::Sms, IP, "INPS").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(w.otp.verify(&first.challenge_id, "tx-1", &code, IP).await.unwrap(), Verdict::Expired, "replaced");
    let types: Vec<String> = w.audit().await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(types.iter().filter(|t| *t == "otp.issued").count(), 1, "the unsent one is not traced as issued");
}

#[tokio::test]
async fn the_bound_app_approves_push_and_refuses_qr_with_signatures() {
    use crate::devices::approval_message;
    use crate::devices::tests::{device_key, sign};
    let w = world().await;
    w.person("XIDPABCDEFGHIJ", private(true));
    let activation = w.otp.activation_code("XIDPABCDEFGHIJ").await.unwrap();
    let (key, pem) = device_key();
    let device = w.otp.bind(&activation, &pem, "Pixel di Mario", "a7k2m9").await.unwrap();
    assert_eq!(w.otp.methods("XIDPABCDEFGHIJ").await.unwrap(), [Method::Sms, Method::Push, Method::Qr]);

    let push = w.otp.start("XIDPABCDEFGHIJ", "tx-1", Method::Push, IP, "INPS").await.unwrap();
    assert_eq!(push.masked_destination, "Pixel di Mario");
    let now = w.clock.now().timestamp();
    let pending =
        w.otp.pending(&device.id, now, &sign(&key, &crate::service::pending_message(&device.id, now))).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].challenge_id.as_str(), pending[0].context.as_str()), (push.challenge_id.as_str(), "INPS"));
    let old = sign(&key, &crate::service::pending_message(&device.id, now - 600));
    assert_eq!(w.otp.pending(&device.id, now - 600, &old).await.unwrap_err().code, "request.stale");
    assert_eq!(w.otp.verify(&push.challenge_id, "tx-1", "", IP).await.unwrap(), Verdict::Pending);
    let (intruder, _) = device_key();
    let approve = approval_message(&push.challenge_id, &pending[0].nonce, true);
    let err = w.otp.decide(&device.id, &push.challenge_id, true, &sign(&intruder, &approve)).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Unauthenticated, "device.unknown"));
    // A signature of "refuse" does not approve.
    let refuse = approval_message(&push.challenge_id, &pending[0].nonce, false);
    assert!(w.otp.decide(&device.id, &push.challenge_id, true, &sign(&key, &refuse)).await.is_err());
    w.otp.decide(&device.id, &push.challenge_id, true, &sign(&key, &approve)).await.unwrap();
    assert_eq!(w.otp.verify(&push.challenge_id, "tx-1", "", IP).await.unwrap(), Verdict::Ok);
    assert_eq!(w.otp.verify(&push.challenge_id, "tx-1", "", IP).await.unwrap(), Verdict::Expired, "once");

    let qr = w.otp.start("XIDPABCDEFGHIJ", "tx-2", Method::Qr, IP, "INPS").await.unwrap();
    assert!(qr.expires_at <= w.clock.now() + chrono::Duration::seconds(120), "OTP-4: 120 s");
    let parts: Vec<&str> = qr.qr_payload.split(':').collect();
    assert_eq!((parts[0], parts[1], parts[2]), ("spid-idp-qr", "v1", qr.challenge_id.as_str()));
    let refuse = approval_message(&qr.challenge_id, parts[3], false);
    w.otp.decide(&device.id, &qr.challenge_id, false, &sign(&key, &refuse)).await.unwrap();
    assert_eq!(w.otp.verify(&qr.challenge_id, "tx-2", "", IP).await.unwrap(), Verdict::Refused);
    let late = w.otp.start("XIDPABCDEFGHIJ", "tx-3", Method::Qr, IP, "INPS").await.unwrap();
    w.clock.advance(chrono::Duration::seconds(121));
    assert_eq!(
        w.otp.verify(&late.challenge_id, "tx-3", "", IP).await.unwrap(),
        Verdict::Expired,
        "replaced by a new QR"
    );

    w.otp.drop_identity("XIDPABCDEFGHIJ").await.unwrap();
    assert_eq!(w.otp.methods("XIDPABCDEFGHIJ").await.unwrap(), [Method::Sms], "bound again after a restore");
    let types: Vec<String> = w.audit().await.into_iter().map(|(t, _)| t).collect();
    for t in ["otp.bound", "otp.approved", "otp.refused", "otp.dropped"] {
        assert!(types.contains(&t.to_owned()), "{t} in {types:?}");
    }
}

#[tokio::test]
async fn an_activation_code_binds_nothing_once_the_identity_is_suspended() {
    use crate::devices::tests::device_key;
    let w = world().await;
    w.person("XIDPABCDEFGHIJ", private(true));
    let (_, pem) = device_key();
    let code = w.otp.activation_code("XIDPABCDEFGHIJ").await.unwrap();
    w.person("XIDPABCDEFGHIJ", Contacts { active: false, ..private(true) });
    let err = w.otp.bind(&code, &pem, "Pixel", "a7k2m9").await.unwrap_err();
    assert_eq!(err.code, "identity.not_active");
    // The suspension's event cancels the code: restored, it still binds nothing.
    w.otp.drop_identity("XIDPABCDEFGHIJ").await.unwrap();
    w.person("XIDPABCDEFGHIJ", private(true));
    assert_eq!(w.otp.bind(&code, &pem, "Pixel", "a7k2m9").await.unwrap_err().code, "activation_code.invalid");
    let fresh = w.otp.activation_code("XIDPABCDEFGHIJ").await.unwrap();
    let newer = w.otp.activation_code("XIDPABCDEFGHIJ").await.unwrap();
    assert_eq!(
        w.otp.bind(&fresh, &pem, "Pixel", "a7k2m9").await.unwrap_err().code,
        "activation_code.invalid",
        "replaced"
    );
    w.otp.bind(&newer, &pem, "Pixel", "a7k2m9").await.unwrap();
}
