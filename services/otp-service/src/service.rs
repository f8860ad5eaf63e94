//! The second factor of a level-2 login: which methods an identity may
//! use, starting a challenge (and sending its code), checking the answer,
//! enrolling the authenticator app, and dropping everything of an identity
//! that is suspended or revoked — each step an audit event without codes.

use std::sync::Arc;

use async_trait::async_trait;
use spid_db::Db;
use spid_events::{EventBuilder, OutboxRelay};
use spid_proto::events::v1::SecondFactor;
use spid_types::{Clock, ErrorKind, ServiceError};

use crate::authenticator::{Authenticators, Enrolment};
use crate::challenge::{Approval, Codes, Method, Verdict};
use crate::devices::{Device, Devices, approval_message};

/// What identity-manager says about where codes may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contacts {
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub legal_person: bool,
    /// Under 18 today.
    pub minor: bool,
    pub active: bool,
}

#[async_trait]
pub trait Directory: Send + Sync {
    async fn contacts(&self, spid_code: &str) -> Result<Contacts, ServiceError>;
}

/// One code message to send.
#[derive(Clone)]
pub struct CodeMessage {
    pub method: Method,
    pub recipient: String,
    pub code: String,
    pub minutes: u64,
    /// The challenge id: a retried send does not send twice.
    pub idempotency_key: String,
    pub spid_code: String,
}

impl std::fmt::Debug for CodeMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeMessage").field("method", &self.method).finish_non_exhaustive()
    }
}

#[async_trait]
pub trait CodeSender: Send + Sync {
    /// Returns once the notification service has accepted the message.
    async fn send(&self, message: CodeMessage) -> Result<(), ServiceError>;
}

#[derive(Debug)]
pub struct Started {
    pub challenge_id: String,
    pub method: Method,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Where the code went, masked ("+39 3*******67"), or the bound app's
    /// name.
    pub masked_destination: String,
    /// QR login: what the page renders as a QR code for the app to scan.
    pub qr_payload: String,
}

/// How long a device's signed request stays fresh.
const FRESH: i64 = 120;

/// What a device signs to ask for its pending approvals.
pub fn pending_message(device_id: &str, unix_seconds: i64) -> Vec<u8> {
    format!("spid-idp pending v1\n{device_id}\n{unix_seconds}").into_bytes()
}

/// The QR payload of a QR login (OTP-4).
pub fn qr_payload(challenge_id: &str, nonce: &str) -> String {
    format!("spid-idp-qr:v1:{challenge_id}:{nonce}")
}

pub struct Otp {
    pub codes: Codes,
    pub authenticators: Authenticators,
    pub devices: Devices,
    pub directory: Arc<dyn Directory>,
    pub sender: Arc<dyn CodeSender>,
    pub db: Db,
    pub relay: OutboxRelay,
    pub clock: Arc<dyn Clock>,
}

impl Otp {
    /// The methods `spid_code` may use (OTP-1, OTP-2, OTP-5, MIN-8).
    pub async fn methods(&self, spid_code: &str) -> Result<Vec<Method>, ServiceError> {
        let c = self.directory.contacts(spid_code).await?;
        let mut methods = Vec::new();
        if c.mobile.is_some() {
            methods.push(Method::Sms);
        }
        if c.email.is_some() && (c.legal_person || (c.minor && c.mobile.is_none())) {
            methods.push(Method::Email);
        }
        if self.authenticators.has_token(spid_code).await? {
            methods.push(Method::Totp);
        }
        if self.devices.bound(spid_code).await?.is_some() {
            methods.extend([Method::Push, Method::Qr]);
        }
        Ok(methods)
    }

