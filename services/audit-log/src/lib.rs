//! audit-log: the tamper-evident event log and the transaction registry
//! (AUD-1..5, EMI-3, SEC-4).
//!
//! - Intake from the audit topic in batches and through gRPC `Append`,
//!   idempotent by event id ([`intake`], [`api`]).
//! - Every record encrypted at rest with a rotating data key and chained by
//!   hash to the one before ([`crypto`], [`chain`], [`store`]); searchable
//!   fields kept only as keyed hashes ([`index`]).
//! - Each UTC day sealed by a signed, time-stamped digest; `Verify` walks
//!   chain and seals and names the first break ([`seal`], [`verify`],
//!   [`integrity`]).
//! - Retention: registry days older than the retention period removed (the
//!   removal itself recorded), evidence references kept 20 years after the
//!   identity ends.
//! - Holders' authentications and signed CSV extracts ([`extract`]).

mod api;
mod chain;
mod crypto;
mod domain;
mod extract;
mod index;
mod intake;
mod integrity;
mod keys;
mod metrics;
mod seal;
mod store;
#[cfg(test)]
mod tests;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use spid_config::Config;
use spid_server::health::{BusCheck, DbCheck, Health};
use spid_server::{CancellationToken, Deps, RunError};
use spid_types::ServiceName;

pub use domain::{AuditLog, Extract, Policy, Query, Record};
pub use integrity::{Retention, Verification};
pub use keys::{AuditKeys, KeyError};
use metrics::AuditMetrics;
pub use seal::{LocalTimestamper, NoTimestamp, Rfc3161, Timestamper};

pub const SERVICE: ServiceName = ServiceName::AuditLog;
/// Consumer group of the audit intake.
pub const CONSUMER_GROUP: &str = "audit-log";

pub async fn migrate(db: &spid_db::Db) -> Result<(), spid_db::DbError> {
    static PG: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    spid_events::migrate(db).await?;
    db.migrate("audit_log", &PG, &SQLITE).await
}

/// Builds the audit log of a process from its configuration.
pub fn open(config: &Config, db: spid_db::Db, clock: Arc<dyn spid_types::Clock>) -> Result<AuditLog, RunError> {
    let keys = Arc::new(AuditKeys::load(config.audit.keys_dir()?, config.audit.generate_keys).map_err(RunError::new)?);
    let timestamper: Arc<dyn Timestamper> = match (&config.audit.tsa_url, config.is_dev()) {
        (Some(url), _) => Arc::new(Rfc3161::new(url.clone()).map_err(RunError::new)?),
        (None, true) => Arc::new(LocalTimestamper { keys: keys.clone(), clock: clock.clone() }),
        (None, false) => {
            tracing::warn!("audit.tsa_url is not set: daily seals are signed but not time-stamped");
            Arc::new(NoTimestamp)
        }
    };
    let policy = Policy {
        retention_months: config.audit.retention_months,
        evidence_retention_years: config.audit.evidence_retention_years,
    };
    Ok(AuditLog::new(store::Store::new(db), keys, clock, timestamper, policy))
}

/// Seals finished days, then applies retention, every `interval`.
async fn run_jobs(log: Arc<AuditLog>, metrics: AuditMetrics, interval: Duration, shutdown: CancellationToken) {
    loop {
        let sealed = log.seal_days().await;
        let broken = sealed.as_ref().is_err_and(|e| e.code == integrity::CHAIN_BROKEN);
        metrics.sealed(&log.seals().await, broken);
        match sealed {
            Err(e) => tracing::error!(error = %e, "sealing failed"),
            Ok(_) => match log.apply_retention().await {
                Ok(r) => metrics.retained(&r),
                Err(e) => tracing::error!(error = %e, "retention failed"),
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

pub async fn run(config: &Config, deps: Deps, shutdown: CancellationToken) -> Result<(), RunError> {
    migrate(&deps.db).await?;
    let log = Arc::new(open(config, deps.db.clone(), deps.clock.clone())?);
    let metrics = AuditMetrics::new(deps.metrics.registry()).map_err(RunError::new)?;
    // audit-log keeps nothing in the cache: its readiness is its database
    // and the bus.
    let health = Health::new().with(DbCheck(deps.db.clone())).with(BusCheck(deps.bus.clone()));
    let relay = deps.relay(SERVICE);
    let consumer = spid_events::run_consumer(
        deps.bus.clone(),
        CONSUMER_GROUP.to_owned(),
        vec![spid_types::topics::AUDIT],
        Arc::new(intake::Intake { log: log.clone(), metrics: metrics.clone() }),
        deps.metrics.clone(),
        shutdown.clone(),
    );
    let jobs =
        run_jobs(log.clone(), metrics.clone(), Duration::from_secs(config.audit.job_interval_secs), shutdown.clone());
    let parts = spid_server::host::ServiceParts {
        common: deps.http_common(SERVICE, health),
        http_routes: |_: &mut actix_web::web::ServiceConfig| {},
        grpc: api::grpc(log, metrics),
        background: vec![Box::pin(relay.run(shutdown.clone())), Box::pin(consumer), Box::pin(jobs)],
        listeners: deps.listeners,
    };
    spid_server::host::serve(parts, shutdown).await
}
