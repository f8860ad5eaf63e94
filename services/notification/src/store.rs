//! The messages, their attempts and the holders' preferences.

use chrono::{DateTime, Utc};
use spid_db::Db;
use spid_proto::events::v1::Envelope;
use spid_types::ServiceError;
use sqlx::Row;

use crate::delivery::Outgoing;
use crate::domain::{Accepted, Channel, Locale};

#[derive(Clone)]
pub struct Store {
    db: Db,
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for its (next) attempt.
    Pending,
    Delivered,
    /// Out of attempts or refused for good: the operators' list.
    Dead,
    /// Not sent by the holder's choice (UA-1 notices without the opt-in).
    Suppressed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Dead => "dead",
            Status::Suppressed => "suppressed",
        }
    }
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
    pub content_sha256: &'a str,
    pub subject_id: &'a str,
    pub status: Status,
    pub at: DateTime<Utc>,
    /// W3C trace context of the request (traceparent, tracestate).
    pub trace: (&'a str, &'a str),
}

/// A message a worker holds under its lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub message: Outgoing,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub content_sha256: String,
    pub subject_id: String,
    /// The message carries a one-time code ([`crate::templates::SECRET_KEYS`]).
    pub secret: bool,
    /// The trace context of the request that asked for it.
    pub traceparent: String,
    pub tracestate: String,
}

/// What putting a dead letter back came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    Done,
    NotDead,
    /// Codes are not sent again: they are stale (and removed).
    CarriesCode,
}

/// What an attempt came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered { receipt: String },
    Retry { detail: String, next: DateTime<Utc> },
    Dead { detail: String },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Retry { .. } => "failed",
            Outcome::Dead { .. } => "dead-lettered",
        }
    }

    /// The audit event type of the outcome.
    pub fn event_type(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "notification.delivered",
            Outcome::Retry { .. } => "notification.attempt_failed",
            Outcome::Dead { .. } => "notification.dead_lettered",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Outcome::Delivered { receipt } => receipt,
            Outcome::Retry { detail, .. } | Outcome::Dead { detail } => detail,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxEntry {
    pub id: String,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// A dead-lettered message, for the operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMessage {
    pub id: String,
    pub channel: String,
    pub recipient: String,
    pub template: String,
    pub subject_id: String,
    pub attempts: u32,
    pub last_error: String,
    pub created_at: DateTime<Utc>,
}

fn db_err(e: sqlx::Error) -> ServiceError {
    ServiceError::internal(e)
}

fn from_micros(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).unwrap_or_default()
}