    /// Starts a challenge for a login in `transaction_id`.
    pub async fn start(
        &self,
        spid_code: &str,
        transaction_id: &str,
        method: Method,
        client_ip: &str,
        service_provider: &str,
    ) -> Result<Started, ServiceError> {
        let contacts = self.directory.contacts(spid_code).await?;
        if !contacts.active {
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "identity.not_active",
                "the identity is not active",
            ));
        }
        let allowed = self.methods(spid_code).await?;
        if !allowed.contains(&method) {
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "otp.method_not_allowed",
                format!("{} is not a second factor of this identity", method.as_str()),
            ));
        }
        let issued = match self.codes.issue(spid_code, transaction_id, method, client_ip, service_provider).await {
            Ok(i) => i,
            Err(e) if e.kind == ErrorKind::RateLimited => {
                self.audit(spid_code, method, "", transaction_id, "rate_limited", client_ip).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let recipient = match method {
            Method::Sms => contacts.mobile.clone(),
            Method::Email => contacts.email.clone(),
            Method::Totp | Method::Push | Method::Qr => None,
        };
        let masked_destination = match (&recipient, method) {
            (Some(r), Method::Sms) => mask_mobile(r),
            (Some(r), _) => mask_email(r),
            (None, Method::Push | Method::Qr) => {
                self.devices.bound(spid_code).await?.map(|d| d.name).unwrap_or_default()
            }
            (None, _) => String::new(),
        };
        if let Some(recipient) = recipient {
            let sent = self
                .sender
                .send(CodeMessage {
                    method,
                    recipient,
                    code: issued.code.clone(),
                    minutes: self.codes.policy().validity.as_secs().div_ceil(60),
                    idempotency_key: format!("otp:{}", issued.challenge_id),
                    spid_code: spid_code.to_owned(),
                })
                .await;
            if let Err(e) = sent {
                // A code nobody received must not stay valid.
                self.codes.discard(&issued.challenge_id).await?;
                return Err(e);
            }
        }
        self.audit(spid_code, method, &issued.challenge_id, transaction_id, "issued", client_ip).await?;
        let qr_payload =
            if method == Method::Qr { qr_payload(&issued.challenge_id, &issued.nonce) } else { String::new() };
        Ok(Started {
            challenge_id: issued.challenge_id,
            method,
            expires_at: issued.expires_at,
            masked_destination,
            qr_payload,
        })
    }

    pub async fn verify(
        &self,
        challenge_id: &str,
        transaction_id: &str,
        code: &str,
        client_ip: &str,
    ) -> Result<Verdict, ServiceError> {
        let (verdict, method, spid_code) =
            self.codes.verify(challenge_id, transaction_id, code, &self.authenticators).await?;
        let outcome = match verdict {
            Verdict::Ok => "verified",
            // Polling an approval is not an event.
            Verdict::Pending => return Ok(verdict),
            Verdict::Refused => "refused",
            Verdict::Wrong { .. } => "wrong_code",
            Verdict::Expired => "expired",
            Verdict::TooManyAttempts => "too_many_attempts",
        };
        if !spid_code.is_empty() {
            self.audit(&spid_code, method, challenge_id, transaction_id, outcome, client_ip).await?;
        }
        Ok(verdict)
    }

    pub async fn enrol(&self, spid_code: &str, account: &str) -> Result<Enrolment, ServiceError> {
        let contacts = self.directory.contacts(spid_code).await?;
        if !contacts.active {
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "identity.not_active",
                "the identity is not active",
            ));
        }
        let e = self.authenticators.enrol(spid_code, account).await?;
        self.audit(spid_code, Method::Totp, &e.token_id, "", "enrolled", "").await?;
        Ok(e)
    }

    pub async fn confirm(&self, spid_code: &str, token_id: &str, code: &str) -> Result<bool, ServiceError> {
        let ok = self.authenticators.confirm(spid_code, token_id, code).await?;
        self.audit(spid_code, Method::Totp, token_id, "", if ok { "confirmed" } else { "wrong_code" }, "").await?;
        Ok(ok)
    }

    /// A one-time code for binding the app, shown by the reserved area.
    pub async fn activation_code(&self, spid_code: &str) -> Result<String, ServiceError> {
        let contacts = self.directory.contacts(spid_code).await?;
        if !contacts.active {
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "identity.not_active",
                "the identity is not active",
            ));
        }
        self.devices.activation_code(spid_code).await
    }

    pub async fn bind(&self, activation_code: &str, key: &[u8], name: &str, pin: &str) -> Result<Device, ServiceError> {
        let unknown = || ServiceError::invalid("activation_code.invalid", "unknown or expired activation code");
        let owner = self.devices.activation_owner(activation_code).await?.ok_or_else(unknown)?;
        if !self.directory.contacts(&owner).await?.active {
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "identity.not_active",
                "the identity is not active",
            ));
        }
        let device = self.devices.bind(activation_code, key, name, pin).await?;
        self.audit(&device.spid_code, Method::Push, &device.id, "", "bound", "").await?;
        Ok(device)
    }

    /// The approvals waiting for a device; the device proves itself with a
    /// fresh signature.
    pub async fn pending(&self, device_id: &str, at: i64, signature: &[u8]) -> Result<Vec<Approval>, ServiceError> {
        if self.clock.now().timestamp().abs_diff(at) > FRESH.unsigned_abs() {
            return Err(ServiceError::invalid("request.stale", "the signed time is not within two minutes of ours"));
        }
        let Some(spid_code) =
            self.devices.verify_signature(device_id, &pending_message(device_id, at), signature).await?
        else {
            return Err(ServiceError::new(
                ErrorKind::Unauthenticated,
                "device.unknown",
                "unknown device or bad signature",
            ));
        };
        Ok(self.codes.awaiting_approval(&spid_code).await?.into_iter().collect())
    }

    /// The app's approval or refusal of a push or QR challenge, signed with
    /// its key over the challenge, its nonce and the decision.
    pub async fn decide(
        &self,
        device_id: &str,
        challenge_id: &str,
        approve: bool,
        signature: &[u8],
    ) -> Result<(), ServiceError> {
        let gone = || ServiceError::not_found("challenge.not_found", "no such challenge awaiting approval");
        let (spid_code, approval) = self.codes.approval(challenge_id).await?.ok_or_else(gone)?;
        let message = approval_message(challenge_id, &approval.nonce, approve);
        let signer = self.devices.verify_signature(device_id, &message, signature).await?;
        if signer.as_deref() != Some(spid_code.as_str()) {
            return Err(ServiceError::new(
                ErrorKind::Unauthenticated,
                "device.unknown",
                "unknown device or bad signature",
            ));
        }
        if !self.codes.decide(challenge_id, approve).await? {
            return Err(ServiceError::new(ErrorKind::FailedPrecondition, "challenge.decided", "already decided"));
        }
        let outcome = if approve { "approved" } else { "refused" };
        self.audit(&spid_code, approval.method, challenge_id, "", outcome, "").await
    }

    /// Suspension or revocation: the live challenge, every authenticator
    /// token and the bound app of the identity go; a restored identity
    /// enrols and binds again.
    pub async fn drop_identity(&self, spid_code: &str) -> Result<(), ServiceError> {
        let challenge = self.codes.drop_for(spid_code).await?;
        let tokens = self.authenticators.drop_for(spid_code).await?;
        let devices = self.devices.drop_for(spid_code).await?;
        if challenge || tokens > 0 || devices > 0 {
            self.audit(spid_code, Method::Totp, "", "", "dropped", "").await?;
        }
        Ok(())
    }

    async fn audit(
        &self,
        spid_code: &str,
        method: Method,
        reference: &str,
        transaction_id: &str,
        outcome: &str,
        client_ip: &str,
    ) -> Result<(), ServiceError> {
        let event = EventBuilder::new(crate::SERVICE.as_str(), &format!("otp.{outcome}"), spid_code, &*self.clock)
            .payload(&SecondFactor {
                spid_code: spid_code.to_owned(),
                method: method.as_str().to_owned(),
                reference: reference.to_owned(),
                transaction_id: transaction_id.to_owned(),
                outcome: outcome.to_owned(),
                client_ip: client_ip.to_owned(),
            })
            .build();
        let mut conn = self.db.pool().acquire().await.map_err(ServiceError::internal)?;
        spid_events::outbox::enqueue(&mut conn, spid_types::topics::AUDIT, &event)
            .await
            .map_err(ServiceError::internal)?;
        self.relay.wake();
        Ok(())
    }
}

/// "+39 3** *** **67": the country code, the first digit and the last two.
pub fn mask_mobile(e164: &str) -> String {
    let digits: Vec<char> = e164.trim_start_matches('+').chars().collect();
    if digits.len() < 6 {
        return "***".to_owned();
    }
    let (cc, rest) = digits.split_at(2);
    let n = rest.len();
    let shown: String = rest.iter().enumerate().map(|(i, c)| if i == 0 || i + 2 >= n { *c } else { '*' }).collect();
    format!("+{} {}", cc.iter().collect::<String>(), shown)
}

/// "m***@example.it".
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".to_owned(),
    }
}
