//! The life of an identity after emission (LC-1…3): suspension,
//! restore, revocation, each with who did it (holder, operator,
//! administrator, scheduler), why, and the justifying document. Every
//! transition is one transaction: the state, its history row, the
//! lifecycle event other services act on (gateway sessions, second
//! factors), the audit event and the message to the holder.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use spid_db::Db;
use spid_events::EventBuilder;
use spid_proto::events::v1::{IdentityStateChanged, actor};
use spid_types::{Clock, ErrorKind, ServiceError};
use sqlx::Row;

use crate::identity::Status;
use crate::store::{db_err, instant, note};

/// Who acts (LC-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    Holder,
    Operator,
    Administrator,
    Scheduler,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Holder => "holder",
            ActorKind::Operator => "operator",
            ActorKind::Administrator => "administrator",
            ActorKind::Scheduler => "scheduler",
        }
    }

    fn wire(self) -> actor::Kind {
        match self {
            ActorKind::Holder => actor::Kind::Holder,
            ActorKind::Operator => actor::Kind::Operator,
            ActorKind::Administrator => actor::Kind::Administrator,
            ActorKind::Scheduler => actor::Kind::Scheduler,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Suspend,
    Restore,
    Revoke,
}

impl Action {
    fn target(self) -> Status {
        match self {
            Action::Suspend => Status::Suspended,
            Action::Restore => Status::Active,
            Action::Revoke => Status::Revoked,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Action::Suspend => "suspend",
            Action::Restore => "restore",
            Action::Revoke => "revoke",
        }
    }

    /// The states this action may start from (LC-1: active ⇄ suspended →
    /// revoked; locked credentials count as suspended; revoked is final).
    fn allowed_from(self, from: Status) -> bool {
        use Status::*;
        match self {
            Action::Suspend => matches!(from, Active | CredentialsLocked),
            Action::Restore => matches!(from, Suspended | CredentialsLocked),
            Action::Revoke => matches!(from, Active | Suspended | CredentialsLocked | Expired),
        }
    }
}

/// What is asked, by whom, why.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: Action,
    pub actor: ActorKind,
    pub actor_id: String,
    pub reason: String,
    pub justification_ref: String,
    /// A suspension the holder asked for (LC-2): restored automatically
    /// after 30 days unless revoked meanwhile.
    pub holder_request: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub spid_code: String,
    pub identity_type: String,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    pub actor: String,
    pub reason: String,
    pub justification_ref: String,
    pub at: DateTime<Utc>,
}

pub struct Lifecycle {
    db: Db,
    clock: Arc<dyn Clock>,
}

const MAX_TEXT: usize = 500;

impl Lifecycle {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    pub async fn get(&self, spid_code: &str) -> Result<IdentityRecord, ServiceError> {
        let row = sqlx::query(
            "SELECT spid_code, identity_type, status, created_at, status_changed_at FROM identities
             WHERE spid_code = $1",
        )
        .bind(spid_code)
        .fetch_optional(self.db.pool())
        .await
        .map_err(db_err)?
        .ok_or_else(|| ServiceError::not_found("identity.not_found", "no such identity"))?;
        let status: String = row.try_get("status").map_err(db_err)?;
        Ok(IdentityRecord {
            spid_code: row.try_get("spid_code").map_err(db_err)?,
            identity_type: row.try_get("identity_type").map_err(db_err)?,
            status: Status::parse(&status).ok_or_else(|| ServiceError::internal("unknown identity status"))?,
            created_at: instant(row.try_get("created_at").map_err(db_err)?),
            status_changed_at: instant(row.try_get("status_changed_at").map_err(db_err)?),
        })
    }

