//! audit-log: the append-only record of what happened (AUD-1).
//!
//! Today: intake from the audit topic (idempotent by event id, committed
//! after storing) and through gRPC `Append`, and `Search`. Hash chaining,
//! daily seals, `Verify`, retention and signed extracts build on this.

mod api;
mod domain;
mod intake;
mod store;

use std::sync::Arc;

use spid_config::Config;
use spid_server::health::{BusCheck, DbCheck, Health};
use spid_server::{CancellationToken, Deps, RunError};
use spid_types::ServiceName;

pub use domain::{AuditLog, Query, Record};

pub const SERVICE: ServiceName = ServiceName::AuditLog;
/// Consumer group of the audit intake.
pub const CONSUMER_GROUP: &str = "audit-log";

pub async fn migrate(db: &spid_db::Db) -> Result<(), spid_db::DbError> {
    static PG: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    spid_events::migrate(db).await?;
    db.migrate("audit_log", &PG, &SQLITE).await
}

pub async fn run(_config: &Config, deps: Deps, shutdown: CancellationToken) -> Result<(), RunError> {
    migrate(&deps.db).await?;
    let log = Arc::new(AuditLog::new(store::Store::new(deps.db.clone()), deps.clock.clone()));
    // audit-log keeps nothing in the cache: its readiness is its database
    // and the bus.
    let health = Health::new().with(DbCheck(deps.db.clone())).with(BusCheck(deps.bus.clone()));
    let relay = deps.relay(SERVICE);
    let consumer = spid_events::run_consumer(
        deps.bus.clone(),
        CONSUMER_GROUP.to_owned(),
        vec![spid_types::topics::AUDIT],
        Arc::new(intake::Intake(log.clone())),
        deps.metrics.clone(),
        shutdown.clone(),
    );
    let parts = spid_server::host::ServiceParts {
        common: deps.http_common(SERVICE, health),
        http_routes: |_: &mut actix_web::web::ServiceConfig| {},
        grpc: api::grpc(log),
        background: vec![Box::pin(relay.run(shutdown.clone())), Box::pin(consumer)],
        listeners: deps.listeners,
    };
    spid_server::host::serve(parts, shutdown).await
}
