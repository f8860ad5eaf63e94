//! Storage of the chained log: Postgres (records and blind index in monthly
//! partitions) or SQLite (development), through the same SQL where they
//! agree.
//!
//! Every append locks the chain head row, so writers — several replicas,
//! the gRPC append and the topic intake — extend the one chain in turn.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Datelike, Utc};
use spid_db::{Backend, Db};
use spid_types::ServiceError;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::chain::{self, Hash};

fn db_err(e: sqlx::Error) -> ServiceError {
    ServiceError::internal(e)
}

/// An event ready to be appended: everything that does not depend on its
/// position is computed before the chain is locked.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub event_id: String,
    pub event_type: String,
    pub source: String,
    pub occurred_at: i64,
    pub content: Hash,
    pub key_id: u32,
    pub sealed: Vec<u8>,
    pub keys: Vec<Vec<u8>>,
    pub evidence: Option<PreparedEvidence>,
    /// Blind spidCode of a holder whose identity ended with this event.
    pub identity_ended: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct PreparedEvidence {
    pub evidence_id: String,
    pub spid_key: Vec<u8>,
    pub key_id: u32,
    pub sealed: Vec<u8>,
}

/// A record as stored.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub seq: u64,
    pub recorded_at: i64,
    pub occurred_at: i64,
    pub event_id: String,
    pub event_type: String,
    pub source: String,
    pub key_id: u32,
    pub sealed: Vec<u8>,
    pub chain: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SealRow {
    pub day: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub records: u64,
    pub chain: Vec<u8>,
    pub previous: Vec<u8>,
    pub digest: Vec<u8>,
    pub signature: Vec<u8>,
    pub tsa: String,
    pub token: Vec<u8>,
    pub sealed_at: i64,
    pub purged_at: Option<i64>,
}

impl SealRow {
    /// The sealed day (`None` only if the stored text is malformed).
    pub fn day(&self) -> Option<chrono::NaiveDate> {
        chrono::NaiveDate::parse_from_str(&self.day, "%Y-%m-%d").ok()
    }
}

/// Filters of a record search; the keys are blind index values, all of
/// which must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub keys: Vec<Vec<u8>>,
    pub event_type: String,
    pub occurred_from: i64,
    pub occurred_until: i64,
    pub after_seq: u64,
    pub limit: u32,
}

/// The chain head as locked by a writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub last_seq: u64,
    pub last_hash: Hash,
    pub last_recorded_at: i64,
    pub sealed_until: i64,
}

