//! The lifecycle scheduler (LC-2…5, REG-6, REG-9): one loop, every job a
//! rule over the database at an injectable `now`, so tests travel through
//! months.
//!
//! Safe with several replicas and after a crash. One replica at a time
//! holds the `lifecycle` lease and runs the jobs; a crashed replica's
//! lease passes to another once it expires, a stopped one's at once. Each job is idempotent
//! besides: a transition happens once (the versioned update of
//! [`Lifecycle::apply`]), a reminder is sent once per deadline (its
//! `lifecycle_notices` row, written with the message's outbox entry, is
//! the guard), so a run cut short resumes where it stopped.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use spid_types::ServiceError;
use sqlx::Row;

use crate::lifecycle::{Action, Cause, Change, Lifecycle};
use crate::registration::Registrar;
use crate::store::{db_err, instant};

/// LC-2: a holder's suspension is restored after this long.
pub const HOLDER_SUSPENSION: Duration = Duration::days(30);
/// LC-3: an identity unused this long is revoked.
pub const INACTIVITY: Duration = Duration::days(730);
/// LC-3: days before an inactivity revocation the holder is warned.
pub const INACTIVITY_WARNINGS: [i64; 4] = [90, 30, 10, 1];
/// LC-4: days before the identity document expires the holder is reminded.
pub const DOCUMENT_REMINDERS: [i64; 2] = [30, 7];
/// REG-6: days before the password expires the holder is reminded.
pub const PASSWORD_REMINDERS: [i64; 3] = [15, 7, 1];
/// LC-5: how long locked credentials stay locked before the scheduler
/// unlocks them (the holder may unlock sooner with a code sent to their
/// secondary attribute).
pub const LOCK_DURATION: Duration = Duration::hours(24);
/// How long a replica's lease on the jobs lasts without renewal.
const LEASE: Duration = Duration::minutes(10);

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchedulerRun {
    /// Pending requests lapsed (REG-9).
    pub lapsed: usize,
    /// Holders' suspensions restored after 30 days (LC-2).
    pub restored: usize,
    /// Locked credentials unlocked (LC-5).
    pub unlocked: usize,
    /// Inactivity warnings sent (LC-3).
    pub warned: usize,
    /// Identities revoked for inactivity (LC-3).
    pub revoked: usize,
    /// Document-expiry reminders sent (LC-4).
    pub document_reminders: usize,
    /// Identities suspended for an expired document (LC-4).
    pub document_suspensions: usize,
    /// Password-expiry reminders sent (REG-6).
    pub password_reminders: usize,
}

pub struct Scheduler {
    registrar: Arc<Registrar>,
    lifecycle: Lifecycle,
    /// This replica's name on the lease.
    replica: String,
}

/// A series of reminders before one deadline.
struct Reminders<'a> {
    /// Names the series and its deadline in `lifecycle_notices`.
    series: String,
    deadline: DateTime<Utc>,
    /// Days before the deadline, most distant first.
    marks: &'a [i64],
    template: &'static str,
}

impl Scheduler {
    pub fn new(registrar: Arc<Registrar>) -> Self {
        let lifecycle = registrar.lifecycle();
        Self { registrar, lifecycle, replica: uuid::Uuid::now_v7().to_string() }
    }

    /// Takes or renews the lease; `false` when another replica holds it.
    pub async fn lease(&self, now: DateTime<Utc>) -> Result<bool, ServiceError> {
        let pool = self.registrar.db().pool();
        let until = (now + LEASE).timestamp_micros();
        sqlx::query(
            "INSERT INTO scheduler_leases (job, holder, until) VALUES ('lifecycle', '', 0) ON CONFLICT DO NOTHING",
        )
        .execute(pool)
        .await
        .map_err(db_err)?;
        let taken = sqlx::query(
            "UPDATE scheduler_leases SET holder = $1, until = $2
             WHERE job = 'lifecycle' AND (holder = $1 OR until < $3)",
        )
        .bind(&self.replica)
        .bind(until)
        .bind(now.timestamp_micros())
        .execute(pool)
        .await
        .map_err(db_err)?;
        Ok(taken.rows_affected() == 1)
    }

