//! Delivery of stored messages (NOT-3): the channels' transports, the retry
//! policy, and the worker that takes due messages under a lease, hands them
//! to their transport and records the outcome.
//!
//! A message is stored before anyone is told it was accepted; the worker
//! claims it with a lease, so a process killed mid-delivery leaves it to be
//! taken over when the lease runs out. A delivery is cut off before its
//! lease ends, so no other worker takes over a message still being sent.
//! Every claim counts as an attempt, so a message that crashes its worker
//! still runs out of attempts and is dead-lettered unsent. Delivery
//! is at least once: a crash after the server accepted and before the
//! outcome was recorded sends the message again, with the same Message-ID
//! (e-mail) or gateway reference (SMS), which lets the receiving side
//! recognise the copy.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use rand::Rng;
use spid_events::{EventBuilder, OutboxRelay};
use spid_proto::events::v1::NotificationDelivered;
use spid_server::CancellationToken;
use spid_types::{Clock, ServiceError};
use tokio::sync::Notify;

use crate::domain::Channel;
use crate::metrics::DeliveryMetrics;
use crate::store::{Claimed, Outcome, Store};

/// A message as a transport sees it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: String,
    pub channel: Channel,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// Why a transport did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// May work later (connection refused, timeout, 4xx SMTP, 5xx HTTP).
    Transient(String),
    /// Never will (recipient refused, request refused).
    Permanent(String),
}

/// One channel's way out: SMTP, the SMS gateway, the development outbox.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Short name recorded with every attempt (`smtp`, `sms-gateway`, …).
    fn name(&self) -> &'static str;
    /// Delivers, returning what the other side said (queue id, status).
    async fn deliver(&self, message: &Outgoing) -> Result<String, Failure>;
}

/// Development: the message is already in the outbox (`GET /dev/outbox`
/// lists stored messages); delivering it only marks it delivered.
pub struct DevOutbox;

#[async_trait]
impl Transport for DevOutbox {
    fn name(&self) -> &'static str {
        "dev-outbox"
    }
    async fn deliver(&self, _message: &Outgoing) -> Result<String, Failure> {
        Ok("kept in the development outbox".to_owned())
    }
}

/// The transport of each channel; a channel without one is refused at
/// `Send`.
#[derive(Clone, Default)]
pub struct Transports {
    pub email: Option<Arc<dyn Transport>>,
    pub sms: Option<Arc<dyn Transport>>,
    pub pec: Option<Arc<dyn Transport>>,
}

impl Transports {
    /// Every channel to the development outbox.
    pub fn dev_outbox() -> Self {
        let dev: Arc<dyn Transport> = Arc::new(DevOutbox);
        Self { email: Some(dev.clone()), sms: Some(dev.clone()), pec: Some(dev) }
    }

    pub fn get(&self, channel: Channel) -> Option<&Arc<dyn Transport>> {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Sms => self.sms.as_ref(),
            Channel::Pec => self.pec.as_ref(),
        }
    }
}

/// Attempts, backoff and leases.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
    pub lease: Duration,
}

impl RetryPolicy {
    /// Delay before the attempt after `attempt` (1-based): exponential from
    /// `base`, capped at `max`, with "equal jitter" (between half and all
    /// of it) so that messages failed together do not retry together.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let full = exp.min(self.max);
        let half = full / 2;
        half + full.saturating_sub(half).mul_f64(rng.random::<f64>())
    }
}

/// Takes due messages and delivers them.
pub struct Worker {
    pub store: Store,
    pub transports: Transports,
    pub policy: RetryPolicy,
    pub clock: Arc<dyn Clock>,
    pub relay: OutboxRelay,
    pub wake: Arc<Notify>,
    pub concurrency: usize,
    pub metrics: DeliveryMetrics,
    /// Development: keep delivered codes readable in the outbox.
    pub keep_codes: bool,
}

/// How often a worker looks for due messages when nothing wakes it (other
/// replicas' messages, retries coming due).
const POLL: Duration = Duration::from_millis(500);

/// How often the dead-letter gauge is recounted.
const GAUGES: Duration = Duration::from_secs(30);

