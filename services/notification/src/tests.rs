//! The service's behaviour end to end in one process: accepting, the
//! delivery worker with its retries, dead letters and leases, the
//! operators' retry, the holder's preferences, and the topic intake.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use prost::Message;
use spid_events::OutboxRelay;
use spid_proto::events::v1::{Envelope, NotificationDelivered};
use spid_types::{ErrorKind, ManualClock};
use sqlx::Row;
use tokio::sync::Notify;

use crate::delivery::{Failure, Outgoing, RetryPolicy, Transport, Transports, Worker};
use crate::domain::{Channel, Notifier, SendMessage};
use crate::store::Store;

/// A transport that answers from a script (then succeeds) and keeps what
/// it was given.
#[derive(Default)]
pub(crate) struct Scripted {
    answers: Mutex<VecDeque<Result<String, Failure>>>,
    pub seen: Mutex<Vec<Outgoing>>,
}

impl Scripted {
    pub fn new(answers: Vec<Result<String, Failure>>) -> Arc<Self> {
        Arc::new(Self { answers: Mutex::new(answers.into()), seen: Mutex::default() })
    }
    pub fn seen(&self) -> Vec<Outgoing> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl Transport for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    async fn deliver(&self, m: &Outgoing) -> Result<String, Failure> {
        self.seen.lock().unwrap().push(m.clone());
        self.answers.lock().unwrap().pop_front().unwrap_or_else(|| Ok("250 queued".into()))
    }
}

pub(crate) struct World {
    pub notifier: Arc<Notifier>,
    pub worker: Worker,
    pub relay: OutboxRelay,
    pub clock: Arc<ManualClock>,
    db: spid_db::Db,
    _dir: tempfile::TempDir,
}

pub(crate) const MAX_ATTEMPTS: u32 = 3;

pub(crate) async fn world(transports: Transports) -> World {
    let dir = tempfile::tempdir().unwrap();
    let bus = spid_server::testkit::bus(dir.path()).await.unwrap();
    let db = spid_server::testkit::database(dir.path(), "notification").await.unwrap();
    crate::migrate(&db).await.unwrap();
    let relay = OutboxRelay::new(db.clone(), bus, spid_telemetry::Metrics::new("t").unwrap(), "t");
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let wake = Arc::new(Notify::new());
    let store = Store::new(db.clone());
    let notifier = Arc::new(
        Notifier::new(store.clone(), clock.clone(), relay.clone(), transports.clone(), wake.clone(), true).unwrap(),
    );
    let worker = Worker {
        store,
        transports,
        policy: RetryPolicy {
            max_attempts: MAX_ATTEMPTS,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
            lease: Duration::from_secs(30),
        },
        clock: clock.clone(),
        relay: relay.clone(),
        wake,
        concurrency: 4,
        metrics: crate::metrics::DeliveryMetrics::detached().unwrap(),
        keep_codes: false,
    };
    World { notifier, worker, relay, clock, db, _dir: dir }
}

fn email_only(t: &Arc<Scripted>) -> Transports {
    Transports { email: Some(t.clone()), ..Transports::default() }
}

impl World {
    /// (type, outcome) of the audit events written so far.
    async fn audit(&self) -> Vec<(String, String)> {
        let rows = sqlx::query("SELECT payload FROM outbox WHERE topic = $1 ORDER BY id")
            .bind(spid_types::topics::AUDIT)
            .fetch_all(self.db.pool())
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                let e = Envelope::decode(r.get::<Vec<u8>, _>("payload").as_slice()).unwrap();
                let outcome = spid_events::envelope::payload_of::<NotificationDelivered>(&e)
                    .map(|d| d.outcome)
                    .unwrap_or_default();
                (e.r#type, outcome)
            })
            .collect()
    }

    async fn pass(&self) -> usize {
        self.worker.deliver_due("w1").await.unwrap()
    }

    fn later(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }
}