    /// Applies a change; an illegal one (revoking twice, restoring an
    /// active identity, anything after revocation) is refused with
    /// `transition.illegal` and changes nothing.
    pub async fn apply(&self, spid_code: &str, change: &Change) -> Result<IdentityRecord, ServiceError> {
        for (name, value, max) in
            [("reason", change.reason.as_str(), MAX_TEXT), ("actor_id", change.actor_id.as_str(), 128)]
        {
            if value.trim().is_empty() || value.len() > max {
                return Err(ServiceError::invalid(
                    format!("{name}.invalid"),
                    format!("{name} is required (at most {max} characters)"),
                ));
            }
        }
        if change.justification_ref.len() > MAX_TEXT {
            return Err(ServiceError::invalid(
                "justification_ref.invalid",
                "justification_ref: at most 500 characters",
            ));
        }
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        let row = sqlx::query("SELECT id, holder_id, status FROM identities WHERE spid_code = $1")
            .bind(spid_code)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| ServiceError::not_found("identity.not_found", "no such identity"))?;
        let id: String = row.try_get("id").map_err(db_err)?;
        let holder_id: String = row.try_get("holder_id").map_err(db_err)?;
        let from_text: String = row.try_get("status").map_err(db_err)?;
        let from = Status::parse(&from_text).ok_or_else(|| ServiceError::internal("unknown identity status"))?;
        let to = change.action.target();
        if !change.action.allowed_from(from) {
            let why = if from == Status::Revoked { " (revocation is final)" } else { "" };
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "transition.illegal",
                format!("cannot {} an identity that is {}{why}", change.action.verb(), from.as_str()),
            ));
        }
        let now = self.clock.now();
        let updated = sqlx::query(
            "UPDATE identities SET status = $1, status_changed_at = $2, failed_logins = 0
             WHERE id = $3 AND status = $4",
        )
        .bind(to.as_str())
        .bind(now.timestamp_micros())
        .bind(&id)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if updated.rows_affected() != 1 {
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "identity.changed",
                "the identity changed meanwhile; look again",
            ));
        }
        sqlx::query(
            "INSERT INTO identity_transitions (id, identity_id, from_status, to_status, actor_kind, actor_id, reason,
                                               justification_ref, at, holder_request)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(change.actor.as_str())
        .bind(&change.actor_id)
        .bind(&change.reason)
        .bind(&change.justification_ref)
        .bind(now.timestamp_micros())
        // Only a suspension of an active identity comes back by itself: a
        // lock (LC-5) is not lifted by the holder's own suspension.
        .bind(i64::from(change.holder_request && change.action == Action::Suspend && from == Status::Active))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let event_type = match change.action {
            Action::Suspend => "identity.suspended",
            Action::Restore => "identity.restored",
            Action::Revoke => "identity.revoked",
        };
        let clock = self.clock.as_ref();
        let changed = IdentityStateChanged {
            spid_code: spid_code.to_owned(),
            previous: from.wire() as i32,
            current: to.wire() as i32,
            justification_ref: change.justification_ref.clone(),
            cascaded_spid_codes: vec![],
        };
        let lifecycle = EventBuilder::new(crate::SERVICE.as_str(), event_type, &id, clock)
            .actor(change.actor.wire(), &change.actor_id)
            .reason(&change.reason)
            .payload(&changed)
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::LIFECYCLE, &lifecycle).await.map_err(db_err)?;
        let audit = EventBuilder::new(crate::SERVICE.as_str(), event_type, &id, clock)
            .actor(change.actor.wire(), &change.actor_id)
            .reason(&change.reason)
            .payload(&note(
                "identity",
                &[
                    ("spid_code", spid_code),
                    ("from", from.as_str()),
                    ("to", to.as_str()),
                    ("justification_ref", &change.justification_ref),
                ],
            ))
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &audit).await.map_err(db_err)?;
        let date = now.format("%d/%m/%Y %H:%M UTC").to_string();
        let (template, data): (&str, Vec<(&str, &str)>) = match change.action {
            Action::Suspend => ("identity-suspended", vec![("cause", &change.reason), ("date", &date)]),
            Action::Restore => ("identity-restored", vec![("date", &date)]),
            Action::Revoke => ("identity-revoked", vec![("cause", &change.reason), ("date", &date)]),
        };
        crate::notify::request_to_holder_in(&mut tx, clock, &id, &holder_id, template, &data).await?;
        tx.commit().await.map_err(db_err)?;
        self.get(spid_code).await
    }

    /// The identity's transitions, oldest first.
    pub async fn history(&self, spid_code: &str) -> Result<Vec<Transition>, ServiceError> {
        self.get(spid_code).await?;
        let rows = sqlx::query(
            "SELECT t.from_status, t.to_status, t.actor_kind, t.actor_id, t.reason, t.justification_ref, t.at
             FROM identity_transitions t JOIN identities i ON i.id = t.identity_id
             WHERE i.spid_code = $1 ORDER BY t.at, t.id",
        )
        .bind(spid_code)
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let status = |c: &str| -> Result<Status, ServiceError> {
                    let s: String = r.try_get(c).map_err(db_err)?;
                    Status::parse(&s).ok_or_else(|| ServiceError::internal("unknown identity status"))
                };
                let kind: String = r.try_get("actor_kind").map_err(db_err)?;
                let who: String = r.try_get("actor_id").map_err(db_err)?;
                Ok(Transition {
                    from: status("from_status")?,
                    to: status("to_status")?,
                    actor: format!("{kind}:{who}"),
                    reason: r.try_get("reason").map_err(db_err)?,
                    justification_ref: r.try_get("justification_ref").map_err(db_err)?,
                    at: instant(r.try_get("at").map_err(db_err)?),
                })
            })
            .collect()
    }
}

