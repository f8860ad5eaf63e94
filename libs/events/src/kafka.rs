//! The production bus: Apache Kafka through librdkafka (rdkafka).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::PARTITIONS;
use crate::bus::{BusError, Delivery, EventBus, OutgoingMessage, Subscription};

/// See the module documentation.
pub struct KafkaBus {
    base: ClientConfig,
    producer: FutureProducer<Logged>,
    timeout: Duration,
    brokers: String,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus").field("brokers", &self.brokers).finish()
    }
}

impl KafkaBus {
    /// Connects to `brokers` and checks that they answer within `timeout`.
    /// `properties` are extra librdkafka settings (TLS, SASL).
    pub async fn connect(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Self, BusError> {
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", brokers);
        for (k, v) in properties {
            base.set(k, v);
        }
        probe(&base, brokers, timeout).await?;
        // Safe defaults first; `bus.properties` may override them.
        let mut producer_config = ClientConfig::new();
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", timeout.as_millis().to_string());
        for (k, v) in base.config_map() {
            producer_config.set(k, v);
        }
        let producer: FutureProducer<Logged> = producer_config
            .create_with_context(Logged::default())
            .map_err(|e| BusError::Setup { setting: "bus.properties".into(), message: e.to_string() })?;
        Ok(Self { base, producer, timeout, brokers: brokers.to_owned() })
    }

    /// Creates the topics that do not exist yet.
    pub async fn ensure_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        let existing: Vec<String> = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, timeout)
                .map(|m| m.topics().iter().map(|t| t.name().to_owned()).collect())
        })
        .await
        .map_err(|e| BusError::Other(e.to_string()))?
        .map_err(|e| BusError::Unavailable(e.to_string()))?;
        let topics: Vec<&str> = topics.iter().copied().filter(|t| !existing.iter().any(|e| e == t)).collect();
        if topics.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<Logged> =
            self.base.create_with_context(Logged::default()).map_err(|e| BusError::Other(e.to_string()))?;
        let new: Vec<NewTopic<'_>> =
            topics.iter().map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(-1))).collect();
        let options = AdminOptions::new().operation_timeout(Some(self.timeout)).request_timeout(Some(self.timeout));
        let results = tokio::time::timeout(self.timeout + Duration::from_secs(1), admin.create_topics(&new, &options))
            .await
            .map_err(|_| BusError::Unavailable("no answer to CreateTopics".into()))?
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(BusError::Other(format!("cannot create topic {topic}: {code}"))),
            }
        }
        Ok(())
    }
}

/// A client context that keeps librdkafka quiet: the start-up probe reports
/// its outcome in one line instead of librdkafka's retries.
struct Quiet;

impl rdkafka::ClientContext for Quiet {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: rdkafka::error::KafkaError, _: &str) {}
}

impl rdkafka::consumer::ConsumerContext for Quiet {}

/// The context of the long-lived clients: librdkafka reports the same
/// broker error many times a second during an outage; log it at most once
/// every 10 seconds per kind, as a warning (the clients recover by
/// themselves; the outbox keeps what could not be published).
#[derive(Default)]
pub struct Logged {
    last: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl Logged {
    fn should_log(&self, kind: &str) -> bool {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        match last.get(kind) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(10) => false,
            _ => {
                last.insert(kind.to_owned(), now);
                true
            }
        }
    }
}

impl rdkafka::ClientContext for Logged {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        if matches!(level, L::Emerg | L::Alert | L::Critical | L::Error | L::Warning) && self.should_log(fac) {
            tracing::warn!(facility = fac, "librdkafka: {message}");
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let kind = format!("{:?}", error.rdkafka_error_code());
        if self.should_log(&kind) {
            tracing::warn!(%error, "kafka: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Logged {}

/// Checks that the brokers answer a metadata request within `timeout`.
async fn probe(base: &ClientConfig, brokers: &str, timeout: Duration) -> Result<(), BusError> {
    let setup = |message: String| BusError::Setup { setting: "bus.brokers".into(), message };
    let client: rdkafka::consumer::BaseConsumer<Quiet> = base
        .create_with_context(Quiet)
        .map_err(|e| BusError::Setup { setting: "bus.properties".into(), message: e.to_string() })?;
    tokio::task::spawn_blocking(move || client.fetch_metadata(None, timeout).map(|_| ()))
        .await
        .map_err(|e| setup(e.to_string()))?
        .map_err(|e| setup(format!("cannot reach Kafka at {brokers}: {e}")))
}

#[async_trait]
impl EventBus for KafkaBus {
    async fn publish(&self, topic: &str, message: OutgoingMessage) -> Result<(), BusError> {
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
        for (k, v) in &message.headers {
            headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        let record = FutureRecord::to(topic).key(&message.key).payload(&message.payload).headers(headers);
        self.producer
            .send(record, self.timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| BusError::Unavailable(e.to_string()))
    }

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Subscription>, BusError> {
        // Defaults first; `bus.properties` may tune them (not the commit
        // discipline, which is set last).
        let mut config = ClientConfig::new();
        config
            .set("auto.commit.interval.ms", "1000")
            .set("auto.offset.reset", "earliest")
            // A crashed member's partitions move to the others after 10 s,
            // and a rebalance waits at most 20 s for slow members.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            .set("max.poll.interval.ms", "20000");
        for (k, v) in self.base.config_map() {
            config.set(k, v);
        }
        let consumer: StreamConsumer<Logged> = config
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            // Offsets are stored only after a message has been processed.
            .set("enable.auto.offset.store", "false")
            .create_with_context(Logged::default())
            .map_err(|e| BusError::Other(e.to_string()))?;
        consumer.subscribe(topics).map_err(|e| BusError::Other(e.to_string()))?;
        Ok(Box::new(KafkaSubscription { consumer }))
    }

    async fn check(&self) -> Result<(), BusError> {
        let producer = self.producer.clone();
        let timeout = self.timeout.min(Duration::from_secs(5));
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(|e| BusError::Other(e.to_string()))?
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }

    fn kind(&self) -> &'static str {
        "kafka"
    }
}

struct KafkaSubscription {
    consumer: StreamConsumer<Logged>,
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        let msg = self.consumer.recv().await.map_err(|e| BusError::Unavailable(e.to_string()))?;
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|hdr| {
                        (hdr.key.to_owned(), String::from_utf8_lossy(hdr.value.unwrap_or_default()).into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Delivery {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
            payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
        })
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        match self.consumer.store_offset(&delivery.topic, delivery.partition, delivery.offset + 1) {
            Ok(()) => Ok(()),
            // The partition was revoked by a rebalance: its new owner
            // re-reads from the last committed offset.
            Err(e) if matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::State)) => Ok(()),
            Err(e) => Err(BusError::Other(e.to_string())),
        }
    }
}
