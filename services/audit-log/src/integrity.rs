//! Sealing days, verifying the log and applying retention: the jobs that
//! keep the log trustworthy and lawful. Each is safe to run on several
//! replicas at once (seals are unique per day; purges run under the chain
//! lock and only touch what is due).

use chrono::{DateTime, Months, NaiveDate, Utc};
use spid_events::EventBuilder;
use spid_proto::events::v1::{RetentionApplied, actor};
use spid_types::ServiceError;

use crate::domain::AuditLog;
use crate::seal::{self, day_of, start_of};
use crate::store::SealRow;
use crate::verify::{self, Break, Walker};

const PAGE: u32 = 5000;
/// Error code of a sealing run that found the chain broken.
pub const CHAIN_BROKEN: &str = "audit.chain_broken";

/// The outcome of [`AuditLog::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub records_checked: u64,
    pub seals_checked: u64,
    pub broken: Option<Break>,
}

/// What [`AuditLog::apply_retention`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    pub records_removed: u64,
    pub evidence_references_removed: u64,
    pub days: Vec<String>,
}

fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

impl AuditLog {
    pub async fn seals(&self) -> Result<Vec<SealRow>, ServiceError> {
        self.store.seals().await
    }

    /// The first day still within the retention period.
    pub fn retention_cutoff(&self, now: DateTime<Utc>) -> NaiveDate {
        now.checked_sub_months(Months::new(self.policy.retention_months)).unwrap_or(now).date_naive()
    }

    /// Walks records from `walker`'s position up to (excluding) `before`.
    async fn walk(&self, walker: &mut Walker<'_>, before: i64) -> Result<Result<(), Break>, ServiceError> {
        loop {
            let rows = self.store.rows_after(walker.next_seq() - 1, before, PAGE).await?;
            for row in &rows {
                if let Err(b) = walker.feed(row) {
                    return Ok(Err(b));
                }
            }
            if rows.len() < PAGE as usize {
                return Ok(Ok(()));
            }
        }
    }

    /// Seals every complete day not sealed yet, after checking its records.
    pub async fn seal_days(&self) -> Result<Vec<SealRow>, ServiceError> {
        let now = self.clock.now();
        let today = now.date_naive();
        // From here on nothing can be recorded on an earlier day.
        self.store.close_days_before(start_of(today)).await?;
        let seals = self.store.seals().await?;
        let last = seals.last();
        let first_day = match last {
            Some(s) => s.day().ok_or_else(|| ServiceError::internal("malformed seal day"))?.succ_opt(),
            None => self.store.first_recorded_at().await?.map(day_of),
        };
        let Some(mut day) = first_day else { return Ok(Vec::new()) };
        let broken = |b: Break| {
            tracing::error!(sequence = b.sequence, problem = %b.problem, "audit chain broken: sealing stopped");
            ServiceError::new(
                spid_types::ErrorKind::Internal,
                CHAIN_BROKEN,
                format!("the audit chain is broken at record {}: {}", b.sequence, b.problem),
            )
        };
        let mut walker = Walker::new(&self.keys, &seals, last).map_err(broken)?;
        let mut previous = last.map_or(crate::chain::GENESIS.to_vec(), |s| s.digest.clone());
        let mut sealed = Vec::new();
        while day < today {
            let first = walker.next_seq();
            let Some(next) = day.succ_opt() else { break };
            self.walk(&mut walker, start_of(next)).await?.map_err(broken)?;
            let last_seq = walker.next_seq() - 1;
            let records = last_seq + 1 - first;
            let chain = walker.chain().to_vec();
            let day_name = day_text(day);
            let text = seal::seal_text(&day_name, first, last_seq, records, &chain, &previous);
            let digest = seal::digest(&text);
            let token = self.timestamper.stamp(&digest).await?;
            let row = SealRow {
                day: day_name,
                first_seq: first,
                last_seq,
                records,
                chain,
                previous: previous.clone(),
                digest: digest.to_vec(),
                signature: crate::crypto::sign(&self.keys, text.as_bytes())?,
                tsa: self.timestamper.authority(),
                token,
                sealed_at: now.timestamp_micros(),
                purged_at: None,
            };
            if !self.store.insert_seal(&row).await? {
                // Another replica sealed this day meanwhile: stop here, the
                // next run continues from its seal.
                break;
            }
            tracing::info!(day = %row.day, records, "audit day sealed");
            previous = row.digest.clone();
            sealed.push(row);
            day = next;
        }
        Ok(sealed)
    }