impl Worker {
    pub async fn run(self, shutdown: CancellationToken) {
        let owner = uuid::Uuid::new_v4().to_string();
        let mut last_refresh: Option<std::time::Instant> = None;
        loop {
            if last_refresh.is_none_or(|t| t.elapsed() >= GAUGES) {
                last_refresh = Some(std::time::Instant::now());
                if let Err(e) = self.refresh_gauges().await {
                    tracing::warn!(error = %e, "counting dead letters failed");
                }
            }
            let busy = match self.deliver_due(&owner).await {
                Ok(n) => n == self.batch(),
                Err(e) => {
                    tracing::warn!(error = %e, "delivery pass failed");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Recounts the dead letters for the gauge.
    pub async fn refresh_gauges(&self) -> Result<(), ServiceError> {
        self.metrics.dead_letters.set(self.store.count_dead().await?);
        Ok(())
    }

    /// Claimed at once: no more than are delivered at once, so no claimed
    /// message waits in a queue while its lease runs.
    fn batch(&self) -> usize {
        self.concurrency
    }

    /// How long one delivery may take: the lease, less a margin for
    /// recording the outcome.
    fn deadline(&self) -> Duration {
        self.policy.lease.saturating_sub(Duration::from_secs(3)).max(Duration::from_secs(1))
    }

    /// One pass: claims what is due and delivers it, `concurrency` at a
    /// time. Returns how many messages were claimed.
    pub async fn deliver_due(&self, owner: &str) -> Result<usize, ServiceError> {
        let now = self.clock.now();
        let lease_until = now + chrono::Duration::from_std(self.policy.lease).unwrap_or(chrono::Duration::seconds(120));
        let claimed = self.store.claim_due(now, lease_until, owner, self.batch()).await?;
        let n = claimed.len();
        let results: Vec<Result<(), ServiceError>> = futures::stream::iter(claimed)
            .map(|c| self.deliver_one(c, owner))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for r in results {
            r?;
        }
        if n > 0 {
            self.relay.wake();
        }
        Ok(n)
    }

    async fn deliver_one(&self, claimed: Claimed, owner: &str) -> Result<(), ServiceError> {
        let Some(transport) = self.transports.get(claimed.message.channel) else {
            let outcome = Outcome::Dead { detail: "no transport for this channel".to_owned() };
            return self.record(&claimed, owner, "none", outcome).await;
        };
        if claimed.attempt > self.policy.max_attempts {
            // Earlier claims never finished (the worker died with them).
            let detail = format!("{} claims without an outcome; not sent again", claimed.attempt - 1);
            return self.record(&claimed, owner, transport.name(), Outcome::Dead { detail }).await;
        }
        let result = match tokio::time::timeout(self.deadline(), transport.deliver(&claimed.message)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Transient(format!("no answer within {} s", self.deadline().as_secs()))),
        };
        let outcome = match result {
            Ok(receipt) => Outcome::Delivered { receipt },
            Err(Failure::Permanent(detail)) => Outcome::Dead { detail },
            Err(Failure::Transient(detail)) if claimed.attempt >= self.policy.max_attempts => {
                Outcome::Dead { detail: format!("{detail} (after {} attempts)", claimed.attempt) }
            }
            Err(Failure::Transient(detail)) => {
                let delay = self.policy.delay(claimed.attempt, &mut rand::rng());
                let next = self.clock.now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                Outcome::Retry { detail, next }
            }
        };
        match &outcome {
            Outcome::Delivered { .. } => {}
            Outcome::Retry { detail, .. } => {
                tracing::info!(message_id = %claimed.message.id, attempt = claimed.attempt, %detail, "delivery failed, will retry")
            }
            Outcome::Dead { detail } => {
                tracing::warn!(message_id = %claimed.message.id, attempt = claimed.attempt, %detail, "message dead-lettered")
            }
        }
        self.record(&claimed, owner, transport.name(), outcome).await
    }

    /// Stores the outcome with its trace on the audit topic (NOT-3, AUD-1:
    /// date and time, recipient, channel, content digest, outcome).
    async fn record(
        &self,
        claimed: &Claimed,
        owner: &str,
        transport: &str,
        outcome: Outcome,
    ) -> Result<(), ServiceError> {
        let m = &claimed.message;
        let label = outcome.label();
        let event = EventBuilder::new(crate::SERVICE.as_str(), outcome.event_type(), &m.id, &*self.clock)
            .trace(&claimed.traceparent, &claimed.tracestate)
            .payload(&NotificationDelivered {
                message_id: m.id.clone(),
                channel: m.channel.as_str().to_owned(),
                recipient: m.recipient.clone(),
                content_sha256: claimed.content_sha256.clone(),
                outcome: format!(
                    "{} (attempt {}, {transport}): {}",
                    outcome.label(),
                    claimed.attempt,
                    outcome.detail()
                )
                .chars()
                .take(300)
                .collect(),
            })
            .build();
        self.store.finish(claimed, owner, transport, &outcome, self.clock.now(), &event, !self.keep_codes).await?;
        // Counted once stored: the metric never runs ahead of the database.
        self.metrics.attempts.with_label_values(&[m.channel.as_str(), label]).inc();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let p = RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            lease: Duration::from_secs(60),
        };
        let mut rng = rand::rng();
        for _ in 0..200 {
            let d1 = p.delay(1, &mut rng);
            assert!(d1 >= Duration::from_secs(5) && d1 <= Duration::from_secs(10), "{d1:?}");
            let d3 = p.delay(3, &mut rng);
            assert!(d3 >= Duration::from_secs(20) && d3 <= Duration::from_secs(40), "{d3:?}");
            let d30 = p.delay(30, &mut rng);
            assert!(d30 >= Duration::from_secs(150) && d30 <= Duration::from_secs(300), "{d30:?}");
        }
        let spread: std::collections::BTreeSet<_> = (0..50).map(|_| p.delay(2, &mut rng)).collect();
        assert!(spread.len() > 40, "jitter spreads retries");
    }
}
