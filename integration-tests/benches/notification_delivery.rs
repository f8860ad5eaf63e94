//! notification throughput (issue: notification): sustained messages/s
//! from the notification topic of a Kafka-protocol broker (tansu), through
//! the `idp notification` process (intake, rendering, Postgres, delivery
//! worker, audit trace), to an SMTP server on loopback (aiosmtpd).
//!
//! Reported against the **reference** measured in the same run: the same
//! number of messages sent straight to the same SMTP server by an SMTP
//! client (lettre, pooled, the same concurrency) and nothing else — what
//! the mail server itself takes.
//!
//! `SPID_BENCH_NOTIFICATIONS` sets the number of messages (default 5 000).
//! Run with `make bench`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use integration_tests::{Broker, Fixture, Ports, ServiceProcess, postgres_database, redis_url};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use prost::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use spid_events::EventBuilder;
use spid_proto::events::v1::NotificationRequested;
use spid_types::{ServiceName, SystemClock};

const CONCURRENCY: usize = 16;

fn messages() -> usize {
    std::env::var("SPID_BENCH_NOTIFICATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000)
}

/// Messages the sink has accepted so far.
fn accepted(sink: &Fixture) -> usize {
    let status = sink.log.with_extension("jsonl.status");
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["accepted"].as_u64())
        .unwrap_or(0) as usize
}

async fn until_accepted(sink: &Fixture, target: usize, within: Duration) {
    let started = Instant::now();
    while accepted(sink) < target {
        assert!(started.elapsed() < within, "only {} of {target} messages arrived", accepted(sink));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The reference: lettre straight to the sink, `CONCURRENCY` at a time.
async fn reference(sink: &Fixture, n: usize) -> f64 {
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1").port(sink.port).build();
    let before = accepted(sink);
    let started = Instant::now();
    let sends = (0..n).map(|i| {
        let mailer = mailer.clone();
        async move {
            let m = Message::builder()
                .from("noreply@idp.example.it".parse().unwrap())
                .to("mario.rossi@example.it".parse().unwrap())
                .subject("La tua identità SPID è attiva")
                .body(format!("La tua identità SPID è attiva da ora. Il tuo codice identificativo è XIDP{i:010}."))
                .unwrap();
            mailer.send(m).await.unwrap();
        }
    });
    futures::stream::iter(sends).buffer_unordered(CONCURRENCY).collect::<Vec<()>>().await;
    until_accepted(sink, before + n, Duration::from_secs(60)).await;
    n as f64 / started.elapsed().as_secs_f64()
}

fn requested(i: usize) -> Vec<u8> {
    let spid_code = format!("XIDP{i:010}");
    EventBuilder::new("identity-manager", "notification.requested", &spid_code, &SystemClock)
        .payload(&NotificationRequested {
            template: "identity-activated".into(),
            locale: "it".into(),
            channel: "email".into(),
            recipient: "mario.rossi@example.it".into(),
            data: [("spid_code".to_owned(), spid_code.clone())].into(),
            contacts: None,
        })
        .build()
        .encode_to_vec()
}

async fn produce(broker: &Broker, n: usize) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let payloads: Vec<(String, Vec<u8>)> = (0..n).map(|i| (format!("XIDP{i:010}"), requested(i))).collect();
    for chunk in payloads.chunks(2000) {
        let sends = chunk.iter().map(|(key, payload)| {
            producer.send(
                FutureRecord::to(spid_types::topics::NOTIFICATION).key(key).payload(payload),
                Duration::from_secs(30),
            )
        });
        for r in futures::future::join_all(sends).await {
            r.unwrap();
        }
    }
}

use futures::StreamExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = messages();
    let dir = tempfile::tempdir().unwrap();
    println!("notification bench: {n} messages, SMTP sink aiosmtpd on loopback, concurrency {CONCURRENCY}");
    let sink = Fixture::start("smtp_sink.py", dir.path(), &[]);
    let sms = Fixture::start("sms_gateway.py", dir.path(), &["--token", "bench"]);
    let raw = reference(&sink, n).await;

    // A backlog on the topic, then the service drains it to the sink.
    let broker = Broker::tansu();
    let bus =
        spid_events::KafkaBus::connect(&broker.bootstrap, &Default::default(), Duration::from_secs(10)).await.unwrap();
    bus.ensure_topics(&[spid_types::topics::NOTIFICATION]).await.unwrap();
    produce(&broker, n).await;
    let ports = Ports::allocate();
    let mut env = ports.env();
    env.extend(
        [
            ("IDP__MODE", "development".to_owned()),
            ("IDP__DATABASE__URL", postgres_database("bench_notification").await),
            ("IDP__BUS__BROKERS", broker.bootstrap.clone()),
            ("IDP__CACHE__URL", redis_url()),
            ("IDP__TELEMETRY__LOG_FORMAT", "text".to_owned()),
            ("IDP__TELEMETRY__LOG_LEVEL", "warn".to_owned()),
            ("IDP__DEV__DATA_DIR", dir.path().join("data").display().to_string()),
            ("IDP__DELIVERY__EMAIL__HOST", "127.0.0.1".to_owned()),
            ("IDP__DELIVERY__EMAIL__PORT", sink.port.to_string()),
            ("IDP__DELIVERY__EMAIL__TLS", "none".to_owned()),
            ("IDP__DELIVERY__EMAIL__FROM", "SPID XIDP <noreply@idp.example.it>".to_owned()),
            ("IDP__DELIVERY__SMS__URL", format!("http://127.0.0.1:{}/send", sms.port)),
            ("IDP__DELIVERY__CONCURRENCY", CONCURRENCY.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let before = accepted(&sink);
    let started = Instant::now();
    let mut service =
        ServiceProcess::spawn(ServiceName::Notification, env, ports.http_url(ServiceName::Notification), dir.path());
    service.wait_ready(Duration::from_secs(60)).await;
    let ready = started.elapsed();
    // Sustained: from the first tenth delivered to the last message, so the
    // start-up (migrations, consumer group join) is not counted.
    let tenth = n / 10;
    until_accepted(&sink, before + tenth, Duration::from_secs(600)).await;
    let from_tenth = Instant::now();
    until_accepted(&sink, before + n, Duration::from_secs(600)).await;
    let pipeline = (n - tenth) as f64 / from_tenth.elapsed().as_secs_f64();
    drop(service);

    println!();
    println!("| measure | messages/s | ratio |");
    println!("|---|---:|---:|");
    println!("| reference: lettre straight to the SMTP server | {raw:.0} | |");
    println!(
        "| **Kafka topic → idp notification → SMTP server** | **{pipeline:.0}** | {:.2}× reference |",
        pipeline / raw
    );
    println!("(service start to ready: {:.1} s, not counted)", ready.as_secs_f64());
}
