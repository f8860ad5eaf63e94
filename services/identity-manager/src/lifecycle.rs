//! The life of an identity after emission (LC-1…5, LC-8, MIN-7):
//! suspension, restore, revocation, each with who did it (holder,
//! operator, administrator, scheduler, the misuse detector), why (a
//! [`Cause`] from a closed list and a free text), how a holder's request
//! arrived, and the justifying document. Every transition is one
//! transaction: the state, its history row, the lifecycle event other
//! services act on (gateway sessions, second factors), the audit event,
//! the message to the holder — and, for a parent, the suspension of the
//! minors whose identity they asked for.

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
    /// The misuse detector (LC-8).
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Holder => "holder",
            ActorKind::Operator => "operator",
            ActorKind::Administrator => "administrator",
            ActorKind::Scheduler => "scheduler",
            ActorKind::System => "system",
        }
    }

    fn wire(self) -> actor::Kind {
        match self {
            ActorKind::Holder => actor::Kind::Holder,
            ActorKind::Operator => actor::Kind::Operator,
            ActorKind::Administrator => actor::Kind::Administrator,
            ActorKind::Scheduler => actor::Kind::Scheduler,
            ActorKind::System => actor::Kind::Service,
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
    pub const ALL: [Action; 3] = [Action::Suspend, Action::Restore, Action::Revoke];

    fn target(self) -> Status {
        match self {
            Action::Suspend => Status::Suspended,
            Action::Restore => Status::Active,
            Action::Revoke => Status::Revoked,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Suspend => "suspend",
            Action::Restore => "restore",
            Action::Revoke => "revoke",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The states this action may start from (LC-1: active ⇄ suspended →
    /// revoked; locked credentials count as suspended; revoked is final).
    pub(crate) fn allowed_from(self, from: Status) -> bool {
        use Status::*;
        match self {
            Action::Suspend => matches!(from, Active | CredentialsLocked),
            Action::Restore => matches!(from, Suspended | CredentialsLocked),
            Action::Revoke => matches!(from, Active | Suspended | CredentialsLocked | Expired),
        }
    }
}

/// Why a transition happens: the closed list of the rules (LC-2…5, LC-8,
/// MIN-7), beside the free-text reason told to the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The holder asked (LC-2: suspected fraud, loss, theft; LC-3: their
    /// revocation request; a reactivation or an unlock of their own).
    HolderRequest,
    /// A copy of the police report for a theft or fraud (LC-2 → LC-3).
    PoliceReport,
    /// 24 months without use (LC-3; the scheduler only).
    Inactivity,
    /// Death, verified, with the heirs' documentation (LC-3).
    Death,
    /// Extinction of the legal person (LC-3).
    LegalPersonExtinct,
    /// Illicit use of the identity (LC-3).
    IllicitUse,
    /// The contract with the holder expired (LC-3).
    ContractExpired,
    /// The registered e-mail or mobile is lost (LC-3).
    ContactsLost,
    /// The provider ceases without a successor (LC-3, LC-9).
    IdpCessation,
    /// The identity document expired (LC-4; the scheduler only).
    DocumentExpired,
    /// The misuse detector's verdict (LC-8).
    Misuse,
    /// The parent's identity was suspended or revoked (MIN-7; only as the
    /// cascade of the parent's transition).
    ParentEnded,
    /// A holder's suspension reached its 30 days (LC-2; the scheduler).
    SuspensionOver,
    /// A credentials lock reached its end (LC-5; the scheduler).
    LockOver,
    /// More than 10 consecutive wrong passwords (LC-5; the credential
    /// check's lock, recorded in the history only).
    WrongPasswords,
    /// The operator's own judgement (a suspension on suspicion, a restore
    /// after the checks).
    Other,
}

impl Cause {
    pub const ALL: [Cause; 16] = [
        Cause::HolderRequest,
        Cause::PoliceReport,
        Cause::Inactivity,
        Cause::Death,
        Cause::LegalPersonExtinct,
        Cause::IllicitUse,
        Cause::ContractExpired,
        Cause::ContactsLost,
        Cause::IdpCessation,
        Cause::DocumentExpired,
        Cause::Misuse,
        Cause::ParentEnded,
        Cause::SuspensionOver,
        Cause::LockOver,
        Cause::WrongPasswords,
        Cause::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::HolderRequest => "holder_request",
            Cause::PoliceReport => "police_report",
            Cause::Inactivity => "inactivity",
            Cause::Death => "death",
            Cause::LegalPersonExtinct => "legal_person_extinct",
            Cause::IllicitUse => "illicit_use",
            Cause::ContractExpired => "contract_expired",
            Cause::ContactsLost => "contacts_lost",
            Cause::IdpCessation => "idp_cessation",
            Cause::DocumentExpired => "document_expired",
            Cause::Misuse => "misuse",
            Cause::ParentEnded => "parent_ended",
            Cause::SuspensionOver => "suspension_over",
            Cause::LockOver => "lock_over",
            Cause::WrongPasswords => "wrong_passwords",
            Cause::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Which actors may invoke this cause for this action; `None` when the
    /// pair is allowed, otherwise why not.
    fn refusal(self, action: Action, actor: ActorKind) -> Option<&'static str> {
        use ActorKind::*;
        use Cause::*;
        let staff = matches!(actor, Operator | Administrator);
        let allowed = match (action, self) {
            (Action::Suspend, HolderRequest) => matches!(actor, Holder) || staff,
            (Action::Suspend, Misuse) => matches!(actor, System) || staff,
            (Action::Suspend, DocumentExpired) => actor == Scheduler,
            (Action::Suspend, Other) => staff,
            (Action::Revoke, HolderRequest) => matches!(actor, Holder) || staff,
            (Action::Revoke, PoliceReport) => staff,
            (Action::Revoke, Inactivity) => actor == Scheduler,
            (
                Action::Revoke,
                Death | LegalPersonExtinct | IllicitUse | ContractExpired | ContactsLost | IdpCessation,
            ) => actor == Administrator,
            (Action::Restore, HolderRequest) => matches!(actor, Holder) || staff,
            (Action::Restore, SuspensionOver | LockOver) => actor == Scheduler,
            (Action::Restore, Other) => staff,
            _ => return Some("this cause does not apply to this action"),
        };
        (!allowed).then_some("this cause is not for this actor")
    }

    /// Causes that stand only on a document (LC-3: the heirs' papers, the
    /// registry's extract, the police report).
    fn needs_document(self) -> bool {
        matches!(self, Cause::Death | Cause::LegalPersonExtinct | Cause::PoliceReport | Cause::IllicitUse)
    }
}

/// How a holder's request arrived (LC-2). Requests by PEC or digitally
/// signed prove their origin; the others are confirmed through a code sent
/// to a verified secondary attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Not a holder's request (operator, scheduler, detector).
    None,
    /// The holder's own request online (the JSON API the public site and
    /// the reserved area use), confirmed with a code.
    Online,
    /// By phone to the help desk, confirmed with a code the holder reads back.
    Phone,
    /// By PEC from the holder's registered PEC address.
    Pec,
    /// A digitally signed form.
    Signed,
}

impl Channel {
    pub const ALL: [Channel; 5] = [Channel::None, Channel::Online, Channel::Phone, Channel::Pec, Channel::Signed];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::None => "",
            Channel::Online => "online",
            Channel::Phone => "phone",
            Channel::Pec => "pec",
            Channel::Signed => "signed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the channel proves the holder's origin by itself.
    pub fn proves_origin(self) -> bool {
        matches!(self, Channel::Pec | Channel::Signed)
    }
}

/// What is asked, by whom, why.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: Action,
    pub cause: Cause,
    pub actor: ActorKind,
    pub actor_id: String,
    /// Told to the holder.
    pub reason: String,
    pub justification_ref: String,
    /// How a holder's request arrived; [`Channel::None`] otherwise.
    pub channel: Channel,
    /// Applies only if the state has not changed since this instant (the
    /// scheduler's rules chose the identity in that state).
    pub unchanged_since: Option<DateTime<Utc>>,
}

impl Change {
    /// A change by the scheduler.
    pub fn scheduled(action: Action, cause: Cause, reason: &str) -> Self {
        Self {
            action,
            cause,
            actor: ActorKind::Scheduler,
            actor_id: "scheduler".into(),
            reason: reason.into(),
            justification_ref: String::new(),
            channel: Channel::None,
            unchanged_since: None,
        }
    }

    /// The same change, only if the state has not moved since `at`.
    pub fn if_unchanged_since(self, at: DateTime<Utc>) -> Self {
        Self { unchanged_since: Some(at), ..self }
    }

    /// A suspension of an active identity that comes back by itself after
    /// 30 days (LC-2); a lock (LC-5) is not lifted by the holder's own
    /// suspension.
    fn restores_itself(&self, from: Status) -> bool {
        self.action == Action::Suspend && self.cause == Cause::HolderRequest && from == Status::Active
    }

    fn check(&self) -> Result<(), ServiceError> {
        for (name, value, max) in
            [("reason", self.reason.as_str(), MAX_TEXT), ("actor_id", self.actor_id.as_str(), 128)]
        {
            if value.trim().is_empty() || value.len() > max {
                return Err(ServiceError::invalid(
                    format!("{name}.invalid"),
                    format!("{name} is required (at most {max} characters)"),
                ));
            }
        }
        if self.justification_ref.len() > MAX_TEXT {
            return Err(ServiceError::invalid(
                "justification_ref.invalid",
                "justification_ref: at most 500 characters",
            ));
        }
        if let Some(why) = self.cause.refusal(self.action, self.actor) {
            return Err(ServiceError::new(
                ErrorKind::PermissionDenied,
                "cause.not_allowed",
                format!("{} by {} for {}: {why}", self.action.as_str(), self.actor.as_str(), self.cause.as_str()),
            ));
        }
        if self.cause.needs_document() && self.justification_ref.trim().is_empty() {
            return Err(ServiceError::invalid(
                "justification_ref.required",
                format!("{} needs the justifying document (justification_ref)", self.cause.as_str()),
            ));
        }
        let holders = self.cause == Cause::HolderRequest;
        if holders != (self.channel != Channel::None) {
            return Err(ServiceError::invalid(
                "channel.invalid",
                "a holder's request says how it arrived (channel), and only a holder's request does",
            ));
        }
        // LC-2: an operator acts on a holder's request only when its
        // origin is proven: by PEC or a signed form with its reference,
        // or by a code the holder received on a secondary attribute
        // (the holder-request flow, whose actor is the holder).
        if holders && self.actor != ActorKind::Holder {
            if !self.channel.proves_origin() {
                return Err(ServiceError::new(
                    ErrorKind::FailedPrecondition,
                    "origin.unverified",
                    "a request by phone or from the reserved area is confirmed with a code sent to the holder \
                     (idpctl identity request); PEC and signed forms are acted on directly",
                ));
            }
            if self.justification_ref.trim().is_empty() {
                return Err(ServiceError::invalid(
                    "justification_ref.required",
                    "a request by PEC or signed form names its message or document (justification_ref)",
                ));
            }
        }
        Ok(())
    }
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
    pub cause: String,
    pub channel: String,
    pub reason: String,
    pub justification_ref: String,
    pub at: DateTime<Utc>,
}

pub struct Lifecycle {
    db: Db,
    clock: Arc<dyn Clock>,
    /// Tells the outbox relay a change committed: the lifecycle event
    /// leaves at once instead of at the relay's next poll.
    wake: Option<Arc<dyn Fn() + Send + Sync>>,
}

const MAX_TEXT: usize = 500;

/// An identity's row, locked for a transition.
struct Current {
    id: String,
    spid_code: String,
    holder_id: String,
    identity_type: String,
    status: Status,
    status_changed_at: i64,
}

impl Lifecycle {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock, wake: None }
    }

    /// The same, waking the outbox relay after each change.
    pub fn waking(self, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self { wake: Some(wake), ..self }
    }

    /// Wakes the outbox relay (after a caller's own transaction committed
    /// a change made with [`Lifecycle::apply_in`]).
    pub fn wake(&self) {
        if let Some(wake) = &self.wake {
            wake();
        }
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
        .ok_or_else(not_found)?;
        let status: String = row.try_get("status").map_err(db_err)?;
        Ok(IdentityRecord {
            spid_code: row.try_get("spid_code").map_err(db_err)?,
            identity_type: row.try_get("identity_type").map_err(db_err)?,
            status: parse_status(&status)?,
            created_at: instant(row.try_get("created_at").map_err(db_err)?),
            status_changed_at: instant(row.try_get("status_changed_at").map_err(db_err)?),
        })
    }

    /// Applies a change; a bad or illegal one (revoking twice, restoring
    /// an active identity, anything after revocation, a cause the actor
    /// may not invoke, a holder restoring a suspension that was not
    /// theirs) is refused with a specific code and changes nothing.
    /// Suspending or revoking a parent suspends, in the same transaction,
    /// the minors whose identity they asked for and ends the minors'
    /// authorisations (MIN-7).
    pub async fn apply(&self, spid_code: &str, change: &Change) -> Result<IdentityRecord, ServiceError> {
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        self.apply_in(&mut tx, spid_code, change).await?;
        tx.commit().await.map_err(db_err)?;
        self.wake();
        self.get(spid_code).await
    }

    /// [`Lifecycle::apply`] inside the caller's transaction, with what
    /// else the change proves (a holder's request and its receipt).
    pub async fn apply_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        spid_code: &str,
        change: &Change,
    ) -> Result<(), ServiceError> {
        change.check()?;
        let current = current_in(&mut *tx, spid_code).await?;
        let from = current.status;
        // Staff may take a holder's own suspension over (an investigation):
        // the identity stays suspended, now for their cause, and no longer
        // comes back by itself after 30 days.
        let takeover = change.action == Action::Suspend
            && from == Status::Suspended
            && matches!(change.actor, ActorKind::Operator | ActorKind::Administrator)
            && change.cause != Cause::HolderRequest
            && current_cause_in(&mut *tx, &current).await? == Some(Cause::HolderRequest);
        if !takeover && !change.action.allowed_from(from) {
            let why = if from == Status::Revoked { " (revocation is final)" } else { "" };
            return Err(ServiceError::new(
                ErrorKind::FailedPrecondition,
                "transition.illegal",
                format!("cannot {} an identity that is {}{why}", change.action.as_str(), from.as_str()),
            ));
        }
        let legal_person = current.identity_type == "professional_legal";
        if (change.cause == Cause::LegalPersonExtinct && !legal_person)
            || (change.cause == Cause::Death && legal_person)
        {
            return Err(ServiceError::invalid(
                "cause.not_applicable",
                format!("{} does not apply to a {} identity", change.cause.as_str(), current.identity_type),
            ));
        }
        if let Some(since) = change.unchanged_since
            && since.timestamp_micros() != current.status_changed_at
        {
            return Err(changed());
        }
        let now = self.clock.now();
        if change.action == Action::Restore {
            let cause = current_cause_in(&mut *tx, &current).await?;
            check_restore(&mut *tx, &current, change, cause, now).await?;
        }
        record_in(&mut *tx, self.clock.as_ref(), &current, change, now).await?;
        let cascaded = if change.action == Action::Restore || takeover {
            vec![]
        } else {
            suspend_minors_in(&mut *tx, self.clock.as_ref(), &current.id, change, now).await?
        };
        let changed = IdentityStateChanged {
            spid_code: spid_code.to_owned(),
            previous: from.wire() as i32,
            current: change.action.target().wire() as i32,
            justification_ref: change.justification_ref.clone(),
            cascaded_spid_codes: cascaded,
        };
        let lifecycle =
            EventBuilder::new(crate::SERVICE.as_str(), event_type(change.action), &current.id, &*self.clock)
                .actor(change.actor.wire(), &change.actor_id)
                .reason(&change.reason)
                .payload(&changed)
                .build();
        spid_events::outbox::enqueue(&mut *tx, spid_types::topics::LIFECYCLE, &lifecycle).await.map_err(db_err)?;
        Ok(())
    }

    /// The identity's transitions, oldest first.
    pub async fn history(&self, spid_code: &str) -> Result<Vec<Transition>, ServiceError> {
        self.get(spid_code).await?;
        let rows = sqlx::query(
            "SELECT t.from_status, t.to_status, t.actor_kind, t.actor_id, t.cause, t.channel, t.reason,
                    t.justification_ref, t.at
             FROM identity_transitions t JOIN identities i ON i.id = t.identity_id
             WHERE i.spid_code = $1 ORDER BY t.at, t.id",
        )
        .bind(spid_code)
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let text = |c: &str| r.try_get::<String, _>(c).map_err(db_err);
                let kind = text("actor_kind")?;
                let who = text("actor_id")?;
                Ok(Transition {
                    from: parse_status(&text("from_status")?)?,
                    to: parse_status(&text("to_status")?)?,
                    actor: format!("{kind}:{who}"),
                    cause: text("cause")?,
                    channel: text("channel")?,
                    reason: text("reason")?,
                    justification_ref: text("justification_ref")?,
                    at: instant(r.try_get("at").map_err(db_err)?),
                })
            })
            .collect()
    }
}

