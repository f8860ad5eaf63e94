//! authn-gateway: the public face of the IdP — SAML 2.0 (SPID profile) and
//! OpenID Connect endpoints, login, second-factor and consent pages, the
//! service-provider registry (SAML, LOA, AUD-2).
//!
//! Today: the public HTTP origin with health, readiness (including the
//! services it calls: identity-manager, otp-service, notification) and
//! metrics, and, in development mode, `GET /dev/outbox`, which shows the
//! messages the notification service kept instead of sending them.

mod dev;

use spid_config::Config;
use spid_server::grpc::channel;
use spid_server::health::PeerCheck;
use spid_server::{CancellationToken, Deps, RunError};
use spid_types::ServiceName;

pub const SERVICE: ServiceName = ServiceName::AuthnGateway;

/// The services the gateway calls.
const PEERS: [ServiceName; 3] = [ServiceName::IdentityManager, ServiceName::OtpService, ServiceName::Notification];

pub async fn migrate(db: &spid_db::Db) -> Result<(), spid_db::DbError> {
    spid_events::migrate(db).await
}

pub async fn run(config: &Config, deps: Deps, shutdown: CancellationToken) -> Result<(), RunError> {
    migrate(&deps.db).await?;
    let mut health = deps.health();
    for peer in PEERS {
        let setting = format!("{}.grpc_url", peer.key());
        let ch = channel(&setting, config.service(peer).grpc_url.as_str()).map_err(RunError::new)?;
        health = health.with(PeerCheck { name: peer.as_str().to_owned(), channel: ch });
    }
    let notification = channel("notification.grpc_url", config.service(ServiceName::Notification).grpc_url.as_str())
        .map_err(RunError::new)?;
    let relay =
        spid_events::OutboxRelay::new(deps.db.clone(), deps.bus.clone(), deps.metrics.clone(), SERVICE.as_str());
    let routes = dev::routes(config.is_dev().then(|| spid_server::grpc::peer(notification)));
    let parts = spid_server::host::ServiceParts {
        common: deps.http_common(SERVICE, health),
        http_routes: routes,
        grpc: spid_server::grpc::GrpcServer::new(tonic::service::RoutesBuilder::default(), vec![]),
        background: vec![Box::pin(relay.run(shutdown.clone()))],
        listeners: deps.listeners,
    };
    spid_server::host::serve(parts, shutdown).await
}
