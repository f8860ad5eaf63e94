//! The audit log: validating and recording events into the chain, finding
//! them again, holders' views and extracts.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message;
use spid_events::envelope::payload_of;
use spid_proto::events::v1::{Authentication, Envelope};
use spid_types::{Clock, ServiceError};

use crate::chain;
use crate::crypto;
use crate::index::{self, SearchKey};
use crate::keys::AuditKeys;
use crate::seal::Timestamper;
use crate::store::{Filter, Prepared, PreparedEvidence, Store, StoredRow};

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub sequence: u64,
    pub event: Envelope,
    pub recorded_at: DateTime<Utc>,
}

/// Search criteria; empty fields do not filter. Identifiers are matched
/// through the blind index.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub aggregate_id: String,
    pub event_type: String,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after_sequence: u64,
    pub limit: u32,
    pub spid_code: String,
    pub service_provider: String,
    pub request_id: String,
    pub response_id: String,
    pub assertion_id: String,
}

/// Retention rules (AUD-4, EMI-3).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub retention_months: u32,
    pub evidence_retention_years: u32,
}

/// A signed extract.
#[derive(Debug, Clone)]
pub struct Extract {
    pub document: Vec<u8>,
    pub signature: Vec<u8>,
    pub signer_certificate: String,
    pub records: u64,
}

pub struct AuditLog {
    pub(crate) store: Store,
    pub(crate) keys: Arc<AuditKeys>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timestamper: Arc<dyn Timestamper>,
    pub(crate) policy: Policy,
}

const MAX_ID: usize = 200;
const MAX_LIMIT: u32 = 1000;
/// Largest event accepted (the bus's default message size).
pub const MAX_EVENT: usize = 1 << 20;
/// Most records in one extract.
const MAX_EXTRACT: usize = 100_000;

/// A validated event: what any producer sends is checked before it is kept.
pub fn validate(event: &Envelope) -> Result<DateTime<Utc>, ServiceError> {
    uuid::Uuid::parse_str(&event.event_id)
        .map_err(|_| ServiceError::invalid("event.id_invalid", "event_id must be a UUID"))?;
    if event.aggregate_id.is_empty() || event.aggregate_id.len() > MAX_ID {
        return Err(ServiceError::invalid("event.aggregate_invalid", "aggregate_id must have 1 to 200 characters"));
    }
    let type_ok = !event.r#type.is_empty()
        && event.r#type.len() <= 100
        && event
            .r#type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if !type_ok {
        return Err(ServiceError::invalid("event.type_invalid", "type must be a dotted lower-case name"));
    }
    if event.source.is_empty() || event.source.len() > 64 {
        return Err(ServiceError::invalid("event.source_invalid", "source must have 1 to 64 characters"));
    }
    if event.encoded_len() > MAX_EVENT {
        return Err(ServiceError::invalid("event.too_large", "an event is at most 1 MiB"));
    }
    event
        .occurred_at
        .as_ref()
        .and_then(spid_proto::time::from_wire)
        .ok_or_else(|| ServiceError::invalid("event.time_invalid", "occurred_at is missing or out of range"))
}

fn check_len(name: &str, value: &str) -> Result<(), ServiceError> {
    if value.len() > MAX_ID {
        return Err(ServiceError::invalid("query.too_long", format!("{name} is at most {MAX_ID} characters")));
    }
    Ok(())
}

