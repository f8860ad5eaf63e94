//! identity-manager: holders, identities, identity requests, credentials and
//! the lifecycle state machine (REG, IDN, VER, EMI, LC).
//!
//! Today: the service shell every feature builds on — its database with the
//! platform outbox, the outbox relay publishing lifecycle and audit events,
//! health, readiness, metrics and the gRPC server; and the first domain
//! pieces of registration: the password rules and hashing of REG-6
//! ([`password`]), the identity request state machine ([`request`]) and
//! the envelope encryption of evidence ([`evidence`]). Storage, the gRPC and
//! HTTP interfaces of registration and the credential check build on these.

pub mod application;
pub mod evidence;
pub mod identity;
pub mod notify;
pub mod password;
pub mod registration;
pub mod request;
pub mod store;
#[cfg(test)]
mod tests;

use spid_config::Config;
use spid_server::{CancellationToken, Deps, RunError};
use spid_types::ServiceName;

pub const SERVICE: ServiceName = ServiceName::IdentityManager;

pub async fn migrate(db: &spid_db::Db) -> Result<(), spid_db::DbError> {
    static PG: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    spid_events::migrate(db).await?;
    db.migrate("identity_manager", &PG, &SQLITE).await
}

pub async fn run(_config: &Config, deps: Deps, shutdown: CancellationToken) -> Result<(), RunError> {
    migrate(&deps.db).await?;
    let relay = deps.relay(SERVICE);
    let parts = spid_server::host::ServiceParts {
        common: deps.http_common(SERVICE, deps.health()),
        http_routes: |_: &mut actix_web::web::ServiceConfig| {},
        grpc: spid_server::grpc::GrpcServer::new(tonic::service::RoutesBuilder::default(), vec![]),
        background: vec![Box::pin(relay.run(shutdown.clone()))],
        listeners: deps.listeners,
    };
    spid_server::host::serve(parts, shutdown).await
}
