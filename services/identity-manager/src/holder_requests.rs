//! A holder's own lifecycle requests (LC-2, LC-3).
//!
//! A request not sent by PEC or digitally signed proves its origin through
//! a verified secondary attribute: a code goes to the holder's verified
//! e-mail or mobile (the holder picks which: a stolen phone must not
//! receive it), and the request is acted on at once when the code comes
//! back, in the transaction that records the request, the transition and
//! the receipt. The receipt — its number, when the request was received,
//! when it was acted on — is the holder's evidence of receipt: returned to
//! the caller and sent to the holder. Each request has its own code, so a
//! code confirms only the request it was sent for.
//!
//! Two channels:
//!
//! - **Online** ([`Via::Online`], the JSON API): the emergency only — a
//!   suspension, with the code by e-mail. Someone who knows a username and
//!   holds a stolen phone must not be able to lift a suspension or revoke,
//!   nor make us send SMS. The answer to a start is immediate and the same
//!   whether or not the identity exists or the suspension applies (the
//!   work happens after the answer, a bounded number at a time); a failed
//!   code is always the same `code.refused`. Starts are limited per client
//!   network and per identity, and online codes have their own daily
//!   budget per address, so no one can use up the holder's other codes.
//! - **Phone** ([`Via::Phone`], the help desk): the operator starts the
//!   request, the holder reads the code back, the same operator confirms.
//!   Suspension, and the restore of a suspension the holder confirmed with
//!   a code, on the contact that confirmed it. A revocation — final — is
//!   taken only by PEC or a signed form.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use spid_types::{ErrorKind, ServiceError};
use sqlx::Row;

use crate::identity::Status;
use crate::lifecycle::{Action, ActorKind, Cause, Change, Channel, Lifecycle};
use crate::notify::Channel as Delivery;
use crate::registration::{CodeMessage, Registrar};
use crate::store::{db_err, instant};

/// How long a request waits for its code.
pub const VALIDITY: Duration = Duration::minutes(15);
/// Online starts one client network may make per hour.
pub const ONLINE_STARTS_PER_HOUR: u64 = 10;
/// Online requests one identity may receive per hour (codes sent).
pub const ONLINE_REQUESTS_PER_IDENTITY: u64 = 3;
/// Online starts worked on at once; beyond, a start is answered and
/// dropped (the answer does not change).
const ONLINE_IN_FLIGHT: usize = 16;

/// Where the request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The holder, online; the client's address as the ingress reports it.
    Online { client: Option<IpAddr> },
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

    fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Mobile => "mobile",
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
    /// Where the code went, masked (help desk only; empty online).
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
    in_flight: Arc<tokio::sync::Semaphore>,
}

fn precondition(code: &str, message: &str) -> ServiceError {
    ServiceError::new(ErrorKind::FailedPrecondition, code, message)
}

/// Online, every failed confirmation looks the same.
fn refused() -> ServiceError {
    ServiceError::invalid(
        "code.refused",
        "the code is not right, or the request expired or was already used: check the code or start again",
    )
}

fn unknown() -> ServiceError {
    precondition("request.unknown", "no such request, or it expired: start again")
}

