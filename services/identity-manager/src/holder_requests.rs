//! A holder's own lifecycle requests (LC-2, LC-3, LC-5): suspend the
//! identity (suspected fraud, loss, theft), revoke it, restore the
//! holder's own suspension, unlock locked credentials.
//!
//! A request not sent by PEC or digitally signed proves its origin through
//! a verified secondary attribute: [`HolderRequests::start`] sends a code
//! to the holder's verified e-mail or mobile (the holder picks which: a
//! stolen phone must not receive it), and [`HolderRequests::confirm`]
//! acts on the request at once when the code comes back, within the same
//! transaction that records the request, the transition and the receipt.
//! The receipt — its number, when the request was received, when it was
//! acted on — is the holder's evidence of receipt: returned to the caller
//! and sent to the holder.
//!
//! Two channels use it: the holder's own (the reserved area and its JSON
//! API, [`Via::ReservedArea`]) and the help desk's phone line
//! ([`Via::Phone`]), where the operator starts the request and the holder
//! reads the code back. On the holder's own channel an unknown username,
//! or an identity the action cannot apply to, gets the same answer as a
//! real request and no message: the answer does not tell who has an
//! identity here.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use spid_types::{ErrorKind, ServiceError};
use sqlx::Row;

use crate::identity::Status;
use crate::lifecycle::{Action, ActorKind, Cause, Change, Channel, Lifecycle};
use crate::notify::Channel as Delivery;
use crate::registration::Registrar;
use crate::store::{db_err, instant};

/// How long a request waits for its code.
pub const VALIDITY: Duration = Duration::minutes(15);
/// The code's label among the holder's pending codes.
const LABEL: &str = "lifecycle";

/// Where the request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The holder, from the reserved area or its API.
    ReservedArea,
    /// The help desk, taking the holder's call.
    Phone { operator_id: String },
}

/// The secondary attribute the code goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    Email,
    Mobile,
}

impl Contact {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "email" => Some(Self::Email),
            "mobile" | "sms" => Some(Self::Mobile),
            _ => None,
        }
    }
}

/// What was asked.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The holder's username (e-mail) or spidCode.
    pub who: String,
    pub action: Action,
    /// Why, in the holder's words (told back in the receipt).
    pub reason: String,
    pub contact: Contact,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    pub request_id: String,
    /// Where the code went, masked (help desk only; empty for the holder's
    /// own channel, which does not tell whether the identity exists).
    pub sent_to: String,
    pub expires_at: DateTime<Utc>,
}

/// The evidence of receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub receipt_id: String,
    pub request_id: String,
    pub spid_code: String,
    pub action: &'static str,
    pub received_at: DateTime<Utc>,
    pub acted_at: DateTime<Utc>,
    /// The identity's state after the request.
    pub status: Status,
}

pub struct HolderRequests {
    registrar: Arc<Registrar>,
    lifecycle: Lifecycle,
}

fn unknown() -> ServiceError {
    ServiceError::new(ErrorKind::FailedPrecondition, "request.unknown", "no such request, or it expired: start again")
}

fn mask(value: &str, contact: Contact) -> String {
    match contact {
        Contact::Mobile => {
            let tail: String = value.chars().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect();
            format!("mobile ***{tail}")
        }
        Contact::Email => match value.split_once('@') {
            Some((local, domain)) => format!("e-mail {}***@{domain}", local.chars().next().unwrap_or('*')),
            None => "e-mail".into(),
        },
    }
}

impl HolderRequests {
    pub fn new(registrar: Arc<Registrar>) -> Self {
        let lifecycle = Lifecycle::new(registrar.db().clone(), registrar.clock().clone());
        Self { registrar, lifecycle }
    }

