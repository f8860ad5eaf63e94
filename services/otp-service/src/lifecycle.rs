//! The lifecycle topic consumer: an identity suspended, revoked, expired
//! or with its credentials locked loses its live challenge and its
//! authenticator tokens at once (its app is enrolled again after a
//! restore).

use std::sync::Arc;

use async_trait::async_trait;
use prost::Message;
use spid_events::{Delivery, HandlerError, MessageHandler};
use spid_proto::events::v1::{Envelope, IdentityState, IdentityStateChanged};

use crate::service::Otp;

pub const CONSUMER_GROUP: &str = "otp-service";

pub struct Lifecycle {
    pub otp: Arc<Otp>,
}

#[async_trait]
impl MessageHandler for Lifecycle {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = Envelope::decode(delivery.payload.as_slice())
            .map_err(|e| HandlerError::Poison(format!("not an event envelope: {e}")))?;
        let Some(changed) = spid_events::envelope::payload_of::<IdentityStateChanged>(&event) else {
            return Ok(()); // other lifecycle events are not ours
        };
        let ends = matches!(
            changed.current(),
            IdentityState::Suspended
                | IdentityState::Revoked
                | IdentityState::Expired
                | IdentityState::CredentialsLocked
        );
        if !ends {
            return Ok(());
        }
        let codes =
            std::iter::once(changed.spid_code.as_str()).chain(changed.cascaded_spid_codes.iter().map(String::as_str));
        for spid_code in codes.filter(|c| !c.is_empty()) {
            self.otp.drop_identity(spid_code).await.map_err(|e| HandlerError::Retry(e.to_string()))?;
        }
        Ok(())
    }
}