fn changed() -> ServiceError {
    ServiceError::new(ErrorKind::FailedPrecondition, "identity.changed", "the identity changed meanwhile; look again")
}

/// What a restore needs beyond the state machine: the scheduler lifts only
/// what it may (a lock, a holder's 30-day suspension); a holder only their
/// own suspension; nobody an expired-document suspension before a valid
/// document is recorded.
async fn check_restore(
    conn: &mut sqlx::AnyConnection,
    current: &Current,
    change: &Change,
    cause: Option<Cause>,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let precondition = |code: &str, message: &str| Err(ServiceError::new(ErrorKind::FailedPrecondition, code, message));
    match change.cause {
        Cause::LockOver if current.status != Status::CredentialsLocked => {
            return precondition("transition.illegal", "only locked credentials unlock");
        }
        Cause::SuspensionOver if cause != Some(Cause::HolderRequest) => {
            return precondition("transition.illegal", "only a holder's suspension ends by itself");
        }
        Cause::HolderRequest if current.status == Status::Suspended && cause != Some(Cause::HolderRequest) => {
            return precondition(
                "restore.not_holders",
                "this suspension was not the holder's own: the help desk restores it after its checks",
            );
        }
        _ => {}
    }
    // A minor suspended with their parent may have been suspended for an
    // expired document before: the document is checked then too.
    if matches!(cause, Some(Cause::DocumentExpired | Cause::ParentEnded)) {
        let today = now.date_naive().format("%Y-%m-%d").to_string();
        let valid: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM identity_documents d WHERE d.holder_id = $1 AND d.expires_on >= $2
               AND d.added_at = (SELECT MAX(added_at) FROM identity_documents x WHERE x.holder_id = d.holder_id)",
        )
        .bind(&current.holder_id)
        .bind(today)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
        if valid == 0 {
            return precondition(
                "document.expired",
                "the identity document is still expired: record the new one first (idpctl identity document)",
            );
        }
    }
    Ok(())
}

