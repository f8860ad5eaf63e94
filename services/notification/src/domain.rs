//! Validated messages and the rules of sending them.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use spid_events::{EventBuilder, OutboxRelay};
use spid_proto::events::v1::NotificationDelivered;
use spid_types::{Clock, ErrorKind, ServiceError};

use crate::store::{NewMessage, Store};
use crate::templates::Templates;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
    Pec,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Pec => "pec",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            "pec" => Some(Channel::Pec),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    It,
    En,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::It => "it",
            Locale::En => "en",
        }
    }

    /// Italian unless English is asked (NOT-1).
    pub fn parse(s: &str) -> Result<Self, ServiceError> {
        match s {
            "" | "it" => Ok(Locale::It),
            "en" => Ok(Locale::En),
            other => {
                Err(ServiceError::invalid("locale.unsupported", format!("unsupported locale \"{other}\" (it, en)")))
            }
        }
    }
}

/// A request to send, as received (not yet validated).
#[derive(Debug, Clone, Default)]
pub struct SendMessage {
    pub channel: Option<Channel>,
    pub recipient: String,
    pub template: String,
    pub locale: String,
    pub data: BTreeMap<String, String>,
    pub idempotency_key: String,
    pub subject_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub message_id: String,
    pub accepted_at: chrono::DateTime<chrono::Utc>,
}

pub struct Notifier {
    store: Store,
    templates: Templates,
    clock: Arc<dyn Clock>,
    relay: OutboxRelay,
    dev_outbox: bool,
}

const MAX_DATA_VALUE: usize = 512;
const MAX_KEY: usize = 128;

impl Notifier {
    /// `dev_outbox`: deliver to the development outbox (development mode).
    pub fn new(store: Store, clock: Arc<dyn Clock>, relay: OutboxRelay, dev_outbox: bool) -> Result<Self, String> {
        let templates = Templates::load()?;
        Ok(Self { store, templates, clock, relay, dev_outbox })
    }

    /// Validates, renders, stores and delivers a message, and records the
    /// delivery on the audit topic — the last two in one transaction.
    pub async fn send(&self, req: SendMessage) -> Result<Accepted, ServiceError> {
        let channel = req.channel.ok_or_else(|| ServiceError::invalid("channel.missing", "channel is required"))?;
        validate_recipient(channel, &req.recipient)?;
        let locale = Locale::parse(&req.locale)?;
        let required = Templates::required_keys(&req.template).ok_or_else(|| {
            ServiceError::invalid("template.unknown", format!("unknown template \"{}\"", req.template))
        })?;
        for key in required {
            match req.data.get(*key) {
                Some(v) if !v.is_empty() && v.len() <= MAX_DATA_VALUE => {}
                Some(_) => {
                    return Err(ServiceError::invalid("data.invalid", format!("data \"{key}\" is empty or too long")));
                }
                None => return Err(ServiceError::invalid("data.missing", format!("data \"{key}\" is required"))),
            }
        }
        if req.idempotency_key.len() > MAX_KEY || req.subject_id.len() > MAX_KEY {
            return Err(ServiceError::invalid(
                "key.too_long",
                "idempotency_key and subject_id are at most 128 characters",
            ));
        }
        if !self.dev_outbox {
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "channel.not_configured",
                format!("no delivery channel is configured for {}", channel.as_str()),
            ));
        }
        if !req.idempotency_key.is_empty()
            && let Some(existing) = self.store.find_by_idempotency_key(&req.idempotency_key).await?
        {
            return Ok(existing);
        }
        let rendered = self.templates.render(&req.template, locale, &req.data)?;
        let now = self.clock.now();
        let message_id = uuid::Uuid::now_v7().to_string();
        let digest = hex::encode(Sha256::digest(format!("{}\n{}", rendered.subject, rendered.body)));
        let event = EventBuilder::new(crate::SERVICE.as_str(), "notification.delivered", &message_id, &*self.clock)
            .payload(&NotificationDelivered {
                message_id: message_id.clone(),
                channel: channel.as_str().to_owned(),
                recipient: req.recipient.clone(),
                content_sha256: digest,
                outcome: "delivered:dev-outbox".to_owned(),
            })
            .build();
        let stored = self
            .store
            .insert_delivered(
                NewMessage {
                    id: &message_id,
                    idempotency_key: (!req.idempotency_key.is_empty()).then_some(req.idempotency_key.as_str()),
                    channel,
                    recipient: &req.recipient,
                    template: &req.template,
                    locale,
                    subject: &rendered.subject,
                    body: &rendered.body,
                    subject_id: &req.subject_id,
                    at: now,
                },
                &event,
            )
            .await?;
        self.relay.wake();
        Ok(stored)
    }

    /// Development outbox, newest last.
    pub async fn dev_outbox(&self, limit: u32) -> Result<Vec<crate::store::OutboxEntry>, ServiceError> {
        if !self.dev_outbox {
            return Err(ServiceError::not_found("dev_outbox.disabled", "the outbox exists only in development mode"));
        }
        self.store.outbox(limit.clamp(1, 1000)).await
    }
}

