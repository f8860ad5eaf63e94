//! The development bus: a partitioned log kept in a SQLite file, with the
//! semantics of the Kafka bus — ordered per key, at least once, consumer
//! groups sharing partitions, committed offsets that survive a restart.
//! One process only (the `idp dev` mode); production uses Kafka.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use spid_db::{ConnectOptions, Db, sqlx};
use sqlx::Row;
use tokio::sync::watch;

use crate::PARTITIONS;
use crate::bus::{BusError, Delivery, EventBus, OutgoingMessage, Subscription, partition_of};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bus_log (
    topic TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL,
    msg_key TEXT NOT NULL, payload BLOB NOT NULL, headers TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (topic, part, off)
);
CREATE TABLE IF NOT EXISTS bus_offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, next_off INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, part)
);";

const FETCH_BATCH: i64 = 256;

#[derive(Debug, Default)]
struct Group {
    members: Vec<u64>,
    generation: u64,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    /// Serialises appends so offsets are dense and ordered.
    append: tokio::sync::Mutex<()>,
    /// Bumped on every publish; subscribers wait on it.
    published: watch::Sender<u64>,
    groups: Mutex<HashMap<String, Group>>,
    next_member: std::sync::atomic::AtomicU64,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

impl EmbeddedBus {
    /// Opens (or creates) the log at `path`.
    pub async fn open(path: &std::path::Path) -> Result<Self, BusError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = Db::connect(ConnectOptions {
            setting: "dev.data_dir",
            url: &url,
            max_connections: 4,
            connect_timeout: Duration::from_secs(5),
        })
        .await
        .map_err(|e| BusError::Setup { setting: "dev.data_dir".into(), message: e.to_string() })?;
        sqlx::raw_sql(SCHEMA).execute(db.pool()).await.map_err(|e| BusError::Other(e.to_string()))?;
        let (published, _) = watch::channel(0);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                append: tokio::sync::Mutex::new(()),
                published,
                groups: Mutex::new(HashMap::new()),
                next_member: std::sync::atomic::AtomicU64::new(1),
            }),
        })
    }
}

fn other(e: sqlx::Error) -> BusError {
    BusError::Other(e.to_string())
}