    /// Gives the lease up (a clean shutdown): another replica takes over
    /// at its next run instead of waiting for the lease to expire.
    pub async fn release(&self) -> Result<(), ServiceError> {
        sqlx::query("UPDATE scheduler_leases SET until = 0 WHERE job = 'lifecycle' AND holder = $1")
            .bind(&self.replica)
            .execute(self.registrar.db().pool())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Every job, at `now`. A job that fails does not stop the others (the
    /// first error is returned after they all ran).
    pub async fn run_due(&self, now: DateTime<Utc>) -> Result<SchedulerRun, ServiceError> {
        let mut run = SchedulerRun::default();
        let mut failed = None;
        let mut note = |name: &str, outcome: Result<(), ServiceError>| {
            if let Err(e) = outcome {
                tracing::warn!(job = name, code = e.code, "lifecycle job failed; retrying at the next run");
                failed.get_or_insert(e);
            }
        };
        let lapsed = crate::lapse::lapse_due(&self.registrar, now).await;
        note("lapse", lapsed.map(|n| run.lapsed = n));
        note("holder suspensions", self.restore_holder_suspensions(now, &mut run).await);
        note("locks", self.unlock_credentials(now, &mut run).await);
        note("inactivity", self.inactivity(now, &mut run).await);
        note("documents", self.documents(now, &mut run).await);
        note("passwords", self.passwords(now, &mut run).await);
        note("codes", self.forget_expired_codes(now).await);
        failed.map_or(Ok(run), Err)
    }

    /// The identities a rule selects, each with when it entered its state.
    async fn due(
        &self,
        sql: &'static str,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, ServiceError> {
        sqlx::query(sql)
            .bind(cutoff.timestamp_micros())
            .fetch_all(self.registrar.db().pool())
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                Ok((r.try_get("spid_code").map_err(db_err)?, instant(r.try_get("status_changed_at").map_err(db_err)?)))
            })
            .collect()
    }

