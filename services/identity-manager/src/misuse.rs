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
//! many client networks within a short window, the mark of a distributed
//! guessing attack that the per-identity lock alone would only slow. The
//! trade-off: whoever knows a username and controls five networks can
//! have the identity suspended (until the help desk restores it), as
//! LC-8 asks; the guessing stops at once instead of going on, slowed,
//! from every address.

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
/// client networks within `window` (counted from the first of them). A
/// network is an IPv4 /24 or an IPv6 /64: one host, or one customer's
/// allocation, counts once however many addresses it uses.
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
        let seen = format!("misuse:many-addresses:{}:{}", event.identity_id, network(ip));
        if !cache.set_if_absent(&seen, b"1", self.window).await? {
            return Ok(None);
        }
        let counter = format!("misuse:many-addresses:{}", event.identity_id);
        let distinct = cache.increment(&counter, self.window).await?;
        if distinct < self.addresses {
            return Ok(None);
        }
        // Counted once: after a restore, the count starts again.
        cache.delete(&counter).await?;
        Ok(Some(Verdict {
            reason: format!(
                "wrong passwords from {distinct} different networks within {} minutes: suspended as a precaution",
                self.window.as_secs() / 60
            ),
        }))
    }
}

/// The network an address counts as: its IPv4 /24 or IPv6 /64.
pub(crate) fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
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
                unchanged_since: None,
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
