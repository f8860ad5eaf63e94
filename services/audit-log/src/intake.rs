//! The audit topic consumer. Records are idempotent by event id, so a
//! redelivered message is absorbed; the offset is committed only after the
//! record is stored.

use std::sync::Arc;

use async_trait::async_trait;
use prost::Message;
use spid_events::{Delivery, HandlerError, MessageHandler};
use spid_proto::events::v1::Envelope;
use spid_types::ErrorKind;

use crate::domain::AuditLog;

pub struct Intake(pub Arc<AuditLog>);

#[async_trait]
impl MessageHandler for Intake {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = Envelope::decode(delivery.payload.as_slice())
            .map_err(|e| HandlerError::Poison(format!("not an event envelope: {e}")))?;
        match self.0.record(&event).await {
            Ok((sequence, inserted)) => {
                tracing::debug!(sequence, inserted, event_id = %event.event_id, "recorded");
                Ok(())
            }
            Err(e) if e.kind == ErrorKind::InvalidInput => Err(HandlerError::Poison(e.to_string())),
            Err(e) => Err(HandlerError::Retry(e.to_string())),
        }
    }
}