/// `($1, $2), ($3, $4)…`: numbered placeholders for `rows` rows of `cols`
/// values (the `Any` driver passes `$n` to both backends).
fn value_rows(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn month_of(micros: i64) -> i32 {
    let t = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default();
    t.year() * 12 + t.month0() as i32
}

const LOCK_HEAD: &str = "UPDATE audit_chain_head SET id = id WHERE id = 1
     RETURNING last_seq, last_hash, last_recorded_at, sealed_until";
const SAVE_HEAD: &str =
    "UPDATE audit_chain_head SET last_seq = $1, last_hash = $2, last_recorded_at = $3, sealed_until = $4 WHERE id = 1";
const INSERT_EVIDENCE: &str =
    "INSERT INTO audit_evidence (evidence_id, spid_key, seq, key_id, sealed, recorded_at, retain_until)
     VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (evidence_id) DO NOTHING";
const START_EVIDENCE_CLOCK: &str =
    "UPDATE audit_evidence SET retain_until = $1 WHERE spid_key = $2 AND retain_until IS NULL";

fn head_of(last_seq: i64, last_hash: Vec<u8>, last_recorded_at: i64, sealed_until: i64) -> Result<Head, ServiceError> {
    Ok(Head {
        last_seq: last_seq as u64,
        last_hash: chain::to_hash(&last_hash).ok_or_else(|| ServiceError::internal("chain head is not 32 bytes"))?,
        last_recorded_at,
        sealed_until,
    })
}

/// The monthly partitions of the records and of the blind index.
fn partition_ddl(month: i32) -> Vec<String> {
    ["audit_records", "audit_keys"]
        .iter()
        .map(|table| {
            // The month is an integer we computed: no input reaches this SQL.
            format!(
                "CREATE TABLE IF NOT EXISTS {table}_p{month} PARTITION OF {table} FOR VALUES FROM ({month}) TO ({})",
                month + 1
            )
        })
        .collect()
}

/// Where a batch goes in the chain: computed under the head lock, from the
/// head and the event ids already recorded.
struct Plan<'a> {
    outcome: Vec<(u64, bool)>,
    fresh: Vec<(u64, &'a Prepared, Hash)>,
    head: Head,
    recorded_at: i64,
    month: i32,
}

impl<'a> Plan<'a> {
    fn new(batch: &'a [Prepared], mut head: Head, mut known: HashMap<String, u64>, now: i64) -> Self {
        // Recording times never go back, nor into a sealed day.
        let recorded_at = now.max(head.last_recorded_at).max(head.sealed_until);
        let mut outcome = Vec::with_capacity(batch.len());
        let mut fresh = Vec::with_capacity(batch.len());
        for p in batch {
            if let Some(seq) = known.get(&p.event_id) {
                outcome.push((*seq, false));
                continue;
            }
            let seq = head.last_seq + 1;
            let chained = chain::link(&head.last_hash, &chain::record_digest(seq, recorded_at, &p.content));
            head.last_seq = seq;
            head.last_hash = chained;
            known.insert(p.event_id.clone(), seq);
            fresh.push((seq, p, chained));
            outcome.push((seq, true));
        }
        if !fresh.is_empty() {
            head.last_recorded_at = recorded_at;
        }
        Self { outcome, fresh, head, recorded_at, month: month_of(recorded_at) }
    }
}

const ROW_COLUMNS: &str = "seq, recorded_at, occurred_at, event_id, event_type, source, key_id, sealed, chain";
/// Rows per multi-row INSERT (10 values each: under both backends' limits).
const INSERT_CHUNK: usize = 2000;

pub struct Store {
    db: Db,
    /// Postgres partitions known to exist.
    partitions: Mutex<HashSet<i32>>,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db, partitions: Mutex::new(HashSet::new()) }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Locks the chain head for the rest of the transaction.
    pub async fn lock_head(conn: &mut AnyConnection) -> Result<Head, ServiceError> {
        let row = sqlx::query(LOCK_HEAD).fetch_one(&mut *conn).await.map_err(db_err)?;
        head_of(
            row.try_get("last_seq").map_err(db_err)?,
            row.try_get("last_hash").map_err(db_err)?,
            row.try_get("last_recorded_at").map_err(db_err)?,
            row.try_get("sealed_until").map_err(db_err)?,
        )
    }

    async fn save_head(conn: &mut AnyConnection, head: &Head) -> Result<(), ServiceError> {
        sqlx::query(SAVE_HEAD)
            .bind(head.last_seq as i64)
            .bind(head.last_hash.to_vec())
            .bind(head.last_recorded_at)
            .bind(head.sealed_until)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    fn partition_known(&self, month: i32) -> bool {
        self.partitions.lock().map(|p| p.contains(&month)).unwrap_or(false)
    }

    fn remember_partition(&self, month: i32) {
        if let Ok(mut p) = self.partitions.lock() {
            p.insert(month);
        }
    }

    /// Appends the events not recorded yet, in order, extending the chain.
    /// Returns each event's sequence and whether it is new.
    pub async fn append(
        &self,
        batch: &[Prepared],
        now: i64,
        evidence_retention_micros: i64,
    ) -> Result<Vec<(u64, bool)>, ServiceError> {
        match self.db.postgres() {
            Some(pg) => self.append_postgres(pg, batch, now, evidence_retention_micros).await,
            None => self.append_any(batch, now, evidence_retention_micros).await,
        }
    }

    /// Postgres: whole columns as arrays through `UNNEST`, every insert and
    /// the head update in one statement (one round trip per batch). First
    /// optimistically, as if no event were a redelivery; if one is (unique
    /// violation), back to the savepoint, look the known ids up, and write
    /// only the new ones.
    async fn append_postgres(
        &self,
        pg: &sqlx::PgPool,
        batch: &[Prepared],
        now: i64,
        evidence_retention_micros: i64,
    ) -> Result<Vec<(u64, bool)>, ServiceError> {
        let mut tx = pg.begin().await.map_err(db_err)?;
        let row = sqlx::query(LOCK_HEAD).fetch_one(&mut *tx).await.map_err(db_err)?;
        let head = head_of(
            row.try_get("last_seq").map_err(db_err)?,
            row.try_get("last_hash").map_err(db_err)?,
            row.try_get("last_recorded_at").map_err(db_err)?,
            row.try_get("sealed_until").map_err(db_err)?,
        )?;
        let mut ids = std::collections::HashSet::with_capacity(batch.len());
        if batch.iter().all(|p| ids.insert(p.event_id.as_str())) {
            sqlx::query("SAVEPOINT optimistic").execute(&mut *tx).await.map_err(db_err)?;
            let plan = Plan::new(batch, head.clone(), HashMap::new(), now);
            match self.write_postgres(&mut tx, &plan, evidence_retention_micros).await {
                Ok(()) => {
                    tx.commit().await.map_err(db_err)?;
                    self.remember_partition(plan.month);
                    return Ok(plan.outcome);
                }
                Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23505") => {
                    sqlx::query("ROLLBACK TO SAVEPOINT optimistic").execute(&mut *tx).await.map_err(db_err)?;
                }
                Err(e) => return Err(db_err(e)),
            }
        }
        let ids: Vec<&str> = batch.iter().map(|p| p.event_id.as_str()).collect();
        let known_rows = sqlx::query("SELECT event_id, seq FROM audit_event_ids WHERE event_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut known = HashMap::new();
        for r in known_rows {
            let seq: i64 = r.try_get("seq").map_err(db_err)?;
            known.insert(r.try_get::<String, _>("event_id").map_err(db_err)?, seq as u64);
        }
        let plan = Plan::new(batch, head, known, now);
        if plan.fresh.is_empty() {
            tx.rollback().await.map_err(db_err)?;
            return Ok(plan.outcome);
        }
        self.write_postgres(&mut tx, &plan, evidence_retention_micros).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.remember_partition(plan.month);
        Ok(plan.outcome)
    }

    async fn write_postgres(
        &self,
        conn: &mut sqlx::PgConnection,
        plan: &Plan<'_>,
        evidence_retention_micros: i64,
    ) -> Result<(), sqlx::Error> {
        if !self.partition_known(plan.month) {
            for ddl in partition_ddl(plan.month) {
                sqlx::query(AssertSqlSafe(ddl)).execute(&mut *conn).await?;
            }
        }
        let fresh = &plan.fresh;
        let keys: Vec<(i64, &[u8])> =
            fresh.iter().flat_map(|(seq, p, _)| p.keys.iter().map(|k| (*seq as i64, k.as_slice()))).collect();
        let h = &plan.head;
        sqlx::query(
            "WITH records AS (
                INSERT INTO audit_records (seq, month, recorded_at, occurred_at, event_id, event_type, source, key_id, sealed, chain)
                SELECT s, $2, $3, o, e, t, src, k, sl, ch
                FROM UNNEST($1::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::int[], $9::bytea[], $10::bytea[])
                    AS u(s, o, e, t, src, k, sl, ch)
             ), ids AS (
                INSERT INTO audit_event_ids (event_id, seq) SELECT e, s FROM UNNEST($5::text[], $1::bigint[]) AS u(e, s)
             ), blind AS (
                INSERT INTO audit_keys (key_hash, seq, month) SELECT kh, ks, $2 FROM UNNEST($11::bytea[], $12::bigint[]) AS u(kh, ks)
             )
             UPDATE audit_chain_head SET last_seq = $13, last_hash = $14, last_recorded_at = $3, sealed_until = $15 WHERE id = 1",
        )
        .bind(fresh.iter().map(|(seq, _, _)| *seq as i64).collect::<Vec<_>>())
        .bind(plan.month)
        .bind(plan.recorded_at)
        .bind(fresh.iter().map(|(_, p, _)| p.occurred_at).collect::<Vec<_>>())
        .bind(fresh.iter().map(|(_, p, _)| p.event_id.as_str()).collect::<Vec<_>>())
        .bind(fresh.iter().map(|(_, p, _)| p.event_type.as_str()).collect::<Vec<_>>())
        .bind(fresh.iter().map(|(_, p, _)| p.source.as_str()).collect::<Vec<_>>())
        .bind(fresh.iter().map(|(_, p, _)| p.key_id as i32).collect::<Vec<_>>())
        .bind(fresh.iter().map(|(_, p, _)| p.sealed.as_slice()).collect::<Vec<_>>())
        .bind(fresh.iter().map(|(_, _, chained)| chained.as_slice()).collect::<Vec<_>>())
        .bind(keys.iter().map(|(_, k)| *k).collect::<Vec<_>>())
        .bind(keys.iter().map(|(seq, _)| *seq).collect::<Vec<_>>())
        .bind(h.last_seq as i64)
        .bind(h.last_hash.as_slice())
        .bind(h.sealed_until)
        .execute(&mut *conn)
        .await?;
        for (seq, p, _) in fresh {
            if let Some(ev) = &p.evidence {
                sqlx::query(INSERT_EVIDENCE)
                    .bind(&ev.evidence_id)
                    .bind(ev.spid_key.as_slice())
                    .bind(*seq as i64)
                    .bind(ev.key_id as i32)
                    .bind(ev.sealed.as_slice())
                    .bind(plan.recorded_at)
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some(spid_key) = &p.identity_ended {
                sqlx::query(START_EVIDENCE_CLOCK)
                    .bind(p.occurred_at.saturating_add(evidence_retention_micros))
                    .bind(spid_key.as_slice())
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// SQLite (development): multi-row inserts through the `Any` pool.
    async fn append_any(
        &self,
        batch: &[Prepared],
        now: i64,
        evidence_retention_micros: i64,
    ) -> Result<Vec<(u64, bool)>, ServiceError> {
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        let head = Self::lock_head(&mut tx).await?;

        let mut known: HashMap<String, u64> = HashMap::new();
        for chunk in batch.chunks(INSERT_CHUNK) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT event_id, seq FROM audit_event_ids WHERE event_id IN ({list})");
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for p in chunk {
                q = q.bind(p.event_id.clone());
            }
            for row in q.fetch_all(&mut *tx).await.map_err(db_err)? {
                let seq: i64 = row.try_get("seq").map_err(db_err)?;
                known.insert(row.try_get("event_id").map_err(db_err)?, seq as u64);
            }
        }
        let plan = Plan::new(batch, head, known, now);
        if plan.fresh.is_empty() {
            tx.rollback().await.map_err(db_err)?;
            return Ok(plan.outcome);
        }
        let (month, recorded_at) = (plan.month, plan.recorded_at);
        for chunk in plan.fresh.chunks(INSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO audit_records (seq, month, recorded_at, occurred_at, event_id, event_type, source, key_id, sealed, chain) VALUES {}",
                value_rows(chunk.len(), 10)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (seq, p, chained) in chunk {
                q = q
                    .bind(*seq as i64)
                    .bind(month)
                    .bind(recorded_at)
                    .bind(p.occurred_at)
                    .bind(p.event_id.clone())
                    .bind(p.event_type.clone())
                    .bind(p.source.clone())
                    .bind(p.key_id as i32)
                    .bind(p.sealed.clone())
                    .bind(chained.to_vec());
            }
            q.execute(&mut *tx).await.map_err(db_err)?;

            let sql = format!("INSERT INTO audit_event_ids (event_id, seq) VALUES {}", value_rows(chunk.len(), 2));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (seq, p, _) in chunk {
                q = q.bind(p.event_id.clone()).bind(*seq as i64);
            }
            q.execute(&mut *tx).await.map_err(db_err)?;
        }
        let keys: Vec<(u64, &Vec<u8>)> =
            plan.fresh.iter().flat_map(|(seq, p, _)| p.keys.iter().map(|k| (*seq, k))).collect();
        for chunk in keys.chunks(INSERT_CHUNK * 3) {
            let sql = format!("INSERT INTO audit_keys (key_hash, seq, month) VALUES {}", value_rows(chunk.len(), 3));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (seq, key) in chunk {
                q = q.bind((*key).clone()).bind(*seq as i64).bind(month);
            }
            q.execute(&mut *tx).await.map_err(db_err)?;
        }
        for (seq, p, _) in &plan.fresh {
            if let Some(ev) = &p.evidence {
                sqlx::query(INSERT_EVIDENCE)
                    .bind(&ev.evidence_id)
                    .bind(ev.spid_key.clone())
                    .bind(*seq as i64)
                    .bind(ev.key_id as i32)
                    .bind(ev.sealed.clone())
                    .bind(recorded_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            if let Some(spid_key) = &p.identity_ended {
                sqlx::query(START_EVIDENCE_CLOCK)
                    .bind(p.occurred_at.saturating_add(evidence_retention_micros))
                    .bind(spid_key.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        Self::save_head(&mut tx, &plan.head).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(plan.outcome)
    }

    /// Records in sequence order after `after_seq`, recorded before
    /// `recorded_before`.
    pub async fn rows_after(
        &self,
        after_seq: u64,
        recorded_before: i64,
        limit: u32,
    ) -> Result<Vec<StoredRow>, ServiceError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM audit_records WHERE seq > $1 AND recorded_at < $2 ORDER BY seq, month LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(after_seq as i64)
            .bind(recorded_before)
            .bind(i64::from(limit))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_err)?;
        rows.iter().map(stored_row).collect()
    }

    pub async fn search(&self, f: &Filter) -> Result<Vec<StoredRow>, ServiceError> {
        let cols = ROW_COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ");
        let mut sql = format!("SELECT {cols} FROM audit_records r");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        for i in 0..f.keys.len() {
            sql.push_str(&format!(
                " JOIN audit_keys k{i} ON k{i}.seq = r.seq AND k{i}.month = r.month AND k{i}.key_hash = {}",
                next()
            ));
        }
        sql.push_str(&format!(
            " WHERE r.seq > {} AND r.occurred_at >= {} AND r.occurred_at <= {}",
            next(),
            next(),
            next()
        ));
        if !f.event_type.is_empty() {
            sql.push_str(&format!(" AND r.event_type = {}", next()));
        }
        sql.push_str(&format!(" ORDER BY r.seq LIMIT {}", next()));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for key in &f.keys {
            q = q.bind(key.clone());
        }
        q = q.bind(f.after_seq as i64).bind(f.occurred_from).bind(f.occurred_until);
        if !f.event_type.is_empty() {
            q = q.bind(f.event_type.clone());
        }
        let rows = q.bind(i64::from(f.limit)).fetch_all(self.db.pool()).await.map_err(db_err)?;
        rows.iter().map(stored_row).collect()
    }

    pub async fn seals(&self) -> Result<Vec<SealRow>, ServiceError> {
        let rows = sqlx::query(
            "SELECT day, first_seq, last_seq, records, chain, previous, digest, signature, tsa, token, sealed_at, purged_at
             FROM audit_seals ORDER BY day",
        )
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(SealRow {
                    day: r.try_get("day").map_err(db_err)?,
                    first_seq: r.try_get::<i64, _>("first_seq").map_err(db_err)? as u64,
                    last_seq: r.try_get::<i64, _>("last_seq").map_err(db_err)? as u64,
                    records: r.try_get::<i64, _>("records").map_err(db_err)? as u64,
                    chain: r.try_get("chain").map_err(db_err)?,
                    previous: r.try_get("previous").map_err(db_err)?,
                    digest: r.try_get("digest").map_err(db_err)?,
                    signature: r.try_get("signature").map_err(db_err)?,
                    tsa: r.try_get("tsa").map_err(db_err)?,
                    token: r.try_get("token").map_err(db_err)?,
                    sealed_at: r.try_get("sealed_at").map_err(db_err)?,
                    purged_at: r.try_get("purged_at").map_err(db_err)?,
                })
            })
            .collect()
    }

    /// Stores a seal unless the day is sealed already (another replica).
    pub async fn insert_seal(&self, s: &SealRow) -> Result<bool, ServiceError> {
        let done = sqlx::query(
            "INSERT INTO audit_seals (day, first_seq, last_seq, records, chain, previous, digest, signature, tsa, token, sealed_at, purged_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL) ON CONFLICT (day) DO NOTHING",
        )
        .bind(&s.day)
        .bind(s.first_seq as i64)
        .bind(s.last_seq as i64)
        .bind(s.records as i64)
        .bind(s.chain.clone())
        .bind(s.previous.clone())
        .bind(s.digest.clone())
        .bind(s.signature.clone())
        .bind(&s.tsa)
        .bind(s.token.clone())
        .bind(s.sealed_at)
        .execute(self.db.pool())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Closes every day before `until`: nothing is recorded before it from
    /// now on. Returns the chain head.
    pub async fn close_days_before(&self, until: i64) -> Result<Head, ServiceError> {
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        let mut head = Self::lock_head(&mut tx).await?;
        if head.sealed_until < until {
            head.sealed_until = until;
            Self::save_head(&mut tx, &head).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(head)
    }

    pub async fn first_recorded_at(&self) -> Result<Option<i64>, ServiceError> {
        sqlx::query_scalar("SELECT MIN(recorded_at) FROM audit_records").fetch_one(self.db.pool()).await.map_err(db_err)
    }

    /// Removes the records (and their index and idempotency entries) of the
    /// days up to `last_seq`, recorded before `before`, and marks the
    /// sealed days `days` purged, in one transaction. Returns the records
    /// removed.
    pub async fn purge(&self, before: i64, last_seq: u64, days: &[String], now: i64) -> Result<u64, ServiceError> {
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        Self::lock_head(&mut tx).await?;
        let last_month = month_of(before) - 1; // months entirely before `before`'s month
        let removed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_records WHERE seq <= $1 AND recorded_at < $2")
                .bind(last_seq as i64)
                .bind(before)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        if self.db.backend() == Backend::Postgres {
            // Whole months go with their partitions; the rest row by row.
            let parts: Vec<String> = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname IN ('audit_records', 'audit_keys')",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            for part in parts {
                let month = part.rsplit_once("_p").and_then(|(_, m)| m.parse::<i32>().ok());
                if month.is_some_and(|m| m <= last_month) {
                    // `part` is a partition name read from the catalogue and
                    // matched against our naming scheme above.
                    sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {part}")))
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    if let (Ok(mut known), Some(m)) = (self.partitions.lock(), month) {
                        known.remove(&m);
                    }
                }
            }
        }
        sqlx::query("DELETE FROM audit_records WHERE seq <= $1 AND recorded_at < $2")
            .bind(last_seq as i64)
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for sql in ["DELETE FROM audit_keys WHERE seq <= $1", "DELETE FROM audit_event_ids WHERE seq <= $1"] {
            sqlx::query(sql).bind(last_seq as i64).execute(&mut *tx).await.map_err(db_err)?;
        }
        for day in days {
            sqlx::query("UPDATE audit_seals SET purged_at = $1 WHERE day = $2")
                .bind(now)
                .bind(day)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(removed as u64)
    }

    /// Removes the evidence references whose 20 years have run out.
    pub async fn purge_evidence(&self, now: i64) -> Result<u64, ServiceError> {
        let done = sqlx::query("DELETE FROM audit_evidence WHERE retain_until IS NOT NULL AND retain_until < $1")
            .bind(now)
            .execute(self.db.pool())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

fn stored_row(r: &sqlx::any::AnyRow) -> Result<StoredRow, ServiceError> {
    Ok(StoredRow {
        seq: r.try_get::<i64, _>("seq").map_err(db_err)? as u64,
        recorded_at: r.try_get("recorded_at").map_err(db_err)?,
        occurred_at: r.try_get("occurred_at").map_err(db_err)?,
        event_id: r.try_get("event_id").map_err(db_err)?,
        event_type: r.try_get("event_type").map_err(db_err)?,
        source: r.try_get("source").map_err(db_err)?,
        key_id: r.try_get::<i32, _>("key_id").map_err(db_err)? as u32,
        sealed: r.try_get("sealed").map_err(db_err)?,
        chain: r.try_get("chain").map_err(db_err)?,
    })
}
