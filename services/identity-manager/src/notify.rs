//! Messages to applicants and holders go through the notification service
//! (NOT-1): codes synchronously over its gRPC `Send`, so the applicant
//! knows the code is on its way.

use std::collections::HashMap;

use async_trait::async_trait;
use spid_proto::notification::v1 as pb;
use spid_types::ServiceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
    Pec,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Pec => "pec",
        }
    }
}

/// Asks notification for a message through the outbox, inside the
/// transaction of what the message tells (the `spid.notification.v1`
/// topic; the notification service sends it once per event and channel).
pub(crate) async fn request_in(
    conn: &mut sqlx::AnyConnection,
    clock: &dyn spid_types::Clock,
    about: &str,
    channel: Channel,
    recipient: &str,
    template: &str,
    data: &[(&str, &str)],
) -> Result<(), ServiceError> {
    let event = spid_events::EventBuilder::new(crate::SERVICE.as_str(), "notification.requested", about, clock)
        .payload(&spid_proto::events::v1::NotificationRequested {
            template: template.into(),
            locale: "it".into(),
            channel: channel.as_str().into(),
            recipient: recipient.into(),
            data: data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            contacts: None,
        })
        .build();
    spid_events::outbox::enqueue(conn, spid_types::topics::NOTIFICATION, &event).await.map_err(crate::store::db_err)
}

/// Asks notification for a message to the holder on the channels the
/// message calls for, given the holder's verified contacts (notification
/// picks them: e-mail, SMS for state changes, PEC where it matters).
pub(crate) async fn request_to_holder_in(
    conn: &mut sqlx::AnyConnection,
    clock: &dyn spid_types::Clock,
    about: &str,
    holder_id: &str,
    template: &str,
    data: &[(&str, &str)],
) -> Result<(), ServiceError> {
    let rows = sqlx::query("SELECT kind, value FROM contacts WHERE holder_id = $1 AND verified_at IS NOT NULL")
        .bind(holder_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(crate::store::db_err)?;
    let mut contacts = spid_proto::events::v1::Contacts::default();
    for r in rows {
        let kind: String = sqlx::Row::try_get(&r, "kind").map_err(crate::store::db_err)?;
        let value: String = sqlx::Row::try_get(&r, "value").map_err(crate::store::db_err)?;
        match kind.as_str() {
            "email" => contacts.email = value,
            "mobile" => contacts.mobile = value,
            "pec" => contacts.pec = value,
            _ => {}
        }
    }
    let event = spid_events::EventBuilder::new(crate::SERVICE.as_str(), "notification.requested", about, clock)
        .payload(&spid_proto::events::v1::NotificationRequested {
            template: template.into(),
            locale: "it".into(),
            channel: String::new(),
            recipient: String::new(),
            data: data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            contacts: Some(contacts),
        })
        .build();
    spid_events::outbox::enqueue(conn, spid_types::topics::NOTIFICATION, &event).await.map_err(crate::store::db_err)
}

/// A message to send. `data` fills the template; codes travel only here.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: Channel,
    pub recipient: String,
    pub template: &'static str,
    pub locale: &'static str,
    pub data: HashMap<String, String>,
    /// Repeating a call with the same key sends nothing new.
    pub idempotency_key: String,
    /// The request or identity the message is about.
    pub subject_id: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("channel", &self.channel)
            .field("template", &self.template)
            .field("subject_id", &self.subject_id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait Messenger: Send + Sync {
    /// Returns once the notification service has stored the message.
    async fn send(&self, m: Message) -> Result<(), ServiceError>;
}

/// The notification service's gRPC `Send`.
pub struct NotificationClient(pb::notifications_client::NotificationsClient<tonic::transport::Channel>);

impl NotificationClient {
    pub fn new(channel: tonic::transport::Channel) -> Self {
        Self(pb::notifications_client::NotificationsClient::new(channel))
    }
}

#[async_trait]
impl Messenger for NotificationClient {
    async fn send(&self, m: Message) -> Result<(), ServiceError> {
        let channel = match m.channel {
            Channel::Email => pb::Channel::Email,
            Channel::Sms => pb::Channel::Sms,
            Channel::Pec => pb::Channel::Pec,
        };
        let request = pb::SendRequest {
            channel: channel as i32,
            recipient: m.recipient,
            template: m.template.to_owned(),
            locale: m.locale.to_owned(),
            data: m.data,
            idempotency_key: m.idempotency_key,
            subject_id: m.subject_id,
        };
        self.0.clone().send(request).await.map_err(|status| {
            tracing::warn!(code = ?status.code(), "notification service refused or unreachable");
            ServiceError::unavailable("notification.unavailable", "the message could not be sent now; try again")
        })?;
        Ok(())
    }
}
