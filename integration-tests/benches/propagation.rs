//! Suspension propagation (issue 7): the delay from identity-manager's
//! `LifecycleAdmin/Suspend` returning to authn-gateway refusing the
//! identity's sessions, over a real Kafka-protocol broker (tansu), with
//! every service its own `idp` process. Target: p99 under 1 s.
//!
//! The path measured: the state change and its event committed to the
//! outbox in one transaction → the outbox relay publishes it on
//! `spid.lifecycle.v1` → the gateway's consumer moves the identity's epoch
//! in Redis (`{prefix}authn-gateway:saml:sso-epoch:{spidCode}`), which ends
//! every session of it on every replica. One sample is the time from the
//! Suspend call returning OK to the first read of Redis (every 1 ms) that
//! sees the epoch moved. The same demo holder is suspended and restored
//! again and again: restores do not move the epoch, so each suspension is
//! one sample. A random pause (0–250 ms) before each suspension keeps the
//! samples out of step with the services' own timers.
//!
//! The **reference**, measured in the same run on the same broker: the
//! bare broker round trip — a message published with the services' own bus
//! client (`spid_events::KafkaBus`, the same librdkafka settings) until a
//! subscriber of the same kind receives it, after the same random pauses.
//!
//! `SPID_BENCH_SUSPENSIONS` sets the number of suspensions (default 200),
//! `SPID_BENCH_ROUND_TRIPS` that of reference round trips (default 100);
//! about 3 minutes in all. Run with `make bench` (it builds the release
//! `idp` first). Fails only when the set-up does; the target is reported,
//! not asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use integration_tests::{Broker, Ports, ServiceProcess};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use spid_events::{EventBus, KafkaBus, OutgoingMessage};
use spid_proto::identity::v1::backoffice_client::BackofficeClient;
use spid_proto::identity::v1::lifecycle_admin_client::LifecycleAdminClient;
use spid_proto::identity::v1::{AddOperatorRequest, LifecycleRequest, Operator};
use spid_types::ServiceName;

const OPERATOR: &str = "bench-admin";
/// How often Redis is read while waiting for the epoch to move.
const POLL: Duration = Duration::from_millis(1);
/// A sample not seen within this counts as missed (and as this long).
const GIVE_UP: Duration = Duration::from_secs(10);
/// The longest random pause before a sample.
const MAX_PAUSE: Duration = Duration::from_millis(250);
const TARGET_P99: Duration = Duration::from_secs(1);
/// The services' bus timeout (`IDP__BUS__TIMEOUT_SECS` of `all_services`).
const BUS_TIMEOUT: Duration = Duration::from_secs(3);
const REFERENCE_TOPIC: &str = "bench.propagation.reference";