/// LC-2: a holder's suspension is restored after this long.
pub const HOLDER_SUSPENSION: chrono::Duration = chrono::Duration::days(30);
/// LC-3: an identity unused this long is revoked.
pub const INACTIVITY: chrono::Duration = chrono::Duration::days(730);
/// LC-3: days before an inactivity revocation the holder is warned.
pub const WARNINGS: [i64; 4] = [90, 30, 10, 1];

/// What one run of the scheduler did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchedulerRun {
    pub restored: usize,
    pub warned: usize,
    pub revoked: usize,
}

impl Lifecycle {
    fn scheduler(action: Action, reason: &str) -> Change {
        Change {
            action,
            actor: ActorKind::Scheduler,
            actor_id: "scheduler".into(),
            reason: reason.into(),
            justification_ref: String::new(),
            holder_request: false,
        }
    }

    /// One run of the lifecycle jobs at `now`: the 30-day restore of
    /// holders' suspensions (LC-2), the inactivity warnings 90, 30, 10 and 1
    /// days ahead, and the revocation after 24 months without use (LC-3),
    /// for active identities (a suspended holder cannot log in to prevent
    /// it; their identity follows its suspension's course).
    /// Safe with several replicas and after a crash: a transition happens
    /// once (versioned update), a warning is sent once per deadline (its
    /// notice row is the guard).
    pub async fn run_due(&self, now: DateTime<Utc>) -> Result<SchedulerRun, ServiceError> {
        let mut run = SchedulerRun::default();
        let cutoff = (now - HOLDER_SUSPENSION).timestamp_micros();
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT i.spid_code FROM identities i
             WHERE i.status = 'suspended' AND i.status_changed_at <= $1
               AND EXISTS (SELECT 1 FROM identity_transitions t
                           WHERE t.identity_id = i.id AND t.to_status = 'suspended' AND t.holder_request = 1
                             AND t.at = i.status_changed_at)",
        )
        .bind(cutoff)
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        let restore =
            Self::scheduler(Action::Restore, "restored automatically 30 days after the holder's suspension (LC-2)");
        for spid_code in due {
            if self.apply_once(&spid_code, &restore).await? {
                run.restored += 1;
            }
        }

