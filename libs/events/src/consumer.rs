//! The consume loop: handle messages, then commit them. A failing handler is
//! retried (with backoff) until it succeeds, so nothing is skipped and the
//! partition's order is kept; a message that can never be handled (it does
//! not decode) is set aside on the topic's dead-letter topic.
//!
//! Messages are taken in batches of what the client has already received
//! (at most [`MessageHandler::max_batch`]); a handler that can store a batch
//! in one transaction overrides [`MessageHandler::handle_batch`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use spid_telemetry::Metrics;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bus::{Delivery, EventBus, OutgoingMessage};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A transient failure (database down...): the message is retried.
    #[error("retry: {0}")]
    Retry(String),
    /// The message can never be handled: it goes to `<topic>.dead-letter`.
    #[error("poison message: {0}")]
    Poison(String),
}

#[async_trait]
pub trait MessageHandler: Send + Sync {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError>;

    /// Handles `batch` in order. Returns how many leading deliveries are
    /// done and, if it stopped early, the error of the next one. The
    /// default handles them one at a time.
    async fn handle_batch(&self, batch: &[Delivery]) -> (usize, Option<HandlerError>) {
        for (done, delivery) in batch.iter().enumerate() {
            if let Err(e) = self.handle(delivery).await {
                return (done, Some(e));
            }
        }
        (batch.len(), None)
    }

    /// The largest batch [`handle_batch`](Self::handle_batch) is given.
    fn max_batch(&self) -> usize {
        1
    }
}

pub use spid_types::topics::DEAD_LETTER_SUFFIX;

/// Consumes `topics` as member of `group` until `shutdown`. Subscription
/// failures are retried: the loop only ends on shutdown.
pub async fn run_consumer(
    bus: Arc<dyn EventBus>,
    group: String,
    topics: Vec<&'static str>,
    handler: Arc<dyn MessageHandler>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    'subscribe: loop {
        let mut sub = match bus.subscribe(&group, &topics).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%group, error = %e, "subscription failed; retrying");
                if sleep_or_shutdown(&shutdown, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue 'subscribe;
            }
        };
        let mut last_warning = None;
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return,
                b = sub.next_batch(handler.max_batch().max(1)) => b,
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    // Client-side errors (broker down, rebalance) are
                    // reported here while the client recovers by itself:
                    // note them and keep polling.
                    if last_warning.is_none_or(|t: std::time::Instant| t.elapsed() > Duration::from_secs(5)) {
                        tracing::warn!(%group, error = %e, "receive failed");
                        last_warning = Some(std::time::Instant::now());
                    }
                    if sleep_or_shutdown(&shutdown, Duration::from_millis(100)).await {
                        return;
                    }
                    continue;
                }
            };
            if !handle_until_done(&*bus, &*handler, &batch, &group, &shutdown).await {
                return;
            }
            // Commit the last message of each partition: it covers those
            // before it.
            let mut last: Vec<&Delivery> = Vec::new();
            for d in &batch {
                match last.iter_mut().find(|l| l.topic == d.topic && l.partition == d.partition) {
                    Some(l) => *l = d,
                    None => last.push(d),
                }
            }
            for d in last {
                if let Err(e) = sub.commit(d).await {
                    // Not fatal: the message will be delivered again and the
                    // idempotent handler absorbs it.
                    tracing::warn!(%group, error = %e, "commit failed");
                }
            }
            for d in &batch {
                metrics.bus_consumed.with_label_values(&[d.topic.as_str(), group.as_str()]).inc();
            }
        }
    }
}

/// Handles every delivery of `batch`; returns false if shutdown came first.
async fn handle_until_done(
    bus: &dyn EventBus,
    handler: &dyn MessageHandler,
    batch: &[Delivery],
    group: &str,
    shutdown: &CancellationToken,
) -> bool {
    let Some(first) = batch.first() else { return true };
    let span = tracing::info_span!(
        "consume", topic = %first.topic, partition = first.partition, offset = first.offset,
        messages = batch.len(), %group
    );
    spid_telemetry::set_parent(&span, |k| first.header(k).map(str::to_owned));
    let mut start = 0;
    let mut backoff = Duration::from_millis(100);
    while start < batch.len() {
        let (done, error) = handler.handle_batch(&batch[start..]).instrument(span.clone()).await;
        start += done.min(batch.len() - start);
        match error {
            None => continue,
            Some(HandlerError::Poison(reason)) => {
                let Some(delivery) = batch.get(start) else { return true };
                tracing::error!(parent: &span, %reason, offset = delivery.offset, "poison message set aside on the dead-letter topic");
                let mut headers = delivery.headers.clone();
                headers.push(("dead-letter-reason".into(), reason));
                headers.push(("dead-letter-group".into(), group.to_owned()));
                let dead = OutgoingMessage { key: delivery.key.clone(), payload: delivery.payload.clone(), headers };
                let topic = format!("{}{DEAD_LETTER_SUFFIX}", delivery.topic);
                match bus.publish(&topic, dead).await {
                    Ok(()) => {
                        start += 1;
                        continue;
                    }
                    Err(e) => tracing::warn!(parent: &span, error = %e, "dead-letter publish failed; retrying"),
                }
            }
            Some(HandlerError::Retry(reason)) => {
                tracing::warn!(parent: &span, %reason, retry_in_ms = backoff.as_millis() as u64, "handler failed; retrying");
            }
        }
        if sleep_or_shutdown(shutdown, backoff).await {
            return false;
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    true
}

/// Sleeps; returns true if shutdown was requested meanwhile.
async fn sleep_or_shutdown(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
