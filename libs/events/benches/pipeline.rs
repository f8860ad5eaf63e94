//! Throughput of the event pipeline on the embedded backends: state change +
//! outbox row in one transaction, relay to the bus, consume + idempotent
//! inbox mark + commit. Reported next to a reference measured in the same
//! run: the same number of bare single-row transactions on the same kind of
//! database. Run with `make bench`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use spid_db::{ConnectOptions, Db, sqlx};
use spid_events::{EmbeddedBus, EventBuilder, EventBus, OutboxRelay};

const EVENTS: usize = 5_000;

async fn sqlite(dir: &std::path::Path, name: &str) -> Db {
    Db::connect(ConnectOptions {
        setting: "bench",
        url: &format!("sqlite://{}/{name}.db?mode=rwc", dir.display()),
        max_connections: 4,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap()
}

async fn reference(dir: &std::path::Path) -> f64 {
    let db = sqlite(dir, "reference").await;
    sqlx::query("CREATE TABLE state (id TEXT PRIMARY KEY, body BLOB NOT NULL)").execute(db.pool()).await.unwrap();
    let body = vec![7u8; 200];
    let started = Instant::now();
    for i in 0..EVENTS {
        let mut tx = db.pool().begin().await.unwrap();
        sqlx::query("INSERT INTO state (id, body) VALUES ($1, $2)")
            .bind(format!("id-{i}"))
            .bind(&body)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    EVENTS as f64 / started.elapsed().as_secs_f64()
}

async fn pipeline(dir: &std::path::Path) -> (f64, f64) {
    let db = sqlite(dir, "service").await;
    spid_events::migrate(&db).await.unwrap();
    sqlx::query("CREATE TABLE state (id TEXT PRIMARY KEY, body BLOB NOT NULL)").execute(db.pool()).await.unwrap();
    let consumer_db = sqlite(dir, "consumer").await;
    spid_events::migrate(&consumer_db).await.unwrap();
    let bus: Arc<dyn EventBus> = Arc::new(EmbeddedBus::open(&dir.join("bus.db")).await.unwrap());
    let metrics = spid_telemetry::Metrics::new("bench").unwrap();
    let relay = OutboxRelay::new(db.clone(), bus.clone(), metrics, "bench");
    let clock = spid_types::SystemClock;
    let body = vec![7u8; 200];

    let started = Instant::now();
    for i in 0..EVENTS {
        let id = format!("id-{i}");
        let event = EventBuilder::new("bench", "bench.changed", &id, &clock).build();
        let mut tx = db.pool().begin().await.unwrap();
        sqlx::query("INSERT INTO state (id, body) VALUES ($1, $2)")
            .bind(&id)
            .bind(&body)
            .execute(&mut *tx)
            .await
            .unwrap();
        spid_events::outbox::enqueue(&mut tx, "bench", &event).await.unwrap();
        tx.commit().await.unwrap();
    }
    let write_rate = EVENTS as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut sub = bus.subscribe("bench-consumer", &["bench"]).await.unwrap();
    let relaying = tokio::spawn(async move {
        while relay.pending().await.unwrap() > 0 {
            relay.relay_batch().await.unwrap();
        }
    });
    let mut consumed = 0;
    while consumed < EVENTS {
        let d = sub.next().await.unwrap();
        let event_id = d.header(spid_events::outbox::EVENT_ID_HEADER).unwrap().to_owned();
        let mut tx = consumer_db.pool().begin().await.unwrap();
        spid_events::inbox::first_delivery(&mut tx, "bench", &event_id, 0).await.unwrap();
        tx.commit().await.unwrap();
        sub.commit(&d).await.unwrap();
        consumed += 1;
    }
    relaying.await.unwrap();
    let deliver_rate = EVENTS as f64 / started.elapsed().as_secs_f64();
    (write_rate, deliver_rate)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let reference = rt.block_on(reference(dir.path()));
    let (write, deliver) = rt.block_on(pipeline(dir.path()));
    println!("event pipeline, embedded backends (SQLite), {EVENTS} events");
    println!("  reference: bare single-row transactions     {reference:>9.0} /s");
    println!("  state change + outbox row, one transaction  {write:>9.0} /s  ({:.2} × reference)", write / reference);
    println!(
        "  relay → bus → consume + inbox + commit      {deliver:>9.0} /s  ({:.2} × reference)",
        deliver / reference
    );
}