        let first_warning = (now - INACTIVITY + chrono::Duration::days(WARNINGS[0])).timestamp_micros();
        let rows = sqlx::query(
            "SELECT id, spid_code, holder_id, last_used_at FROM identities
             WHERE status = 'active' AND last_used_at <= $1",
        )
        .bind(first_warning)
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        let revoke = Self::scheduler(Action::Revoke, "24 months without use (LC-3)");
        for r in rows {
            let id: String = r.try_get("id").map_err(db_err)?;
            let spid_code: String = r.try_get("spid_code").map_err(db_err)?;
            let holder_id: String = r.try_get("holder_id").map_err(db_err)?;
            let deadline = instant(r.try_get("last_used_at").map_err(db_err)?) + INACTIVITY;
            // Revoked only once the last warning has had its day: after an
            // outage, the holder is warned first and revoked a day later.
            if now >= deadline && self.last_warning_before(&id, deadline, now).await? {
                if self.apply_once(&spid_code, &revoke).await? {
                    run.revoked += 1;
                }
                continue;
            }
            if self.warn(&id, &holder_id, deadline, now).await? {
                run.warned += 1;
            }
        }
        Ok(run)
    }

    /// Applies a scheduled change unless the state moved on meanwhile
    /// (another replica, an operator): `false` then.
    async fn apply_once(&self, spid_code: &str, change: &Change) -> Result<bool, ServiceError> {
        match self.apply(spid_code, change).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.code.as_str(), "transition.illegal" | "identity.changed") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the 1-day warning for `deadline` went out a day or more ago.
    async fn last_warning_before(
        &self,
        id: &str,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let sent: Option<i64> =
            sqlx::query_scalar("SELECT sent_at FROM lifecycle_notices WHERE identity_id = $1 AND notice = $2")
                .bind(id)
                .bind(format!("inactivity:{}:1", deadline.timestamp()))
                .fetch_optional(self.db.pool())
                .await
                .map_err(db_err)?;
        Ok(sent.is_some_and(|at| instant(at) <= now - chrono::Duration::days(1)))
    }

    /// Sends the most urgent inactivity warning due and not yet sent for
    /// this deadline; warnings whose day passed unsent are marked sent
    /// with it (one message, not a burst after an outage).
    async fn warn(
        &self,
        id: &str,
        holder_id: &str,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let due: Vec<i64> = WARNINGS.into_iter().filter(|d| now >= deadline - chrono::Duration::days(*d)).collect();
        let Some(most_urgent) = due.iter().min().copied() else { return Ok(false) };
        // Most runs find it sent already: one read, no transaction.
        let sent: Option<i64> =
            sqlx::query_scalar("SELECT sent_at FROM lifecycle_notices WHERE identity_id = $1 AND notice = $2")
                .bind(id)
                .bind(format!("inactivity:{}:{most_urgent}", deadline.timestamp()))
                .fetch_optional(self.db.pool())
                .await
                .map_err(db_err)?;
        if sent.is_some() {
            return Ok(false);
        }
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        let mut fresh = false;
        for days in &due {
            let notice = format!("inactivity:{}:{days}", deadline.timestamp());
            let inserted = sqlx::query(
                "INSERT INTO lifecycle_notices (identity_id, notice, sent_at) VALUES ($1, $2, $3)
                 ON CONFLICT (identity_id, notice) DO NOTHING",
            )
            .bind(id)
            .bind(&notice)
            .bind(now.timestamp_micros())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if *days == most_urgent {
                fresh = inserted.rows_affected() == 1;
            }
        }
        if !fresh {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        let left = (deadline - now).num_days().clamp(1, WARNINGS[0]).to_string();
        let date = deadline.format("%d/%m/%Y").to_string();
        let data = [("days", left.as_str()), ("date", date.as_str())];
        crate::notify::request_to_holder_in(&mut tx, self.clock.as_ref(), id, holder_id, "revocation-warning", &data)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }
}

/// Runs the lifecycle jobs every `every` until `shutdown`.
pub async fn run(lifecycle: Lifecycle, every: std::time::Duration, shutdown: spid_server::CancellationToken) {
    loop {
        match lifecycle.run_due(lifecycle.clock.now()).await {
            Ok(r) if r == SchedulerRun::default() => {}
            Ok(r) => tracing::info!(restored = r.restored, warned = r.warned, revoked = r.revoked, "lifecycle jobs"),
            Err(e) => tracing::warn!(code = e.code, "lifecycle jobs failed; retrying at the next run"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