    /// Records the request and sends its code.
    pub async fn start(&self, ask: &Ask, via: &Via) -> Result<Started, ServiceError> {
        if ask.reason.trim().is_empty() || ask.reason.len() > 500 {
            return Err(ServiceError::invalid("reason.invalid", "reason is required (at most 500 characters)"));
        }
        if ask.who.trim().is_empty() || ask.who.len() > 254 {
            return Err(ServiceError::invalid("who.invalid", "the username (e-mail) or spidCode is required"));
        }
        let now = self.registrar.clock().now();
        let request_id = uuid::Uuid::now_v7().to_string();
        let expires_at = now + VALIDITY;
        let quiet = Started { request_id: request_id.clone(), sent_to: String::new(), expires_at };
        let helpdesk = matches!(via, Via::Phone { .. });
        if let Via::Phone { operator_id } = via {
            crate::backoffice::operator_in(self.registrar.db(), operator_id).await?;
        }
        let username = crate::application::normalise_email(&ask.who);
        let row = sqlx::query(
            "SELECT i.id, i.spid_code, i.holder_id, i.status, c.value AS contact FROM identities i
             LEFT JOIN contacts c ON c.holder_id = i.holder_id AND c.kind = $3 AND c.verified_at IS NOT NULL
             WHERE i.username = $1 OR i.spid_code = $2",
        )
        .bind(&username)
        .bind(ask.who.trim())
        .bind(if ask.contact == Contact::Mobile { "mobile" } else { "email" })
        .fetch_optional(self.registrar.db().pool())
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return if helpdesk {
                Err(ServiceError::not_found("identity.not_found", "no such identity"))
            } else {
                Ok(quiet)
            };
        };
        let identity_id: String = row.try_get("id").map_err(db_err)?;
        let holder_id: String = row.try_get("holder_id").map_err(db_err)?;
        let status: String = row.try_get("status").map_err(db_err)?;
        let status = Status::parse(&status).ok_or_else(|| ServiceError::internal("unknown identity status"))?;
        let applies = match ask.action {
            Action::Suspend => matches!(status, Status::Active | Status::CredentialsLocked),
            Action::Restore => matches!(status, Status::Suspended | Status::CredentialsLocked),
            Action::Revoke => !matches!(status, Status::Revoked),
        };
        if !applies {
            return if helpdesk {
                Err(ServiceError::new(
                    ErrorKind::FailedPrecondition,
                    "transition.illegal",
                    format!("cannot {} an identity that is {}", ask.action.as_str(), status.as_str()),
                ))
            } else {
                Ok(quiet)
            };
        }
        let Some(contact) = row.try_get::<Option<String>, _>("contact").map_err(db_err)? else {
            return if helpdesk {
                Err(ServiceError::new(
                    ErrorKind::FailedPrecondition,
                    "contact.unverified",
                    "the holder has no verified contact of that kind: use the other, or PEC / a signed form",
                ))
            } else {
                Ok(quiet)
            };
        };
        let (channel, operator_id) = match via {
            Via::ReservedArea => (Channel::ReservedArea, String::new()),
            Via::Phone { operator_id } => (Channel::Phone, operator_id.clone()),
        };
        // One pending request per identity: the new code replaces the old
        // one, so a code confirms only the request it was sent for.
        sqlx::query("UPDATE holder_requests SET state = 'superseded' WHERE identity_id = $1 AND state = 'pending'")
            .bind(&identity_id)
            .execute(self.registrar.db().pool())
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO holder_requests (id, identity_id, action, reason, channel, operator_id, sent_to, created_at,
                                          expires_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')",
        )
        .bind(&request_id)
        .bind(&identity_id)
        .bind(ask.action.as_str())
        .bind(ask.reason.trim())
        .bind(channel.as_str())
        .bind(&operator_id)
        .bind(mask(&contact, ask.contact))
        .bind(now.timestamp_micros())
        .bind(expires_at.timestamp_micros())
        .execute(self.registrar.db().pool())
        .await
        .map_err(db_err)?;
        let delivery = if ask.contact == Contact::Mobile { Delivery::Sms } else { Delivery::Email };
        let sent = self
            .registrar
            .issue_code_as(
                &holder_id,
                LABEL,
                (delivery, &contact),
                &identity_id,
                ("lifecycle-request-code", &[("action", ask.action.as_str())]),
            )
            .await;
        match sent {
            Ok(()) => {
                Ok(Started { sent_to: if helpdesk { mask(&contact, ask.contact) } else { String::new() }, ..quiet })
            }
            Err(e) if helpdesk => Err(e),
            Err(e) => {
                tracing::warn!(code = e.code, "holder's lifecycle request: no code sent");
                Ok(quiet)
            }
        }
    }

    /// Acts on the request when `code` is right: the transition, the
    /// request's receipt and the message carrying it, in one transaction.
    pub async fn confirm(&self, request_id: &str, code: &str) -> Result<Receipt, ServiceError> {
        if uuid::Uuid::parse_str(request_id).is_err() {
            return Err(unknown());
        }
        let row = sqlx::query(
            "SELECT r.identity_id, r.action, r.reason, r.channel, r.operator_id, r.created_at, r.expires_at, r.state,
                    i.spid_code, i.holder_id
             FROM holder_requests r JOIN identities i ON i.id = r.identity_id WHERE r.id = $1",
        )
        .bind(request_id)
        .fetch_optional(self.registrar.db().pool())
        .await
        .map_err(db_err)?
        .ok_or_else(unknown)?;
        let text = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
        let now = self.registrar.clock().now();
        if text("state")? != "pending"
            || now.timestamp_micros() > row.try_get::<i64, _>("expires_at").map_err(db_err)?
        {
            return Err(unknown());
        }
        let holder_id = text("holder_id")?;
        let spid_code = text("spid_code")?;
        let action = Action::parse(&text("action")?).ok_or_else(|| ServiceError::internal("unknown action"))?;
        let channel = Channel::parse(&text("channel")?).ok_or_else(|| ServiceError::internal("unknown channel"))?;
        self.registrar.check_code(&holder_id, LABEL, code).await?;
        let receipt_id =
            format!("RIC-{}-{}", now.format("%Y%m%d"), &uuid::Uuid::new_v4().simple().to_string()[..10]).to_uppercase();
        let operator_id = text("operator_id")?;
        let reason = text("reason")?;
        let change = Change {
            action,
            cause: Cause::HolderRequest,
            actor: ActorKind::Holder,
            actor_id: spid_code.clone(),
            reason: reason.clone(),
            justification_ref: if operator_id.is_empty() {
                format!("receipt {receipt_id}")
            } else {
                format!("receipt {receipt_id}, phone call taken by {operator_id}")
            },
            channel,
        };
        let mut tx = self.registrar.db().pool().begin().await.map_err(db_err)?;
        crate::registration::consume_code(&mut tx, &holder_id, LABEL).await?;
        let taken = sqlx::query(
            "UPDATE holder_requests SET state = 'confirmed', receipt_id = $1, confirmed_at = $2
             WHERE id = $3 AND state = 'pending'",
        )
        .bind(&receipt_id)
        .bind(now.timestamp_micros())
        .bind(request_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if taken.rows_affected() != 1 {
            return Err(unknown());
        }
        self.lifecycle.apply_in(&mut tx, &spid_code, &change).await?;
        let received_at = instant(row.try_get("created_at").map_err(db_err)?);
        let received = received_at.format("%d/%m/%Y %H:%M UTC").to_string();
        let data = [("receipt", receipt_id.as_str()), ("action", action.as_str()), ("date", received.as_str())];
        let identity_id = text("identity_id")?;
        crate::notify::request_to_holder_in(
            &mut tx,
            self.registrar.clock().as_ref(),
            &identity_id,
            &holder_id,
            "lifecycle-request-received",
            &data,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        let status = self.lifecycle.get(&spid_code).await?.status;
        Ok(Receipt {
            receipt_id,
            request_id: request_id.to_owned(),
            spid_code,
            action: action.as_str(),
            received_at,
            acted_at: now,
            status,
        })
    }
}
