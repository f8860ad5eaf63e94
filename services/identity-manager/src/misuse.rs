//! Misuse detection (LC-8): rules fed by the authentication events of the
//! credential check, each able to suspend the identity it watches.
//!
//! A [`Rule`] looks at one event at a time and keeps what it must
//! remember in the shared cache (Redis in production, so every replica
//! sees every event). When a rule returns a [`Verdict`], the
//! [`Detector`] suspends the identity with cause `misuse`, actor
//! `system:misuse:<rule>`, and the holder is told why; an operator
//! restores it after the checks. The detector never blocks a login: when
//! the cache is unreachable the event is skipped (the credentials lock of
//! LC-5 still stands).
//!
//! Shipped rule: [`ManyAddresses`] — wrong passwords for one identity from
//! many client addresses within a short window, the mark of a distributed
//! guessing attack that the per-identity lock alone would only slow.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use spid_cache::{Cache, CacheError};

use crate::lifecycle::{Action, ActorKind, Cause, Change, Channel, Lifecycle};

/// What the credential check saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The right password.
    Success,
    /// A wrong password for a known, active identity.
    WrongPassword,
}

/// One authentication event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    pub identity_id: String,
    pub spid_code: String,
    pub outcome: Outcome,
    /// The browser's address as the gateway saw it, when known.
    pub client_ip: Option<IpAddr>,
    pub at: DateTime<Utc>,
}

/// A rule's finding: the identity should be suspended, and why (told to
/// the holder and kept in the history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub reason: String,
}

#[async_trait]
pub trait Rule: Send + Sync {
    /// Short, stable, in the history's actor (`system:misuse:<name>`).
    fn name(&self) -> &'static str;

    async fn observe(&self, event: &AuthEvent, cache: &dyn Cache) -> Result<Option<Verdict>, CacheError>;
}

/// Wrong passwords for one identity from at least `addresses` distinct
/// client addresses within `window` (counted from the first of them).
#[derive(Debug, Clone)]
pub struct ManyAddresses {
    pub addresses: u64,
    pub window: std::time::Duration,
}

impl Default for ManyAddresses {
    fn default() -> Self {
        Self { addresses: 5, window: std::time::Duration::from_secs(600) }
    }
}

#[async_trait]
impl Rule for ManyAddresses {
    fn name(&self) -> &'static str {
        "many-addresses"
    }

    async fn observe(&self, event: &AuthEvent, cache: &dyn Cache) -> Result<Option<Verdict>, CacheError> {
        let (Outcome::WrongPassword, Some(ip)) = (event.outcome, event.client_ip) else { return Ok(None) };
        let seen = format!("misuse:many-addresses:{}:{ip}", event.identity_id);
        if !cache.set_if_absent(&seen, b"1", self.window).await? {
            return Ok(None);
        }
        let distinct = cache.increment(&format!("misuse:many-addresses:{}", event.identity_id), self.window).await?;
        Ok((distinct >= self.addresses).then(|| Verdict {
            reason: format!(
                "wrong passwords from {distinct} different network addresses within {} minutes: \
                 suspended as a precaution",
                self.window.as_secs() / 60
            ),
        }))
    }
}

pub struct Detector {
    rules: Vec<Box<dyn Rule>>,
    cache: Arc<dyn Cache>,
    lifecycle: Lifecycle,
}

impl Detector {
    pub fn new(rules: Vec<Box<dyn Rule>>, cache: Arc<dyn Cache>, lifecycle: Lifecycle) -> Self {
        Self { rules, cache, lifecycle }
    }

    /// The shipped rules.
    pub fn standard(cache: Arc<dyn Cache>, lifecycle: Lifecycle) -> Self {
        Self::new(vec![Box::new(ManyAddresses::default())], cache, lifecycle)
    }

    /// Feeds one event to every rule; the first verdict suspends the
    /// identity. Returns the rule that fired, if one did and the
    /// suspension happened now.
    pub async fn observe(&self, event: &AuthEvent) -> Option<&'static str> {
        for rule in &self.rules {
            let verdict = match rule.observe(event, self.cache.as_ref()).await {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(rule = rule.name(), error = %e, "misuse rule skipped: cache unavailable");
                    continue;
                }
            };
            let change = Change {
                action: Action::Suspend,
                cause: Cause::Misuse,
                actor: ActorKind::System,
                actor_id: format!("misuse:{}", rule.name()),
                reason: verdict.reason,
                justification_ref: String::new(),
                channel: Channel::None,
            };
            match self.lifecycle.apply(&event.spid_code, &change).await {
                Ok(_) => {
                    tracing::warn!(rule = rule.name(), spid_code = %event.spid_code, "identity suspended for misuse");
                    return Some(rule.name());
                }
                // Already suspended, locked meanwhile, or another replica won.
                Err(e) if matches!(e.code.as_str(), "transition.illegal" | "identity.changed") => return None,
                Err(e) => tracing::warn!(rule = rule.name(), code = e.code, "misuse suspension failed"),
            }
        }
        None
    }
}
