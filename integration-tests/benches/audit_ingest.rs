//! audit-log throughput (issue: audit-log). Reported with references
//! measured in the same run on the same machine:
//!
//! - **append**: prepare (validate, encrypt, blind index) and append
//!   (dedupe, chain, multi-row insert) in batches, into Postgres, in
//!   process — against the **reference** of inserting the same number of
//!   rows of the same size into a plain table the same way.
//! - **ingest**: the `idp audit-log` process draining the audit topic of a
//!   Kafka-protocol broker (tansu) into Postgres — against the **reference**
//!   of a bare consumer reading the same topic and doing nothing.
//! - **verify**: records/s of `Verify` (decrypt, check, re-chain) — against
//!   the reference of reading the same rows.
//!
//! `SPID_BENCH_AUDIT_EVENTS` sets the number of events (default 50 000).
//! Run with `make bench`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::{Broker, Ports, ServiceProcess, postgres_database, redis_url};
use prost::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use spid_db::{ConnectOptions, Db, sqlx};
use spid_events::EventBuilder;
use spid_proto::audit::v1::audit_integrity_client::AuditIntegrityClient;
use spid_proto::audit::v1::audit_query_client::AuditQueryClient;
use spid_proto::audit::v1::{SearchRequest, VerifyRequest};
use spid_proto::events::v1::{Authentication, Envelope, SamlTransaction};
use spid_types::{ServiceName, SystemClock};

const BATCH: usize = 1000;

