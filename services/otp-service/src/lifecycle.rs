//! The lifecycle topic consumer: an identity suspended, revoked, expired
//! or with its credentials locked loses its live challenge and its
//! authenticator tokens at once (its app is enrolled again after a
//! restore).

use std::sync::Arc;

use async_trait::async_trait;
use spid_events::{Delivery, HandlerError, MessageHandler};

use crate::service::Otp;

pub const CONSUMER_GROUP: &str = "otp-service";

pub struct Lifecycle {
    pub otp: Arc<Otp>,
}

#[async_trait]
impl MessageHandler for Lifecycle {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        for spid_code in spid_events::lifecycle::ended_identities(delivery)? {
            self.otp.drop_identity(&spid_code).await.map_err(|e| HandlerError::Retry(e.to_string()))?;
        }
        Ok(())
    }
}
