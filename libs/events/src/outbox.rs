//! The transactional outbox and its relay.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use spid_db::sqlx::{self, AnyConnection, Row};
use spid_db::{Backend, Db};
use spid_proto::events::v1::Envelope;
use spid_telemetry::Metrics;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bus::{BusError, EventBus, OutgoingMessage};

const BATCH: i64 = 200;
const IDLE_POLL: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Published rows are kept this long, for inspection, then deleted.
const KEEP_PUBLISHED_MICROS: i64 = 24 * 3600 * 1_000_000;

/// Header carrying the event id, so consumers can skip duplicates without
/// decoding the payload.
pub const EVENT_ID_HEADER: &str = "event-id";
pub const EVENT_TYPE_HEADER: &str = "event-type";

/// Writes `event` to the outbox on `conn`, which must be the transaction of
/// the state change the event describes.
pub async fn enqueue(conn: &mut AnyConnection, topic: &str, event: &Envelope) -> Result<(), sqlx::Error> {
    let mut headers = vec![
        (EVENT_ID_HEADER.to_owned(), event.event_id.clone()),
        (EVENT_TYPE_HEADER.to_owned(), event.r#type.clone()),
    ];
    if let Some(trace) = &event.trace {
        if !trace.traceparent.is_empty() {
            headers.push((spid_telemetry::TRACEPARENT.to_owned(), trace.traceparent.clone()));
        }
        if !trace.tracestate.is_empty() {
            headers.push((spid_telemetry::TRACESTATE.to_owned(), trace.tracestate.clone()));
        }
    }
    let headers = serde_json::to_string(&headers).unwrap_or_else(|_| "[]".to_owned());
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, msg_key, payload, headers, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&event.event_id)
    .bind(topic)
    .bind(&event.aggregate_id)
    .bind(event.encode_to_vec())
    .bind(headers)
    .bind(chrono::Utc::now().timestamp_micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Publishes outbox rows in id order. With several replicas only one relays
/// at a time (a Postgres advisory lock), which keeps the order per key.
#[derive(Clone)]
pub struct OutboxRelay {
    db: Db,
    bus: Arc<dyn EventBus>,
    metrics: Metrics,
    store: String,
    wake: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl OutboxRelay {
    /// `store` names the outbox in metrics and logs (the service name).
    pub fn new(db: Db, bus: Arc<dyn EventBus>, metrics: Metrics, store: &str) -> Self {
        Self { db, bus, metrics, store: store.to_owned(), wake: Arc::new(Notify::new()) }
    }

    /// Tells the relay that new rows were committed (lower latency than
    /// waiting for the next poll).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until `shutdown`; publishing failures are retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut last_cleanup = std::time::Instant::now();
        loop {
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.relay_batch() => r,
            };
            let pause = match outcome {
                Ok(n) if n as i64 >= BATCH => Duration::ZERO,
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    IDLE_POLL
                }
                Err(e) => {
                    tracing::warn!(store = %self.store, error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox relay failed");
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    pause
                }
            };
            if last_cleanup.elapsed() > Duration::from_secs(600) {
                last_cleanup = std::time::Instant::now();
                if let Err(e) = self.delete_published().await {
                    tracing::warn!(store = %self.store, error = %e, "outbox cleanup failed");
                }
            }
            if !pause.is_zero() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// Publishes one batch; returns how many rows were published. Stops at
    /// the first failure so that nothing is published out of order.
    pub async fn relay_batch(&self) -> Result<usize, RelayError> {
        let mut tx = self.db.pool().begin().await?;
        if self.db.backend() == Backend::Postgres {
            let locked: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(7310010001)").fetch_one(&mut *tx).await?;
            if !locked {
                return Ok(0);
            }
        }
        let rows = sqlx::query(
            "SELECT id, topic, msg_key, payload, headers FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        self.metrics.outbox_pending.with_label_values(&[self.store.as_str()]).set(rows.len() as i64);
        let mut published: Vec<i64> = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let topic: String = row.try_get("topic")?;
            let headers: String = row.try_get("headers")?;
            let message = OutgoingMessage {
                key: row.try_get("msg_key")?,
                payload: row.try_get("payload")?,
                headers: serde_json::from_str(&headers).unwrap_or_default(),
            };
            match self.bus.publish(&topic, message).await {
                Ok(()) => {
                    self.metrics.bus_published.with_label_values(&[topic.as_str()]).inc();
                    published.push(id);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !published.is_empty() {
            // Ids are integers read from the table: safe to inline.
            let ids = published.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE outbox SET published_at = $1 WHERE id IN ({ids})")))
                .bind(chrono::Utc::now().timestamp_micros())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(published.len()),
        }
    }

    /// Rows not yet published (readiness and tests).
    pub async fn pending(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetch_one(self.db.pool()).await
    }

    async fn delete_published(&self) -> Result<(), sqlx::Error> {
        let before = chrono::Utc::now().timestamp_micros() - KEEP_PUBLISHED_MICROS;
        sqlx::query("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1")
            .bind(before)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}
