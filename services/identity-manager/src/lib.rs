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
pub mod backoffice;
pub mod cie;
pub mod demo;
pub mod evidence;
pub mod holder_requests;
mod http;
pub mod identification;
pub mod identity;
pub mod lapse;
pub mod lifecycle;
#[cfg(test)]
mod lifecycle_tests;
pub mod misuse;
pub mod notify;
pub mod password;
pub mod registration;
pub mod request;
pub mod scheduler;
pub mod signature;
pub mod sources;
pub mod store;
#[cfg(test)]
mod tests;
mod web;

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
        memory_kib: r.argon2_memory_kib,
        iterations: r.argon2_iterations,
        parallelism: r.argon2_parallelism,
    })
    .map_err(|e| RunError::new(format!("registration.argon2_memory_kib: {e}")))?;
    let keys_dir = r.evidence_keys_dir()?;
    let keys = evidence::KeyFiles::load(keys_dir, r.generate_keys)
        .map_err(|e| RunError::new(format!("registration.evidence_keys_dir: {e}")))?;
    let mac_key = spid_secrets::SecretKey::load(&keys_dir.join("registration-mac.key"), r.generate_keys)
        .map_err(|e| RunError::new(format!("registration.evidence_keys_dir: {e}")))?;
    let notification = spid_server::grpc::channel(
        "notification.grpc_url",
        config.service(ServiceName::Notification).grpc_url.as_str(),
    )
    .map_err(RunError::new)?;
    let relay = deps.relay(SERVICE);
    let wake = {
        let relay = relay.clone();
        std::sync::Arc::new(move || relay.wake()) as std::sync::Arc<dyn Fn() + Send + Sync>
    };
    let credentials_wake = wake.clone();
    let registrar = std::sync::Arc::new(
        registration::Registrar::new(
            deps.db.clone(),
            hasher.clone(),
            std::sync::Arc::new(keys),
            mac_key,
            std::sync::Arc::new(notify::NotificationClient::new(notification)),
            deps.clock.clone(),
            registration::Settings {
                code_validity: chrono::Duration::minutes(i64::from(r.contact_code_minutes)),
                idp_code: r.idp_code.clone(),
                cache: deps.cache.clone(),
            },
        )
        .with_outbox_wake(wake),
    );
    let sources = match r.sources()? {
        spid_config::SourcesConfig::Local { file } => {
            let data = match file {
                Some(f) => {
                    sources::LocalData::load(f).map_err(|e| RunError::new(format!("registration.sources_file: {e}")))?
                }
                None => sources::LocalData::sample(),
            };
            sources::Sources::local(data, deps.clock.clone())
        }
        spid_config::SourcesConfig::Soap(soap) => {
            let identity = match (&soap.client_certificate, &soap.client_key) {
                (Some(c), Some(k)) => Some(
                    sources::TlsIdentity::load(c, k)
                        .map_err(|e| RunError::new(format!("registration.sources_client_certificate: {e}")))?,
                ),
                _ => None,
            };
            let settings = |url: &url::Url| {
                let mut s = sources::SoapSettings::new(url.as_str());
                s.identity = identity.clone();
                s.allow_plain_http = config.is_dev();
                s
            };
            let clients = [
                ("registration.agenzia_entrate_url", sources::Source::AgenziaEntrate, &soap.agenzia_entrate),
                ("registration.scipafi_url", sources::Source::Scipafi, &soap.scipafi),
                ("registration.document_registry_url", sources::Source::DocumentRegistry, &soap.document_registry),
            ]
            .into_iter()
            .map(|(key, source, url)| {
                sources::SoapClient::new(source, settings(url), deps.clock.clone())
                    .map(|c| std::sync::Arc::new(c) as std::sync::Arc<dyn sources::AuthoritativeSource>)
                    .map_err(|e| RunError::new(format!("{key}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
            sources::Sources::new(clients)
        }
    };
    let trust = r
        .signature_trust_file
        .as_deref()
        .map(signature::TrustList::load)
        .transpose()
        .map_err(|e| RunError::new(format!("registration.signature_trust_file: {e}")))?;
    let cie = match (&r.cie_issuer, &r.cie_client_id, &r.cie_keys_file) {
        (Some(issuer), Some(client_id), Some(keys)) => {
            let pem = std::fs::read(keys).map_err(|e| RunError::new(format!("registration.cie_keys_file: {e}")))?;
            Some(
                cie::CieProvider::new(issuer, client_id, &pem)
                    .map_err(|e| RunError::new(format!("registration.cie_keys_file: {e}")))?,
            )
        }
        _ => None,
    };
    let identification =
        std::sync::Arc::new(identification::Identification::new(registrar.clone(), sources, trust, cie));
    let backoffice = std::sync::Arc::new(backoffice::Backoffice::new(registrar.clone(), identification.clone()));
    let detector = misuse::Detector::standard(deps.cache.clone(), registrar.lifecycle());
    let credentials = std::sync::Arc::new(
        identity::Credentials::new(deps.db.clone(), hasher, deps.clock.clone())
            .await
            .map_err(RunError::new)?
            .with_detector(std::sync::Arc::new(detector))
            .with_outbox_wake(credentials_wake),
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
    let holder_requests = std::sync::Arc::new(holder_requests::HolderRequests::new(registrar.clone()));
    let parts = spid_server::host::ServiceParts {
        common: deps.http_common(SERVICE, deps.health()),
        http_routes: {
            let json = http::routes(registrar.clone(), identification.clone(), holder_requests.clone());
            let pages = web::routes(registrar.clone(), identification.clone(), !config.is_dev());
            move |cfg: &mut actix_web::web::ServiceConfig| {
                json(cfg);
                pages(cfg);
            }
        },
        grpc: api::grpc(registrar.clone(), credentials, identification, backoffice, holder_requests),
        background: vec![
            Box::pin(relay.run(shutdown.clone())),
            Box::pin(scheduler::run(
                scheduler::Scheduler::new(registrar.clone()),
                std::time::Duration::from_secs(60),
                shutdown.clone(),
            )),
        ],
        listeners: deps.listeners,
    };
    spid_server::host::serve(parts, shutdown).await
}
