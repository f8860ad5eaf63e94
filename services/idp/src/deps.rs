//! Building each service's dependencies from the configuration, and the one
//! place that maps a service name to its crate.

use std::sync::Arc;
use std::time::Duration;

use spid_config::{BusConfig, CacheConfig, Config};
use spid_db::{ConnectOptions, Db};
use spid_events::{EmbeddedBus, EventBus, KafkaBus};
use spid_server::{CancellationToken, Deps, Listeners, RunError};
use spid_types::ServiceName;

use crate::cli::Failure;

pub async fn database(config: &Config, name: ServiceName) -> Result<Db, Failure> {
    let url = config.database_url(name)?;
    Db::connect(ConnectOptions {
        setting: &config.service(name).database_setting,
        url,
        max_connections: config.database_max_connections,
        connect_timeout: Duration::from_secs(config.database_connect_timeout_secs),
    })
    .await
    .map_err(|e| Failure::Run(e.to_string()))
}

/// The bus of this process: Kafka, or the embedded log in development.
pub async fn bus(config: &Config) -> Result<Arc<dyn EventBus>, Failure> {
    match &config.bus {
        BusConfig::Kafka { brokers, properties, timeout_secs } => {
            let bus = KafkaBus::connect(brokers, properties, Duration::from_secs(*timeout_secs))
                .await
                .map_err(|e| Failure::Run(e.to_string()))?;
            let topics = spid_types::topics::with_dead_letters();
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            if let Err(e) = bus.ensure_topics(&topics).await {
                // Topics may be managed by the platform team; say so and go on.
                tracing::warn!(error = %e, "could not create topics; they must exist");
            }
            Ok(Arc::new(bus))
        }
        BusConfig::Embedded { path } => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Failure::Run(format!("dev.data_dir: cannot create {}: {e}", dir.display())))?;
            }
            let bus = EmbeddedBus::open(path).await.map_err(|e| Failure::Run(e.to_string()))?;
            Ok(Arc::new(bus))
        }
    }
}

pub async fn cache(config: &Config, name: ServiceName) -> Result<Arc<dyn spid_cache::Cache>, Failure> {
    match &config.cache {
        CacheConfig::Memory => Ok(Arc::new(spid_cache::MemoryCache::new())),
        CacheConfig::Redis { url, key_prefix } => {
            let prefix = format!("{key_prefix}{}", name.as_str());
            let cache = spid_cache::RedisCache::connect(url, &prefix, Duration::from_secs(5))
                .await
                .map_err(|e| Failure::Run(e.to_string()))?;
            Ok(Arc::new(cache))
        }
    }
}

pub fn listeners(config: &Config, name: ServiceName) -> Result<Listeners, Failure> {
    let endpoints = config.service(name);
    Ok(Listeners {
        http: spid_server::bind(&format!("{}.http_listen", name.key()), endpoints.http_listen).map_err(Failure::Run)?,
        grpc: spid_server::bind(&format!("{}.grpc_listen", name.key()), endpoints.grpc_listen).map_err(Failure::Run)?,
    })
}

pub async fn for_service(config: &Config, name: ServiceName, bus: Arc<dyn EventBus>) -> Result<Deps, Failure> {
    let db = database(config, name).await?;
    let cache = cache(config, name).await?;
    let listeners = listeners(config, name)?;
    with_listeners(name, db, bus, cache, listeners)
}

pub fn with_listeners(
    name: ServiceName,
    db: Db,
    bus: Arc<dyn EventBus>,
    cache: Arc<dyn spid_cache::Cache>,
    listeners: Listeners,
) -> Result<Deps, Failure> {
    Ok(Deps {
        db,
        bus,
        cache,
        clock: Arc::new(spid_types::SystemClock),
        metrics: spid_telemetry::Metrics::new(name.as_str()).map_err(|e| Failure::Run(e.to_string()))?,
        listeners,
    })
}

pub async fn run_service(
    config: &Config,
    name: ServiceName,
    deps: Deps,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    match name {
        ServiceName::IdentityManager => identity_manager::run(config, deps, shutdown).await,
        ServiceName::AuthnGateway => authn_gateway::run(config, deps, shutdown).await,
        ServiceName::OtpService => otp_service::run(config, deps, shutdown).await,
        ServiceName::AuditLog => audit_log::run(config, deps, shutdown).await,
        ServiceName::Notification => notification::run(config, deps, shutdown).await,
    }
}

pub async fn migrate_service(name: ServiceName, db: &Db) -> Result<(), spid_db::DbError> {
    match name {
        ServiceName::IdentityManager => identity_manager::migrate(db).await,
        ServiceName::AuthnGateway => authn_gateway::migrate(db).await,
        ServiceName::OtpService => otp_service::migrate(db).await,
        ServiceName::AuditLog => audit_log::migrate(db).await,
        ServiceName::Notification => notification::migrate(db).await,
    }
}
