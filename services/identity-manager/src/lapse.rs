//! The lapse of pending requests (REG-9, REG-7): 30 days without
//! identification, 30 days after more documents were asked for, 10 days
//! without the bank transfer of method (f), 15 minutes for the final steps
//! of an assisted registration; a job of the [`crate::scheduler`]. Safe with several replicas: a request
//! lapses through the versioned transition, so only one replica's write
//! wins and the others skip it.

use chrono::{DateTime, Utc};
use spid_types::ServiceError;
use sqlx::Row;

use crate::backoffice::notify_in;
use crate::notify::Channel;
use crate::registration::Registrar;
use crate::request::{Action, Actor, Method, Pending, lapse_deadline};
use crate::store::{self, db_err, state_of};

/// Lapses every open request whose deadline has passed at `now`; returns
/// how many lapsed.
pub async fn lapse_due(registrar: &Registrar, now: DateTime<Utc>) -> Result<usize, ServiceError> {
    let rows = sqlx::query(
        "SELECT id, holder_id, state, state_since, method, documents_requested_at, channel FROM identity_requests
         WHERE state NOT IN ('active', 'denied', 'lapsed')",
    )
    .fetch_all(registrar.db.pool())
    .await
    .map_err(db_err)?;
    let mut lapsed = 0;
    for row in rows {
        let micros =
            |c: &str| row.try_get::<Option<i64>, _>(c).ok().flatten().and_then(DateTime::from_timestamp_micros);
        let pending = Pending {
            state: state_of(&row.try_get::<String, _>("state").map_err(db_err)?)?,
            since: micros("state_since").unwrap_or_default(),
            method: row.try_get::<Option<String>, _>("method").map_err(db_err)?.as_deref().and_then(Method::parse),
            documents_requested_at: micros("documents_requested_at"),
            assisted: row.try_get::<String, _>("channel").map_err(db_err)? == "counter",
        };
        if lapse_deadline(&pending).is_none_or(|d| d > now) {
            continue;
        }
        let id: String = row.try_get("id").map_err(db_err)?;
        let holder_id: String = row.try_get("holder_id").map_err(db_err)?;
        let mut tx = registrar.db.pool().begin().await.map_err(db_err)?;
        // Read before the lapse frees the address.
        let notified =
            notify_in(&mut tx, registrar, &id, &holder_id, "email", Channel::Email, "request-lapsed", &[]).await;
        match store::apply_in(&mut tx, &id, &Action::Lapse, Actor::Scheduler, "scheduler", registrar.clock.as_ref())
            .await
        {
            Ok(_) => {
                notified?;
                tx.commit().await.map_err(db_err)?;
                lapsed += 1;
            }
            // Another replica lapsed it, or it moved on meanwhile.
            Err(e) if e.code == "request.conflict" || e.code == "request.illegal_transition" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(lapsed)
}
