//! otp-service: the second factors of level 2 (OTP-1..8).
//!
//! Today: SMS and e-mail code challenges ([`challenge`]) sent through
//! notification, the authenticator app (TOTP, [`totp`], [`authenticator`])
//! with seeds derived from a master key ([`keys`]), the rules of who may
//! use what ([`service`]), gRPC `Challenges` and `Authenticators`, and the
//! lifecycle consumer that drops an identity's challenge and tokens when it
//! is suspended or revoked. App binding, push and QR approvals come next.

mod api;
pub mod authenticator;
pub mod challenge;
mod clients;
pub mod devices;
pub mod keys;
mod lifecycle;
pub mod service;
#[cfg(test)]
mod tests;
pub mod totp;

use std::sync::Arc;

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

pub async fn run(config: &Config, deps: Deps, shutdown: CancellationToken) -> Result<(), RunError> {
    migrate(&deps.db).await?;
    let relay = deps.relay(SERVICE);
    let o = &config.otp;
    let keys_dir = o.keys_dir()?;
    let key = |name: &str| {
        spid_secrets::SecretKey::load(&keys_dir.join(name), o.generate_keys)
            .map_err(|e| RunError::new(format!("otp.keys_dir: {e}")))
    };
    let (data_key, mac_key) = (key("data.key")?, key("code-mac.key")?);
    let master = keys::LocalKeyFile::open(&keys_dir.join("master.key"), o.generate_keys)
        .map_err(|e| RunError::new(format!("otp.keys_dir: {e}")))?;
    let channel = |name: ServiceName| {
        spid_server::grpc::channel(&format!("{}.grpc_url", name.key()), config.service(name).grpc_url.as_str())
            .map_err(RunError::new)
    };
    let otp = Arc::new(service::Otp {
        codes: challenge::Codes::new(
            deps.cache.clone(),
            mac_key,
            deps.clock.clone(),
            challenge::Policy {
                validity: o.code_validity,
                max_attempts: o.max_attempts,
                per_identity: o.codes_per_identity,
                per_address: o.codes_per_address,
                window: o.rate_window,
            },
        ),
        authenticators: authenticator::Authenticators::new(
            deps.db.clone(),
            Arc::new(master),
            data_key,
            deps.clock.clone(),
            &o.totp_issuer,
        ),
        devices: devices::Devices::new(deps.db.clone(), deps.cache.clone(), deps.clock.clone()),
        directory: Arc::new(clients::IdentityManager::new(channel(ServiceName::IdentityManager)?, deps.clock.clone())),
        sender: Arc::new(clients::Notification::new(channel(ServiceName::Notification)?)),
        db: deps.db.clone(),
        relay: relay.clone(),
        clock: deps.clock.clone(),
    });
    let consumer = spid_events::run_consumer(
        deps.bus.clone(),
        lifecycle::CONSUMER_GROUP.to_owned(),
        vec![spid_types::topics::LIFECYCLE],
        Arc::new(lifecycle::Lifecycle { otp: otp.clone() }),
        deps.metrics.clone(),
        shutdown.clone(),
    );
    let parts = spid_server::host::ServiceParts {
        common: deps.http_common(SERVICE, deps.health()),
        http_routes: |_: &mut actix_web::web::ServiceConfig| {},
        grpc: api::grpc(otp),
        background: vec![Box::pin(relay.run(shutdown.clone())), Box::pin(consumer)],
        listeners: deps.listeners,
    };
    spid_server::host::serve(parts, shutdown).await
}
