//! What a service is given to run: its database, the bus, the cache, the
//! clock, its metrics registry and its already-bound listeners. The `idp`
//! binary builds these from the configuration; tests build them directly.

use std::net::TcpListener;
use std::sync::Arc;

use spid_cache::Cache;
use spid_db::Db;
use spid_events::EventBus;
use spid_telemetry::Metrics;
use spid_types::Clock;

pub struct Deps {
    pub db: Db,
    pub bus: Arc<dyn EventBus>,
    pub cache: Arc<dyn Cache>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub listeners: Listeners,
}

impl Deps {
    /// Readiness checks of the dependencies every service has: database,
    /// bus and cache. Services add their peers.
    pub fn health(&self) -> crate::health::Health {
        use crate::health::{BusCheck, CacheCheck, DbCheck, Health};
        Health::new()
            .with(DbCheck(self.db.clone()))
            .with(BusCheck(self.bus.clone()))
            .with(CacheCheck(self.cache.clone()))
    }

    /// The relay publishing this service's outbox.
    pub fn relay(&self, service: spid_types::ServiceName) -> spid_events::OutboxRelay {
        spid_events::OutboxRelay::new(self.db.clone(), self.bus.clone(), self.metrics.clone(), service.as_str())
    }

    /// The common HTTP parts (health, metrics) of `service`.
    pub fn http_common(&self, service: spid_types::ServiceName, health: crate::health::Health) -> crate::http::Common {
        crate::http::Common { service: service.as_str(), health, metrics: self.metrics.clone() }
    }
}

pub struct Listeners {
    pub http: TcpListener,
    pub grpc: TcpListener,
}

/// Why a service could not start or stopped with an error: one line, naming
/// the setting where there is one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RunError(pub String);

impl RunError {
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self(message.to_string())
    }
}

impl From<spid_db::DbError> for RunError {
    fn from(e: spid_db::DbError) -> Self {
        Self(e.to_string())
    }
}

impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<spid_config::ConfigError> for RunError {
    fn from(e: spid_config::ConfigError) -> Self {
        Self(e.to_string())
    }
}