pub(crate) fn email(key: &str) -> SendMessage {
    SendMessage {
        channel: Some(Channel::Email),
        recipient: "mario.rossi@example.it".into(),
        template: "identity-activated".into(),
        locale: "en".into(),
        data: [("spid_code".to_owned(), "XIDPABCDEFGHIJ".to_owned())].into(),
        idempotency_key: key.into(),
        subject_id: "XIDPABCDEFGHIJ".into(),
        trace: None,
    }
}

fn otp(key: &str) -> SendMessage {
    SendMessage {
        channel: Some(Channel::Sms),
        recipient: "+393331234567".into(),
        template: "otp-code".into(),
        locale: String::new(),
        data: [("code".to_owned(), "123456".to_owned()), ("minutes".to_owned(), "5".to_owned())].into(),
        idempotency_key: key.into(),
        subject_id: "LPDA0000000001".into(),
        trace: None,
    }
}

#[tokio::test]
async fn accepted_once_per_idempotency_key_then_delivered_with_an_audit_trace() {
    let w = world(Transports::dev_outbox()).await;
    let first = w.notifier.send(otp("k1")).await.unwrap();
    let again = w.notifier.send(otp("k1")).await.unwrap();
    assert_eq!(first.message_id, again.message_id);
    w.notifier.send(otp("")).await.unwrap();
    let outbox = w.notifier.dev_outbox(10).await.unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].id, first.message_id, "oldest first");
    assert!(outbox[0].body.contains("123456") && outbox[0].subject == "Codice di verifica");
    assert_eq!(outbox[0].status, "pending", "accepted = stored, before any delivery");
    assert!(w.audit().await.is_empty());

    assert_eq!(w.pass().await, 2);
    assert!(w.notifier.dev_outbox(10).await.unwrap().iter().all(|e| e.status == "delivered"));
    let audit = w.audit().await;
    assert_eq!(audit.len(), 2, "one trace per delivery");
    assert!(
        audit.iter().all(|(t, o)| t == "notification.delivered" && o.starts_with("delivered (attempt 1, dev-outbox)"))
    );
    assert_eq!(w.pass().await, 0, "nothing delivered twice");
    assert_eq!(w.worker.metrics.attempts.with_label_values(&["sms", "delivered"]).get(), 2);
    assert_eq!(w.relay.relay_batch().await.unwrap(), 2);
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_reason_and_change_nothing() {
    let w = world(Transports::dev_outbox()).await;
    let cases: Vec<(SendMessage, &str)> = vec![
        (SendMessage { channel: None, ..otp("") }, "channel.missing"),
        (SendMessage { recipient: "mario@example.it".into(), ..otp("") }, "recipient.invalid"),
        (SendMessage { recipient: "a@example.it\r\nBcc: x@evil.example".into(), ..email("") }, "recipient.invalid"),
        (SendMessage { template: "welcome-bonus".into(), ..otp("") }, "template.unknown"),
        (SendMessage { locale: "fr".into(), ..otp("") }, "locale.unsupported"),
        (SendMessage { data: [("code".to_owned(), "1".to_owned())].into(), ..otp("") }, "data.missing"),
        (SendMessage { idempotency_key: "k".repeat(200), ..otp("") }, "key.too_long"),
    ];
    for (req, code) in cases {
        let err = w.notifier.send(req).await.unwrap_err();
        assert_eq!(err.code, code);
        assert_eq!(err.kind, ErrorKind::InvalidInput);
    }
    assert!(w.notifier.dev_outbox(10).await.unwrap().is_empty());
    assert_eq!(w.relay.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn a_channel_without_a_transport_is_refused_instead_of_pretending() {
    let t = Scripted::new(vec![]);
    let w = world(email_only(&t)).await;
    let err = w.notifier.send(otp("")).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::FailedPrecondition, "channel.not_configured"));
    w.notifier.send(email("")).await.unwrap();
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_until_delivered() {
    let t = Scripted::new(vec![
        Err(Failure::Transient("421 try later".into())),
        Err(Failure::Transient("connection refused".into())),
    ]);
    let w = world(email_only(&t)).await;
    let id = w.notifier.send(email("")).await.unwrap().message_id;
    assert_eq!(w.pass().await, 1);
    assert_eq!(w.pass().await, 0, "not due again before its backoff");
    w.later(4);
    assert_eq!(w.pass().await, 0, "first backoff is at least half the base (5 s)");
    w.later(7);
    assert_eq!(w.pass().await, 1, "due within the base (10 s)");
    w.later(21);
    assert_eq!(w.pass().await, 1, "second backoff within twice the base");
    let seen = t.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|m| m.id == id && m.recipient == "mario.rossi@example.it"));
    assert!(seen[0].body.contains("XIDPABCDEFGHIJ"));
    let attempts = w.worker.store.attempts(&id).await.unwrap();
    let outcomes: Vec<_> = attempts.iter().map(|(n, tr, o, _)| (*n, tr.as_str(), o.as_str())).collect();
    assert_eq!(outcomes, [(1, "scripted", "failed"), (2, "scripted", "failed"), (3, "scripted", "delivered")]);
    let types: Vec<_> = w.audit().await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["notification.attempt_failed", "notification.attempt_failed", "notification.delivered"]);
    assert!(w.notifier.failed(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn out_of_attempts_or_refused_for_good_is_dead_lettered_and_an_operator_can_retry() {
    let t = Scripted::new(vec![
        Err(Failure::Permanent("550 no such mailbox".into())),
        Err(Failure::Transient("timeout".into())),
        Err(Failure::Transient("timeout".into())),
        Err(Failure::Transient("timeout".into())),
    ]);
    let w = world(email_only(&t)).await;
    let refused = w.notifier.send(email("a")).await.unwrap().message_id;
    w.pass().await;
    let failed = w.notifier.failed(10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].id.as_str(), failed[0].attempts), (refused.as_str(), 1));
    assert!(failed[0].last_error.contains("550"), "{}", failed[0].last_error);

    let tired = w.notifier.send(email("b")).await.unwrap().message_id;
    for _ in 0..MAX_ATTEMPTS {
        w.pass().await;
        w.later(120);
    }
    assert_eq!(w.pass().await, 0);
    let failed = w.notifier.failed(10).await.unwrap();
    assert_eq!(failed.len(), 2);
    let t2 = failed.iter().find(|f| f.id == tired).unwrap();
    assert_eq!(t2.attempts, MAX_ATTEMPTS);
    assert!(t2.last_error.contains("after 3 attempts"), "{}", t2.last_error);
    let dead = w.audit().await.into_iter().filter(|(t, _)| t == "notification.dead_lettered").count();
    assert_eq!(dead, 2);
    w.worker.refresh_gauges().await.unwrap();
    assert_eq!(w.worker.metrics.dead_letters.get(), 2);

    assert_eq!(w.notifier.retry(&tired, "").await.unwrap_err().code, "operator.missing");
    assert_eq!(w.notifier.retry("no-such-id", "op-1").await.unwrap_err().code, "message.not_dead");
    w.notifier.retry(&tired, "op-1").await.unwrap();
    assert_eq!(w.notifier.retry(&tired, "op-1").await.unwrap_err().code, "message.not_dead", "once");
    assert_eq!(w.pass().await, 1, "due at once");
    assert_eq!(w.notifier.failed(10).await.unwrap().len(), 1, "only the refused one is left");
    let audit = w.audit().await;
    assert!(audit.iter().any(|(t, _)| t == "notification.requeued"));
    assert_eq!(audit.last().unwrap().0, "notification.delivered");
}

