//! The notification topic consumer: the messages other services ask for
//! through their outbox (`NotificationRequested`), delivered like a `Send`.
//! Idempotent per (event id, channel): a redelivered event finds the
//! message it already produced and sends nothing new. A request that can
//! never be delivered (unknown template, bad recipient, missing data) is a
//! poison message for the dead-letter topic; anything else is retried.

use std::sync::Arc;

use async_trait::async_trait;
use prost::Message;
use spid_events::{Delivery, HandlerError, MessageHandler};
use spid_proto::events::v1::{Envelope, NotificationRequested};
use spid_types::ErrorKind;

use crate::domain::{Channel, Notifier, SendMessage};

/// The consumer group of notification.
pub const CONSUMER_GROUP: &str = "notification";

pub struct Intake {
    pub notifier: Arc<Notifier>,
}

/// What a requested message becomes; `Err` is why it never can be sent.
pub fn to_send(event: &Envelope) -> Result<SendMessage, String> {
    let requested = spid_events::envelope::payload_of::<NotificationRequested>(event)
        .ok_or_else(|| format!("event {} is not a NotificationRequested", event.event_id))?;
    let channel =
        Channel::parse(&requested.channel).ok_or_else(|| format!("unknown channel {:?}", requested.channel))?;
    Ok(SendMessage {
        channel: Some(channel),
        recipient: requested.recipient,
        template: requested.template,
        locale: requested.locale,
        data: requested.data.into_iter().collect(),
        idempotency_key: format!("event:{}:{}", event.event_id, channel.as_str()),
        subject_id: event.aggregate_id.clone(),
    })
}

#[async_trait]
impl MessageHandler for Intake {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = Envelope::decode(delivery.payload.as_slice())
            .map_err(|e| HandlerError::Poison(format!("not an event envelope: {e}")))?;
        let message = to_send(&event).map_err(HandlerError::Poison)?;
        match self.notifier.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::InvalidInput => Err(HandlerError::Poison(e.to_string())),
            Err(e) => Err(HandlerError::Retry(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spid_events::EventBuilder;
    use spid_types::SystemClock;

    fn requested(template: &str, data: &[(&str, &str)]) -> Envelope {
        EventBuilder::new("identity-manager", "notification.requested", "req-1", &SystemClock)
            .payload(&NotificationRequested {
                template: template.into(),
                locale: "it".into(),
                channel: "email".into(),
                recipient: "mario.rossi@example.it".into(),
                data: data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            })
            .build()
    }

    fn delivery(event: &Envelope) -> Delivery {
        Delivery {
            topic: spid_types::topics::NOTIFICATION.to_owned(),
            partition: 0,
            offset: 0,
            key: event.aggregate_id.clone(),
            payload: event.encode_to_vec(),
            headers: vec![],
        }
    }

    #[tokio::test]
    async fn a_redelivered_request_is_sent_once_and_bad_ones_are_poison() {
        let dir = tempfile::tempdir().unwrap();
        let bus = spid_server::testkit::bus(dir.path()).await.unwrap();
        let db = spid_server::testkit::database(dir.path(), "notification").await.unwrap();
        crate::migrate(&db).await.unwrap();
        let relay = spid_events::OutboxRelay::new(db.clone(), bus, spid_telemetry::Metrics::new("t").unwrap(), "t");
        let notifier =
            Arc::new(Notifier::new(crate::store::Store::new(db), Arc::new(SystemClock), relay, true).unwrap());
        let intake = Intake { notifier: notifier.clone() };

        let event = requested("identity-activated", &[("spid_code", "XIDPABCDEFGHIJ")]);
        intake.handle(&delivery(&event)).await.unwrap();
        intake.handle(&delivery(&event)).await.unwrap();
        let outbox = notifier.dev_outbox(10).await.unwrap();
        assert_eq!(outbox.len(), 1, "once per (event, channel)");
        assert!(outbox[0].body.contains("XIDPABCDEFGHIJ"), "{}", outbox[0].body);
        assert_eq!(outbox[0].subject, "La tua identità SPID è attiva");

        let missing = requested("identity-activated", &[]);
        assert!(matches!(intake.handle(&delivery(&missing)).await, Err(HandlerError::Poison(_))));
        let unknown = requested("no-such-template", &[]);
        assert!(matches!(intake.handle(&delivery(&unknown)).await, Err(HandlerError::Poison(_))));
        let garbage = Delivery { payload: b"not protobuf".to_vec(), ..delivery(&event) };
        assert!(matches!(intake.handle(&garbage).await, Err(HandlerError::Poison(_))));
        assert_eq!(notifier.dev_outbox(10).await.unwrap().len(), 1, "nothing else was sent");
    }
}
