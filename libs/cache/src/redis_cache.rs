use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::{Cache, CacheError};

/// Redis, shared by all replicas. Keys are prefixed with the service name.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
    target: String,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("target", &self.target).field("prefix", &self.prefix).finish()
    }
}

fn unavailable(e: redis::RedisError) -> CacheError {
    CacheError::Unavailable(e.to_string())
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisCache {
    /// Connects and checks Redis answers within `timeout`. `prefix`
    /// separates the services' keys (`otp-service:…`).
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, CacheError> {
        let target = url.split('@').next_back().unwrap_or(url).to_owned();
        let setup = |message: String| CacheError::Setup { setting: "cache.url".into(), message };
        let client = redis::Client::open(url).map_err(|e| setup(format!("invalid Redis URL: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(timeout, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| setup(format!("cannot reach Redis at {target}: no answer within {timeout:?}")))?
            .map_err(|e| setup(format!("cannot reach Redis at {target}: {e}")))?;
        let cache = Self { conn, prefix: format!("{prefix}:"), target };
        cache.check().await.map_err(|e| setup(e.to_string()))?;
        Ok(cache)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.conn.clone().get(self.key(key)).await.map_err(unavailable)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        self.conn.clone().pset_ex(self.key(key), value, millis(ttl)).await.map_err(unavailable)
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(reply.is_some())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        redis::cmd("GETDEL").arg(self.key(key)).query_async(&mut self.conn.clone()).await.map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.conn.clone().del(self.key(key)).await.map_err(unavailable)
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, CacheError> {
        let key = self.key(key);
        let (value,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1u64)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis(ttl))
            .arg("NX")
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(value)
    }

    async fn check(&self) -> Result<(), CacheError> {
        let pong: String = redis::cmd("PING").query_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        if pong == "PONG" { Ok(()) } else { Err(CacheError::Unavailable(format!("unexpected PING reply {pong}"))) }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against the Redis of the machine (127.0.0.1:6379), which
    /// `make test` starts if it is down. `SPID_TEST_REDIS_URL` overrides.
    #[tokio::test]
    async fn redis_cache_keeps_the_contract() {
        let url = std::env::var("SPID_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("test-{}", std::process::id());
        let cache = RedisCache::connect(&url, &prefix, Duration::from_secs(3)).await.unwrap();
        crate::contract::check_contract(&cache, "t").await;
    }

    #[tokio::test]
    async fn unreachable_redis_names_the_setting() {
        let err = RedisCache::connect("redis://127.0.0.1:1", "x", Duration::from_secs(2)).await.unwrap_err();
        let line = err.to_string();
        assert!(line.starts_with("cache.url: cannot reach Redis at"), "{line}");
    }
}
