//! An event written through one service's outbox is consumed by another
//! across processes over the real Kafka protocol — also through a broker
//! outage, a crash of the consumer and duplicate deliveries.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::{Broker, Ports, ServiceProcess, poll_until, postgres_database, redis_url};
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use spid_proto::audit::v1::audit_integrity_client::AuditIntegrityClient;
use spid_proto::audit::v1::{SearchRequest, VerifyRequest, audit_query_client::AuditQueryClient};
use spid_proto::notification::v1::{Channel, SendRequest, notifications_client::NotificationsClient};
use spid_types::ServiceName;

struct Stack {
    broker: Broker,
    ports: Ports,
    notification: ServiceProcess,
    audit: ServiceProcess,
    _logs: tempfile::TempDir,
}

async fn stack(broker: Broker) -> Stack {
    let ports = Ports::allocate();
    let logs = tempfile::tempdir().unwrap();
    let prefix = integration_tests::cache_prefix();
    let mut procs = Vec::new();
    for name in [ServiceName::Notification, ServiceName::AuditLog] {
        let mut env = ports.env();
        env.extend([
            // Development features (the message outbox) on real infrastructure.
            ("IDP__MODE".to_owned(), "development".to_owned()),
            ("IDP__DATABASE__URL".to_owned(), postgres_database(name.key()).await),
            ("IDP__BUS__BROKERS".to_owned(), broker.bootstrap.clone()),
            ("IDP__BUS__TIMEOUT_SECS".to_owned(), "3".to_owned()),
            ("IDP__CACHE__URL".to_owned(), redis_url()),
            ("IDP__CACHE__KEY_PREFIX".to_owned(), prefix.clone()),
            ("IDP__TELEMETRY__LOG_FORMAT".to_owned(), "text".to_owned()),
            ("IDP__TELEMETRY__LOG_LEVEL".to_owned(), "info".to_owned()),
            // Development keys (audit) live with the test, and survive a restart.
            ("IDP__DEV__DATA_DIR".to_owned(), logs.path().join("data").display().to_string()),
        ]);
        procs.push(ServiceProcess::spawn(name, env, ports.http_url(name), logs.path()));
    }
    for p in &mut procs {
        p.wait_ready(Duration::from_secs(30)).await;
    }
    let audit = procs.pop().unwrap();
    let notification = procs.pop().unwrap();
    Stack { broker, ports, notification, audit, _logs: logs }
}

async fn send(client: &mut NotificationsClient<tonic::transport::Channel>, n: usize) -> String {
    let req = SendRequest {
        channel: Channel::Sms as i32,
        recipient: "+393331234567".into(),
        template: "otp-code".into(),
        locale: "it".into(),
        data: [("code".to_owned(), format!("{:06}", n)), ("minutes".to_owned(), "5".to_owned())].into(),
        idempotency_key: format!("test-{n}"),
        subject_id: "LPDA0000000001".into(),
    };
    client.send(req).await.expect("send accepted").into_inner().message_id
}

/// Every `notification.delivered` record in audit-log: message id → count.
async fn delivered(client: &mut AuditQueryClient<tonic::transport::Channel>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = client
            .search(SearchRequest {
                r#type: "notification.delivered".into(),
                after_sequence: after,
                limit: 500,
                ..Default::default()
            })
            .await
            .expect("search")
            .into_inner()
            .records;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        for r in page {
            *counts.entry(r.event.unwrap().aggregate_id).or_insert(0) += 1;
        }
    }
    counts
}

