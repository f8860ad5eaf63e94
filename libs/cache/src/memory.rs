use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{Cache, CacheError};

/// An in-process cache with the same semantics as [`crate::RedisCache`].
#[derive(Debug, Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, (Vec<u8>, Instant)>, Instant) -> R) -> R {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        // Amortised expiry: sweep when the map grows.
        if map.len() > 10_000 {
            map.retain(|_, (_, exp)| *exp > now);
        }
        f(&mut map, now)
    }
}

fn live(map: &mut HashMap<String, (Vec<u8>, Instant)>, key: &str, now: Instant) -> bool {
    match map.get(key) {
        Some((_, exp)) if *exp > now => true,
        Some(_) => {
            map.remove(key);
            false
        }
        None => false,
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.with(|m, now| if live(m, key, now) { m.get(key).map(|(v, _)| v.clone()) } else { None }))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        self.with(|m, now| m.insert(key.to_owned(), (value.to_vec(), now + ttl)));
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        Ok(self.with(|m, now| {
            if live(m, key, now) {
                false
            } else {
                m.insert(key.to_owned(), (value.to_vec(), now + ttl));
                true
            }
        }))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.with(|m, now| if live(m, key, now) { m.remove(key).map(|(v, _)| v) } else { None }))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.with(|m, _| m.remove(key));
        Ok(())
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, CacheError> {
        Ok(self.with(|m, now| {
            let current = if live(m, key, now) {
                m.get(key).and_then(|(v, _)| std::str::from_utf8(v).ok()?.parse::<u64>().ok()).unwrap_or(0)
            } else {
                0
            };
            let next = current.saturating_add(1);
            let expiry = if current == 0 { now + ttl } else { m.get(key).map(|(_, e)| *e).unwrap_or(now + ttl) };
            m.insert(key.to_owned(), (next.to_string().into_bytes(), expiry));
            next
        }))
    }

    async fn check(&self) -> Result<(), CacheError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_cache_keeps_the_contract() {
        crate::contract::check_contract(&super::MemoryCache::new(), "t").await;
    }
}