fn label(request_id: &str) -> String {
    format!("lifecycle:{request_id}")
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
        let lifecycle = registrar.lifecycle();
        Self { registrar, lifecycle, in_flight: Arc::new(tokio::sync::Semaphore::new(ONLINE_IN_FLIGHT)) }
    }

    /// Records the request and sends its code. Online, the answer comes
    /// before the work and says nothing about the identity.
    pub async fn start(self: &Arc<Self>, ask: &Ask, via: &Via) -> Result<Started, ServiceError> {
        if ask.reason.trim().is_empty() || ask.reason.len() > 500 {
            return Err(ServiceError::invalid("reason.invalid", "reason is required (at most 500 characters)"));
        }
        if ask.who.trim().is_empty() || ask.who.len() > 254 {
            return Err(ServiceError::invalid("holder.invalid", "the username (e-mail) or spidCode is required"));
        }
        let request_id = uuid::Uuid::now_v7().to_string();
        let expires_at = self.registrar.clock().now() + VALIDITY;
        let started = Started { request_id: request_id.clone(), sent_to: String::new(), expires_at };
        match via {
            Via::Online { client } => {
                if ask.action != Action::Suspend {
                    return Err(ServiceError::invalid(
                        "action.not_online",
                        "online a holder can only suspend; to restore, call the help desk; to revoke, send a PEC \
                         or a signed form",
                    ));
                }
                if ask.contact != Contact::Email {
                    return Err(ServiceError::invalid(
                        "contact.not_online",
                        "online the code goes by e-mail; for a code by SMS, call the help desk",
                    ));
                }
                self.limit(*client).await?;
                // Beyond the bound the start is dropped: the answer is the same.
                if let Ok(permit) = self.in_flight.clone().try_acquire_owned() {
                    let this = self.clone();
                    let ask = ask.clone();
                    tokio::spawn(async move {
                        if let Err(e) = this.open(&ask, Channel::Online, "", &request_id).await {
                            tracing::info!(code = e.code, "online holder request: no code sent");
                        }
                        drop(permit);
                    });
                } else {
                    tracing::warn!("online holder requests: too many at once, one dropped");
                }
                Ok(started)
            }
            Via::Phone { operator_id } => {
                let op = crate::backoffice::operator_in(self.registrar.db(), operator_id).await?;
                if ask.action == Action::Revoke {
                    return Err(ServiceError::invalid(
                        "action.not_by_phone",
                        "a revocation is final: it is taken by PEC or on a signed form, not by phone",
                    ));
                }
                let sent_to = self.open(ask, Channel::Phone, &op.id, &request_id).await?;
                Ok(Started { sent_to, ..started })
            }
        }
    }

    /// Online starts per client network (IPv4 /24, IPv6 /64) and hour.
    async fn limit(&self, client: Option<IpAddr>) -> Result<(), ServiceError> {
        let network = client.map(crate::misuse::network).unwrap_or_else(|| "unknown".into());
        if self.count(&format!("holder-requests:from:{network}")).await? > ONLINE_STARTS_PER_HOUR {
            return Err(ServiceError::new(
                ErrorKind::RateLimited,
                "requests.rate_limited",
                "too many requests from this network: try again later or call the help desk",
            ));
        }
        Ok(())
    }

    /// Counts one more under `key` this hour.
    async fn count(&self, key: &str) -> Result<u64, ServiceError> {
        self.registrar.cache().increment(key, std::time::Duration::from_secs(3600)).await.map_err(|e| {
            tracing::warn!(error = %e, "cache unavailable: online holder requests refused");
            ServiceError::unavailable("requests.unavailable", "requests cannot be taken now; call the help desk")
        })
    }

    /// Checks the request against the identity, records it and sends its
    /// code; returns where the code went (masked).
    async fn open(
        &self,
        ask: &Ask,
        channel: Channel,
        operator_id: &str,
        request_id: &str,
    ) -> Result<String, ServiceError> {
        let username = crate::application::normalise_email(&ask.who);
        let row = sqlx::query(
            "SELECT i.id, i.spid_code, i.holder_id, i.status, c.value AS contact FROM identities i
             LEFT JOIN contacts c ON c.holder_id = i.holder_id AND c.kind = $3 AND c.verified_at IS NOT NULL
             WHERE i.username = $1 OR i.spid_code = $2",
        )
        .bind(&username)
        .bind(ask.who.trim())
        .bind(ask.contact.as_str())
        .fetch_optional(self.registrar.db().pool())
        .await
        .map_err(db_err)?
        .ok_or_else(|| ServiceError::not_found("identity.not_found", "no such identity"))?;
        let identity_id: String = row.try_get("id").map_err(db_err)?;
        let spid_code: String = row.try_get("spid_code").map_err(db_err)?;
        let holder_id: String = row.try_get("holder_id").map_err(db_err)?;
        let status: String = row.try_get("status").map_err(db_err)?;
        let status = Status::parse(&status).ok_or_else(|| ServiceError::internal("unknown identity status"))?;
        if !ask.action.allowed_from(status) {
            return Err(precondition(
                "transition.illegal",
                &format!("cannot {} an identity that is {}", ask.action.as_str(), status.as_str()),
            ));
        }
        if ask.action == Action::Restore {
            self.check_restore(&spid_code, status, ask.contact).await?;
        }
        if channel == Channel::Online
            && self.count(&format!("holder-requests:for:{identity_id}")).await? > ONLINE_REQUESTS_PER_IDENTITY
        {
            return Err(ServiceError::new(ErrorKind::RateLimited, "requests.rate_limited", "too many requests"));
        }
        let contact: String = row.try_get::<Option<String>, _>("contact").map_err(db_err)?.ok_or_else(|| {
            precondition(
                "contact.unverified",
                "the holder has no verified contact of that kind: use the other, or PEC / a signed form",
            )
        })?;
        let now = self.registrar.clock().now();
        let sent_to = mask(&contact, ask.contact);
        sqlx::query(
            "INSERT INTO holder_requests (id, identity_id, action, reason, channel, operator_id, contact, sent_to,
                                          created_at, expires_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending')",
        )
        .bind(request_id)
        .bind(&identity_id)
        .bind(ask.action.as_str())
        .bind(ask.reason.trim())
        .bind(channel.as_str())
        .bind(operator_id)
        .bind(ask.contact.as_str())
        .bind(&sent_to)
        .bind(now.timestamp_micros())
        .bind((now + VALIDITY).timestamp_micros())
        .execute(self.registrar.db().pool())
        .await
        .map_err(db_err)?;
        let delivery = if ask.contact == Contact::Mobile { Delivery::Sms } else { Delivery::Email };
        let message = CodeMessage {
            template: "lifecycle-request-code",
            data: &[("action", ask.action.as_str())],
            // Online codes count against their own budget; the help desk's
            // against none: an attacker's starts cannot block the holder.
            budget: (channel == Channel::Online).then_some("lifecycle-codes-to"),
        };
        let sent = self
            .registrar
            .issue_code_as(&holder_id, &label(request_id), (delivery, &contact), &identity_id, message)
            .await;
        if let Err(e) = sent {
            sqlx::query("UPDATE holder_requests SET state = 'failed' WHERE id = $1")
                .bind(request_id)
                .execute(self.registrar.db().pool())
                .await
                .map_err(db_err)?;
            return Err(e);
        }
        Ok(sent_to)
    }

    /// A holder restores only their own suspension, made with a code, and
    /// with a code on the contact that confirmed it: whoever holds the
    /// other (a stolen phone) cannot lift it. A suspension asked by PEC or
    /// signed form is lifted the same way it came.
    async fn check_restore(&self, spid_code: &str, status: Status, contact: Contact) -> Result<(), ServiceError> {
        if status != Status::Suspended {
            return Ok(());
        }
        // The transition that suspended it, and the request it acted on.
        let row = sqlx::query(
            "SELECT t.cause, t.channel, r.contact FROM identities i
             JOIN identity_transitions t ON t.identity_id = i.id AND t.at = i.status_changed_at
             LEFT JOIN holder_requests r
                    ON r.identity_id = i.id AND r.state = 'confirmed' AND r.confirmed_at = i.status_changed_at
             WHERE i.spid_code = $1
             ORDER BY t.id DESC LIMIT 1",
        )
        .bind(spid_code)
        .fetch_optional(self.registrar.db().pool())
        .await
        .map_err(db_err)?;
        let text = |c: &str| row.as_ref().and_then(|r| r.try_get::<Option<String>, _>(c).ok().flatten());
        if text("cause").as_deref() != Some(Cause::HolderRequest.as_str()) {
            return Err(precondition(
                "restore.not_holders",
                "this suspension was not the holder's own: the help desk restores it after its checks",
            ));
        }
        if !matches!(text("channel").as_deref(), Some("online" | "phone")) {
            return Err(precondition(
                "restore.by_document",
                "the suspension was asked by PEC or on a signed form: its restore is asked the same way",
            ));
        }
        if text("contact").as_deref() != Some(contact.as_str()) {
            return Err(precondition(
                "contact.not_trusted",
                "the suspension was confirmed on the other contact: the restore is confirmed there too",
            ));
        }
        Ok(())
    }

    /// Acts on the request when `code` is right: the transition, the
    /// request's receipt and the message carrying it, in one transaction.
    /// A request is confirmed on the channel it came from (and by phone,
    /// by the operator who took the call).
    /// Online, every failure before the code is accepted is the same
    /// `code.refused`; what happens after (the identity changed meanwhile)
    /// is told as it is.
    pub async fn confirm(&self, request_id: &str, code: &str, via: &Via) -> Result<Receipt, ServiceError> {
        let online = matches!(via, Via::Online { .. });
        let hide = |e: ServiceError| if online { refused() } else { e };
        if uuid::Uuid::parse_str(request_id).is_err() {
            return Err(hide(unknown()));
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
        .ok_or_else(|| hide(unknown()))?;
        let text = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
        let channel = Channel::parse(&text("channel")?).ok_or_else(|| ServiceError::internal("unknown channel"))?;
        let operator_id = text("operator_id")?;
        let same_channel = match via {
            Via::Online { .. } => channel == Channel::Online,
            Via::Phone { operator_id: op } => channel == Channel::Phone && *op == operator_id,
        };
        let now = self.registrar.clock().now();
        if !same_channel
            || text("state")? != "pending"
            || now.timestamp_micros() > row.try_get::<i64, _>("expires_at").map_err(db_err)?
        {
            return Err(hide(unknown()));
        }
        let holder_id = text("holder_id")?;
        let spid_code = text("spid_code")?;
        let action = Action::parse(&text("action")?).ok_or_else(|| ServiceError::internal("unknown action"))?;
        self.registrar.check_code(&holder_id, &label(request_id), code).await.map_err(|e| match e.kind {
            ErrorKind::InvalidInput | ErrorKind::FailedPrecondition => hide(e),
            _ => e,
        })?;
        let receipt_id =
            format!("RIC-{}-{}", now.format("%Y%m%d"), &uuid::Uuid::new_v4().simple().to_string()[..10]).to_uppercase();
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
            unchanged_since: None,
        };
        let mut tx = self.registrar.db().pool().begin().await.map_err(db_err)?;
        crate::registration::consume_code(&mut tx, &holder_id, &label(request_id)).await?;
        self.lifecycle.apply_in(&mut tx, &spid_code, &change).await?;
        // Confirmed at the instant of the transition it made: the link a
        // later restore follows to the contact that confirmed it.
        let taken = sqlx::query(
            "UPDATE holder_requests SET state = 'confirmed', receipt_id = $1,
                    confirmed_at = (SELECT status_changed_at FROM identities WHERE id = holder_requests.identity_id)
             WHERE id = $2 AND state = 'pending'",
        )
        .bind(&receipt_id)
        .bind(request_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if taken.rows_affected() != 1 {
            return Err(unknown());
        }
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
        self.lifecycle.wake();
        let record = self.lifecycle.get(&spid_code).await?;
        Ok(Receipt {
            receipt_id,
            request_id: request_id.to_owned(),
            spid_code,
            action: action.as_str(),
            received_at,
            acted_at: record.status_changed_at,
            status: record.status,
        })
    }
}
