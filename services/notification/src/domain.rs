//! Validated messages and the rules of sending them.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use spid_events::{EventBuilder, OutboxRelay};
use spid_types::{Clock, ErrorKind, ServiceError};

use spid_proto::events::v1::actor::Kind;
use tokio::sync::Notify;

use crate::delivery::Transports;
use crate::store::{FailedMessage, NewMessage, Status, Store};
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
    /// The W3C trace context (traceparent, tracestate) of the request that
    /// asked for the message, when it came through the topic; `None`: the
    /// current span's.
    pub trace: Option<(String, String)>,
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
    transports: Transports,
    wake: Arc<Notify>,
    dev_outbox: bool,
}

const MAX_DATA_VALUE: usize = 512;
const MAX_KEY: usize = 128;

/// The UA-1 notice of every use of the credentials: sent only to holders
/// who asked for it.
pub const USE_NOTICE: &str = "credentials-used";

impl Notifier {
    /// `dev_outbox`: `GET /dev/outbox` lists every message (development).
    /// `wake` tells the delivery worker a message is waiting.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        relay: OutboxRelay,
        transports: Transports,
        wake: Arc<Notify>,
        dev_outbox: bool,
    ) -> Result<Self, String> {
        let templates = Templates::load()?;
        Ok(Self { store, templates, clock, relay, transports, wake, dev_outbox })
    }

    /// Validates, renders and stores a message for delivery; it is
    /// accepted once stored, and the delivery worker takes it from there.
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
        if req.data.values().any(|v| v.len() > MAX_DATA_VALUE) {
            return Err(ServiceError::invalid("data.invalid", "data values are at most 512 bytes"));
        }
        if req.idempotency_key.len() > MAX_KEY || req.subject_id.len() > MAX_KEY {
            return Err(ServiceError::invalid(
                "key.too_long",
                "idempotency_key and subject_id are at most 128 characters",
            ));
        }
        if self.transports.get(channel).is_none() {
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
        let status = if req.template == USE_NOTICE && !self.store.wants_use_notices(&req.subject_id).await? {
            Status::Suppressed
        } else {
            Status::Pending
        };
        let digest = self.content_digest(&req.template, locale, &req.data, &rendered)?;
        let message_id = uuid::Uuid::now_v7().to_string();
        let trace = match &req.trace {
            Some((parent, state)) if !parent.is_empty() => (parent.clone(), state.clone()),
            _ => {
                let t = spid_telemetry::current_trace_headers();
                (t.traceparent, t.tracestate)
            }
        };
        let accepted = self
            .store
            .insert(NewMessage {
                id: &message_id,
                idempotency_key: (!req.idempotency_key.is_empty()).then_some(req.idempotency_key.as_str()),
                channel,
                recipient: &req.recipient,
                template: &req.template,
                locale,
                subject: &rendered.subject,
                body: &rendered.body,
                content_sha256: &digest,
                subject_id: &req.subject_id,
                status,
                at: self.clock.now(),
                trace: (&trace.0, &trace.1),
            })
            .await?;
        self.wake.notify_one();
        Ok(accepted)
    }

    /// The content digest traced on the audit topic. A one-time code has
    /// a million values, so a plain digest of a message carrying one would
    /// give the code away: such messages are digested with the code masked.
    fn content_digest(
        &self,
        template: &str,
        locale: Locale,
        data: &BTreeMap<String, String>,
        rendered: &crate::templates::Rendered,
    ) -> Result<String, ServiceError> {
        let text = if Templates::carries_secret(template) {
            let mut masked = data.clone();
            for key in crate::templates::SECRET_KEYS {
                if let Some(v) = masked.get_mut(*key) {
                    *v = "******".to_owned();
                }
            }
            let r = self.templates.render(template, locale, &masked)?;
            format!("{}\n{}", r.subject, r.body)
        } else {
            format!("{}\n{}", rendered.subject, rendered.body)
        };
        Ok(hex::encode(Sha256::digest(text)))
    }

    /// Whether this deployment can deliver on `channel`.
    pub fn has_channel(&self, channel: Channel) -> bool {
        self.transports.get(channel).is_some()
    }

    /// Dead-lettered messages, newest first (operators).
    pub async fn failed(&self, limit: u32) -> Result<Vec<FailedMessage>, ServiceError> {
        self.store.dead(limit.clamp(1, 1000)).await
    }

    /// Puts a dead-lettered message back for delivery; the operator's
    /// action is audited.
    pub async fn retry(&self, message_id: &str, operator: &str) -> Result<(), ServiceError> {
        if operator.trim().is_empty() || operator.len() > MAX_KEY {
            return Err(ServiceError::invalid("operator.missing", "the operator acting is required"));
        }
        let event = EventBuilder::new(crate::SERVICE.as_str(), "notification.requeued", message_id, &*self.clock)
            .actor(Kind::Operator, operator)
            .reason("dead-lettered message put back for delivery")
            .build();
        match self.store.requeue(message_id, self.clock.now(), &event).await? {
            crate::store::Requeue::Done => {}
            crate::store::Requeue::NotDead => {
                return Err(ServiceError::not_found(
                    "message.not_dead",
                    format!("no dead-lettered message {message_id}"),
                ));
            }
            crate::store::Requeue::CarriesCode => {
                return Err(ServiceError::new(
                    ErrorKind::FailedPrecondition,
                    "message.code_expired",
                    "a message carrying a one-time code is not sent again: its code is stale",
                ));
            }
        }
        self.relay.wake();
        self.wake.notify_one();
        Ok(())
    }

    /// The holder's opt-in to an e-mail on every use of the credentials
    /// (UA-1).
    pub async fn use_notices(&self, subject_id: &str) -> Result<bool, ServiceError> {
        check_subject(subject_id)?;
        self.store.wants_use_notices(subject_id).await
    }

    pub async fn set_use_notices(&self, subject_id: &str, on: bool) -> Result<(), ServiceError> {
        check_subject(subject_id)?;
        self.store.set_use_notices(subject_id, on, self.clock.now()).await
    }

    /// Development outbox, newest last.
    pub async fn dev_outbox(&self, limit: u32) -> Result<Vec<crate::store::OutboxEntry>, ServiceError> {
        if !self.dev_outbox {
            return Err(ServiceError::not_found("dev_outbox.disabled", "the outbox exists only in development mode"));
        }
        self.store.outbox(limit.clamp(1, 1000)).await
    }
}

fn check_subject(subject_id: &str) -> Result<(), ServiceError> {
    if subject_id.is_empty() || subject_id.len() > MAX_KEY {
        return Err(ServiceError::invalid("subject.invalid", "subject_id is required (at most 128 characters)"));
    }
    Ok(())
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
