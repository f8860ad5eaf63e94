use chrono::{DateTime, Utc};
use prost::Message;
use spid_db::Db;
use spid_proto::events::v1::Envelope;
use spid_types::ServiceError;
use sqlx::Row;

use crate::domain::{Query, Record, ValidEvent};

#[derive(Clone)]
pub struct Store {
    db: Db,
}

fn db_err(e: sqlx::Error) -> ServiceError {
    ServiceError::internal(e)
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn insert(&self, v: &ValidEvent<'_>, now: DateTime<Utc>) -> Result<(u64, bool), ServiceError> {
        let e = v.event;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO audit_records (event_id, aggregate_id, event_type, source, occurred_at, recorded_at, envelope)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
        )
        .bind(&e.event_id)
        .bind(&e.aggregate_id)
        .bind(&e.r#type)
        .bind(&e.source)
        .bind(v.occurred_at.timestamp_micros())
        .bind(now.timestamp_micros())
        .bind(e.encode_to_vec())
        .fetch_optional(self.db.pool())
        .await
        .map_err(db_err)?;
        match inserted {
            Some(seq) => Ok((seq as u64, true)),
            None => {
                let seq: i64 = sqlx::query_scalar("SELECT seq FROM audit_records WHERE event_id = $1")
                    .bind(&e.event_id)
                    .fetch_one(self.db.pool())
                    .await
                    .map_err(db_err)?;
                Ok((seq as u64, false))
            }
        }
    }

    pub async fn search(&self, q: &Query, limit: u32) -> Result<Vec<Record>, ServiceError> {
        let rows = sqlx::query(
            "SELECT seq, envelope, recorded_at FROM audit_records
             WHERE ($1 = '' OR aggregate_id = $1) AND ($2 = '' OR event_type = $2)
               AND occurred_at >= $3 AND occurred_at <= $4 AND seq > $5
             ORDER BY seq LIMIT $6",
        )
        .bind(&q.aggregate_id)
        .bind(&q.event_type)
        .bind(q.from.map_or(i64::MIN, |t| t.timestamp_micros()))
        .bind(q.until.map_or(i64::MAX, |t| t.timestamp_micros()))
        .bind(i64::try_from(q.after_sequence).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq").map_err(db_err)?;
                let bytes: Vec<u8> = r.try_get("envelope").map_err(db_err)?;
                let recorded: i64 = r.try_get("recorded_at").map_err(db_err)?;
                Ok(Record {
                    sequence: seq as u64,
                    event: Envelope::decode(bytes.as_slice()).map_err(ServiceError::internal)?,
                    recorded_at: DateTime::from_timestamp_micros(recorded).unwrap_or_default(),
                })
            })
            .collect()
    }
}