pub(crate) fn check_range(from: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Result<(), ServiceError> {
    if let (Some(from), Some(until)) = (from, until)
        && from > until
    {
        return Err(ServiceError::invalid("query.range_invalid", "from is after until"));
    }
    Ok(())
}

fn require_spid_code(spid_code: &str) -> Result<(), ServiceError> {
    if spid_code.is_empty() {
        return Err(ServiceError::invalid("query.spid_code_missing", "spid_code is required"));
    }
    check_len("spid_code", spid_code)
}

impl AuditLog {
    pub fn new(
        store: Store,
        keys: Arc<AuditKeys>,
        clock: Arc<dyn Clock>,
        timestamper: Arc<dyn Timestamper>,
        policy: Policy,
    ) -> Self {
        Self { store, keys, clock, timestamper, policy }
    }

    pub fn certificate_pem(&self) -> String {
        self.keys.certificate_pem()
    }

    /// Validates an event and computes everything that does not depend on
    /// its place in the chain.
    pub fn prepare(&self, event: &Envelope) -> Result<Prepared, ServiceError> {
        let occurred_at = validate(event)?;
        let indexed = index::index(event)?;
        let bytes = event.encode_to_vec();
        let (key_id, sealed) = crypto::encrypt(&self.keys, event.event_id.as_bytes(), &bytes)?;
        let evidence = match &indexed.evidence {
            Some(ev) => {
                let (key_id, sealed) = crypto::encrypt(&self.keys, ev.evidence_id.as_bytes(), &ev.encode_to_vec())?;
                Some(PreparedEvidence {
                    evidence_id: ev.evidence_id.clone(),
                    spid_key: crypto::blind(&self.keys, SearchKey::SpidCode.tag(), &ev.spid_code),
                    key_id,
                    sealed,
                })
            }
            None => None,
        };
        Ok(Prepared {
            event_id: event.event_id.clone(),
            event_type: event.r#type.clone(),
            source: event.source.clone(),
            occurred_at: occurred_at.timestamp_micros(),
            content: chain::content_hash(&bytes),
            key_id,
            sealed,
            keys: indexed.keys.iter().map(|(k, v)| crypto::blind(&self.keys, k.tag(), v)).collect(),
            evidence,
            identity_ended: indexed
                .identity_ended
                .map(|code| crypto::blind(&self.keys, SearchKey::SpidCode.tag(), &code)),
        })
    }

    fn evidence_retention_micros(&self) -> i64 {
        // 365.25 days a year: the rule counts years, never fewer days.
        i64::from(self.policy.evidence_retention_years) * 36_525 * 864_000_000
    }

    /// Appends prepared events; see [`Store::append`].
    pub async fn append(&self, batch: &[Prepared]) -> Result<Vec<(u64, bool)>, ServiceError> {
        self.store.append(batch, self.clock.now().timestamp_micros(), self.evidence_retention_micros()).await
    }

    /// Records an event once: returns its sequence and whether it is new.
    pub async fn record(&self, event: &Envelope) -> Result<(u64, bool), ServiceError> {
        let prepared = self.prepare(event)?;
        let outcome = self.append(std::slice::from_ref(&prepared)).await?;
        outcome.first().copied().ok_or_else(|| ServiceError::internal("append returned nothing"))
    }

    fn open(&self, row: &StoredRow) -> Result<Record, ServiceError> {
        let unreadable = || ServiceError::internal(format!("record {} cannot be read; run audit verify", row.seq));
        let plain =
            crypto::decrypt(&self.keys, row.key_id, row.event_id.as_bytes(), &row.sealed).ok_or_else(unreadable)?;
        Ok(Record {
            sequence: row.seq,
            event: Envelope::decode(plain.as_slice()).map_err(|_| unreadable())?,
            recorded_at: DateTime::from_timestamp_micros(row.recorded_at).unwrap_or_default(),
        })
    }

    fn blind(&self, key: SearchKey, value: &str) -> Vec<u8> {
        crypto::blind(&self.keys, key.tag(), value)
    }

    async fn find(&self, filter: &Filter) -> Result<Vec<Record>, ServiceError> {
        let rows = self.store.search(filter).await?;
        rows.iter().map(|r| self.open(r)).collect()
    }

    pub async fn search(&self, q: &Query) -> Result<Vec<Record>, ServiceError> {
        let ids = [
            (SearchKey::Aggregate, "aggregate_id", &q.aggregate_id),
            (SearchKey::SpidCode, "spid_code", &q.spid_code),
            (SearchKey::ServiceProvider, "service_provider", &q.service_provider),
            (SearchKey::RequestId, "request_id", &q.request_id),
            (SearchKey::ResponseId, "response_id", &q.response_id),
            (SearchKey::AssertionId, "assertion_id", &q.assertion_id),
        ];
        let mut keys = Vec::new();
        for (key, name, value) in ids {
            check_len(name, value)?;
            if !value.is_empty() {
                keys.push(self.blind(key, value));
            }
        }
        check_len("type", &q.event_type)?;
        check_range(q.from, q.until)?;
        let limit = if q.limit == 0 { 100 } else { q.limit.min(MAX_LIMIT) };
        self.find(&Filter {
            keys,
            event_type: q.event_type.clone(),
            occurred_from: q.from.map_or(i64::MIN, |t| t.timestamp_micros()),
            occurred_until: q.until.map_or(i64::MAX, |t| t.timestamp_micros()),
            after_seq: q.after_sequence,
            limit,
        })
        .await
    }

    /// A holder's authentications in the period, oldest first.
    pub async fn authentications(
        &self,
        spid_code: &str,
        from: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<(DateTime<Utc>, Authentication)>, ServiceError> {
        require_spid_code(spid_code)?;
        check_range(from, until)?;
        let records = self
            .find(&Filter {
                keys: vec![self.blind(SearchKey::AuthenticationOf, spid_code)],
                occurred_from: from.map_or(i64::MIN, |t| t.timestamp_micros()),
                occurred_until: until.map_or(i64::MAX, |t| t.timestamp_micros()),
                limit: if limit == 0 { 100 } else { limit.min(MAX_LIMIT) },
                ..Filter::default()
            })
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let at = r.event.occurred_at.as_ref().and_then(spid_proto::time::from_wire)?;
                // The blind key matched; the payload must say the same.
                payload_of::<Authentication>(&r.event).filter(|a| a.spid_code == spid_code).map(|a| (at, a))
            })
            .collect())
    }

    /// Every record about a holder in the period, as a signed CSV document.
    pub async fn extract(
        &self,
        spid_code: &str,
        from: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Extract, ServiceError> {
        require_spid_code(spid_code)?;
        check_range(from, until)?;
        let mut filter = Filter {
            keys: vec![self.blind(SearchKey::SpidCode, spid_code)],
            occurred_from: from.map_or(i64::MIN, |t| t.timestamp_micros()),
            occurred_until: until.map_or(i64::MAX, |t| t.timestamp_micros()),
            limit: MAX_LIMIT,
            ..Filter::default()
        };
        let mut records = Vec::new();
        loop {
            let page = self.find(&filter).await?;
            let Some(last) = page.last() else { break };
            filter.after_seq = last.sequence;
            let full = page.len() == MAX_LIMIT as usize;
            records.extend(page);
            if records.len() > MAX_EXTRACT {
                return Err(ServiceError::invalid(
                    "extract.too_large",
                    format!("more than {MAX_EXTRACT} records: ask for a shorter period"),
                ));
            }
            if !full {
                break;
            }
        }
        let document = crate::extract::csv(&records);
        let signature = crypto::cms_detached(&self.keys, &document)?;
        Ok(Extract {
            document,
            signature,
            signer_certificate: self.keys.certificate_pem(),
            records: records.len() as u64,
        })
    }
}