async fn wait_for_all(
    s: &Stack,
    client: &mut AuditQueryClient<tonic::transport::Channel>,
    ids: &[String],
) -> BTreeMap<String, usize> {
    let found = poll_until(Duration::from_secs(120), || {
        let mut client = client.clone();
        async move {
            let seen = delivered(&mut client).await;
            ids.iter().all(|id| seen.contains_key(id)).then_some(seen)
        }
    })
    .await;
    match found {
        Some(seen) => seen,
        None => {
            let seen = delivered(client).await;
            let missing = ids.iter().filter(|id| !seen.contains_key(*id)).count();
            panic!(
                "{missing} of {} deliveries never reached audit-log\n--- broker log ---\n{}\n--- notification log ---\n{}\n--- audit-log log ---\n{}",
                ids.len(),
                s.broker.logs(),
                s.notification.logs(),
                s.audit.logs()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_events_cross_processes_over_a_real_broker_exactly_once() {
    let s = stack(Broker::tansu()).await;
    let mut notifications = NotificationsClient::connect(s.ports.grpc_url(ServiceName::Notification)).await.unwrap();
    let mut audit = AuditQueryClient::connect(s.ports.grpc_url(ServiceName::AuditLog)).await.unwrap();

    // The caller's W3C trace context travels with the request into the
    // event, across the bus.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(SendRequest {
        channel: Channel::Email as i32,
        recipient: "mario.rossi@example.it".into(),
        template: "contact-verification".into(),
        data: [("code".to_owned(), "123456".to_owned())].into(),
        ..Default::default()
    });
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    let id = notifications.send(request).await.unwrap().into_inner().message_id;
    let seen = wait_for_all(&s, &mut audit, std::slice::from_ref(&id)).await;
    assert_eq!(seen.get(&id), Some(&1));

    let record = audit
        .search(SearchRequest { aggregate_id: id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records
        .remove(0);
    let event = record.event.unwrap();
    assert_eq!(event.source, "notification");
    let payload: spid_proto::events::v1::NotificationDelivered =
        spid_events::envelope::payload_of(&event).expect("a NotificationDelivered payload");
    assert_eq!(payload.message_id, id);
    assert_eq!(payload.recipient, "mario.rossi@example.it");
    let traceparent = event.trace.clone().unwrap().traceparent;
    assert!(traceparent.starts_with(&format!("00-{trace_id}-")), "trace context lost: {traceparent}");
    assert_eq!(payload.content_sha256.len(), 64, "a digest of the content, not the content (the code stays out)");

    let mut ids = vec![id];
    for n in 0..10 {
        ids.push(send(&mut notifications, n).await);
    }

    // The bus delivers an event again (a producer retry after a lost ack):
    // the consumer's state absorbs it.
    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &s.broker.bootstrap).create().unwrap();
    let payload = event.encode_to_vec();
    for _ in 0..3 {
        producer
            .send(
                FutureRecord::to(spid_types::topics::AUDIT).key(&event.aggregate_id).payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    // A marker with the same key, sent after the duplicates, proves they
    // have been consumed (same key: same partition, consumed in order).
    ids.push(send(&mut notifications, 99).await);
    let seen = wait_for_all(&s, &mut audit, &ids).await;
    assert_eq!(seen[&ids[0]], 1, "duplicates absorbed");
    assert_eq!(seen.len(), 12);
    assert!(seen.values().all(|c| *c == 1), "each event exactly once: {seen:?}");
    assert_chain_intact(&s, 12).await;
}

/// The audit chain holds exactly `records` records and verifies.
async fn assert_chain_intact(s: &Stack, records: u64) {
    let mut integrity = AuditIntegrityClient::connect(s.ports.grpc_url(ServiceName::AuditLog)).await.unwrap();
    let v = integrity.verify(VerifyRequest::default()).await.unwrap().into_inner();
    assert!(v.intact, "audit chain broken: {v:?}");
    assert_eq!(v.records_checked, records, "records in the chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_and_a_consumer_crash_lose_nothing() {
    // Fault injection on librdkafka's mock cluster, which can be taken down
    // and up, and hands a crashed member's partitions over promptly.
    let mut s = stack(Broker::mock()).await;
    let mut notifications = NotificationsClient::connect(s.ports.grpc_url(ServiceName::Notification)).await.unwrap();
    let mut audit = AuditQueryClient::connect(s.ports.grpc_url(ServiceName::AuditLog)).await.unwrap();
    let mut ids = Vec::new();

    for n in 0..10 {
        ids.push(send(&mut notifications, n).await);
    }
    // The broker goes away while events are being written: the state
    // changes still commit, their events wait in the outbox.
    s.broker.down();
    for n in 10..30 {
        ids.push(send(&mut notifications, n).await);
    }
    // Longer than the publish timeout (3 s): the relay's publishes fail and
    // are retried.
    tokio::time::sleep(Duration::from_secs(5)).await;
    s.broker.up();
    for n in 30..40 {
        ids.push(send(&mut notifications, n).await);
    }
    let seen = wait_for_all(&s, &mut audit, &ids).await;
    assert_eq!(seen.len(), 40);
    assert!(seen.values().all(|c| *c == 1), "each event exactly once: {seen:?}");
    assert!(s.notification.logs().contains("outbox relay failed"), "the outage was really felt by the relay");

    // The consumer crashes (SIGKILL) and comes back: it resumes from its
    // committed offsets; messages sent meanwhile are not lost.
    s.audit.kill();
    for n in 40..50 {
        ids.push(send(&mut notifications, n).await);
    }
    s.audit.restart();
    s.audit.wait_ready(Duration::from_secs(30)).await;
    let seen = wait_for_all(&s, &mut audit, &ids).await;
    assert_eq!(seen.len(), 50);
    assert!(seen.values().all(|c| *c == 1), "each event exactly once after the restart: {seen:?}");
    assert_chain_intact(&s, 50).await;
}
