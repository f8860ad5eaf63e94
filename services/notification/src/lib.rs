//! notification: delivers the messages the IdP owes its holders (NOT-1..3).
//!
//! Messages come in through the synchronous `Send` (codes, where the caller
//! must know the message was accepted) and the consumer of the notification
//! topic (what other services ask for through their outbox; idempotent per
//! event and channel). Each is validated, rendered from its Italian or
//! English template and stored; the delivery worker then hands it to its
//! channel (e-mail and PEC over SMTP, SMS through an HTTP gateway, or the
//! development outbox), retries with backoff, dead-letters what cannot be
//! delivered for the operators, and traces every outcome on the audit
//! topic.

mod api;
mod delivery;
mod domain;
mod intake;
mod metrics;
mod policy;
mod sms;
mod smtp;
mod store;
mod templates;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use spid_config::Config;
use spid_server::{CancellationToken, Deps, RunError};
use spid_types::ServiceName;

pub use delivery::{Failure, Outgoing, RetryPolicy, Transport, Transports};
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
    let delivery = &config.delivery;
    let transports = transports(delivery).map_err(RunError::new)?;
    let store = store::Store::new(deps.db.clone());
    let wake = Arc::new(tokio::sync::Notify::new());
    let notifier = Arc::new(
        Notifier::new(
            store.clone(),
            deps.clock.clone(),
            relay.clone(),
            transports.clone(),
            wake.clone(),
            config.is_dev(),
        )
        .map_err(RunError::new)?,
    );
    let worker = delivery::Worker {
        store,
        transports,
        policy: RetryPolicy {
            max_attempts: delivery.max_attempts,
            base: delivery.retry_base,
            max: delivery.retry_max,
            lease: delivery.lease,
        },
        clock: deps.clock.clone(),
        relay: relay.clone(),
        wake,
        concurrency: delivery.concurrency,
        metrics: metrics::DeliveryMetrics::new(deps.metrics.registry()).map_err(RunError::new)?,
        keep_codes: config.is_dev(),
    };
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
        background: vec![
            Box::pin(relay.run(shutdown.clone())),
            Box::pin(consumer),
            Box::pin(worker.run(shutdown.clone())),
        ],
        listeners: deps.listeners,
    };
    spid_server::host::serve(parts, shutdown).await
}

/// The configured channels; in development, the unconfigured ones go to
/// the development outbox.
fn transports(config: &spid_config::delivery::DeliveryConfig) -> Result<Transports, String> {
    let fallback = config.dev_outbox.then(Transports::dev_outbox);
    let smtp = |c: &Option<spid_config::delivery::SmtpConfig>| -> Result<Option<Arc<dyn Transport>>, String> {
        Ok(match c {
            Some(c) => Some(Arc::new(smtp::Smtp::new(c)?)),
            None => None,
        })
    };
    let sms: Option<Arc<dyn Transport>> = match &config.sms {
        Some(c) => Some(Arc::new(sms::SmsGateway::new(c)?)),
        None => None,
    };
    Ok(Transports {
        email: smtp(&config.email)?.or_else(|| fallback.as_ref().and_then(|f| f.email.clone())),
        sms: sms.or_else(|| fallback.as_ref().and_then(|f| f.sms.clone())),
        pec: smtp(&config.pec)?.or_else(|| fallback.as_ref().and_then(|f| f.pec.clone())),
    })
}