#[async_trait]
impl EventBus for EmbeddedBus {
    async fn publish(&self, topic: &str, message: OutgoingMessage) -> Result<(), BusError> {
        let part = partition_of(&message.key, PARTITIONS);
        let headers = serde_json::to_string(&message.headers).map_err(|e| BusError::Other(e.to_string()))?;
        let now = chrono::Utc::now().timestamp_micros();
        {
            let _guard = self.inner.append.lock().await;
            sqlx::query(
                "INSERT INTO bus_log (topic, part, off, msg_key, payload, headers, created_at)
                 SELECT $1, $2, COALESCE(MAX(off) + 1, 0), $3, $4, $5, $6 FROM bus_log WHERE topic = $1 AND part = $2",
            )
            .bind(topic)
            .bind(i64::from(part))
            .bind(&message.key)
            .bind(&message.payload)
            .bind(headers)
            .bind(now)
            .execute(self.inner.db.pool())
            .await
            .map_err(other)?;
        }
        self.inner.published.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Subscription>, BusError> {
        let member = self.inner.next_member.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        {
            let mut groups = self.inner.groups.lock().unwrap_or_else(PoisonError::into_inner);
            let g = groups.entry(group.to_owned()).or_default();
            g.members.push(member);
            g.generation += 1;
        }
        Ok(Box::new(EmbeddedSubscription {
            inner: self.inner.clone(),
            group: group.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            member,
            generation: 0,
            positions: HashMap::new(),
            buffer: VecDeque::new(),
            wake: self.inner.published.subscribe(),
        }))
    }

    async fn check(&self) -> Result<(), BusError> {
        self.inner.db.ping().await.map_err(|e| BusError::Unavailable(e.to_string()))
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

struct EmbeddedSubscription {
    inner: Arc<Inner>,
    group: String,
    topics: Vec<String>,
    member: u64,
    /// Group generation this member's assignment was computed for.
    generation: u64,
    /// Next offset to read, per assigned (topic, partition).
    positions: HashMap<(String, i32), i64>,
    buffer: VecDeque<Delivery>,
    wake: watch::Receiver<u64>,
}

impl EmbeddedSubscription {
    /// Recomputes the assignment after members joined or left: partition p
    /// goes to the member at index p mod n. Positions restart from the
    /// committed offsets, so uncommitted messages are delivered again.
    async fn rebalance_if_needed(&mut self) -> Result<(), BusError> {
        let (generation, index, count) = {
            let groups = self.inner.groups.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(g) = groups.get(&self.group) else { return Ok(()) };
            let index = g.members.iter().position(|m| *m == self.member).unwrap_or(0);
            (g.generation, index, g.members.len().max(1))
        };
        if generation == self.generation {
            return Ok(());
        }
        self.buffer.clear();
        self.positions.clear();
        for topic in &self.topics {
            for part in 0..PARTITIONS {
                if (part as usize) % count != index {
                    continue;
                }
                let committed: Option<i64> =
                    sqlx::query_scalar("SELECT next_off FROM bus_offsets WHERE grp = $1 AND topic = $2 AND part = $3")
                        .bind(&self.group)
                        .bind(topic)
                        .bind(i64::from(part))
                        .fetch_optional(self.inner.db.pool())
                        .await
                        .map_err(other)?;
                self.positions.insert((topic.clone(), part), committed.unwrap_or(0));
            }
        }
        self.generation = generation;
        Ok(())
    }

    async fn fill(&mut self) -> Result<(), BusError> {
        let mut keys: Vec<(String, i32)> = self.positions.keys().cloned().collect();
        keys.sort();
        for (topic, part) in keys {
            let from = self.positions.get(&(topic.clone(), part)).copied().unwrap_or(0);
            let rows = sqlx::query(
                "SELECT off, msg_key, payload, headers FROM bus_log
                 WHERE topic = $1 AND part = $2 AND off >= $3 ORDER BY off LIMIT $4",
            )
            .bind(&topic)
            .bind(i64::from(part))
            .bind(from)
            .bind(FETCH_BATCH)
            .fetch_all(self.inner.db.pool())
            .await
            .map_err(other)?;
            for row in rows {
                let offset: i64 = row.try_get("off").map_err(other)?;
                let headers: String = row.try_get("headers").map_err(other)?;
                let headers: Vec<(String, String)> = serde_json::from_str(&headers).unwrap_or_default();
                self.buffer.push_back(Delivery {
                    topic: topic.clone(),
                    partition: part,
                    offset,
                    key: row.try_get("msg_key").map_err(other)?,
                    payload: row.try_get("payload").map_err(other)?,
                    headers,
                });
                self.positions.insert((topic.clone(), part), offset + 1);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            self.rebalance_if_needed().await?;
            if let Some(d) = self.buffer.pop_front() {
                return Ok(d);
            }
            // Mark the current publish count as seen before reading, so a
            // publish racing with the read wakes us up.
            self.wake.borrow_and_update();
            self.fill().await?;
            if self.buffer.is_empty() {
                // Woken by a publish, or periodically to notice rebalances.
                let _ = tokio::time::timeout(Duration::from_millis(500), self.wake.changed()).await;
            }
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        if !self.positions.contains_key(&(delivery.topic.clone(), delivery.partition)) {
            // No longer ours after a rebalance: the new owner re-reads it.
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO bus_offsets (grp, topic, part, next_off) VALUES ($1, $2, $3, $4)
             ON CONFLICT (grp, topic, part) DO UPDATE SET next_off = excluded.next_off",
        )
        .bind(&self.group)
        .bind(&delivery.topic)
        .bind(i64::from(delivery.partition))
        .bind(delivery.offset + 1)
        .execute(self.inner.db.pool())
        .await
        .map_err(other)?;
        Ok(())
    }
}

impl Drop for EmbeddedSubscription {
    fn drop(&mut self) {
        let mut groups = self.inner.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(g) = groups.get_mut(&self.group) {
            g.members.retain(|m| *m != self.member);
            g.generation += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(key: &str, n: u32) -> OutgoingMessage {
        OutgoingMessage { key: key.into(), payload: n.to_be_bytes().to_vec(), headers: vec![("h".into(), "v".into())] }
    }

    fn num(d: &Delivery) -> u32 {
        u32::from_be_bytes(d.payload.clone().try_into().unwrap())
    }

    async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
        tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn ordered_per_key_and_every_group_gets_everything() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db")).await.unwrap();
        for n in 0..20 {
            bus.publish("t", msg(if n % 2 == 0 { "a" } else { "b" }, n)).await.unwrap();
        }
        for group in ["g1", "g2"] {
            let mut sub = bus.subscribe(group, &["t"]).await.unwrap();
            let mut seen: HashMap<String, Vec<u32>> = HashMap::new();
            for _ in 0..20 {
                let d = next(&mut sub).await;
                assert_eq!(d.header("h"), Some("v"));
                seen.entry(d.key.clone()).or_default().push(num(&d));
                sub.commit(&d).await.unwrap();
            }
            assert_eq!(seen["a"], (0..20).filter(|n| n % 2 == 0).collect::<Vec<_>>());
            assert_eq!(seen["b"], (0..20).filter(|n| n % 2 == 1).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn uncommitted_messages_come_back_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.db");
        {
            let bus = EmbeddedBus::open(&path).await.unwrap();
            for n in 0..3 {
                bus.publish("t", msg("k", n)).await.unwrap();
            }
            let mut sub = bus.subscribe("g", &["t"]).await.unwrap();
            let first = next(&mut sub).await;
            sub.commit(&first).await.unwrap();
            let second = next(&mut sub).await;
            assert_eq!(num(&second), 1);
            // Not committed: the process "crashes" here.
        }
        let bus = EmbeddedBus::open(&path).await.unwrap();
        let mut sub = bus.subscribe("g", &["t"]).await.unwrap();
        assert_eq!(num(&next(&mut sub).await), 1);
        assert_eq!(num(&next(&mut sub).await), 2);
    }

    #[tokio::test]
    async fn members_of_a_group_share_partitions_and_wake_on_publish() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db")).await.unwrap();
        let mut a = bus.subscribe("g", &["t"]).await.unwrap();
        let mut b = bus.subscribe("g", &["t"]).await.unwrap();
        let producer = bus.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            for n in 0..60 {
                producer.publish("t", msg(&format!("key-{n}"), n)).await.unwrap();
            }
        });
        let mut got = Vec::new();
        let mut parts_a = std::collections::BTreeSet::new();
        let mut parts_b = std::collections::BTreeSet::new();
        while got.len() < 60 {
            tokio::select! {
                d = a.next() => { let d = d.unwrap(); parts_a.insert(d.partition); a.commit(&d).await.unwrap(); got.push(num(&d)); }
                d = b.next() => { let d = d.unwrap(); parts_b.insert(d.partition); b.commit(&d).await.unwrap(); got.push(num(&d)); }
                _ = tokio::time::sleep(Duration::from_secs(5)) => panic!("timed out with {} messages", got.len()),
            }
        }
        got.sort_unstable();
        assert_eq!(got, (0..60).collect::<Vec<_>>());
        assert!(parts_a.is_disjoint(&parts_b), "{parts_a:?} {parts_b:?}");
        assert!(!parts_a.is_empty() && !parts_b.is_empty());
    }
}