use spid_types::contact::{is_e164, is_email};

fn validate_recipient(channel: Channel, recipient: &str) -> Result<(), ServiceError> {
    let ok = match channel {
        Channel::Email | Channel::Pec => is_email(recipient),
        Channel::Sms => is_e164(recipient),
    };
    if ok {
        Ok(())
    } else {
        let expected =
            if channel == Channel::Sms { "a mobile number in E.164 form (+39...)" } else { "an e-mail address" };
        Err(ServiceError::invalid("recipient.invalid", format!("recipient must be {expected}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_checked_per_channel() {
        assert!(is_email("mario.rossi@example.it"));
        assert!(!is_email("mario.rossi@example"));
        assert!(!is_email("a@b@c.it"));
        assert!(!is_email("x y@example.it"));
        assert!(!is_email("victim@example.it,attacker@evil.example"));
        assert!(is_e164("+393331234567"));
        assert!(!is_e164("3331234567"));
        assert!(!is_e164("+39 333 1234567"));
        assert!(validate_recipient(Channel::Sms, "mario@example.it").is_err());
    }
}

#[cfg(test)]
mod send_tests {
    use super::*;

    async fn notifier(dir: &std::path::Path, dev: bool) -> (Notifier, OutboxRelay) {
        let bus = spid_server::testkit::bus(dir).await.unwrap();
        let db = spid_server::testkit::database(dir, "notification").await.unwrap();
        crate::migrate(&db).await.unwrap();
        let relay = OutboxRelay::new(db.clone(), bus, spid_telemetry::Metrics::new("t").unwrap(), "t");
        let n = Notifier::new(Store::new(db), Arc::new(spid_types::SystemClock), relay.clone(), dev).unwrap();
        (n, relay)
    }

    fn otp(key: &str) -> SendMessage {
        SendMessage {
            channel: Some(Channel::Sms),
            recipient: "+393331234567".into(),
            template: "otp-code".into(),
            locale: String::new(),
            data: [("code".to_owned(), "123456".to_owned()), ("minutes".to_owned(), "5".to_owned())].into(),
            idempotency_key: key.into(),
            subject_id: "LPDA0000000001".into(),
        }
    }

    #[tokio::test]
    async fn sends_to_the_outbox_once_per_idempotency_key_with_an_audit_event() {
        let dir = tempfile::tempdir().unwrap();
        let (n, relay) = notifier(dir.path(), true).await;
        let first = n.send(otp("k1")).await.unwrap();
        let again = n.send(otp("k1")).await.unwrap();
        assert_eq!(first.message_id, again.message_id);
        n.send(otp("")).await.unwrap();
        let outbox = n.dev_outbox(10).await.unwrap();
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox[0].id, first.message_id, "oldest first");
        assert!(outbox[0].body.contains("123456") && outbox[0].subject == "Codice di verifica");
        assert_eq!(relay.pending().await.unwrap(), 2, "one audit event per delivered message");
        assert_eq!(relay.relay_batch().await.unwrap(), 2);
        assert_eq!(relay.pending().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn bad_requests_are_refused_with_their_reason_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (n, relay) = notifier(dir.path(), true).await;
        let cases: Vec<(SendMessage, &str)> = vec![
            (SendMessage { channel: None, ..otp("") }, "channel.missing"),
            (SendMessage { recipient: "mario@example.it".into(), ..otp("") }, "recipient.invalid"),
            (SendMessage { template: "welcome-bonus".into(), ..otp("") }, "template.unknown"),
            (SendMessage { locale: "fr".into(), ..otp("") }, "locale.unsupported"),
            (SendMessage { data: [("code".to_owned(), "1".to_owned())].into(), ..otp("") }, "data.missing"),
            (SendMessage { idempotency_key: "k".repeat(200), ..otp("") }, "key.too_long"),
        ];
        for (req, code) in cases {
            let err = n.send(req).await.unwrap_err();
            assert_eq!(err.code, code);
            assert_eq!(err.kind, ErrorKind::InvalidInput);
        }
        assert!(n.dev_outbox(10).await.unwrap().is_empty());
        assert_eq!(relay.pending().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn production_without_a_channel_refuses_instead_of_pretending() {
        let dir = tempfile::tempdir().unwrap();
        let (n, _) = notifier(dir.path(), false).await;
        let err = n.send(otp("")).await.unwrap_err();
        assert_eq!(err.code, "channel.not_configured");
        assert_eq!(n.dev_outbox(10).await.unwrap_err().code, "dev_outbox.disabled");
    }
}
