//! The messages table.

use chrono::{DateTime, Utc};
use spid_db::Db;
use spid_proto::events::v1::Envelope;
use spid_types::ServiceError;
use sqlx::Row;

use crate::domain::{Accepted, Channel, Locale};

#[derive(Clone)]
pub struct Store {
    db: Db,
}

pub struct NewMessage<'a> {
    pub id: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub channel: Channel,
    pub recipient: &'a str,
    pub template: &'a str,
    pub locale: Locale,
    pub subject: &'a str,
    pub body: &'a str,
    pub subject_id: &'a str,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxEntry {
    pub id: String,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

fn db_err(e: sqlx::Error) -> ServiceError {
    ServiceError::internal(e)
}

fn from_micros(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).unwrap_or_default()
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Accepted>, ServiceError> {
        let row = sqlx::query("SELECT id, created_at FROM messages WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(Accepted {
                message_id: r.try_get("id").map_err(db_err)?,
                accepted_at: from_micros(r.try_get("created_at").map_err(db_err)?),
            })
        })
        .transpose()
    }

    /// Stores a delivered message and its audit event in one transaction.
    /// A concurrent duplicate of the same idempotency key returns the
    /// message stored first.
    pub async fn insert_delivered(&self, m: NewMessage<'_>, event: &Envelope) -> Result<Accepted, ServiceError> {
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        let micros = m.at.timestamp_micros();
        let inserted = sqlx::query(
            "INSERT INTO messages (id, idempotency_key, channel, recipient, template, locale, subject, body,
                                   subject_id, status, created_at, delivered_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'delivered', $10, $10)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(m.id)
        .bind(m.idempotency_key)
        .bind(m.channel.as_str())
        .bind(m.recipient)
        .bind(m.template)
        .bind(m.locale.as_str())
        .bind(m.subject)
        .bind(m.body)
        .bind(m.subject_id)
        .bind(micros)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await.map_err(db_err)?;
            let key = m.idempotency_key.unwrap_or_default();
            return self
                .find_by_idempotency_key(key)
                .await?
                .ok_or_else(|| ServiceError::internal("idempotency conflict without a stored message"));
        }
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Accepted { message_id: m.id.to_owned(), accepted_at: m.at })
    }

    /// The newest `limit` messages, oldest first.
    pub async fn outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>, ServiceError> {
        let rows = sqlx::query(
            "SELECT id, channel, recipient, subject, body, created_at FROM messages
             ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        let mut entries = rows
            .into_iter()
            .map(|r| {
                Ok(OutboxEntry {
                    id: r.try_get("id").map_err(db_err)?,
                    channel: r.try_get("channel").map_err(db_err)?,
                    recipient: r.try_get("recipient").map_err(db_err)?,
                    subject: r.try_get("subject").map_err(db_err)?,
                    body: r.try_get("body").map_err(db_err)?,
                    created_at: from_micros(r.try_get("created_at").map_err(db_err)?),
                })
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        entries.reverse();
        Ok(entries)
    }
}
