use async_trait::async_trait;

/// A message to publish. `key` decides the partition: messages with the same
/// key are delivered in the order they were published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// A message received from a subscription. It must be committed after it
/// has been processed; an uncommitted message is delivered again after a
/// restart or a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached or did not acknowledge in time.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// Start-up failure, naming the setting.
    #[error("{setting}: {message}")]
    Setup { setting: String, message: String },
    #[error("bus error: {0}")]
    Other(String),
}

#[async_trait]
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Publishes one message and returns once the bus has stored it.
    async fn publish(&self, topic: &str, message: OutgoingMessage) -> Result<(), BusError>;

    /// Joins consumer group `group` for `topics`. Members of one group share
    /// the partitions; each group receives every message.
    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Subscription>, BusError>;

    /// Whether the bus is reachable now (readiness).
    async fn check(&self) -> Result<(), BusError>;

    /// `kafka` or `embedded`.
    fn kind(&self) -> &'static str;
}

#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next message of the partitions assigned to this member.
    async fn next(&mut self) -> Result<Delivery, BusError>;

    /// Records that `delivery` (and everything before it in its partition)
    /// has been processed.
    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// Waits for the next message, then takes up to `max` in all of those
    /// already received, without waiting for more. A receive error after
    /// the first message ends the batch; the next call reports it.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, BusError> {
        let mut batch = vec![self.next().await?];
        while batch.len() < max {
            // A zero timeout polls `next` once: it yields what is buffered.
            match tokio::time::timeout(std::time::Duration::ZERO, self.next()).await {
                Ok(Ok(d)) => batch.push(d),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Ok(batch)
    }
}

/// The partition of a key: a stable hash (FNV-1a), so that every producer,
/// in any process, puts one key on the same partition.
pub(crate) fn partition_of(key: &str, partitions: i32) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in key.as_bytes() {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % partitions.max(1) as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitioning_is_stable_and_spread() {
        assert_eq!(partition_of("LPDA0000000001", 6), partition_of("LPDA0000000001", 6));
        let used: std::collections::BTreeSet<i32> = (0..100).map(|i| partition_of(&format!("id-{i}"), 6)).collect();
        assert_eq!(used.len(), 6);
        assert!(used.iter().all(|p| (0..6).contains(p)));
    }
}