fn not_found() -> ServiceError {
    ServiceError::not_found("identity.not_found", "no such identity")
}

fn parse_status(s: &str) -> Result<Status, ServiceError> {
    Status::parse(s).ok_or_else(|| ServiceError::internal("unknown identity status"))
}

fn event_type(action: Action) -> &'static str {
    match action {
        Action::Suspend => "identity.suspended",
        Action::Restore => "identity.restored",
        Action::Revoke => "identity.revoked",
    }
}

async fn current_in(conn: &mut sqlx::AnyConnection, spid_code: &str) -> Result<Current, ServiceError> {
    let row = sqlx::query(
        "SELECT id, spid_code, holder_id, identity_type, status, status_changed_at FROM identities WHERE spid_code = $1",
    )
        .bind(spid_code)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(not_found)?;
    current_of(&row)
}

fn current_of(row: &sqlx::any::AnyRow) -> Result<Current, ServiceError> {
    Ok(Current {
        id: row.try_get("id").map_err(db_err)?,
        spid_code: row.try_get("spid_code").map_err(db_err)?,
        holder_id: row.try_get("holder_id").map_err(db_err)?,
        identity_type: row.try_get("identity_type").map_err(db_err)?,
        status: parse_status(&row.try_get::<String, _>("status").map_err(db_err)?)?,
        status_changed_at: row.try_get("status_changed_at").map_err(db_err)?,
    })
}