fn count(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// Pauses in [0, MAX_PAUSE), the same sequence in every run (xorshift).
struct Pauses(u64);

impl Pauses {
    fn next(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        MAX_PAUSE.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

async fn epoch(redis: &mut MultiplexedConnection, key: &str) -> u64 {
    let value: Option<u64> = redis.get(key).await.unwrap();
    value.unwrap_or(0)
}

/// Reads the epoch every [`POLL`] until it is past `before`: when it was
/// first seen so, or `None` after `within`.
async fn epoch_moved(redis: &mut MultiplexedConnection, key: &str, before: u64, within: Duration) -> Option<Instant> {
    let started = Instant::now();
    loop {
        if epoch(redis, key).await > before {
            return Some(Instant::now());
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn request(spid_code: &str, reason: &str) -> LifecycleRequest {
    LifecycleRequest {
        spid_code: spid_code.to_owned(),
        reason: reason.to_owned(),
        actor_id: OPERATOR.to_owned(),
        justification_ref: "bench".to_owned(),
        ..LifecycleRequest::default()
    }
}

/// Sorted durations and their order statistics.
struct Stats(Vec<Duration>);

impl Stats {
    fn new(mut v: Vec<Duration>) -> Self {
        v.sort();
        Self(v)
    }
    fn pct(&self, p: f64) -> Duration {
        self.0[((self.0.len() as f64 * p).ceil() as usize).saturating_sub(1)]
    }
    fn row(&self) -> [Duration; 5] {
        [self.0[0], self.pct(0.50), self.pct(0.90), self.pct(0.99), self.0[self.0.len() - 1]]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Suspends and restores the holder `n` times: per suspension, the time
/// from Suspend returning to the epoch moving (`None` if it did not within
/// [`GIVE_UP`]), and the time of the Suspend call itself.
async fn suspensions(
    lifecycle: &mut LifecycleAdminClient<tonic::transport::Channel>,
    redis: &mut MultiplexedConnection,
    key: &str,
    spid_code: &str,
    n: usize,
    pauses: &mut Pauses,
) -> Vec<(Option<Duration>, Duration)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        tokio::time::sleep(pauses.next()).await;
        let before = epoch(redis, key).await;
        let called = Instant::now();
        lifecycle.suspend(request(spid_code, "bench: suspension")).await.unwrap();
        let returned = Instant::now();
        let seen = epoch_moved(redis, key, before, GIVE_UP).await;
        out.push((seen.map(|t| t - returned), returned - called));
        lifecycle.restore(request(spid_code, "bench: restore")).await.unwrap();
    }
    out
}

/// The reference: `n` messages, each published after a pause and timed
/// from the publish call to the subscriber receiving it; with the time the
/// publish call took (the broker's acknowledgement, part of the round trip).
async fn broker_round_trips(broker: &Broker, n: usize, pauses: &mut Pauses) -> Vec<(Duration, Duration)> {
    let bus = KafkaBus::connect(&broker.bootstrap, &Default::default(), BUS_TIMEOUT).await.unwrap();
    bus.ensure_topics(&[REFERENCE_TOPIC]).await.unwrap();
    let mut sub = bus.subscribe("bench-propagation-reference", &[REFERENCE_TOPIC]).await.unwrap();
    // One key, as the lifecycle events of one identity: one partition.
    let message = |i: usize| OutgoingMessage {
        key: "XIDPBENCHREF01".to_owned(),
        payload: i.to_be_bytes().to_vec(),
        headers: vec![("event-type".to_owned(), "bench.reference".to_owned())],
    };
    let mut round_trip = async |i: usize| {
        let started = Instant::now();
        let receive = async {
            loop {
                let d = sub.next().await.unwrap();
                if d.payload == i.to_be_bytes() {
                    return Instant::now();
                }
            }
        };
        let publish = async {
            bus.publish(REFERENCE_TOPIC, message(i)).await.unwrap();
            Instant::now()
        };
        let (published, received) = tokio::join!(publish, receive);
        (received - started, published - started)
    };
    // The first one waits for the group to form (not counted); then a few
    // more to warm up.
    let first = tokio::time::timeout(Duration::from_secs(60), round_trip(usize::MAX)).await;
    assert!(first.is_ok(), "the reference subscriber received nothing within 60 s");
    for i in 0..5 {
        round_trip(n + i).await;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep(pauses.next()).await;
        out.push(round_trip(i).await);
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = count("SPID_BENCH_SUSPENSIONS", 200);
    let m = count("SPID_BENCH_ROUND_TRIPS", 100);
    let bench_started = Instant::now();
    let broker = Broker::tansu();
    let ports = Ports::allocate();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let prefix = integration_tests::cache_prefix();
    let procs = integration_tests::all_services_with_prefix(&broker, &ports, &data, dir.path(), &prefix).await;
    let ready = bench_started.elapsed();
    let holder = integration_tests::demo_holder(&data, 1);
    let spid_code = holder["spid_code"].as_str().unwrap().to_owned();
    // The gateway's cache key of the identity's epoch (sessions.rs), under
    // the prefix idp gives the gateway's cache (`{key_prefix}authn-gateway:`).
    let key = format!("{prefix}{}:saml:sso-epoch:{spid_code}", ServiceName::AuthnGateway.as_str());

    let mut redis = redis::Client::open(integration_tests::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at SPID_TEST_REDIS_URL");
    let im = ports.grpc_url(ServiceName::IdentityManager);
    BackofficeClient::connect(im.clone())
        .await
        .unwrap()
        .add_operator(AddOperatorRequest {
            by_operator_id: String::new(),
            operator: Some(Operator {
                id: OPERATOR.into(),
                display_name: "Bench".into(),
                role: "administrator".into(),
                disabled: false,
            }),
        })
        .await
        .unwrap();
    let mut lifecycle = LifecycleAdminClient::connect(im).await.unwrap();

    // Warm-up: the first suspension waits for the gateway's consumer group
    // to form; then a few more. Not counted.
    let mut pauses = Pauses(0x9e37_79b9_7f4a_7c15);
    let before = epoch(&mut redis, &key).await;
    lifecycle.suspend(request(&spid_code, "bench: warm-up")).await.unwrap();
    if epoch_moved(&mut redis, &key, before, Duration::from_secs(60)).await.is_none() {
        let gateway = procs.iter().find(|p| p.name == ServiceName::AuthnGateway).map(ServiceProcess::logs);
        panic!("{key} did not move within 60 s of the first suspension; gateway log:\n{}", gateway.unwrap_or_default());
    }
    lifecycle.restore(request(&spid_code, "bench: warm-up")).await.unwrap();
    let warm_up = suspensions(&mut lifecycle, &mut redis, &key, &spid_code, 5, &mut pauses).await;
    assert!(warm_up.iter().all(|(seen, _)| seen.is_some()), "warm-up suspensions not seen: {warm_up:?}");

    let measured_started = Instant::now();
    let samples = suspensions(&mut lifecycle, &mut redis, &key, &spid_code, n, &mut pauses).await;
    let measured = measured_started.elapsed();
    let missed = samples.iter().filter(|(seen, _)| seen.is_none()).count();
    let propagation = Stats::new(samples.iter().map(|(seen, _)| seen.unwrap_or(GIVE_UP)).collect());
    let calls = Stats::new(samples.iter().map(|(_, call)| *call).collect());

    let reference_started = Instant::now();
    let round_trips = broker_round_trips(&broker, m, &mut pauses).await;
    let reference = Stats::new(round_trips.iter().map(|(rt, _)| *rt).collect());
    let acks = Stats::new(round_trips.iter().map(|(_, ack)| *ack).collect());
    let reference_took = reference_started.elapsed();
    drop(procs);

    let row = |what: &str, n: usize, stats: &Stats, bold: bool| {
        let [min, p50, p90, p99, max] = stats.row().map(ms);
        let b = if bold { "**" } else { "" };
        println!("| {b}{what}{b} | {n} | {min:.1} | {b}{p50:.1}{b} | {p90:.1} | {b}{p99:.1}{b} | {max:.1} |");
    };
    println!();
    println!(
        "suspension propagation: Suspend returned → gateway epoch moved in Redis (read every {} ms), over tansu, \
         one identity suspended and restored, random pauses of 0–{} ms, 2 cores",
        POLL.as_millis(),
        MAX_PAUSE.as_millis()
    );
    println!("| measure | n | min ms | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    row("reference: bare broker round trip (KafkaBus publish → subscriber)", m, &reference, false);
    row("Suspend returned → gateway refuses (epoch moved)", n, &propagation, true);
    let ratios = propagation.row().map(ms).into_iter().zip(reference.row().map(ms)).map(|(p, r)| p / r);
    let ratios: Vec<String> = ratios.map(|x| format!("{x:.2}×")).collect();
    println!("| ratio propagation / reference | | {} |", ratios.join(" | "));
    row("(in the reference: the publish call, until acknowledged)", m, &acks, false);
    row("(the Suspend call itself, not counted)", n, &calls, false);
    let p99 = propagation.pct(0.99);
    println!(
        "target p99 < {} ms: {} (p99 {:.1} ms){}",
        TARGET_P99.as_millis(),
        if p99 < TARGET_P99 { "met" } else { "NOT met" },
        ms(p99),
        if missed > 0 {
            format!(
                "; {missed} suspensions not seen within {} s, counted as {} s",
                GIVE_UP.as_secs(),
                GIVE_UP.as_secs()
            )
        } else {
            String::new()
        }
    );
    println!(
        "(above the broker: the outbox relay picking the event up, the gateway's handler and its Redis write; \
         services ready in {:.1} s, suspensions {:.1} s, reference {:.1} s, whole bench {:.1} s)",
        ready.as_secs_f64(),
        measured.as_secs_f64(),
        reference_took.as_secs_f64(),
        bench_started.elapsed().as_secs_f64()
    );
}
