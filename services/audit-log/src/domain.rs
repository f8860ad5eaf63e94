//! Validating and recording events; searching them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use spid_proto::events::v1::Envelope;
use spid_types::{Clock, ServiceError};

use crate::store::Store;

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub sequence: u64,
    pub event: Envelope,
    pub recorded_at: DateTime<Utc>,
}

/// Search criteria; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub aggregate_id: String,
    pub event_type: String,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after_sequence: u64,
    pub limit: u32,
}

pub struct AuditLog {
    store: Store,
    clock: Arc<dyn Clock>,
}

const MAX_ID: usize = 200;
const MAX_LIMIT: u32 = 1000;

/// A validated event: what any producer sends is checked before it is kept.
pub struct ValidEvent<'a> {
    pub event: &'a Envelope,
    pub occurred_at: DateTime<Utc>,
}

pub fn validate(event: &Envelope) -> Result<ValidEvent<'_>, ServiceError> {
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
    let occurred_at = event
        .occurred_at
        .as_ref()
        .and_then(spid_proto::time::from_wire)
        .ok_or_else(|| ServiceError::invalid("event.time_invalid", "occurred_at is missing or out of range"))?;
    Ok(ValidEvent { event, occurred_at })
}

impl AuditLog {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Records an event once: returns its sequence and whether it is new.
    pub async fn record(&self, event: &Envelope) -> Result<(u64, bool), ServiceError> {
        let valid = validate(event)?;
        self.store.insert(&valid, self.clock.now()).await
    }

    pub async fn search(&self, query: &Query) -> Result<Vec<Record>, ServiceError> {
        if query.aggregate_id.len() > MAX_ID || query.event_type.len() > 100 {
            return Err(ServiceError::invalid("query.too_long", "filters are at most 200 characters"));
        }
        if let (Some(from), Some(until)) = (query.from, query.until)
            && from > until
        {
            return Err(ServiceError::invalid("query.range_invalid", "from is after until"));
        }
        let limit = if query.limit == 0 { 100 } else { query.limit.min(MAX_LIMIT) };
        self.store.search(query, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spid_events::EventBuilder;

    async fn log(dir: &std::path::Path) -> AuditLog {
        let db = spid_server::testkit::database(dir, "audit").await.unwrap();
        crate::migrate(&db).await.unwrap();
        AuditLog::new(Store::new(db), Arc::new(spid_types::SystemClock))
    }

    #[tokio::test]
    async fn records_once_and_searches() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path()).await;
        let clock = spid_types::SystemClock;
        let a = EventBuilder::new("identity-manager", "identity.suspended", "LPDA0000000001", &clock)
            .reason("theft")
            .build();
        let b = EventBuilder::new("notification", "notification.delivered", "m-1", &clock).build();
        let (seq_a, new_a) = log.record(&a).await.unwrap();
        let (seq_again, new_again) = log.record(&a).await.unwrap();
        assert!(new_a && !new_again);
        assert_eq!(seq_a, seq_again);
        let (seq_b, _) = log.record(&b).await.unwrap();
        assert!(seq_b > seq_a);

        let found = log.search(&Query { aggregate_id: "LPDA0000000001".into(), ..Query::default() }).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].event, a);
        let all = log.search(&Query::default()).await.unwrap();
        assert_eq!(all.iter().map(|r| r.sequence).collect::<Vec<_>>(), vec![seq_a, seq_b]);
        let after = log.search(&Query { after_sequence: seq_a, ..Query::default() }).await.unwrap();
        assert_eq!(after.len(), 1);
        let by_type =
            log.search(&Query { event_type: "notification.delivered".into(), ..Query::default() }).await.unwrap();
        assert_eq!(by_type[0].event.event_id, b.event_id);
    }

    #[tokio::test]
    async fn hostile_events_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path()).await;
        let good = EventBuilder::new("x", "a.b", "agg", &spid_types::SystemClock).build();
        let cases = [
            (Envelope { event_id: "not-a-uuid".into(), ..good.clone() }, "event.id_invalid"),
            (Envelope { aggregate_id: String::new(), ..good.clone() }, "event.aggregate_invalid"),
            (Envelope { r#type: "Robert'); DROP TABLE".into(), ..good.clone() }, "event.type_invalid"),
            (Envelope { occurred_at: None, ..good.clone() }, "event.time_invalid"),
            (Envelope { source: String::new(), ..good.clone() }, "event.source_invalid"),
        ];
        for (event, code) in cases {
            assert_eq!(log.record(&event).await.unwrap_err().code, code);
        }
        assert!(log.search(&Query::default()).await.unwrap().is_empty());
    }
}
