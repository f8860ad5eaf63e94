//! Events between services.
//!
//! - [`EventBus`]: publish and consume keyed messages, ordered per key,
//!   at least once, with consumer groups and committed offsets. Two
//!   implementations with the same semantics: [`KafkaBus`] (rdkafka) for
//!   production and [`EmbeddedBus`] (a log in a SQLite file) for the
//!   one-process development mode.
//! - [`outbox`]: events are written in the same database transaction as the
//!   state change and published by the [`OutboxRelay`], so a committed change
//!   is never lost and an uncommitted one never published.
//! - [`consumer`]: the consume loop (handle, then commit; retry on failure)
//!   and [`inbox`], which makes handlers idempotent by event id.
//! - [`envelope`]: building the `spid.events.v1.Envelope` every event uses.

mod bus;
pub mod consumer;
mod embedded;
pub mod envelope;
pub mod inbox;
mod kafka;
pub mod lifecycle;
pub mod outbox;
pub mod registry;

pub use bus::{BusError, Delivery, EventBus, OutgoingMessage, Subscription};
pub use consumer::{HandlerError, MessageHandler, run_consumer};
pub use embedded::EmbeddedBus;
pub use envelope::EventBuilder;
pub use kafka::KafkaBus;
pub use outbox::OutboxRelay;

/// Partitions per topic (both buses). Keys hash onto partitions, so one
/// aggregate's events stay in one partition and in order.
pub const PARTITIONS: i32 = 6;

/// Creates the platform tables (outbox, inbox) in a service's database.
pub async fn migrate(db: &spid_db::Db) -> Result<(), spid_db::DbError> {
    static PG: spid_db::sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    static SQLITE: spid_db::sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    db.migrate("platform", &PG, &SQLITE).await
}