#[tokio::test]
async fn a_worker_that_dies_mid_delivery_leaves_the_message_to_another_after_its_lease() {
    let t = Scripted::new(vec![]);
    let w = world(email_only(&t)).await;
    let id = w.notifier.send(email("")).await.unwrap().message_id;
    // A worker claims it and dies before recording anything.
    let now = spid_types::Clock::now(&*w.clock);
    let claimed = w.worker.store.claim_due(now, now + chrono::Duration::seconds(30), "dead-worker", 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(w.pass().await, 0, "held by its lease");
    w.later(31);
    assert_eq!(w.pass().await, 1, "taken over once the lease ran out");
    let attempts = w.worker.store.attempts(&id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].0, 2, "the crashed claim counted as attempt 1");
    assert_eq!(t.seen().len(), 1);
    assert_eq!(w.pass().await, 0);
}

#[tokio::test]
async fn use_notices_go_only_to_holders_who_asked() {
    let t = Scripted::new(vec![]);
    let w = world(email_only(&t)).await;
    let used = |key: &str| SendMessage {
        template: crate::domain::USE_NOTICE.into(),
        data: [
            ("sp".to_owned(), "INPS".to_owned()),
            ("level".to_owned(), "SpidL2".to_owned()),
            ("when".to_owned(), "2026-12-02 10:00".to_owned()),
        ]
        .into(),
        ..email(key)
    };
    assert!(!w.notifier.use_notices("XIDPABCDEFGHIJ").await.unwrap());
    w.notifier.send(used("1")).await.unwrap();
    w.pass().await;
    assert!(t.seen().is_empty(), "no opt-in, no notice");
    assert_eq!(w.notifier.dev_outbox(10).await.unwrap()[0].status, "suppressed");

    w.notifier.set_use_notices("XIDPABCDEFGHIJ", true).await.unwrap();
    assert!(w.notifier.use_notices("XIDPABCDEFGHIJ").await.unwrap());
    w.notifier.send(used("2")).await.unwrap();
    w.pass().await;
    let seen = t.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].body.contains("INPS") && seen[0].body.contains("SpidL2"), "{}", seen[0].body);
    assert_eq!(w.notifier.set_use_notices("", true).await.unwrap_err().code, "subject.invalid");
}

