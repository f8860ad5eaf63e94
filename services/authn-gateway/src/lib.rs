//! authn-gateway: the public face of the IdP — the SAML 2.0 identity
//! provider of the SPID profile (SAML-1…9, LOA-1…5, AUD-2).
//!
//! - [`request`]: the two bindings and every check of the anomaly table
//!   ([`anomaly`]), on hardened XML with signature checks that cannot be
//!   wrapped (`spid-xml`).
//! - [`login`]: the login transaction — password, second factor at level
//!   2, consent, level-1 sessions — and the transaction registry records.
//! - [`response`]: the signed Response and Assertion; [`metadata`]: the
//!   signed IdP metadata; [`keys`]: the signing keys and their rollover.
//! - [`registry`]: the service providers' metadata, refreshed on a
//!   schedule.
//! - [`http`] and [`pages`]: the thin HTTP layer and the server-rendered
//!   pages; [`clients`]: identity-manager and otp-service over gRPC.
//!
//! In development mode the origin also serves `GET /dev/outbox` and the
//! demo service provider at `/demo-sp/` ([`demo_sp`]).

pub mod anomaly;
pub mod api;
pub mod attributes;
pub mod clients;
pub mod demo_sp;
mod dev;
pub mod http;
pub mod keys;
pub mod level;
pub mod lifecycle;
pub mod login;
pub mod logout;
pub mod metadata;
pub mod pages;
pub mod registry;
pub mod request;
pub mod response;
pub mod sessions;
pub mod sp_admin;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use spid_config::Config;
use spid_server::grpc::{channel, peer};
use spid_server::health::PeerCheck;
use spid_server::{CancellationToken, Deps, RunError};
use spid_types::ServiceName;

pub const SERVICE: ServiceName = ServiceName::AuthnGateway;

/// How often a replica looks for registry changes made through another.
const REGISTRY_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// The services the gateway calls.
const PEERS: [ServiceName; 3] = [ServiceName::IdentityManager, ServiceName::OtpService, ServiceName::Notification];

pub async fn migrate(db: &spid_db::Db) -> Result<(), spid_db::DbError> {
    static PG: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    spid_events::migrate(db).await?;
    db.migrate("authn_gateway", &PG, &SQLITE).await
}

pub async fn run(config: &Config, deps: Deps, shutdown: CancellationToken) -> Result<(), RunError> {
    migrate(&deps.db).await?;
    let saml = &config.saml;
    let mut health = deps.health();
    let mut peers = Vec::new();
    for name in PEERS {
        let setting = format!("{}.grpc_url", name.key());
        let ch = channel(&setting, config.service(name).grpc_url.as_str()).map_err(RunError::new)?;
        health = health.with(PeerCheck { name: name.as_str().to_owned(), channel: ch.clone() });
        peers.push(ch);
    }
    let [identity, otp, notification]: [tonic::transport::Channel; 3] =
        peers.try_into().map_err(|_| RunError::new("peers"))?;

    let keys_dir = saml.keys_dir().map_err(RunError::new)?;
    let keys = Arc::new(keys::IdpKeys::load(keys_dir, saml.generate_keys, &saml.entity_id).map_err(RunError::new)?);
    let origin = config.public_url.as_str().trim_end_matches('/').to_owned();
    let description = metadata::IdpDescription {
        entity_id: &saml.entity_id,
        origin: &origin,
        organization_name: &saml.organization_name,
        organization_url: saml.organization_url.as_str(),
    };
    let signed_metadata = description.metadata(&keys.current, &keys.published()).map_err(RunError::new)?;

    let registry = Arc::new(registry::Registry::default());
    // Development: the demo service provider registers itself.
    let demo = if config.is_dev() {
        let idp_key = keys.current.certificate.public_key().map_err(|e| RunError::new(e.to_string()))?;
        let demo = demo_sp::DemoSp::new(
            &origin,
            format!("{origin}{}", metadata::SSO_REDIRECT),
            idp_key,
            deps.cache.clone(),
            deps.clock.clone(),
        )
        .map_err(RunError::new)?;
        registry.add(demo.service_provider().map_err(RunError::new)?);
        Some(Arc::new(demo))
    } else {
        None
    };
    let sources = registry::Sources::with_anchors(
        saml.sp_metadata.clone(),
        saml.sp_metadata_urls.clone(),
        saml.trust_anchors.as_deref(),
    )
    .map_err(RunError::new)?;
    let http_client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| RunError::new(e.to_string()))?;
    let relay = deps.relay(SERVICE);
    let wake = {
        let relay = relay.clone();
        Arc::new(move || relay.wake()) as Arc<dyn Fn() + Send + Sync>
    };
    let admin = Arc::new(sp_admin::SpAdmin::new(
        deps.db.clone(),
        registry.clone(),
        sources,
        http_client,
        deps.clock.clone(),
        wake.clone(),
    ));
    let report = admin.reload().await.map_err(RunError::new)?;
    tracing::info!(service_providers = report.loaded, errors = report.errors.len(), "SP registry loaded");
    let sessions = Arc::new(sessions::Sessions { cache: deps.cache.clone(), lifetime: saml.sso_session });
    let consumer = spid_events::run_consumer(
        deps.bus.clone(),
        lifecycle::CONSUMER_GROUP.to_owned(),
        vec![spid_types::topics::LIFECYCLE],
        Arc::new(lifecycle::Lifecycle { sessions: sessions.clone() }),
        deps.metrics.clone(),
        shutdown.clone(),
    );
    let login = Arc::new(login::Login {
        settings: login::Settings {
            entity_id: saml.entity_id.clone(),
            sso_locations: description.sso_locations(),
            slo_locations: vec![format!("{origin}{}", metadata::SLO)],
            request_max_age: saml.request_max_age,
            clock_skew: saml.clock_skew,
            login_timeout: saml.login_timeout,
            password_attempts: saml.password_attempts,
            assertion_validity: saml.assertion_validity,
        },
        keys,
        registry: registry.clone(),
        cache: deps.cache.clone(),
        sessions: sessions.clone(),
        directory: Arc::new(clients::IdentityManager::new(peer(identity))),
        second_factor: Arc::new(clients::OtpService::new(peer(otp))),
        db: deps.db.clone(),
        relay_wake: wake,
        clock: deps.clock.clone(),
    });
    let web_state = Arc::new(http::Web {
        login,
        pages: pages::Pages::new(&saml.organization_name, saml.assets_dir.is_some())
            .map_err(|e| RunError::new(e.to_string()))?,
        metadata: signed_metadata,
        secure_cookies: config.public_url.scheme() == "https",
        trusted_proxies: saml.trusted_proxies.clone(),
        assets: saml.assets_dir.clone(),
        origin: config.public_url.origin().ascii_serialization(),
    });
    let saml_routes = http::routes(web_state);
    let dev_routes = dev::routes(config.is_dev().then(|| peer(notification)));
    let demo_routes = demo_sp::routes(demo);
    let routes = move |cfg: &mut actix_web::web::ServiceConfig| {
        saml_routes(cfg);
        dev_routes(cfg);
        demo_routes(cfg);
    };

    let refresh = admin.clone().run(saml.refresh, REGISTRY_POLL, shutdown.clone());
    let parts = spid_server::host::ServiceParts {
        common: deps.http_common(SERVICE, health),
        http_routes: routes,
        grpc: api::grpc(admin),
        background: vec![Box::pin(relay.run(shutdown.clone())), Box::pin(refresh), Box::pin(consumer)],
        listeners: deps.listeners,
    };
    spid_server::host::serve(parts, shutdown).await
}
