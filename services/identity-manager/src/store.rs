//! Transitions of identity requests: each is checked by
//! [`crate::request::transition`], written with its history row and its
//! audit event (through the outbox) in one transaction, and refused if the
//! request changed meanwhile (optimistic version check).

use chrono::{DateTime, Utc};
use spid_db::Db;
use spid_events::EventBuilder;
use spid_proto::events::v1::{AuditNote, actor};
use spid_types::{Clock, ErrorKind, ServiceError};
use sqlx::Row;

use crate::request::{Action, Actor, RequestState, TransitionError, transition};

pub(crate) fn db_err(e: sqlx::Error) -> ServiceError {
    ServiceError::internal(e)
}

/// A stored time (microseconds since the epoch).
pub(crate) fn instant(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// An audit record without a structured payload of its own.
pub(crate) fn note(category: &str, fields: &[(&str, &str)]) -> AuditNote {
    AuditNote {
        category: category.to_owned(),
        fields: fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

pub(crate) fn state_of(s: &str) -> Result<RequestState, ServiceError> {
    RequestState::ALL
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| ServiceError::internal(format!("unknown request state {s}")))
}

pub(crate) fn actor_str(a: Actor) -> (&'static str, actor::Kind) {
    match a {
        Actor::Applicant => ("applicant", actor::Kind::Holder),
        Actor::Operator => ("operator", actor::Kind::Operator),
        Actor::Verifier => ("verifier", actor::Kind::Operator),
        Actor::Administrator => ("administrator", actor::Kind::Administrator),
        Actor::Scheduler => ("scheduler", actor::Kind::Scheduler),
        Actor::System => ("system", actor::Kind::Service),
    }
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub id: String,
    pub holder_id: String,
    pub state: RequestState,
    pub state_since: DateTime<Utc>,
    pub version: i64,
}

/// One line of a request's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Transition {
    pub version: i64,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub actor_id: String,
    pub reason: Option<String>,
}

pub struct RequestStore {
    db: Db,
}

impl RequestStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn get(&self, id: &str) -> Result<RequestRecord, ServiceError> {
        let mut conn = self.db.pool().acquire().await.map_err(db_err)?;
        get_in(&mut conn, id).await
    }

    /// Applies `action` by `actor` (`actor_id`: operator id, holder id,
    /// `scheduler`); returns the new state. Nothing changes on refusal.
    pub async fn apply(
        &self,
        id: &str,
        action: &Action,
        by: Actor,
        actor_id: &str,
        clock: &dyn Clock,
    ) -> Result<RequestState, ServiceError> {
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        let to = apply_in(&mut tx, id, action, by, actor_id, clock).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(to)
    }

    pub async fn history(&self, id: &str) -> Result<Vec<Transition>, ServiceError> {
        let rows = sqlx::query(
            "SELECT version, from_state, to_state, actor_kind, actor_id, reason FROM request_transitions
             WHERE request_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(Transition {
                    version: r.try_get("version").map_err(db_err)?,
                    from: r.try_get("from_state").map_err(db_err)?,
                    to: r.try_get("to_state").map_err(db_err)?,
                    actor: r.try_get("actor_kind").map_err(db_err)?,
                    actor_id: r.try_get("actor_id").map_err(db_err)?,
                    reason: r.try_get("reason").map_err(db_err)?,
                })
            })
            .collect()
    }
}

/// The request as stored, read inside a transaction.
pub(crate) async fn get_in(conn: &mut sqlx::AnyConnection, id: &str) -> Result<RequestRecord, ServiceError> {
    let row = sqlx::query("SELECT id, holder_id, state, state_since, version FROM identity_requests WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| ServiceError::not_found("request.not_found", "no such identity request"))?;
    record(&row)
}

fn record(row: &sqlx::any::AnyRow) -> Result<RequestRecord, ServiceError> {
    Ok(RequestRecord {
        id: row.try_get("id").map_err(db_err)?,
        holder_id: row.try_get("holder_id").map_err(db_err)?,
        state: state_of(&row.try_get::<String, _>("state").map_err(db_err)?)?,
        state_since: instant(row.try_get("state_since").map_err(db_err)?),
        version: row.try_get("version").map_err(db_err)?,
    })
}

/// [`RequestStore::apply`] inside the caller's transaction, so that what a
/// transition brings (an identity at activation) commits with it.
pub(crate) async fn apply_in(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    action: &Action,
    by: Actor,
    actor_id: &str,
    clock: &dyn Clock,
) -> Result<RequestState, ServiceError> {
    let current = get_in(conn, id).await?;
    let to = transition(current.state, action, by).map_err(|e| {
        let kind = match e {
            TransitionError::Illegal { .. } => ErrorKind::FailedPrecondition,
            TransitionError::Actor { .. } => ErrorKind::PermissionDenied,
            TransitionError::ReasonMissing => ErrorKind::InvalidInput,
        };
        ServiceError::new(kind, e.code(), e.to_string())
    })?;
    let now = clock.now();
    let reason = match action {
        Action::Deny { reason } => Some(reason.clone()),
        _ => None,
    };
    let method = match action {
        Action::StartIdentification { method } => Some(method.as_str()),
        _ => None,
    };
    let updated = sqlx::query(
        "UPDATE identity_requests SET state = $1, state_since = $2, version = version + 1,
                method = COALESCE($3, method)
         WHERE id = $4 AND version = $5",
    )
    .bind(to.as_str())
    .bind(now.timestamp_micros())
    .bind(method)
    .bind(id)
    .bind(current.version)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    if updated.rows_affected() != 1 {
        return Err(ServiceError::new(
            ErrorKind::FailedPrecondition,
            "request.conflict",
            "the request changed meanwhile; read it again",
        ));
    }
    if matches!(to, RequestState::Denied | RequestState::Lapsed) {
        // VER-3: a closed request is started again from scratch; its e-mail
        // address is free for that.
        sqlx::query("DELETE FROM contacts WHERE holder_id = $1 AND kind = 'email'")
            .bind(&current.holder_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let (actor_name, actor_kind) = actor_str(by);
    sqlx::query(
        "INSERT INTO request_transitions (request_id, version, from_state, to_state, actor_kind, actor_id, reason, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(current.version + 1)
    .bind(current.state.as_str())
    .bind(to.as_str())
    .bind(actor_name)
    .bind(actor_id)
    .bind(reason.clone())
    .bind(now.timestamp_micros())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let note = note(
        "identity_request",
        &[("from", current.state.as_str()), ("to", to.as_str()), ("holder_id", &current.holder_id)],
    );
    let mut event = EventBuilder::new(crate::SERVICE.as_str(), &format!("identity_request.{}", to.as_str()), id, clock)
        .actor(actor_kind, actor_id)
        .payload(&note);
    if let Some(r) = &reason {
        event = event.reason(r);
    }
    spid_events::outbox::enqueue(conn, spid_types::topics::AUDIT, &event.build()).await.map_err(db_err)?;
    Ok(to)
}
