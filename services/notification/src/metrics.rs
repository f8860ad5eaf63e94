//! notification's own metrics, in the service's registry: attempts by
//! channel and outcome, and the dead letters waiting for an operator.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct DeliveryMetrics {
    /// Attempts by channel and outcome (delivered, failed, dead-lettered).
    pub attempts: IntCounterVec,
    /// Dead-lettered messages now (refreshed by the delivery worker).
    pub dead_letters: IntGauge,
}

impl DeliveryMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            attempts: IntCounterVec::new(
                Opts::new("notification_attempts_total", "Delivery attempts by channel and outcome"),
                &["channel", "outcome"],
            )?,
            dead_letters: IntGauge::with_opts(Opts::new(
                "notification_dead_letters",
                "Messages dead-lettered and waiting for an operator",
            ))?,
        };
        registry.register(Box::new(m.attempts.clone()))?;
        registry.register(Box::new(m.dead_letters.clone()))?;
        Ok(m)
    }

    /// Unregistered, for tests.
    #[cfg(test)]
    pub fn detached() -> Result<Self, prometheus::Error> {
        Self::new(&Registry::new())
    }
}