/// Attempt and error texts are kept short: a remote server's answer is not
/// ours to store whole.
fn clip(s: &str) -> String {
    s.chars().take(500).collect()
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

    /// Stores an accepted message, due at once. A concurrent duplicate of
    /// the same idempotency key returns the message stored first.
    pub async fn insert(&self, m: NewMessage<'_>) -> Result<Accepted, ServiceError> {
        let micros = m.at.timestamp_micros();
        let inserted = sqlx::query(
            "INSERT INTO messages (id, idempotency_key, channel, recipient, template, locale, subject, body,
                                   content_sha256, subject_id, status, created_at, next_attempt_at,
                                   traceparent, tracestate)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14)
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
        .bind(m.content_sha256)
        .bind(m.subject_id)
        .bind(m.status.as_str())
        .bind(micros)
        .bind(m.trace.0)
        .bind(m.trace.1)
        .execute(self.db.pool())
        .await
        .map_err(db_err)?;
        if inserted.rows_affected() == 0 {
            let key = m.idempotency_key.unwrap_or_default();
            return self
                .find_by_idempotency_key(key)
                .await?
                .ok_or_else(|| ServiceError::internal("idempotency conflict without a stored message"));
        }
        Ok(Accepted { message_id: m.id.to_owned(), accepted_at: m.at })
    }

    /// Claims up to `limit` due messages for `owner` until `lease_until`;
    /// each claim is one attempt. Safe with several workers: a message is
    /// claimed by whoever's conditional update wins.
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        owner: &str,
        limit: usize,
    ) -> Result<Vec<Claimed>, ServiceError> {
        let now = now.timestamp_micros();
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE status = 'pending' AND next_attempt_at <= $1 AND lease_until <= $1
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(
                "UPDATE messages SET lease_until = $1, lease_owner = $2, attempts = attempts + 1
                 WHERE id = $3 AND status = 'pending' AND lease_until <= $4 AND next_attempt_at <= $4
                 RETURNING channel, recipient, subject, body, attempts, content_sha256, subject_id, template,
                           traceparent, tracestate",
            )
            .bind(lease_until.timestamp_micros())
            .bind(owner)
            .bind(&id)
            .bind(now)
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_err)?;
            let Some(r) = row else { continue };
            let channel: String = r.try_get("channel").map_err(db_err)?;
            let template: String = r.try_get("template").map_err(db_err)?;
            let attempts: i64 = r.try_get::<i64, _>("attempts").map_err(db_err)?;
            claimed.push(Claimed {
                message: Outgoing {
                    id,
                    channel: Channel::parse(&channel)
                        .ok_or_else(|| ServiceError::internal(format!("stored channel {channel:?}")))?,
                    recipient: r.try_get("recipient").map_err(db_err)?,
                    subject: r.try_get("subject").map_err(db_err)?,
                    body: r.try_get("body").map_err(db_err)?,
                },
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                content_sha256: r.try_get("content_sha256").map_err(db_err)?,
                subject_id: r.try_get("subject_id").map_err(db_err)?,
                secret: crate::templates::Templates::carries_secret(&template),
                traceparent: r.try_get("traceparent").map_err(db_err)?,
                tracestate: r.try_get("tracestate").map_err(db_err)?,
            });
        }
        Ok(claimed)
    }

    /// Records an attempt's outcome, the attempt itself and its audit event
    /// in one transaction. If the lease was lost meanwhile (the worker was
    /// too slow and another took over) the message is left to the new
    /// holder; the attempt and its event are recorded all the same. With
    /// `scrub`, a final outcome removes the body of a message carrying a
    /// one-time code: nothing keeps the code once it is sent or given up.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        claimed: &Claimed,
        owner: &str,
        transport: &str,
        outcome: &Outcome,
        at: DateTime<Utc>,
        event: &Envelope,
        scrub: bool,
    ) -> Result<(), ServiceError> {
        let at = at.timestamp_micros();
        let (status, delivered_at, next) = match outcome {
            Outcome::Delivered { .. } => (Status::Delivered, Some(at), 0),
            Outcome::Retry { next, .. } => (Status::Pending, None, next.timestamp_micros()),
            Outcome::Dead { .. } => (Status::Dead, None, 0),
        };
        let error = if matches!(outcome, Outcome::Delivered { .. }) { String::new() } else { clip(outcome.detail()) };
        let remove_body = scrub && claimed.secret && status != Status::Pending;
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        sqlx::query(
            "UPDATE messages SET status = $1, delivered_at = $2, next_attempt_at = $3, lease_until = 0,
                                 lease_owner = '', last_error = $4,
                                 body = CASE WHEN $7 = 1 THEN '' ELSE body END
             WHERE id = $5 AND lease_owner = $6",
        )
        .bind(status.as_str())
        .bind(delivered_at)
        .bind(next)
        .bind(&error)
        .bind(&claimed.message.id)
        .bind(owner)
        .bind(i64::from(remove_body))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO message_attempts (message_id, attempt, at, transport, outcome, detail)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id, attempt) DO NOTHING",
        )
        .bind(&claimed.message.id)
        .bind(i64::from(claimed.attempt))
        .bind(at)
        .bind(transport)
        .bind(outcome.label())
        .bind(clip(outcome.detail()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// The attempts of one message, oldest first: (attempt, transport,
    /// outcome, detail).
    pub async fn attempts(&self, message_id: &str) -> Result<Vec<(u32, String, String, String)>, ServiceError> {
        let rows = sqlx::query(
            "SELECT attempt, transport, outcome, detail FROM message_attempts WHERE message_id = $1 ORDER BY attempt",
        )
        .bind(message_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|r| {
                let attempt: i64 = r.try_get::<i64, _>("attempt").map_err(db_err)?;
                Ok((
                    u32::try_from(attempt).unwrap_or(u32::MAX),
                    r.try_get("transport").map_err(db_err)?,
                    r.try_get("outcome").map_err(db_err)?,
                    r.try_get("detail").map_err(db_err)?,
                ))
            })
            .collect()
    }

    pub async fn count_dead(&self) -> Result<i64, ServiceError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE status = 'dead'")
            .fetch_one(self.db.pool())
            .await
            .map_err(db_err)
    }

    /// Dead-lettered messages, newest first.
    pub async fn dead(&self, limit: u32) -> Result<Vec<FailedMessage>, ServiceError> {
        let rows = sqlx::query(
            "SELECT id, channel, recipient, template, subject_id, attempts, last_error, created_at FROM messages
             WHERE status = 'dead' ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|r| {
                let attempts: i64 = r.try_get::<i64, _>("attempts").map_err(db_err)?;
                Ok(FailedMessage {
                    id: r.try_get("id").map_err(db_err)?,
                    channel: r.try_get("channel").map_err(db_err)?,
                    recipient: r.try_get("recipient").map_err(db_err)?,
                    template: r.try_get("template").map_err(db_err)?,
                    subject_id: r.try_get("subject_id").map_err(db_err)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    last_error: r.try_get("last_error").map_err(db_err)?,
                    created_at: from_micros(r.try_get("created_at").map_err(db_err)?),
                })
            })
            .collect()
    }

    /// Puts a dead-lettered message back in the queue with fresh attempts,
    /// with the operator's audit event.
    pub async fn requeue(&self, id: &str, at: DateTime<Utc>, event: &Envelope) -> Result<Requeue, ServiceError> {
        let template: Option<String> =
            sqlx::query_scalar("SELECT template FROM messages WHERE id = $1 AND status = 'dead'")
                .bind(id)
                .fetch_optional(self.db.pool())
                .await
                .map_err(db_err)?;
        match template {
            None => return Ok(Requeue::NotDead),
            Some(t) if crate::templates::Templates::carries_secret(&t) => return Ok(Requeue::CarriesCode),
            Some(_) => {}
        }
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        let updated = sqlx::query(
            "UPDATE messages SET status = 'pending', attempts = 0, next_attempt_at = $1, last_error = ''
             WHERE id = $2 AND status = 'dead'",
        )
        .bind(at.timestamp_micros())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if updated.rows_affected() == 0 {
            tx.rollback().await.map_err(db_err)?;
            return Ok(Requeue::NotDead);
        }
        // Attempt numbers start again at 1: the earlier ones stay in the
        // audit trail, not in this table.
        sqlx::query("DELETE FROM message_attempts WHERE message_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Requeue::Done)
    }

    /// Whether the holder asked for an e-mail on every use of their
    /// credentials (UA-1); no choice recorded means no.
    pub async fn wants_use_notices(&self, subject_id: &str) -> Result<bool, ServiceError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT credential_use_email FROM preferences WHERE subject_id = $1")
            .bind(subject_id)
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_err)?;
        Ok(v.unwrap_or(0) != 0)
    }

    pub async fn set_use_notices(&self, subject_id: &str, on: bool, at: DateTime<Utc>) -> Result<(), ServiceError> {
        sqlx::query(
            "INSERT INTO preferences (subject_id, credential_use_email, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (subject_id) DO UPDATE SET credential_use_email = $2, updated_at = $3",
        )
        .bind(subject_id)
        .bind(i64::from(on))
        .bind(at.timestamp_micros())
        .execute(self.db.pool())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// The newest `limit` messages, oldest first.
    pub async fn outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>, ServiceError> {
        let rows = sqlx::query(
            "SELECT id, channel, recipient, subject, body, status, created_at FROM messages
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
                    status: r.try_get("status").map_err(db_err)?,
                    created_at: from_micros(r.try_get("created_at").map_err(db_err)?),
                })
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        entries.reverse();
        Ok(entries)
    }
}
