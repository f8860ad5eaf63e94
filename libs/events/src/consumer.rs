//! The consume loop: handle a message, then commit it. A failing handler is
//! retried (with backoff) until it succeeds, so nothing is skipped and the
//! partition's order is kept; a message that can never be handled (it does
//! not decode) is set aside on the topic's dead-letter topic.

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
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => return,
                d = sub.next() => d,
            };
            let delivery = match delivery {
                Ok(d) => d,
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
            if !handle_until_done(&*bus, &*handler, &delivery, &group, &shutdown).await {
                return;
            }
            if let Err(e) = sub.commit(&delivery).await {
                // Not fatal: the message will be delivered again and the
                // idempotent handler absorbs it.
                tracing::warn!(%group, error = %e, "commit failed");
            }
            metrics.bus_consumed.with_label_values(&[delivery.topic.as_str(), group.as_str()]).inc();
        }
    }
}

/// Returns false if shutdown came first.
async fn handle_until_done(
    bus: &dyn EventBus,
    handler: &dyn MessageHandler,
    delivery: &Delivery,
    group: &str,
    shutdown: &CancellationToken,
) -> bool {
    let span = tracing::info_span!("consume", topic = %delivery.topic, partition = delivery.partition, offset = delivery.offset, %group);
    spid_telemetry::set_parent(&span, |k| delivery.header(k).map(str::to_owned));
    let mut backoff = Duration::from_millis(100);
    loop {
        match handler.handle(delivery).instrument(span.clone()).await {
            Ok(()) => return true,
            Err(HandlerError::Poison(reason)) => {
                tracing::error!(parent: &span, %reason, "poison message set aside on the dead-letter topic");
                let mut headers = delivery.headers.clone();
                headers.push(("dead-letter-reason".into(), reason));
                headers.push(("dead-letter-group".into(), group.to_owned()));
                let dead = OutgoingMessage { key: delivery.key.clone(), payload: delivery.payload.clone(), headers };
                let topic = format!("{}{DEAD_LETTER_SUFFIX}", delivery.topic);
                match bus.publish(&topic, dead).await {
                    Ok(()) => return true,
                    Err(e) => tracing::warn!(parent: &span, error = %e, "dead-letter publish failed; retrying"),
                }
            }
            Err(HandlerError::Retry(reason)) => {
                tracing::warn!(parent: &span, %reason, retry_in_ms = backoff.as_millis() as u64, "handler failed; retrying");
            }
        }
        if sleep_or_shutdown(shutdown, backoff).await {
            return false;
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Sleeps; returns true if shutdown was requested meanwhile.
async fn sleep_or_shutdown(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
