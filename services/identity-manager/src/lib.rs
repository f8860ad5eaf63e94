//! identity-manager: holders, identities, identity requests, credentials and
//! the lifecycle state machine (REG, IDN, VER, EMI, LC).
//!
//! - [`application`]: the applicant's data set and its checks (REG-1…6);
//!   [`password`]: the password rules and Argon2id hashing (REG-6).
//! - [`registration`]: the applicant's steps — contact codes, document
//!   acceptance, encrypted uploads ([`evidence`]), submission, activation.
//! - [`request`]: the request's state machine; [`store`]: its audited
//!   transitions.
//! - [`identity`]: emission with the spidCode, the gateway's credential
//!   check with the LC-5 lock, the SPID attributes.
//! - [`demo`]: the development mode's demo holders.
//!
//! Transport: gRPC `Credentials` and `Registration` (`api`), the JSON
//! interface under `/registration` (`http`).

mod api;
pub mod application;
pub mod demo;
pub mod evidence;
mod http;
pub mod identity;
pub mod notify;
pub mod password;
pub mod registration;
pub mod request;
pub mod signature;
pub mod sources;
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

pub async fn run(config: &Config, deps: Deps, shutdown: CancellationToken) -> Result<(), RunError> {
    migrate(&deps.db).await?;
    let r = &config.registration;
    let hasher = password::Hasher::new(password::Cost {
        memory_kib: r.password_memory_kib,
        iterations: r.password_iterations,
        parallelism: r.password_parallelism,
    })
    .map_err(|e| RunError::new(format!("registration.password_memory_kib: {e}")))?;
    let keys_dir = r.evidence_keys_dir()?;
    let keys = evidence::KeyFiles::load(keys_dir, r.generate_keys)
        .map_err(|e| RunError::new(format!("registration.evidence_keys_dir: {e}")))?;
    let mac_file = keys_dir.join("registration-mac.key");
    if r.generate_keys && !mac_file.exists() {
        spid_secrets::SecretKey::generate(&mac_file)
            .map_err(|e| RunError::new(format!("registration.evidence_keys_dir: {e}")))?;
    }
    let mac_key = spid_secrets::SecretKey::read(&mac_file)
        .map_err(|e| RunError::new(format!("registration.evidence_keys_dir: {e}")))?;
    let notification = spid_server::grpc::channel(
        "notification.grpc_url",
        config.service(ServiceName::Notification).grpc_url.as_str(),
    )
    .map_err(RunError::new)?;
    let registrar = std::sync::Arc::new(registration::Registrar::new(
        deps.db.clone(),
        hasher.clone(),
        std::sync::Arc::new(keys),
        mac_key,
        std::sync::Arc::new(notify::NotificationClient::new(notification)),
        deps.clock.clone(),
        registration::Settings {
            code_validity: chrono::Duration::minutes(i64::from(r.contact_code_minutes)),
            idp_code: r.idp_code.clone(),
        },
    ));
    let credentials = std::sync::Arc::new(
        identity::Credentials::new(deps.db.clone(), hasher, deps.clock.clone()).await.map_err(RunError::new)?,
    );
    if config.dev.seed_demo {
        let file = config.dev.data_dir.join("demo-users.json");
        let users = demo::seed(&registrar, &store::RequestStore::new(deps.db.clone()), &file)
            .await
            .map_err(|e| RunError::new(format!("dev.seed_demo: {e}")))?;
        for u in users {
            println!("  demo holder (level {}) {} / {}   spidCode {}", u.level, u.username, u.password, u.spid_code);
        }
    }
    let relay = deps.relay(SERVICE);
    let parts = spid_server::host::ServiceParts {
        common: deps.http_common(SERVICE, deps.health()),
        http_routes: http::routes(registrar.clone()),
        grpc: api::grpc(registrar, credentials),
        background: vec![Box::pin(relay.run(shutdown.clone()))],
        listeners: deps.listeners,
    };
    spid_server::host::serve(parts, shutdown).await
}
