//! otp-service: the second factors of level 2 (OTP-1..8): SMS and e-mail
//! codes, TOTP, app binding, push and QR login.
//!
//! Today: the service shell every feature builds on — its database with the
//! platform outbox, the outbox relay publishing audit events,
//! health, readiness, metrics and the gRPC server. Challenges and bindings
//! come with their issue.

pub mod authenticator;
pub mod challenge;
pub mod keys;
pub mod totp;

use spid_config::Config;
use spid_server::{CancellationToken, Deps, RunError};
use spid_types::ServiceName;

pub const SERVICE: ServiceName = ServiceName::OtpService;

pub async fn migrate(db: &spid_db::Db) -> Result<(), spid_db::DbError> {
    static PG: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    spid_events::migrate(db).await?;
    db.migrate("otp_service", &PG, &SQLITE).await
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
