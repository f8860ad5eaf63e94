//! The other services otp-service calls: identity-manager for where codes
//! may go, notification to send them.

use async_trait::async_trait;
use chrono::Datelike;
use spid_proto::identity::v1 as idpb;
use spid_proto::notification::v1 as npb;
use spid_types::{Clock, ErrorKind, ServiceError};

use crate::challenge::Method;
use crate::service::{CodeMessage, CodeSender, Contacts, Directory};

/// A refusal from another service as our own error: its kind from the
/// status code, its reason kept; unreachable is "try again later".
fn from_status(service: &str, status: &tonic::Status) -> ServiceError {
    use tonic::Code;
    let reason = spid_server::errors::reason_of(status).unwrap_or("").to_owned();
    let kind = match status.code() {
        Code::InvalidArgument => ErrorKind::InvalidInput,
        Code::NotFound => ErrorKind::NotFound,
        Code::FailedPrecondition => ErrorKind::FailedPrecondition,
        Code::PermissionDenied => ErrorKind::PermissionDenied,
        Code::ResourceExhausted => ErrorKind::RateLimited,
        other => {
            tracing::warn!(code = ?other, service, "call refused or unreachable");
            return ServiceError::unavailable(format!("{service}.unavailable"), format!("{service} cannot answer now"));
        }
    };
    let reason = if reason.is_empty() { format!("{service}.refused") } else { reason };
    ServiceError::new(kind, reason, format!("{service}: {}", status.message()))
}

pub struct IdentityManager {
    client: idpb::credentials_client::CredentialsClient<tonic::transport::Channel>,
    clock: std::sync::Arc<dyn Clock>,
}

impl IdentityManager {
    pub fn new(channel: tonic::transport::Channel, clock: std::sync::Arc<dyn Clock>) -> Self {
        Self { client: idpb::credentials_client::CredentialsClient::new(channel), clock }
    }
}

/// Whether someone born on `born` (YYYY-MM-DD) is under 18 on `today`.
pub fn is_minor(born: &str, today: chrono::NaiveDate) -> bool {
    let Ok(born) = chrono::NaiveDate::parse_from_str(born, "%Y-%m-%d") else {
        return false;
    };
    let mut age = today.year() - born.year();
    if (today.month(), today.day()) < (born.month(), born.day()) {
        age -= 1;
    }
    age < 18
}

#[async_trait]
impl Directory for IdentityManager {
    async fn contacts(&self, spid_code: &str) -> Result<Contacts, ServiceError> {
        let request = idpb::GetSecondFactorContactsRequest { spid_code: spid_code.to_owned() };
        let c = self
            .client
            .clone()
            .get_second_factor_contacts(request)
            .await
            .map_err(|status| from_status("identity_manager", &status))?;
        let c = c.into_inner();
        let given = |s: String| (!s.is_empty()).then_some(s);
        Ok(Contacts {
            legal_person: c.identity_type() == idpb::IdentityType::ProfessionalLegalPerson,
            minor: is_minor(&c.date_of_birth, self.clock.now().date_naive()),
            active: c.status() == idpb::IdentityStatus::Active,
            mobile: given(c.mobile),
            email: given(c.email),
        })
    }
}

pub struct Notification(npb::notifications_client::NotificationsClient<tonic::transport::Channel>);

impl Notification {
    pub fn new(channel: tonic::transport::Channel) -> Self {
        Self(npb::notifications_client::NotificationsClient::new(channel))
    }
}

#[async_trait]
impl CodeSender for Notification {
    async fn send(&self, m: CodeMessage) -> Result<(), ServiceError> {
        let channel = match m.method {
            Method::Sms => npb::Channel::Sms,
            Method::Email | Method::Totp | Method::Push | Method::Qr => npb::Channel::Email,
        };
        let request = npb::SendRequest {
            channel: channel as i32,
            recipient: m.recipient,
            template: "otp-code".into(),
            locale: "it".into(),
            data: [("code".to_owned(), m.code), ("minutes".to_owned(), m.minutes.to_string())].into(),
            idempotency_key: m.idempotency_key,
            subject_id: m.spid_code,
        };
        self.0.clone().send(request).await.map_err(|status| from_status("notification", &status))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minors_are_under_eighteen_on_the_day() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        assert!(is_minor("2008-12-03", today));
        assert!(!is_minor("2008-12-02", today), "18 today");
        assert!(!is_minor("1980-01-01", today));
        assert!(!is_minor("", today), "legal persons have no birth date");
    }
}
