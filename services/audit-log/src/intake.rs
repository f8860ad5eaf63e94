//! The audit topic consumer. Messages are taken in batches and stored in
//! one transaction per batch; records are idempotent by event id, so a
//! redelivered message is absorbed; offsets are committed only after the
//! batch is stored.

use std::sync::Arc;

use async_trait::async_trait;
use prost::Message;
use spid_events::{Delivery, HandlerError, MessageHandler};
use spid_proto::events::v1::Envelope;
use spid_types::{ErrorKind, ServiceError};

use crate::domain::AuditLog;
use crate::metrics::AuditMetrics;
use crate::store::Prepared;

pub struct Intake {
    pub log: Arc<AuditLog>,
    pub metrics: AuditMetrics,
}

/// Most messages stored in one transaction.
const BATCH: usize = 1000;

fn prepare(log: &AuditLog, delivery: &Delivery) -> Result<Prepared, HandlerError> {
    let event = Envelope::decode(delivery.payload.as_slice())
        .map_err(|e| HandlerError::Poison(format!("not an event envelope: {e}")))?;
    log.prepare(&event).map_err(classify)
}

fn classify(e: ServiceError) -> HandlerError {
    if e.kind == ErrorKind::InvalidInput {
        HandlerError::Poison(e.to_string())
    } else {
        HandlerError::Retry(e.to_string())
    }
}

#[async_trait]
impl MessageHandler for Intake {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let prepared = prepare(&self.log, delivery)?;
        let outcome = self.log.append(std::slice::from_ref(&prepared)).await.map_err(classify)?;
        self.metrics.appended(&outcome);
        Ok(())
    }

    /// Stores the valid leading part of the batch at once; the first
    /// invalid message is reported after it.
    async fn handle_batch(&self, batch: &[Delivery]) -> (usize, Option<HandlerError>) {
        let mut prepared = Vec::with_capacity(batch.len());
        let mut stop = None;
        for delivery in batch {
            match prepare(&self.log, delivery) {
                Ok(p) => prepared.push(p),
                Err(e) => {
                    stop = Some(e);
                    break;
                }
            }
        }
        if !prepared.is_empty() {
            match self.log.append(&prepared).await {
                Ok(outcome) => {
                    self.metrics.appended(&outcome);
                    let new = outcome.iter().filter(|(_, inserted)| *inserted).count();
                    tracing::debug!(stored = new, redelivered = outcome.len() - new, "audit batch recorded");
                }
                Err(e) => return (0, Some(classify(e))),
            }
        }
        (prepared.len(), stop)
    }

    fn max_batch(&self) -> usize {
        BATCH
    }
}
