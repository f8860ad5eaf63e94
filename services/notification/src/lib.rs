//! notification: delivers the messages the IdP owes its holders (NOT-1..3).
//!
//! Today: the synchronous `Send` for codes, the consumer of the
//! notification topic (messages other services ask for through their
//! outbox, idempotent per event and channel), the Italian and English
//! templates, the development outbox (`GET /dev/outbox`), and a delivery
//! trace on the audit topic for every message. SMTP, PEC and SMS channels
//! and retries build on this.

mod api;
mod domain;
mod intake;
mod store;
mod templates;

use std::sync::Arc;

use spid_config::Config;
use spid_server::{CancellationToken, Deps, RunError};
use spid_types::ServiceName;

pub use domain::{Accepted, Channel, Notifier, SendMessage};

pub const SERVICE: ServiceName = ServiceName::Notification;

/// Creates or updates this service's tables.
pub async fn migrate(db: &spid_db::Db) -> Result<(), spid_db::DbError> {
    static PG: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    spid_events::migrate(db).await?;
    db.migrate("notification", &PG, &SQLITE).await
}

/// Runs the service until `shutdown`.
pub async fn run(config: &Config, deps: Deps, shutdown: CancellationToken) -> Result<(), RunError> {
    migrate(&deps.db).await?;
    let relay =
        spid_events::OutboxRelay::new(deps.db.clone(), deps.bus.clone(), deps.metrics.clone(), SERVICE.as_str());
    let notifier = Arc::new(
        Notifier::new(store::Store::new(deps.db.clone()), deps.clock.clone(), relay.clone(), config.is_dev())
            .map_err(RunError::new)?,
    );
    let consumer = spid_events::run_consumer(
        deps.bus.clone(),
        intake::CONSUMER_GROUP.to_owned(),
        vec![spid_types::topics::NOTIFICATION],
        Arc::new(intake::Intake { notifier: notifier.clone() }),
        deps.metrics.clone(),
        shutdown.clone(),
    );
    let parts = spid_server::host::ServiceParts {
        common: deps.http_common(SERVICE, deps.health()),
        http_routes: api::http_routes(notifier.clone()),
        grpc: api::grpc(notifier),
        background: vec![Box::pin(relay.run(shutdown.clone())), Box::pin(consumer)],
        listeners: deps.listeners,
    };
    spid_server::host::serve(parts, shutdown).await
}
