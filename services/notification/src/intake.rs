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
use crate::policy::{self, Contacts};

/// The consumer group of notification.
pub const CONSUMER_GROUP: &str = "notification";

pub struct Intake {
    pub notifier: Arc<Notifier>,
}

/// The messages a request becomes, one per channel; `Err` is why it never
/// can be sent. With an explicit channel, that channel and recipient; with
/// the holder's contacts, the channels the message calls for
/// ([`crate::policy`]).
pub fn to_send(event: &Envelope) -> Result<Vec<SendMessage>, String> {
    let requested = spid_events::envelope::payload_of::<NotificationRequested>(event)
        .ok_or_else(|| format!("event {} is not a NotificationRequested", event.event_id))?;
    let targets = if requested.channel.is_empty() {
        let c = requested.contacts.clone().unwrap_or_default();
        let given = |s: String| (!s.is_empty()).then_some(s);
        let contacts = Contacts { email: given(c.email), mobile: given(c.mobile), pec: given(c.pec) };
        let targets = policy::channels(&requested.template, &contacts);
        if targets.is_empty() {
            return Err(format!("no contact to send {:?} to", requested.template));
        }
        targets
    } else {
        let channel =
            Channel::parse(&requested.channel).ok_or_else(|| format!("unknown channel {:?}", requested.channel))?;
        vec![(channel, requested.recipient.clone())]
    };
    Ok(targets
        .into_iter()
        .map(|(channel, recipient)| SendMessage {
            channel: Some(channel),
            recipient,
            template: requested.template.clone(),
            locale: requested.locale.clone(),
            data: requested.data.clone().into_iter().collect(),
            idempotency_key: format!("event:{}:{}", event.event_id, channel.as_str()),
            subject_id: event.aggregate_id.clone(),
            trace: event.trace.as_ref().map(|t| (t.traceparent.clone(), t.tracestate.clone())),
        })
        .collect())
}

#[async_trait]
impl MessageHandler for Intake {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = Envelope::decode(delivery.payload.as_slice())
            .map_err(|e| HandlerError::Poison(format!("not an event envelope: {e}")))?;
        let explicit =
            spid_events::envelope::payload_of::<NotificationRequested>(&event).is_some_and(|r| !r.channel.is_empty());
        for message in to_send(&event).map_err(HandlerError::Poison)? {
            // Channels we picked ourselves are skipped when this deployment
            // has no transport for them (no PEC provider): the message
            // still goes by the others.
            if !explicit && message.channel.is_some_and(|c| !self.notifier.has_channel(c)) {
                continue;
            }
            match self.notifier.send(message).await {
                Ok(_) => {}
                // Retrying would never help: bad data, or a channel this
                // deployment does not have.
                Err(e) if matches!(e.kind, ErrorKind::InvalidInput | ErrorKind::FailedPrecondition) => {
                    return Err(HandlerError::Poison(e.to_string()));
                }
                Err(e) => return Err(HandlerError::Retry(e.to_string())),
            }
        }
        Ok(())
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
                contacts: None,
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
        let w = crate::tests::world(crate::delivery::Transports::dev_outbox()).await;
        let notifier = w.notifier.clone();
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

#[cfg(test)]
mod policy_tests {
    use super::*;
    use spid_events::EventBuilder;
    use spid_proto::events::v1::Contacts as WireContacts;
    use spid_types::SystemClock;

    fn by_contacts(template: &str, mobile: &str) -> Envelope {
        EventBuilder::new("identity-manager", "notification.requested", "XIDPABCDEFGHIJ", &SystemClock)
            .payload(&NotificationRequested {
                template: template.into(),
                locale: "it".into(),
                channel: String::new(),
                recipient: String::new(),
                data: [("cause".to_owned(), "furto".to_owned()), ("date".to_owned(), "2026-12-02".to_owned())].into(),
                contacts: Some(WireContacts {
                    email: "mario.rossi@example.it".into(),
                    mobile: mobile.into(),
                    pec: String::new(),
                }),
            })
            .build()
    }

    #[test]
    fn a_request_with_contacts_becomes_one_message_per_channel_the_message_calls_for() {
        let event = by_contacts("identity-suspended", "+393331234567");
        let messages = to_send(&event).unwrap();
        let got: Vec<_> =
            messages.iter().map(|m| (m.channel, m.recipient.as_str(), m.idempotency_key.clone())).collect();
        assert_eq!(
            got,
            [
                (Some(Channel::Email), "mario.rossi@example.it", format!("event:{}:email", event.event_id)),
                (Some(Channel::Sms), "+393331234567", format!("event:{}:sms", event.event_id)),
            ]
        );
        assert!(messages.iter().all(|m| m.subject_id == "XIDPABCDEFGHIJ"));
        let minor = to_send(&by_contacts("identity-suspended", "")).unwrap();
        assert_eq!(minor.len(), 1, "no mobile: e-mail only");
        let mut nobody = by_contacts("identity-suspended", "");
        nobody.payload = EventBuilder::new("x", "y", "z", &SystemClock)
            .payload(&NotificationRequested { template: "identity-suspended".into(), ..Default::default() })
            .build()
            .payload;
        assert!(to_send(&nobody).unwrap_err().contains("no contact"));
    }

    #[tokio::test]
    async fn channels_this_deployment_lacks_are_skipped_when_ours_to_pick_and_poison_when_asked() {
        let w = crate::tests::world(crate::delivery::Transports {
            email: crate::delivery::Transports::dev_outbox().email,
            ..Default::default()
        })
        .await;
        let intake = Intake { notifier: w.notifier.clone() };
        let mut event = by_contacts("identity-revoked", "");
        let mut requested = spid_events::envelope::payload_of::<NotificationRequested>(&event).unwrap();
        requested.contacts.as_mut().unwrap().pec = "mario.rossi@pec.example.it".into();
        event.payload = EventBuilder::new("x", "y", "z", &SystemClock).payload(&requested).build().payload;
        let delivery = Delivery {
            topic: spid_types::topics::NOTIFICATION.to_owned(),
            partition: 0,
            offset: 0,
            key: event.aggregate_id.clone(),
            payload: event.encode_to_vec(),
            headers: vec![],
        };
        intake.handle(&delivery).await.unwrap();
        let outbox = w.notifier.dev_outbox(10).await.unwrap();
        assert_eq!(outbox.len(), 1, "e-mail only: no PEC provider here");
        assert_eq!(outbox[0].channel, "email");

        requested.channel = "pec".into();
        requested.recipient = "mario.rossi@pec.example.it".into();
        event.payload = EventBuilder::new("x", "y", "z", &SystemClock).payload(&requested).build().payload;
        let asked = Delivery { payload: event.encode_to_vec(), ..delivery };
        assert!(matches!(intake.handle(&asked).await, Err(HandlerError::Poison(_))), "never retried forever");
    }
}
