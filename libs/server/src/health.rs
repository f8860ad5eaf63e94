//! Liveness and readiness. A service registers one check per dependency
//! (database, bus, cache, the peers it calls); `/readyz` and the gRPC health
//! service report them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[async_trait]
pub trait HealthCheck: Send + Sync {
    fn name(&self) -> &str;
    async fn check(&self) -> Result<(), String>;
}

/// The checks of one service.
#[derive(Clone, Default)]
pub struct Health {
    checks: Vec<Arc<dyn HealthCheck>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub checks: BTreeMap<String, String>,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, check: impl HealthCheck + 'static) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Runs every check concurrently, each bounded by a timeout.
    pub async fn readiness(&self) -> Readiness {
        let results = futures::future::join_all(self.checks.iter().map(|c| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (c.name().to_owned(), outcome)
        }))
        .await;
        let ready = results.iter().all(|(_, r)| r.is_ok());
        let checks = results.into_iter().map(|(n, r)| (n, r.err().unwrap_or_else(|| "ok".to_owned()))).collect();
        Readiness { ready, checks }
    }
}

pub struct DbCheck(pub spid_db::Db);

#[async_trait]
impl HealthCheck for DbCheck {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

pub struct BusCheck(pub Arc<dyn spid_events::EventBus>);

#[async_trait]
impl HealthCheck for BusCheck {
    fn name(&self) -> &str {
        "bus"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.check().await.map_err(|e| e.to_string())
    }
}

pub struct CacheCheck(pub Arc<dyn spid_cache::Cache>);

#[async_trait]
impl HealthCheck for CacheCheck {
    fn name(&self) -> &str {
        "cache"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.check().await.map_err(|e| e.to_string())
    }
}

/// A peer service, checked through its standard gRPC health service.
pub struct PeerCheck {
    pub name: String,
    pub channel: tonic::transport::Channel,
}

#[async_trait]
impl HealthCheck for PeerCheck {
    fn name(&self) -> &str {
        &self.name
    }
    async fn check(&self) -> Result<(), String> {
        use tonic_health::pb::health_check_response::ServingStatus;
        let mut client = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        let resp = client
            .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
            .await
            .map_err(|s| format!("{}: {}", s.code(), s.message()))?;
        match resp.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Result<(), String>);

    #[async_trait]
    impl HealthCheck for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        async fn check(&self) -> Result<(), String> {
            self.1.clone()
        }
    }

    #[tokio::test]
    async fn readiness_reflects_every_check() {
        let health = Health::new().with(Fixed("database", Ok(()))).with(Fixed("bus", Ok(())));
        assert!(health.readiness().await.ready);
        let health = health.with(Fixed("cache", Err("connection refused".into())));
        let r = health.readiness().await;
        assert!(!r.ready);
        assert_eq!(r.checks["cache"], "connection refused");
        assert_eq!(r.checks["database"], "ok");
    }
}