/// The cause of the transition that put the identity in its current
/// state (`None` before any transition).
async fn current_cause_in(conn: &mut sqlx::AnyConnection, current: &Current) -> Result<Option<Cause>, ServiceError> {
    let cause: Option<String> = sqlx::query_scalar(
        "SELECT cause FROM identity_transitions WHERE identity_id = $1 AND at = $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(&current.id)
    .bind(current.status_changed_at)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(cause.as_deref().and_then(Cause::parse))
}

/// The state, its history row, the audit event and the message to the
/// holder; `identity.changed` when another writer moved the state first.
async fn record_in(
    conn: &mut sqlx::AnyConnection,
    clock: &dyn Clock,
    current: &Current,
    change: &Change,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let (from, to) = (current.status, change.action.target());
    let updated = sqlx::query(
        "UPDATE identities SET status = $1, status_changed_at = $2, failed_logins = 0
         WHERE id = $3 AND status = $4 AND status_changed_at = $5",
    )
    .bind(to.as_str())
    .bind(now.timestamp_micros())
    .bind(&current.id)
    .bind(from.as_str())
    .bind(current.status_changed_at)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    if updated.rows_affected() != 1 {
        return Err(changed());
    }
    sqlx::query(
        "INSERT INTO identity_transitions (id, identity_id, from_status, to_status, actor_kind, actor_id, reason,
                                           justification_ref, at, holder_request, cause, channel)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&current.id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(change.actor.as_str())
    .bind(&change.actor_id)
    .bind(&change.reason)
    .bind(&change.justification_ref)
    .bind(now.timestamp_micros())
    .bind(i64::from(change.restores_itself(from)))
    .bind(change.cause.as_str())
    .bind(change.channel.as_str())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let spid_code = &current.spid_code;
    let audit = EventBuilder::new(crate::SERVICE.as_str(), event_type(change.action), &current.id, clock)
        .actor(change.actor.wire(), &change.actor_id)
        .reason(&change.reason)
        .payload(&note(
            "identity",
            &[
                ("spid_code", spid_code),
                ("from", from.as_str()),
                ("to", to.as_str()),
                ("cause", change.cause.as_str()),
                ("channel", change.channel.as_str()),
                ("justification_ref", &change.justification_ref),
            ],
        ))
        .build();
    spid_events::outbox::enqueue(&mut *conn, spid_types::topics::AUDIT, &audit).await.map_err(db_err)?;
    let date = now.format("%d/%m/%Y %H:%M UTC").to_string();
    let minor_name;
    let (template, data): (&str, Vec<(&str, &str)>) = match (change.action, change.cause) {
        (Action::Suspend, Cause::DocumentExpired) => ("document-expired", vec![("date", &date)]),
        (Action::Suspend, Cause::ParentEnded) => {
            minor_name = holder_name_in(&mut *conn, &current.holder_id).await?;
            ("minor-suspended", vec![("minor_name", &minor_name), ("date", &date)])
        }
        (Action::Suspend, _) => ("identity-suspended", vec![("cause", &change.reason), ("date", &date)]),
        (Action::Restore, _) => ("identity-restored", vec![("date", &date)]),
        (Action::Revoke, _) => ("identity-revoked", vec![("cause", &change.reason), ("date", &date)]),
    };
    crate::notify::request_to_holder_in(conn, clock, &current.id, &current.holder_id, template, &data).await
}

async fn holder_name_in(conn: &mut sqlx::AnyConnection, holder_id: &str) -> Result<String, ServiceError> {
    let row = sqlx::query("SELECT given_name, surname FROM holders WHERE id = $1")
        .bind(holder_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let text = |c: &str| row.try_get::<Option<String>, _>(c).ok().flatten().unwrap_or_default();
    Ok(format!("{} {}", text("given_name"), text("surname")).trim().to_owned())
}

/// MIN-7: the minors whose identity `parent_id` asked for are suspended
/// (those still active or locked) and every authorisation of theirs ends.
/// Returns the spidCodes of the minors whose sessions must end.
async fn suspend_minors_in(
    conn: &mut sqlx::AnyConnection,
    clock: &dyn Clock,
    parent_id: &str,
    change: &Change,
    now: DateTime<Utc>,
) -> Result<Vec<String>, ServiceError> {
    let minors = sqlx::query(
        "SELECT i.id, i.spid_code, i.holder_id, i.identity_type, i.status, i.status_changed_at FROM guardianships g
         JOIN identities i ON i.id = g.minor_identity_id
         WHERE g.parent_identity_id = $1 AND g.ended_at IS NULL ORDER BY i.spid_code",
    )
    .bind(parent_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let verb = if change.action == Action::Revoke { "revoked" } else { "suspended" };
    let cascade = Change {
        action: Action::Suspend,
        cause: Cause::ParentEnded,
        actor: change.actor,
        actor_id: change.actor_id.clone(),
        reason: format!("the identity of the parent who asked for it was {verb} (MIN-7)"),
        justification_ref: change.justification_ref.clone(),
        channel: Channel::None,
        unchanged_since: None,
    };
    let mut ended = Vec::new();
    for m in minors {
        let minor = current_of(&m)?;
        sqlx::query(
            "UPDATE minor_authorisations SET ended_at = $1, ended_reason = 'parent_ended'
             WHERE minor_identity_id = $2 AND ended_at IS NULL",
        )
        .bind(now.timestamp_micros())
        .bind(&minor.id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        // A minor already suspended (by their own request, say) is
        // suspended again for this cause: the parent's end, not the 30
        // days of their own request, now decides when they come back.
        if minor.status == Status::Revoked {
            continue;
        }
        record_in(&mut *conn, clock, &minor, &cascade, now).await?;
        ended.push(minor.spid_code);
    }
    Ok(ended)
}
