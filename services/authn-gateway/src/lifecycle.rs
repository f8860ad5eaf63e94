//! The lifecycle topic consumer: when an identity is suspended, revoked,
//! expired or has its credentials locked — and the minors' identities its
//! change cascades to — every level-1 session of it ends at once, on every
//! replica (SAML-7, LC-1). New logins are refused by identity-manager with
//! nr23.

use std::sync::Arc;

use async_trait::async_trait;
use spid_events::{Delivery, HandlerError, MessageHandler};

use crate::sessions::Sessions;

pub const CONSUMER_GROUP: &str = "authn-gateway";

pub struct Lifecycle {
    pub sessions: Arc<Sessions>,
}

#[async_trait]
impl MessageHandler for Lifecycle {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        for spid_code in spid_events::lifecycle::ended_identities(delivery)? {
            // Idempotent in effect: a redelivery only moves the epoch again.
            self.sessions.end_identity(&spid_code).await.map_err(|e| HandlerError::Retry(e.to_string()))?;
            tracing::info!(spid_code, "level-1 sessions ended");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use spid_proto::events::v1::{IdentityState, IdentityStateChanged};

    use super::*;

    fn on_topic(payload: Vec<u8>) -> Delivery {
        Delivery {
            topic: spid_types::topics::LIFECYCLE.into(),
            partition: 0,
            offset: 0,
            key: String::new(),
            payload,
            headers: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_suspension_ends_the_sessions_of_the_identity_and_its_minors() {
        let sessions = Arc::new(Sessions {
            cache: Arc::new(spid_cache::MemoryCache::new()),
            lifetime: std::time::Duration::from_secs(3600),
        });
        let now = chrono::Utc::now();
        let parent = sessions.create("XIDPPARENT0001", crate::level::IdentityKind::Private, now, "_p").await.unwrap();
        let minor = sessions.create("XIDPMINOR00001", crate::level::IdentityKind::Private, now, "_m").await.unwrap();
        let other = sessions.create("XIDPOTHER00001", crate::level::IdentityKind::Private, now, "_o").await.unwrap();
        let changed = IdentityStateChanged {
            spid_code: "XIDPPARENT0001".into(),
            current: IdentityState::Suspended as i32,
            cascaded_spid_codes: vec!["XIDPMINOR00001".into()],
            ..Default::default()
        };
        let clock = spid_types::SystemClock;
        let envelope =
            spid_events::EventBuilder::new("identity-manager", "identity.suspended", "XIDPPARENT0001", &clock)
                .payload(&changed)
                .build();
        let delivery = on_topic(envelope.encode_to_vec());
        Lifecycle { sessions: sessions.clone() }.handle(&delivery).await.unwrap();
        assert!(sessions.get(&parent).await.unwrap().is_none());
        assert!(sessions.get(&minor).await.unwrap().is_none());
        assert!(sessions.get(&other).await.unwrap().is_some());
        // Garbage on the topic is poison, not a retry loop.
        let garbage = on_topic(vec![0xff, 0x01]);
        assert!(matches!(Lifecycle { sessions }.handle(&garbage).await, Err(HandlerError::Poison(_))));
    }
}