#[tokio::test]
async fn codes_are_not_traced_nor_kept_once_sent_nor_sent_again() {
    let t = Scripted::new(vec![Err(Failure::Permanent("400 invalid destination".into()))]);
    let w = world(Transports { sms: Some(t.clone()), ..Transports::default() }).await;
    let dead = w.notifier.send(otp("a")).await.unwrap().message_id;
    let sent = w.notifier.send(otp("b")).await.unwrap().message_id;
    w.pass().await;
    assert!(t.seen().iter().all(|m| m.body.contains("123456")), "the holder gets the code");
    let outbox = w.notifier.dev_outbox(10).await.unwrap();
    for id in [&dead, &sent] {
        let m = outbox.iter().find(|m| &m.id == id).unwrap();
        assert!(m.body.is_empty(), "the code is gone from storage once final: {:?}", m.body);
    }
    // The traced digest is not the digest of the message with its code.
    let plain =
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(format!("{}\n{}", t.seen()[0].subject, t.seen()[0].body)));
    let rows = sqlx::query("SELECT content_sha256 FROM messages").fetch_all(w.db.pool()).await.unwrap();
    assert!(rows.iter().all(|r| r.get::<String, _>("content_sha256") != plain));
    let err = w.notifier.retry(&dead, "op-1").await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::FailedPrecondition, "message.code_expired"));
}

#[tokio::test]
async fn a_message_whose_worker_keeps_dying_is_dead_lettered_unsent() {
    let t = Scripted::new(vec![]);
    let w = world(email_only(&t)).await;
    let id = w.notifier.send(email("")).await.unwrap().message_id;
    for _ in 0..MAX_ATTEMPTS {
        let now = spid_types::Clock::now(&*w.clock);
        let claimed = w.worker.store.claim_due(now, now + chrono::Duration::seconds(30), "crasher", 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        w.later(31);
    }
    assert_eq!(w.pass().await, 1);
    assert!(t.seen().is_empty(), "not sent a fourth time");
    let failed = w.notifier.failed(10).await.unwrap();
    assert_eq!(failed[0].id, id);
    assert!(failed[0].last_error.contains("claims without an outcome"), "{}", failed[0].last_error);
}