    /// Verifies the days from `from` to `until` (default: all, up to now).
    pub async fn verify(
        &self,
        from: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Verification, ServiceError> {
        crate::domain::check_range(from, until)?;
        let now = self.clock.now();
        let seals = self.store.seals().await?;
        let failed = |b: Break| Verification { records_checked: 0, seals_checked: 0, broken: Some(b) };
        if let Err(b) = verify::check_seals(&self.keys, &seals, self.retention_cutoff(now)) {
            return Ok(failed(b));
        }
        let from_day = from.map(|t| t.date_naive());
        let until_day = until.map_or(now.date_naive(), |t| t.date_naive());
        // Start after the last seal before the period, and never inside
        // what retention removed.
        let anchor =
            seals.iter().rfind(|s| s.purged_at.is_some() || from_day.is_some_and(|f| s.day().is_some_and(|d| d < f)));
        let mut walker = match Walker::new(&self.keys, &seals, anchor) {
            Ok(w) => w,
            Err(b) => return Ok(failed(b)),
        };
        let end = until_day.succ_opt().map_or(i64::MAX, start_of);
        let walked = self.walk(&mut walker, end).await?;
        let (records_checked, seals_checked) = (walker.records_checked, walker.seals_checked);
        let outcome = walked.and_then(|()| walker.finish(until_day));
        Ok(match outcome {
            Ok((records_checked, seals_checked)) => Verification { records_checked, seals_checked, broken: None },
            Err(b) => Verification { records_checked, seals_checked, broken: Some(b) },
        })
    }

    /// Removes the registry days older than the retention period (sealed
    /// days only; their seals stay) and the evidence references whose
    /// 20 years have passed; records what it did in the log itself.
    pub async fn apply_retention(&self) -> Result<Retention, ServiceError> {
        let now = self.clock.now();
        let cutoff = self.retention_cutoff(now);
        let seals = self.store.seals().await?;
        let due: Vec<&SealRow> = seals
            .iter()
            .filter(|s| s.purged_at.is_none())
            .take_while(|s| s.day().is_some_and(|d| d < cutoff))
            .collect();
        let mut outcome = Retention::default();
        if let Some(last) = due.last() {
            let last_day = last.day().ok_or_else(|| ServiceError::internal("malformed seal day"))?;
            let before = last_day.succ_opt().map_or(i64::MAX, start_of);
            outcome.days = due.iter().map(|s| s.day.clone()).collect();
            outcome.records_removed =
                self.store.purge(before, last.last_seq, &outcome.days, now.timestamp_micros()).await?;
        }
        outcome.evidence_references_removed = self.store.purge_evidence(now.timestamp_micros()).await?;
        if !outcome.days.is_empty() || outcome.evidence_references_removed > 0 {
            let applied = RetentionApplied {
                first_day: outcome.days.first().cloned().unwrap_or_default(),
                last_day: outcome.days.last().cloned().unwrap_or_default(),
                records_removed: outcome.records_removed,
                evidence_references_removed: outcome.evidence_references_removed,
            };
            let event =
                EventBuilder::new(crate::SERVICE.as_str(), "audit.retention_applied", "audit-log", &*self.clock)
                    .actor(actor::Kind::Scheduler, "audit-retention")
                    .payload(&applied)
                    .build();
            self.record(&event).await?;
            tracing::info!(
                records = outcome.records_removed,
                evidence = outcome.evidence_references_removed,
                days = outcome.days.len(),
                "audit retention applied"
            );
        }
        Ok(outcome)
    }
}