    /// Codes of holders' requests never confirmed (each request has its
    /// own) are dropped once expired, and the requests themselves a day
    /// later; confirmed ones stay, the evidence behind their receipts.
    async fn forget_expired_codes(&self, now: DateTime<Utc>) -> Result<(), ServiceError> {
        let pool = self.registrar.db().pool();
        sqlx::query("DELETE FROM contact_codes WHERE kind LIKE 'lifecycle:%' AND expires_at < $1")
            .bind(now.timestamp_micros())
            .execute(pool)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM holder_requests WHERE state <> 'confirmed' AND expires_at < $1")
            .bind((now - Duration::days(1)).timestamp_micros())
            .execute(pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// LC-2: a holder's suspension comes back after 30 days unless it was
    /// turned into a revocation (police report, revocation request).
    async fn restore_holder_suspensions(&self, now: DateTime<Utc>, run: &mut SchedulerRun) -> Result<(), ServiceError> {
        let due = self
            .due(
                "SELECT i.spid_code, i.status_changed_at FROM identities i
                 WHERE i.status = 'suspended' AND i.status_changed_at <= $1
                   AND EXISTS (SELECT 1 FROM identity_transitions t
                               WHERE t.identity_id = i.id AND t.to_status = 'suspended' AND t.holder_request = 1
                                 AND t.at = i.status_changed_at)",
                now - HOLDER_SUSPENSION,
            )
            .await?;
        let restore = Change::scheduled(
            Action::Restore,
            Cause::SuspensionOver,
            "restored automatically 30 days after the holder's suspension",
        );
        for (spid_code, since) in due {
            run.restored += usize::from(self.apply_once(&spid_code, &restore.clone().if_unchanged_since(since)).await);
        }
        Ok(())
    }

    /// LC-5: locked credentials unlock after [`LOCK_DURATION`].
    async fn unlock_credentials(&self, now: DateTime<Utc>, run: &mut SchedulerRun) -> Result<(), ServiceError> {
        let due = self
            .due(
                "SELECT spid_code, status_changed_at FROM identities
                 WHERE status = 'credentials_locked' AND status_changed_at <= $1",
                now - LOCK_DURATION,
            )
            .await?;
        let unlock = Change::scheduled(Action::Restore, Cause::LockOver, "credentials unlocked after 24 hours");
        for (spid_code, since) in due {
            run.unlocked += usize::from(self.apply_once(&spid_code, &unlock.clone().if_unchanged_since(since)).await);
        }
        Ok(())
    }

    /// LC-3: warnings 90, 30, 10 and 1 days ahead, then revocation after 24
    /// months without use, for active identities (a suspended holder cannot
    /// log in to prevent it; their identity follows its suspension's course).
    async fn inactivity(&self, now: DateTime<Utc>, run: &mut SchedulerRun) -> Result<(), ServiceError> {
        let first_warning = now - INACTIVITY + Duration::days(INACTIVITY_WARNINGS[0]);
        let rows = sqlx::query(
            "SELECT id, spid_code, holder_id, last_used_at, status_changed_at FROM identities
             WHERE status = 'active' AND last_used_at <= $1",
        )
        .bind(first_warning.timestamp_micros())
        .fetch_all(self.registrar.db().pool())
        .await
        .map_err(db_err)?;
        let revoke = Change::scheduled(Action::Revoke, Cause::Inactivity, "24 months without use");
        for r in rows {
            let (id, spid_code, holder_id) = ids(&r)?;
            let deadline = instant(r.try_get("last_used_at").map_err(db_err)?) + INACTIVITY;
            let reminders = Reminders {
                series: format!("inactivity:{}", deadline.timestamp()),
                deadline,
                marks: &INACTIVITY_WARNINGS,
                template: "revocation-warning",
            };
            // Revoked only once the last warning has had its day: after an
            // outage, the holder is warned first and revoked a day later.
            if now >= deadline && self.last_reminder_before(&id, &reminders, now - Duration::days(1)).await? {
                let since = instant(r.try_get("status_changed_at").map_err(db_err)?);
                let last_used: i64 = r.try_get("last_used_at").map_err(db_err)?;
                let change = revoke.clone().if_unchanged_since(since);
                run.revoked += usize::from(self.revoke_if_unused(&spid_code, &id, last_used, &change).await);
                continue;
            }
            let date = deadline.format("%d/%m/%Y").to_string();
            let left = days_left(deadline, now).clamp(1, INACTIVITY_WARNINGS[0]).to_string();
            let data = [("days", left.as_str()), ("date", date.as_str())];
            run.warned += usize::from(self.remind(&id, &holder_id, &reminders, now, &data).await);
        }
        Ok(())
    }

    /// LC-4: reminders 30 and 7 days before the holder's latest identity
    /// document expires; at expiry (the day after its last day of
    /// validity, UTC) the identity is suspended and the holder told why —
    /// never without a reminder a week before: a document found already
    /// expired (after an outage, at the first run) gets its reminder first.
    /// A new document (a later `added_at`) starts a new series.
    async fn documents(&self, now: DateTime<Utc>, run: &mut SchedulerRun) -> Result<(), ServiceError> {
        let horizon = (now + Duration::days(DOCUMENT_REMINDERS[0])).date_naive().format("%Y-%m-%d").to_string();
        let rows = sqlx::query(
            "SELECT i.id, i.spid_code, i.holder_id, i.status_changed_at, d.expires_on FROM identities i
             JOIN identity_documents d ON d.holder_id = i.holder_id
             WHERE i.status = 'active' AND d.expires_on <= $1
               AND d.added_at = (SELECT MAX(added_at) FROM identity_documents x WHERE x.holder_id = i.holder_id)",
        )
        .bind(horizon)
        .fetch_all(self.registrar.db().pool())
        .await
        .map_err(db_err)?;
        let suspend = Change::scheduled(Action::Suspend, Cause::DocumentExpired, "identity document expired");
        for r in rows {
            let (id, spid_code, holder_id) = ids(&r)?;
            let expires_on: String = r.try_get("expires_on").map_err(db_err)?;
            let Ok(last_day) = NaiveDate::parse_from_str(&expires_on, "%Y-%m-%d") else {
                tracing::warn!(identity = %id, "identity document with an unreadable expiry date");
                continue;
            };
            let Some(deadline) = last_day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc()) else {
                continue;
            };
            let reminders = Reminders {
                series: format!("document:{expires_on}"),
                deadline,
                marks: &DOCUMENT_REMINDERS,
                template: "document-expiry-reminder",
            };
            if now >= deadline && self.last_reminder_before(&id, &reminders, now - Duration::days(7)).await? {
                let since = instant(r.try_get("status_changed_at").map_err(db_err)?);
                let change = suspend.clone().if_unchanged_since(since);
                run.document_suspensions += usize::from(self.apply_once(&spid_code, &change).await);
                continue;
            }
            let date = last_day.format("%d/%m/%Y").to_string();
            // When it will be suspended: at expiry, or a week after this
            // reminder if that is later (a document found late).
            let suspension = deadline.max(now + Duration::days(7)).format("%d/%m/%Y").to_string();
            let data = [("expiry_date", date.as_str()), ("suspension_date", suspension.as_str())];
            run.document_reminders += usize::from(self.remind(&id, &holder_id, &reminders, now, &data).await);
        }
        Ok(())
    }

    /// REG-6: reminders 15, 7 and 1 days before the current password
    /// expires. At expiry the login itself enforces the change (the
    /// credential check answers "password expired" and the gateway asks
    /// for a new one).
    async fn passwords(&self, now: DateTime<Utc>, run: &mut SchedulerRun) -> Result<(), ServiceError> {
        let validity = Duration::days(crate::password::VALIDITY_DAYS);
        let first = now - validity + Duration::days(PASSWORD_REMINDERS[0]);
        let rows = sqlx::query(
            "SELECT i.id, i.spid_code, i.holder_id, c.set_at FROM identities i
             JOIN credentials c ON c.holder_id = i.holder_id
             WHERE i.status = 'active' AND c.set_at <= $1 AND c.set_at > $2
               AND c.seq = (SELECT MAX(seq) FROM credentials x WHERE x.holder_id = i.holder_id)",
        )
        .bind(first.timestamp_micros())
        .bind((now - validity).timestamp_micros())
        .fetch_all(self.registrar.db().pool())
        .await
        .map_err(db_err)?;
        for r in rows {
            let (id, _, holder_id) = ids(&r)?;
            let deadline = crate::password::expires_at(instant(r.try_get("set_at").map_err(db_err)?));
            if now >= deadline {
                continue;
            }
            let reminders = Reminders {
                series: format!("password:{}", deadline.timestamp()),
                deadline,
                marks: &PASSWORD_REMINDERS,
                template: "password-expiry-reminder",
            };
            let date = deadline.format("%d/%m/%Y").to_string();
            let data = [("expiry_date", date.as_str())];
            run.password_reminders += usize::from(self.remind(&id, &holder_id, &reminders, now, &data).await);
        }
        Ok(())
    }

    /// Applies a scheduled change unless the state moved on meanwhile
    /// (another replica, an operator): `false` then. A failure is logged
    /// and the job goes on with the next identity.
    async fn apply_once(&self, spid_code: &str, change: &Change) -> bool {
        skip_or_log(self.lifecycle.apply(spid_code, change).await.map(|_| true))
    }

    /// LC-3's revocation, only if the identity is still unused: a login
    /// between the rule's choice and now (the holder answering the last
    /// warning) keeps it. The check and the revocation share a
    /// transaction, the check's write holding the row.
    async fn revoke_if_unused(&self, spid_code: &str, id: &str, last_used: i64, change: &Change) -> bool {
        let attempt = async {
            let mut tx = self.registrar.db().pool().begin().await.map_err(db_err)?;
            let unused =
                sqlx::query("UPDATE identities SET last_used_at = last_used_at WHERE id = $1 AND last_used_at = $2")
                    .bind(id)
                    .bind(last_used)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if unused.rows_affected() != 1 {
                return Ok(false);
            }
            self.lifecycle.apply_in(&mut tx, spid_code, change).await?;
            tx.commit().await.map_err(db_err)?;
            self.lifecycle.wake();
            Ok(true)
        };
        skip_or_log(attempt.await)
    }

    /// Whether the series' last reminder went out at or before `by`.
    async fn last_reminder_before(
        &self,
        id: &str,
        reminders: &Reminders<'_>,
        by: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let last = reminders.marks.iter().min().copied().unwrap_or_default();
        let sent: Option<i64> =
            sqlx::query_scalar("SELECT sent_at FROM lifecycle_notices WHERE identity_id = $1 AND notice = $2")
                .bind(id)
                .bind(format!("{}:{last}", reminders.series))
                .fetch_optional(self.registrar.db().pool())
                .await
                .map_err(db_err)?;
        Ok(sent.is_some_and(|at| instant(at) <= by))
    }

    /// Sends the most urgent reminder of the series that is due and not yet
    /// sent; reminders whose day passed unsent are marked sent with it (one
    /// message, not a burst after an outage). `true` when one was sent.
    async fn remind(
        &self,
        id: &str,
        holder_id: &str,
        reminders: &Reminders<'_>,
        now: DateTime<Utc>,
        data: &[(&str, &str)],
    ) -> bool {
        skip_or_log(self.remind_once(id, holder_id, reminders, now, data).await)
    }

    async fn remind_once(
        &self,
        id: &str,
        holder_id: &str,
        reminders: &Reminders<'_>,
        now: DateTime<Utc>,
        data: &[(&str, &str)],
    ) -> Result<bool, ServiceError> {
        let due: Vec<i64> =
            reminders.marks.iter().copied().filter(|d| now >= reminders.deadline - Duration::days(*d)).collect();
        let Some(most_urgent) = due.iter().min().copied() else { return Ok(false) };
        let pool = self.registrar.db().pool();
        // Most runs find it sent already: one read, no transaction.
        let sent: Option<i64> =
            sqlx::query_scalar("SELECT sent_at FROM lifecycle_notices WHERE identity_id = $1 AND notice = $2")
                .bind(id)
                .bind(format!("{}:{most_urgent}", reminders.series))
                .fetch_optional(pool)
                .await
                .map_err(db_err)?;
        if sent.is_some() {
            return Ok(false);
        }
        let mut tx = pool.begin().await.map_err(db_err)?;
        let mut fresh = false;
        for days in &due {
            let inserted = sqlx::query(
                "INSERT INTO lifecycle_notices (identity_id, notice, sent_at) VALUES ($1, $2, $3)
                 ON CONFLICT (identity_id, notice) DO NOTHING",
            )
            .bind(id)
            .bind(format!("{}:{days}", reminders.series))
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
        let clock = self.registrar.clock().as_ref();
        crate::notify::request_to_holder_in(&mut tx, clock, id, holder_id, reminders.template, data).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }
}

/// Whole days until `deadline`, counting a part day as a day (a warning
/// sent in the afternoon of the 30th day before says 30).
fn days_left(deadline: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    ((deadline - now).num_seconds().max(0) + 86_399) / 86_400
}

/// A scheduled change's outcome: a state that moved on meanwhile is a
/// skip; any other failure is logged, and the job goes on.
fn skip_or_log(outcome: Result<bool, ServiceError>) -> bool {
    match outcome {
        Ok(done) => done,
        Err(e) if matches!(e.code.as_str(), "transition.illegal" | "identity.changed" | "document.expired") => false,
        Err(e) => {
            tracing::warn!(code = e.code, "a scheduled lifecycle change failed; retrying at the next run");
            false
        }
    }
}

fn ids(r: &sqlx::any::AnyRow) -> Result<(String, String, String), ServiceError> {
    Ok((
        r.try_get("id").map_err(db_err)?,
        r.try_get("spid_code").map_err(db_err)?,
        r.try_get("holder_id").map_err(db_err)?,
    ))
}

/// Runs the jobs every `every` until `shutdown`, on the replica holding
/// the lease.
pub async fn run(scheduler: Scheduler, every: std::time::Duration, shutdown: spid_server::CancellationToken) {
    loop {
        let now = scheduler.registrar.clock().now();
        match scheduler.lease(now).await {
            Ok(true) => match scheduler.run_due(now).await {
                Ok(r) if r != SchedulerRun::default() => tracing::info!(?r, "lifecycle jobs"),
                _ => {}
            },
            Ok(false) => {}
            Err(e) => tracing::warn!(code = e.code, "scheduler lease unavailable; retrying at the next run"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                if let Err(e) = scheduler.release().await {
                    tracing::warn!(code = e.code, "scheduler lease not released; it expires by itself");
                }
                return;
            }
            _ = tokio::time::sleep(every) => {}
        }
    }
}
