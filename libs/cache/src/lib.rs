//! Short-lived state shared by the replicas of a service: authentication
//! sessions, OTP challenges, attempt counters, replay caches, rate limits.
//! Every entry has a time to live. [`RedisCache`] in production,
//! [`MemoryCache`] in the one-process development mode and in unit tests.

mod memory;
mod redis_cache;

use std::time::Duration;

use async_trait::async_trait;

pub use memory::MemoryCache;
pub use redis_cache::RedisCache;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    #[error("{setting}: {message}")]
    Setup { setting: String, message: String },
}

#[async_trait]
pub trait Cache: Send + Sync + std::fmt::Debug {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError>;

    /// Sets `key` only if it does not exist; returns whether it was set.
    /// The building block of replay caches and single-use tokens.
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError>;

    /// Removes `key`, returning its value (single use: read and delete at
    /// once, so two concurrent readers cannot both get it).
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    async fn delete(&self, key: &str) -> Result<(), CacheError>;

    /// Increments a counter; the first increment starts its time to live.
    /// Returns the new value (rate limits, attempt counters).
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, CacheError>;

    /// Whether the cache answers now (readiness).
    async fn check(&self) -> Result<(), CacheError>;

    fn kind(&self) -> &'static str;
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour both implementations must share.
    use super::*;

    pub async fn check_contract(cache: &dyn Cache, prefix: &str) {
        let k = |s: &str| format!("{prefix}:{s}");
        let ttl = Duration::from_secs(60);
        assert_eq!(cache.get(&k("missing")).await.unwrap(), None);
        cache.set(&k("a"), b"one", ttl).await.unwrap();
        assert_eq!(cache.get(&k("a")).await.unwrap().as_deref(), Some(&b"one"[..]));

        assert!(cache.set_if_absent(&k("once"), b"1", ttl).await.unwrap());
        assert!(!cache.set_if_absent(&k("once"), b"2", ttl).await.unwrap());
        assert_eq!(cache.get(&k("once")).await.unwrap().as_deref(), Some(&b"1"[..]));

        assert_eq!(cache.take(&k("a")).await.unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(cache.take(&k("a")).await.unwrap(), None);

        assert_eq!(cache.increment(&k("n"), ttl).await.unwrap(), 1);
        assert_eq!(cache.increment(&k("n"), ttl).await.unwrap(), 2);
        cache.delete(&k("n")).await.unwrap();
        assert_eq!(cache.increment(&k("n"), ttl).await.unwrap(), 1);

        cache.set(&k("short"), b"x", Duration::from_millis(50)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(cache.get(&k("short")).await.unwrap(), None, "expired entries are gone");
        cache.check().await.unwrap();
    }
}
