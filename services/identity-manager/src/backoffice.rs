//! The operators' back office (IDN-2): operators and their roles, queues
//! of requests by state and method, a request with its evidence, and the
//! decisions — confirm an appointment, identify, approve a verification,
//! deny with a reason, ask for more documents. Every action, and every
//! look at a request or its evidence, is an audit event naming the
//! operator.
//!
//! Roles: `counter` identifies in person (IDN-1 a); `video_desk` by video
//! (b, f); `verifier` decides on the authoritative-source checks and may
//! deny; `administrator` manages operators and may deny.

use std::sync::Arc;

use serde::Serialize;
use spid_proto::events::v1::actor;
use spid_types::{ErrorKind, ServiceError};
use sqlx::Row;

use crate::identification::Identification;
use crate::notify::{Channel, request_in};
use crate::registration::Registrar;
use crate::request::{Action, Actor, Method, RequestState};
use crate::store::{self, db_err, instant, note};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Counter,
    VideoDesk,
    Verifier,
    Administrator,
}

impl Role {
    pub const ALL: [Role; 4] = [Self::Counter, Self::VideoDesk, Self::Verifier, Self::Administrator];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::VideoDesk => "video_desk",
            Self::Verifier => "verifier",
            Self::Administrator => "administrator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    fn actor(self) -> Actor {
        match self {
            Self::Counter | Self::VideoDesk => Actor::Operator,
            Self::Verifier => Actor::Verifier,
            Self::Administrator => Actor::Administrator,
        }
    }

    /// Whether this role identifies applicants by `method`.
    fn identifies(self, method: Method) -> bool {
        matches!(
            (self, method),
            (Self::Counter, Method::Counter) | (Self::VideoDesk, Method::Video | Method::VideoWithTransfer)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operator {
    pub id: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
}

/// One line of a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueItem {
    pub request_id: String,
    pub state: String,
    pub method: Option<String>,
    pub identity_type: String,
    pub channel: String,
    pub since: chrono::DateTime<chrono::Utc>,
    pub appointment: Option<chrono::DateTime<chrono::Utc>>,
    pub appointment_confirmed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceItem {
    pub id: String,
    pub kind: String,
    pub content_sha256: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceResult {
    pub source: String,
    pub verdict: String,
    pub reasons: String,
    pub reference: String,
}

/// A request as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestView {
    pub item: QueueItem,
    pub holder: serde_json::Value,
    pub contacts: Vec<crate::registration::ContactStatus>,
    pub evidence: Vec<EvidenceItem>,
    pub source_checks: Vec<SourceResult>,
    pub history: Vec<store::Transition>,
    pub documents_requested_at: Option<chrono::DateTime<chrono::Utc>>,
    pub bank_transfer: Option<String>,
}

fn denied(message: &str) -> ServiceError {
    ServiceError::new(ErrorKind::PermissionDenied, "operator.not_allowed", message)
}

/// A lifecycle change as an operator asks it (`idpctl identity`).
#[derive(Debug, Clone)]
pub struct StaffChange {
    pub action: crate::lifecycle::Action,
    /// A [`crate::lifecycle::Cause`] name; empty: `other` (required to revoke).
    pub cause: String,
    pub reason: String,
    pub justification_ref: String,
    /// How a holder's request arrived (`pec`, `signed`); empty otherwise.
    pub channel: String,
}

pub struct Backoffice {
    registrar: Arc<Registrar>,
    identification: Arc<Identification>,
}

impl Backoffice {
    pub fn new(registrar: Arc<Registrar>, identification: Arc<Identification>) -> Self {
        Self { registrar, identification }
    }

    fn db(&self) -> &spid_db::Db {
        &self.registrar.db
    }

    async fn audit(
        &self,
        op: &Operator,
        kind: &str,
        request_id: &str,
        fields: &[(&str, &str)],
    ) -> Result<(), ServiceError> {
        let mut conn = self.db().pool().acquire().await.map_err(db_err)?;
        let event = self
            .registrar
            .event(kind, request_id, actor::Kind::Operator, &op.id)
            .payload(&note("backoffice", fields))
            .build();
        spid_events::outbox::enqueue(&mut conn, spid_types::topics::AUDIT, &event).await.map_err(db_err)
    }

    /// An operator by id; unknown and disabled operators may do nothing.
    pub async fn operator(&self, id: &str) -> Result<Operator, ServiceError> {
        operator_in(self.db(), id).await
    }

    /// Suspends, restores or revokes an identity on the operator's word
    /// (LC-2, LC-3): any operator may suspend and restore (the 30-minute
    /// suspension duty); only an administrator revokes, and always names
    /// the cause. A holder's request reaches this path only by PEC or a
    /// signed form; by phone it goes through [`crate::holder_requests`].
    pub async fn change_identity(
        &self,
        op_id: &str,
        spid_code: &str,
        asked: StaffChange,
    ) -> Result<crate::lifecycle::IdentityRecord, ServiceError> {
        use crate::lifecycle::{Action, ActorKind, Cause, Change, Channel};
        let op = self.operator(op_id).await?;
        let admin = op.role == Role::Administrator;
        if asked.action == Action::Revoke && !admin {
            return Err(denied("only an administrator revokes an identity"));
        }
        let cause = match asked.cause.trim() {
            "" if asked.action == Action::Revoke => {
                let causes: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
                return Err(ServiceError::invalid(
                    "cause.required",
                    format!("a revocation names its cause, one of: {}", causes.join(", ")),
                ));
            }
            "" => Cause::Other,
            c => Cause::parse(c)
                .ok_or_else(|| ServiceError::invalid("cause.unknown", format!("unknown cause \"{c}\"")))?,
        };
        let channel = Channel::parse(asked.channel.trim()).ok_or_else(|| {
            ServiceError::invalid("channel.unknown", "channel: pec or signed (by phone: idpctl identity request)")
        })?;
        let change = Change {
            action: asked.action,
            cause,
            actor: if admin { ActorKind::Administrator } else { ActorKind::Operator },
            actor_id: op.id,
            reason: asked.reason,
            justification_ref: asked.justification_ref,
            channel,
            unchanged_since: None,
        };
        self.registrar.lifecycle().apply(spid_code, &change).await
    }

    /// Records a new identity document the holder showed (LC-4): checked
    /// like the one of the application; it becomes the identity's
    /// document, so its expiry drives the reminders and a suspension for
    /// an expired document can be restored.
    pub async fn record_document(
        &self,
        op_id: &str,
        spid_code: &str,
        document: &crate::application::IdentityDocument,
    ) -> Result<crate::lifecycle::IdentityRecord, ServiceError> {
        let op = self.operator(op_id).await?;
        let clock = self.registrar.clock();
        let now = clock.now();
        let problems = crate::application::check_identity_document(document, now.date_naive());
        if !problems.is_empty() {
            return Err(crate::registration::problems_error(&problems));
        }
        let lifecycle = self.registrar.lifecycle();
        lifecycle.get(spid_code).await?;
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        let (identity_id, holder_id): (String, String) =
            sqlx::query_as("SELECT id, holder_id FROM identities WHERE spid_code = $1")
                .bind(spid_code)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        crate::registration::insert_document_in(&mut tx, &holder_id, document, now.timestamp_micros()).await?;
        let audit = self
            .registrar
            .event("identity.document_recorded", &identity_id, actor::Kind::Operator, &op.id)
            .payload(&note(
                "identity",
                &[("spid_code", spid_code), ("kind", &document.kind), ("expires_on", &document.expires_on)],
            ))
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &audit).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        lifecycle.get(spid_code).await
    }

    /// An identity and its history, for any operator.
    pub async fn identity(
        &self,
        op_id: &str,
        spid_code: &str,
    ) -> Result<(crate::lifecycle::IdentityRecord, Vec<crate::lifecycle::Transition>), ServiceError> {
        self.operator(op_id).await?;
        let lifecycle = self.registrar.lifecycle();
        Ok((lifecycle.get(spid_code).await?, lifecycle.history(spid_code).await?))
    }

    /// Adds an operator. The first operator can only be an administrator
    /// created by the installation (`by` = `None`); afterwards only an
    /// administrator adds operators.
    pub async fn add_operator(
        &self,
        by: Option<&str>,
        id: &str,
        display_name: &str,
        role: Role,
    ) -> Result<Operator, ServiceError> {
        let existing: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM operators").fetch_one(self.db().pool()).await.map_err(db_err)?;
        let admin = match by {
            Some(by) => Some(self.operator(by).await?),
            None if existing == 0 && role == Role::Administrator => None,
            None => return Err(denied("only an administrator adds operators")),
        };
        if let Some(a) = &admin
            && a.role != Role::Administrator
        {
            return Err(denied("only an administrator adds operators"));
        }
        let id_ok =
            (3..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !id_ok || display_name.trim().is_empty() {
            return Err(ServiceError::invalid(
                "operator.invalid",
                "operator id: 3–64 letters, digits, - _ .; and a name",
            ));
        }
        let inserted = sqlx::query(
            "INSERT INTO operators (id, display_name, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(display_name.trim())
        .bind(role.as_str())
        .bind(self.registrar.clock.now().timestamp_micros())
        .execute(self.db().pool())
        .await
        .map_err(db_err)?;
        if inserted.rows_affected() == 0 {
            return Err(ServiceError::new(
                ErrorKind::AlreadyExists,
                "operator.exists",
                "an operator with this id exists",
            ));
        }
        let op = Operator { id: id.into(), display_name: display_name.trim().into(), role, disabled: false };
        let by_op = admin.unwrap_or_else(|| op.clone());
        self.audit(&by_op, "operator.added", id, &[("operator", id), ("role", role.as_str())]).await?;
        Ok(op)
    }

    pub async fn operators(&self) -> Result<Vec<Operator>, ServiceError> {
        let rows = sqlx::query("SELECT id, display_name, role, disabled_at FROM operators ORDER BY id")
            .fetch_all(self.db().pool())
            .await
            .map_err(db_err)?;
        rows.iter().map(operator_of).collect()
    }

    /// Requests by state and method, oldest first.
    pub async fn queue(
        &self,
        op_id: &str,
        state: Option<RequestState>,
        method: Option<Method>,
        limit: i64,
    ) -> Result<Vec<QueueItem>, ServiceError> {
        self.operator(op_id).await?;
        let rows = sqlx::query(
            "SELECT r.id, r.state, r.method, r.identity_type, r.channel, r.state_since, a.scheduled_at, a.confirmed_at
             FROM identity_requests r LEFT JOIN appointments a ON a.request_id = r.id
             WHERE ($1 = '' OR r.state = $1) AND ($2 = '' OR r.method = $2)
             ORDER BY r.state_since LIMIT $3",
        )
        .bind(state.map(RequestState::as_str).unwrap_or(""))
        .bind(method.map(Method::as_str).unwrap_or(""))
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.db().pool())
        .await
        .map_err(db_err)?;
        rows.iter().map(queue_item).collect()
    }

    /// A request with its holder's data, contacts, evidence, source checks
    /// and history.
    pub async fn view(&self, op_id: &str, request_id: &str) -> Result<RequestView, ServiceError> {
        let op = self.operator(op_id).await?;
        let row = sqlx::query(
            "SELECT r.id, r.state, r.method, r.identity_type, r.channel, r.state_since, r.documents_requested_at,
                    r.holder_id, a.scheduled_at, a.confirmed_at
             FROM identity_requests r LEFT JOIN appointments a ON a.request_id = r.id WHERE r.id = $1",
        )
        .bind(request_id)
        .fetch_optional(self.db().pool())
        .await
        .map_err(db_err)?
        .ok_or_else(|| ServiceError::not_found("request.not_found", "no such identity request"))?;
        let item = queue_item(&row)?;
        let holder_id: String = row.try_get("holder_id").map_err(db_err)?;
        let h = sqlx::query(
            "SELECT kind, codice_fiscale, vat_number, surname, given_name, company_name, birth_date, birthplace, sex, details
             FROM holders WHERE id = $1",
        )
        .bind(&holder_id)
        .fetch_one(self.db().pool())
        .await
        .map_err(db_err)?;
        let text = |c: &str| h.try_get::<Option<String>, _>(c).ok().flatten();
        let documents: Vec<serde_json::Value> = sqlx::query(
            "SELECT kind, number, issuer, issued_on, expires_on FROM identity_documents WHERE holder_id = $1 ORDER BY added_at",
        )
        .bind(&holder_id)
        .fetch_all(self.db().pool())
        .await
        .map_err(db_err)?
        .iter()
        .map(|d| {
            let f = |c: &str| d.try_get::<String, _>(c).unwrap_or_default();
            serde_json::json!({"kind": f("kind"), "number": f("number"), "issuer": f("issuer"),
                               "issued_on": f("issued_on"), "expires_on": f("expires_on")})
        })
        .collect();
        let holder = serde_json::json!({
            "kind": text("kind"), "codice_fiscale": text("codice_fiscale"), "vat_number": text("vat_number"),
            "surname": text("surname"), "given_name": text("given_name"), "company_name": text("company_name"),
            "birth_date": text("birth_date"), "birthplace": text("birthplace"), "sex": text("sex"),
            "details": text("details").and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok()),
            "documents": documents,
        });
        let contacts = sqlx::query("SELECT kind, value, verified_at FROM contacts WHERE holder_id = $1 ORDER BY kind")
            .bind(&holder_id)
            .fetch_all(self.db().pool())
            .await
            .map_err(db_err)?
            .iter()
            .map(|c| {
                Ok(crate::registration::ContactStatus {
                    kind: c.try_get("kind")?,
                    value: c.try_get("value")?,
                    verified: c.try_get::<Option<i64>, _>("verified_at")?.is_some(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_err)?;
        let evidence = sqlx::query(
            "SELECT id, kind, content_sha256, created_at FROM evidence WHERE request_id = $1 ORDER BY created_at",
        )
        .bind(request_id)
        .fetch_all(self.db().pool())
        .await
        .map_err(db_err)?
        .iter()
        .map(|e| {
            Ok(EvidenceItem {
                id: e.try_get("id")?,
                kind: e.try_get("kind")?,
                content_sha256: e.try_get("content_sha256")?,
                at: instant(e.try_get("created_at")?),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_err)?;
        let source_checks = sqlx::query(
            "SELECT source, verdict, reasons, reference FROM source_checks WHERE request_id = $1 ORDER BY at",
        )
        .bind(request_id)
        .fetch_all(self.db().pool())
        .await
        .map_err(db_err)?
        .iter()
        .map(|c| {
            Ok(SourceResult {
                source: c.try_get("source")?,
                verdict: c.try_get("verdict")?,
                reasons: c.try_get("reasons")?,
                reference: c.try_get("reference")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_err)?;
        let bank_transfer: Option<String> =
            sqlx::query_scalar("SELECT reference FROM bank_transfers WHERE request_id = $1")
                .bind(request_id)
                .fetch_optional(self.db().pool())
                .await
                .map_err(db_err)?;
        let history = store::RequestStore::new(self.db().clone()).history(request_id).await?;
        let documents_requested_at =
            row.try_get::<Option<i64>, _>("documents_requested_at").map_err(db_err)?.map(instant);
        self.audit(&op, "request.viewed", request_id, &[("operator", &op.id)]).await?;
        Ok(RequestView {
            item,
            holder,
            contacts,
            evidence,
            source_checks,
            history,
            documents_requested_at,
            bank_transfer,
        })
    }

    /// The content of a piece of evidence; the access is audited.
    pub async fn open_evidence(&self, op_id: &str, evidence_id: &str) -> Result<(String, Vec<u8>), ServiceError> {
        let op = self.operator(op_id).await?;
        let request_id: String = sqlx::query_scalar("SELECT request_id FROM evidence WHERE id = $1")
            .bind(evidence_id)
            .fetch_optional(self.db().pool())
            .await
            .map_err(db_err)?
            .ok_or_else(|| ServiceError::not_found("evidence.not_found", "no such evidence"))?;
        let opened = self.registrar.open_evidence(evidence_id).await?;
        self.audit(&op, "evidence.opened", &request_id, &[("evidence_id", evidence_id)]).await?;
        Ok(opened)
    }

    async fn method_of(&self, request_id: &str) -> Result<Option<Method>, ServiceError> {
        let m: Option<Option<String>> = sqlx::query_scalar("SELECT method FROM identity_requests WHERE id = $1")
            .bind(request_id)
            .fetch_optional(self.db().pool())
            .await
            .map_err(db_err)?;
        let m = m.ok_or_else(|| ServiceError::not_found("request.not_found", "no such identity request"))?;
        Ok(m.as_deref().and_then(Method::parse))
    }

    /// Confirms (or moves) the appointment of a counter or video request;
    /// the applicant is told by e-mail and SMS.
    pub async fn confirm_appointment(
        &self,
        op_id: &str,
        request_id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ServiceError> {
        let op = self.operator(op_id).await?;
        let method = self.method_of(request_id).await?;
        if !method.is_some_and(|m| op.role.identifies(m) && m != Method::VideoWithTransfer) {
            return Err(denied("this operator does not hold appointments for this method"));
        }
        if at <= self.registrar.clock.now() {
            return Err(ServiceError::invalid("appointment.in_past", "the appointment must be in the future"));
        }
        let r = self.registrar.request(request_id).await?;
        if r.state != RequestState::AwaitingIdentification {
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "appointment.not_awaiting",
                "the request is not awaiting identification",
            ));
        }
        let now = self.registrar.clock.now().timestamp_micros();
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        sqlx::query(
            "UPDATE appointments SET scheduled_at = $1, operator_id = $2, confirmed_at = $3 WHERE request_id = $4",
        )
        .bind(at.timestamp_micros())
        .bind(&op.id)
        .bind(now)
        .bind(request_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let when = at.format("%Y-%m-%d %H:%M UTC").to_string();
        for (channel, kind) in [(Channel::Email, "email"), (Channel::Sms, "mobile")] {
            notify_in(
                &mut tx,
                &self.registrar,
                request_id,
                &r.holder_id,
                kind,
                channel,
                "appointment-confirmed",
                &[("when", &when)],
            )
            .await?;
        }
        let event = self
            .registrar
            .event("appointment.confirmed", request_id, actor::Kind::Operator, &op.id)
            .payload(&note("backoffice", &[("scheduled_at", &when)]))
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// The operator identified the applicant by the request's method
    /// (IDN-1 a, b, f); what each method requires must be on record. The
    /// authoritative-source checks follow at once.
    pub async fn identify(&self, op_id: &str, request_id: &str, note_text: &str) -> Result<RequestState, ServiceError> {
        let op = self.operator(op_id).await?;
        let method = self.method_of(request_id).await?;
        let Some(method) = method.filter(|m| op.role.identifies(*m)) else {
            return Err(denied("this operator does not identify requests of this method"));
        };
        self.identification.operator_requirements(request_id, method).await?;
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        store::apply_in(&mut tx, request_id, &Action::Identify, op.role.actor(), &op.id, self.registrar.clock.as_ref())
            .await?;
        let event = self
            .registrar
            .event("identification.recorded", request_id, actor::Kind::Operator, &op.id)
            .payload(&note("identification", &[("method", method.as_str()), ("note", note_text)]))
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.identification.verify_sources(request_id).await
    }

    /// A verifier approves a request whose source checks need a human
    /// decision; the final documents are offered to the applicant.
    pub async fn approve(&self, op_id: &str, request_id: &str, reason: &str) -> Result<RequestState, ServiceError> {
        let op = self.operator(op_id).await?;
        if op.role != Role::Verifier {
            return Err(denied("only a verifier approves a verification"));
        }
        if reason.trim().is_empty() {
            return Err(ServiceError::invalid("request.reason_missing", "an approval needs a reason"));
        }
        let clock = self.registrar.clock.as_ref();
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        store::apply_in(&mut tx, request_id, &Action::Verify, Actor::Verifier, &op.id, clock).await?;
        let to = store::apply_in(&mut tx, request_id, &Action::OfferDocuments, Actor::Verifier, &op.id, clock).await?;
        let event = self
            .registrar
            .event("verification.approved", request_id, actor::Kind::Operator, &op.id)
            .reason(reason)
            .payload(&note("backoffice", &[("operator", &op.id)]))
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(db_err)?;
        let r = store::get_in(&mut tx, request_id).await?;
        notify_in(&mut tx, &self.registrar, request_id, &r.holder_id, "email", Channel::Email, "final-documents", &[])
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(to)
    }

    /// Denies a request with its reason; the applicant is told (VER-3).
    pub async fn deny(&self, op_id: &str, request_id: &str, reason: &str) -> Result<(), ServiceError> {
        let op = self.operator(op_id).await?;
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        let r = store::get_in(&mut tx, request_id).await?;
        // Read the e-mail address before the denial frees it.
        let email: Option<String> =
            sqlx::query_scalar("SELECT value FROM contacts WHERE holder_id = $1 AND kind = 'email'")
                .bind(&r.holder_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let action = Action::Deny { reason: reason.to_owned() };
        store::apply_in(&mut tx, request_id, &action, op.role.actor(), &op.id, self.registrar.clock.as_ref()).await?;
        if let Some(email) = email {
            let clock = self.registrar.clock.as_ref();
            request_in(&mut tx, clock, request_id, Channel::Email, &email, "request-denied", &[("reason", reason)])
                .await?;
        }
        tx.commit().await.map_err(db_err)
    }

    /// Asks the applicant for more documents (IDN-2); the request lapses
    /// 30 days later if they do not come (REG-9).
    pub async fn ask_documents(&self, op_id: &str, request_id: &str, what: &str) -> Result<(), ServiceError> {
        let op = self.operator(op_id).await?;
        if what.trim().is_empty() {
            return Err(ServiceError::invalid("request.reason_missing", "say which documents are needed"));
        }
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        let r = store::get_in(&mut tx, request_id).await?;
        if r.state.is_final() || r.state == RequestState::Draft {
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "request.not_open",
                "documents are asked for submitted, open requests",
            ));
        }
        sqlx::query("UPDATE identity_requests SET documents_requested_at = $1 WHERE id = $2")
            .bind(self.registrar.clock.now().timestamp_micros())
            .bind(request_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        notify_in(
            &mut tx,
            &self.registrar,
            request_id,
            &r.holder_id,
            "email",
            Channel::Email,
            "documents-requested",
            &[("documents", what)],
        )
        .await?;
        let event = self
            .registrar
            .event("documents.requested", request_id, actor::Kind::Operator, &op.id)
            .reason(what)
            .payload(&note("backoffice", &[("operator", &op.id)]))
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// Records the symbolic bank transfer of method (f).
    pub async fn record_transfer(
        &self,
        op_id: &str,
        request_id: &str,
        reference: &str,
        amount_cents: i64,
        received_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ServiceError> {
        let op = self.operator(op_id).await?;
        if !matches!(op.role, Role::VideoDesk | Role::Administrator) {
            return Err(denied("bank transfers are recorded by the video desk"));
        }
        if self.method_of(request_id).await? != Some(Method::VideoWithTransfer) {
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "transfer.wrong_method",
                "the request is not identified by video and bank transfer",
            ));
        }
        if reference.trim().is_empty() || amount_cents <= 0 {
            return Err(ServiceError::invalid("transfer.invalid", "a transfer has a reference and a positive amount"));
        }
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO bank_transfers (request_id, reference, amount_cents, received_at, recorded_by)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(request_id)
        .bind(reference.trim())
        .bind(amount_cents)
        .bind(received_at.timestamp_micros())
        .bind(&op.id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let event = self
            .registrar
            .event("bank_transfer.recorded", request_id, actor::Kind::Operator, &op.id)
            .payload(&note("backoffice", &[("reference", reference.trim())]))
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// Video session (IDN-1 b): sends the applicant an SMS code and an
    /// e-mail code that they read back to the operator on camera.
    pub async fn video_challenge(&self, op_id: &str, request_id: &str) -> Result<(), ServiceError> {
        let op = self.operator(op_id).await?;
        if op.role != Role::VideoDesk || self.method_of(request_id).await? != Some(Method::Video) {
            return Err(denied("video sessions are held by the video desk for video requests"));
        }
        self.identification.video_challenge(request_id).await?;
        self.audit(&op, "video.challenge_sent", request_id, &[("operator", &op.id)]).await
    }

    /// Checks the codes the applicant read back and keeps the recording.
    pub async fn video_session(
        &self,
        op_id: &str,
        request_id: &str,
        sms_code: &str,
        email_code: &str,
        recording: &[u8],
    ) -> Result<(), ServiceError> {
        let op = self.operator(op_id).await?;
        if op.role != Role::VideoDesk || self.method_of(request_id).await? != Some(Method::Video) {
            return Err(denied("video sessions are held by the video desk for video requests"));
        }
        self.identification.video_session(request_id, &op.id, sms_code, email_code, recording).await
    }
}

/// A message to a verified contact of the holder, through the outbox.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn notify_in(
    tx: &mut sqlx::AnyConnection,
    registrar: &Registrar,
    request_id: &str,
    holder_id: &str,
    contact: &str,
    channel: Channel,
    template: &str,
    data: &[(&str, &str)],
) -> Result<(), ServiceError> {
    let to: Option<String> = sqlx::query_scalar("SELECT value FROM contacts WHERE holder_id = $1 AND kind = $2")
        .bind(holder_id)
        .bind(contact)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
    let Some(to) = to else { return Ok(()) };
    request_in(tx, registrar.clock.as_ref(), request_id, channel, &to, template, data).await
}

/// An operator by id; unknown and disabled operators may do nothing.
pub(crate) async fn operator_in(db: &spid_db::Db, id: &str) -> Result<Operator, ServiceError> {
    let row = sqlx::query("SELECT id, display_name, role, disabled_at FROM operators WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(db_err)?
        .ok_or_else(|| ServiceError::new(ErrorKind::PermissionDenied, "operator.unknown", "unknown operator"))?;
    let op = operator_of(&row)?;
    if op.disabled {
        return Err(ServiceError::new(ErrorKind::PermissionDenied, "operator.disabled", "operator disabled"));
    }
    Ok(op)
}

fn operator_of(row: &sqlx::any::AnyRow) -> Result<Operator, ServiceError> {
    let role: String = row.try_get("role").map_err(db_err)?;
    Ok(Operator {
        id: row.try_get("id").map_err(db_err)?,
        display_name: row.try_get("display_name").map_err(db_err)?,
        role: Role::parse(&role).ok_or_else(|| ServiceError::internal("unknown operator role"))?,
        disabled: row.try_get::<Option<i64>, _>("disabled_at").map_err(db_err)?.is_some(),
    })
}

fn queue_item(row: &sqlx::any::AnyRow) -> Result<QueueItem, ServiceError> {
    Ok(QueueItem {
        request_id: row.try_get("id").map_err(db_err)?,
        state: row.try_get("state").map_err(db_err)?,
        method: row.try_get("method").map_err(db_err)?,
        identity_type: row.try_get("identity_type").map_err(db_err)?,
        channel: row.try_get("channel").map_err(db_err)?,
        since: instant(row.try_get("state_since").map_err(db_err)?),
        appointment: row.try_get::<Option<i64>, _>("scheduled_at").map_err(db_err)?.map(instant),
        appointment_confirmed: row.try_get::<Option<i64>, _>("confirmed_at").map_err(db_err)?.is_some(),
    })
}