fn events() -> usize {
    std::env::var("SPID_BENCH_AUDIT_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000)
}

fn authentication(n: usize) -> Envelope {
    let holder = format!("SPID{n:010}");
    let a = Authentication {
        spid_code: holder.clone(),
        service_provider: format!("https://sp{}.example.it", n % 50),
        level: "https://www.spid.gov.it/SpidL2".into(),
        outcome: "success".into(),
        protocol: "saml".into(),
        client_ip: "192.0.2.7".into(),
    };
    EventBuilder::new("authn-gateway", "authn.authentication", &holder, &SystemClock).payload(&a).build()
}

/// A registry transaction of realistic size: a 1.5 KB request and a 7 KB
/// signed response, deflated and base64-encoded.
fn saml(n: usize) -> Envelope {
    let request = format!("<samlp:AuthnRequest ID=\"_req{n}\">{}</samlp:AuthnRequest>", "<x/>".repeat(370));
    let response = format!(
        "<samlp:Response ID=\"_resp{n}\">{}</samlp:Response>",
        "<ds:SignatureValue>QUJD</ds:SignatureValue>".repeat(160)
    );
    let t = SamlTransaction {
        client_ip: "192.0.2.7".into(),
        authn_request: spid_events::registry::deflate_base64(request.as_bytes()),
        authn_request_id: format!("_req{n}"),
        authn_request_issuer: "https://sp.example.it".into(),
        binding: "HTTP-POST".into(),
        response: spid_events::registry::deflate_base64(response.as_bytes()),
        response_id: format!("_resp{n}"),
        spid_code: format!("SPID{n:010}"),
        assertion_id: format!("_as{n}"),
        subject_name_id: format!("_n{n}"),
        ..SamlTransaction::default()
    };
    EventBuilder::new("authn-gateway", "saml.transaction", &format!("_req{n}"), &SystemClock).payload(&t).build()
}

async fn database(prefix: &str) -> Db {
    Db::connect(ConnectOptions {
        setting: "bench",
        url: &postgres_database(prefix).await,
        max_connections: 4,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap()
}

/// Plain multi-row inserts of `rows` rows shaped like audit records.
async fn reference_insert(rows: usize, blob: usize) -> f64 {
    let db = database("bench_ref").await;
    sqlx::query(
        "CREATE TABLE plain (seq BIGINT PRIMARY KEY, month INT, recorded_at BIGINT, occurred_at BIGINT, event_id TEXT,
         event_type TEXT, source TEXT, key_id INT, sealed BYTEA, chain BYTEA)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let sealed = vec![7u8; blob];
    let started = Instant::now();
    for start in (0..rows).step_by(BATCH) {
        let n = BATCH.min(rows - start);
        let values: Vec<String> = (0..n)
            .map(|r| format!("({})", (1..=10).map(|c| format!("${}", r * 10 + c)).collect::<Vec<_>>().join(", ")))
            .collect();
        let sql = format!("INSERT INTO plain VALUES {}", values.join(", "));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in start..start + n {
            q = q
                .bind(i as i64)
                .bind(1i32)
                .bind(0i64)
                .bind(0i64)
                .bind(format!("{i:036}"))
                .bind("authn.authentication")
                .bind("authn-gateway")
                .bind(1i32)
                .bind(sealed.clone())
                .bind(vec![0u8; 32]);
        }
        let mut tx = db.pool().begin().await.unwrap();
        q.execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

/// What Postgres alone does for the rows of `events` audit records (the
/// record, its event id, three index entries), generated server-side: no
/// client, no protocol, no crypto. The ceiling for any client.
async fn server_side(events: usize, blob: usize) -> f64 {
    let db = database("bench_server").await;
    for ddl in [
        "CREATE TABLE r (seq BIGINT, month INT, recorded_at BIGINT, occurred_at BIGINT, event_id TEXT, event_type TEXT,
         source TEXT, key_id INT, sealed BYTEA, chain BYTEA, PRIMARY KEY (seq, month))",
        "CREATE TABLE k (key_hash BYTEA, seq BIGINT, month INT)",
        "CREATE INDEX ON k (key_hash, seq)",
        "CREATE TABLE i (event_id TEXT PRIMARY KEY, seq BIGINT)",
    ] {
        sqlx::query(ddl).execute(db.pool()).await.unwrap();
    }
    let started = Instant::now();
    for start in (0..events).step_by(BATCH) {
        let (from, to) = (start as i64 + 1, (start + BATCH.min(events - start)) as i64);
        let mut tx = db.pool().begin().await.unwrap();
        sqlx::query(
            "INSERT INTO r SELECT g, 1, g, g, md5(g::text), 'authn.authentication', 'authn-gateway', 1,
             substr(decode(repeat(md5(g::text), 64), 'hex'), 1, $3::int), sha256(g::text::bytea)
             FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(from)
        .bind(to)
        .bind(blob as i32)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("INSERT INTO i SELECT md5(g::text), g FROM generate_series($1::bigint, $2::bigint) g")
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO k SELECT substr(sha256((g * 8 + n)::text::bytea), 1, 16), g, 1
             FROM generate_series($1::bigint, $2::bigint) g, generate_series(1, 3) n",
        )
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    events as f64 / started.elapsed().as_secs_f64()
}

async fn audit_log(dir: &std::path::Path) -> (audit_log::AuditLog, Db) {
    audit_log_at(dir, database("bench_audit").await).await
}

/// The same append over the server's Unix socket, when there is one: no
/// TCP and no TLS between the service and Postgres.
async fn over_unix_socket(dir: &std::path::Path) -> Option<(audit_log::AuditLog, Db)> {
    let socket = std::path::Path::new("/var/run/postgresql");
    if !socket.join(".s.PGSQL.5432").exists() {
        return None;
    }
    let url = format!("{}?host={}", postgres_database("bench_socket").await, socket.display());
    let db = Db::connect(ConnectOptions {
        setting: "bench",
        url: &url,
        max_connections: 4,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .ok()?;
    Some(audit_log_at(dir, db).await)
}

async fn audit_log_at(dir: &std::path::Path, db: Db) -> (audit_log::AuditLog, Db) {
    let config = spid_config::load(&spid_config::Sources {
        overrides: vec![("mode".into(), "development".into()), ("dev.data_dir".into(), dir.display().to_string())],
        ..Default::default()
    })
    .unwrap();
    audit_log::migrate(&db).await.unwrap();
    (audit_log::open(&config, db.clone(), Arc::new(SystemClock)).unwrap(), db)
}

/// In-process prepare + append; returns (events/s, mean sealed size).
async fn append(log: &audit_log::AuditLog, events: &[Envelope]) -> f64 {
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        let prepared: Vec<_> = chunk.iter().map(|e| log.prepare(e).unwrap()).collect();
        log.append(&prepared).await.unwrap();
    }
    events.len() as f64 / started.elapsed().as_secs_f64()
}

async fn produce(broker: &Broker, events: &[Envelope]) -> f64 {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .create()
        .unwrap();
    let started = Instant::now();
    let payloads: Vec<(String, Vec<u8>)> = events.iter().map(|e| (e.aggregate_id.clone(), e.encode_to_vec())).collect();
    for chunk in payloads.chunks(5000) {
        let sends = chunk.iter().map(|(key, payload)| {
            producer
                .send(FutureRecord::to(spid_types::topics::AUDIT).key(key).payload(payload), Duration::from_secs(30))
        });
        for r in futures::future::join_all(sends).await {
            r.unwrap();
        }
    }
    events.len() as f64 / started.elapsed().as_secs_f64()
}

/// A consumer that only reads the topic: what the broker and client allow.
async fn bare_consume(broker: &Broker, expected: usize) -> f64 {
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "bench-bare")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()
        .unwrap();
    consumer.subscribe(&[spid_types::topics::AUDIT]).unwrap();
    let first = consumer.recv().await.unwrap();
    drop(first);
    let started = Instant::now();
    for _ in 1..expected {
        tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await.unwrap().unwrap();
    }
    (expected - 1) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = events();
    let dir = tempfile::tempdir().unwrap();
    println!(
        "audit-log bench: {n} events, batches of {BATCH}, Postgres at {}",
        integration_tests::database_admin_url()
    );

    // In process: append into Postgres, against plain inserts of as many rows.
    let small: Vec<Envelope> = (0..n).map(authentication).collect();
    let (log, _db) = audit_log(&dir.path().join("inproc")).await;
    let sealed_size = log.prepare(&small[0]).unwrap().sealed.len();
    let reference = reference_insert(n, sealed_size).await;
    let ceiling = server_side(n, sealed_size).await;
    let started = Instant::now();
    let prepared: Vec<_> = small.iter().map(|e| log.prepare(e).unwrap()).collect();
    let prepare_rate = n as f64 / started.elapsed().as_secs_f64();
    drop(prepared);
    let appended = append(&log, &small).await;
    let saml_events: Vec<Envelope> = (0..n / 10).map(saml).collect();
    let saml_size = log.prepare(&saml_events[0]).unwrap().sealed.len();
    let saml_reference = reference_insert(saml_events.len(), saml_size).await;
    let saml_rate = append(&log, &saml_events).await;
    let started = Instant::now();
    let v = log.verify(None, None).await.unwrap();
    let verify_rate = v.records_checked as f64 / started.elapsed().as_secs_f64();
    assert!(v.broken.is_none(), "{:?}", v.broken);
    drop(log);
    let socket_rate = match over_unix_socket(&dir.path().join("socket")).await {
        Some((log, _db)) => Some(append(&log, &small).await),
        None => None,
    };

    // Through Kafka: the real service process drains the topic.
    let broker = Broker::tansu();
    let bus =
        spid_events::KafkaBus::connect(&broker.bootstrap, &Default::default(), Duration::from_secs(10)).await.unwrap();
    bus.ensure_topics(&[spid_types::topics::AUDIT]).await.unwrap();
    let produced = produce(&broker, &small).await;
    let bare = bare_consume(&broker, n).await;
    let ports = Ports::allocate();
    let logs = tempfile::tempdir().unwrap();
    let mut env = ports.env();
    env.extend([
        ("IDP__MODE".to_owned(), "development".to_owned()),
        ("IDP__DATABASE__URL".to_owned(), postgres_database("bench_service").await),
        ("IDP__BUS__BROKERS".to_owned(), broker.bootstrap.clone()),
        ("IDP__CACHE__URL".to_owned(), redis_url()),
        ("IDP__TELEMETRY__LOG_FORMAT".to_owned(), "text".to_owned()),
        ("IDP__TELEMETRY__LOG_LEVEL".to_owned(), "warn".to_owned()),
        ("IDP__DEV__DATA_DIR".to_owned(), logs.path().join("data").display().to_string()),
    ]);
    let mut service =
        ServiceProcess::spawn(ServiceName::AuditLog, env, ports.http_url(ServiceName::AuditLog), logs.path());
    service.wait_ready(Duration::from_secs(60)).await;
    let mut query = AuditQueryClient::connect(ports.grpc_url(ServiceName::AuditLog)).await.unwrap();
    let has = |seq: u64, q: &mut AuditQueryClient<tonic::transport::Channel>| {
        let mut q = q.clone();
        async move {
            let req = SearchRequest { after_sequence: seq - 1, limit: 1, ..Default::default() };
            !q.search(req).await.unwrap().into_inner().records.is_empty()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    while !has(1, &mut query).await {
        assert!(Instant::now() < deadline, "nothing ingested:\n{}", service.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    while !has(n as u64, &mut query).await {
        assert!(Instant::now() < deadline, "ingest incomplete:\n{}", service.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ingested = (n - 1) as f64 / started.elapsed().as_secs_f64();
    let mut integrity = AuditIntegrityClient::connect(ports.grpc_url(ServiceName::AuditLog)).await.unwrap();
    let started = Instant::now();
    let v = integrity.verify(VerifyRequest::default()).await.unwrap().into_inner();
    let grpc_verify = v.records_checked as f64 / started.elapsed().as_secs_f64();
    assert!(v.intact && v.records_checked == n as u64, "{v:?}");

    println!();
    println!("{:<58} {:>12} {:>10}", "measure", "per second", "ratio");
    let row = |what: &str, rate: f64, reference: Option<f64>| {
        let ratio = reference.map(|r| format!("{:.2}x", rate / r)).unwrap_or_default();
        println!("{what:<58} {rate:>12.0} {ratio:>10}");
    };
    row(&format!("reference: plain multi-row INSERT ({sealed_size} B rows)"), reference, None);
    row("reference: Postgres alone, the same rows generated server-side", ceiling, None);
    row("prepare only (validate, encrypt, blind index), one core", prepare_rate, None);
    row("append, authentication events (chain + encrypt + index)", appended, Some(reference));
    row("  ... against Postgres alone", appended, Some(ceiling));
    if let Some(rate) = socket_rate {
        row("append, the same, over the Unix socket (no TCP, no TLS)", rate, Some(ceiling));
    }
    row(&format!("reference: plain multi-row INSERT ({saml_size} B rows)"), saml_reference, None);
    row("append, SAML registry transactions (8.5 KB of XML)", saml_rate, Some(saml_reference));
    row("verify in process (records)", verify_rate, None);
    row("produce to the audit topic (tansu)", produced, None);
    row("reference: bare consumer of the audit topic", bare, None);
    row("ingest: idp audit-log, Kafka -> Postgres", ingested, Some(bare));
    row("verify over gRPC (records)", grpc_verify, None);
}
