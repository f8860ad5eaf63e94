//! The gateway's credential check (issue: identity-manager) with the
//! production Argon2id parameters (OWASP: 19 MiB, 2 passes, 1 lane),
//! against the **reference** of the raw Argon2id verification rate measured
//! in the same run on the same cores.
//!
//! - **reference**: `available_parallelism` threads verifying the same PHC
//!   hash back to back, nothing else.
//! - **check**: `Credentials::check` (username lookup in Postgres, Argon2id
//!   on the blocking pool, outcome) from 32 concurrent callers
//!   (`SPID_BENCH_CALLERS`), alternating
//!   holders registered through the real registration flow.
//!
//! Reported: checks/s at saturation and the ratio to the reference (the
//! overhead beyond hashing is `1 − ratio`; medians of rounds alternating
//! the two, as this machine's speed drifts), the service's hasher and the
//! lookup alone (where the time goes), and p50/p99 latency at one caller
//! per core. `SPID_BENCH_SECONDS` sets
//! each phase's length (default 6); `SPID_TEST_DATABASE_URL` the Postgres
//! server (default the local test database). Run with `make bench`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use identity_manager::identity::{Credentials, Outcome};
use identity_manager::password::{Cost, Hasher};
use spid_db::{ConnectOptions, Db};
use spid_types::SystemClock;

fn callers() -> usize {
    std::env::var("SPID_BENCH_CALLERS").ok().and_then(|v| v.parse().ok()).unwrap_or(32)
}

/// The demo seeding sends its codes elsewhere; nothing else sends here.
struct Unreachable;

#[async_trait::async_trait]
impl identity_manager::notify::Messenger for Unreachable {
    async fn send(&self, _: identity_manager::notify::Message) -> Result<(), spid_types::ServiceError> {
        Err(spid_types::ServiceError::unavailable("bench.no_messages", "the benchmark sends no messages"))
    }
}

fn seconds() -> Duration {
    Duration::from_secs(std::env::var("SPID_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Raw Argon2id verifications per second on every core.
fn reference(hash: &str, password: &str, for_: Duration) -> f64 {
    use argon2::{Argon2, PasswordHash, PasswordVerifier};
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let start = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let parsed = PasswordHash::new(hash).unwrap();
                    let mut n = 0u64;
                    while start.elapsed() < for_ {
                        assert!(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok());
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    counts.iter().sum::<u64>() as f64 / start.elapsed().as_secs_f64()
}

const ROUNDS: usize = 5;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `callers` concurrent callers checking good passwords for `for_`: the
/// rate, and every latency sorted.
async fn checks(
    credentials: &Arc<Credentials>,
    users: &[identity_manager::demo::DemoUser],
    callers: usize,
    for_: Duration,
) -> (f64, Vec<Duration>) {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..callers {
        let credentials = credentials.clone();
        let user = users[i % users.len()].clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while start.elapsed() < for_ {
                let t = Instant::now();
                let outcome = credentials.check(&user.username, &user.password).await.unwrap();
                latencies.push(t.elapsed());
                assert!(matches!(outcome, Outcome::Ok(_)), "{outcome:?}");
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(l) = tasks.join_next().await {
        latencies.extend(l.unwrap());
    }
    let rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    (rate, latencies)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let admin = std::env::var("SPID_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let url = spid_server::testkit::create_postgres_database(&admin, "bench_credentials").await.unwrap();
    let db = Db::connect(ConnectOptions {
        setting: "bench",
        url: &url,
        max_connections: 16,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    identity_manager::migrate(&db).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn spid_types::Clock> = Arc::new(SystemClock);
    let production = Cost::default();
    assert_eq!((production.memory_kib, production.iterations, production.parallelism), (19_456, 2, 1));
    let hasher = Hasher::new(production).unwrap();
    let registrar = identity_manager::registration::Registrar::new(
        db.clone(),
        hasher.clone(),
        Arc::new(identity_manager::evidence::KeyFiles::load(dir.path(), true).unwrap()),
        spid_secrets::SecretKey::random().unwrap(),
        Arc::new(Unreachable),
        clock.clone(),
        identity_manager::registration::Settings {
            code_validity: chrono::Duration::minutes(15),
            idp_code: "BNCH".into(),
            cache: Arc::new(spid_cache::MemoryCache::new()),
        },
    );
    let requests = identity_manager::store::RequestStore::new(db.clone());
    let users = identity_manager::demo::seed(&registrar, &requests, &dir.path().join("users.json")).await.unwrap();
    let credentials = Arc::new(Credentials::new(db.clone(), hasher.clone(), clock).await.unwrap());
    let for_ = seconds();

    let stored = hasher.store(&users[0].password, chrono::Utc::now()).await.unwrap();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let callers = callers();

    // Rounds alternate the reference and the checks, so that both see the
    // same machine; the medians are compared.
    let mut raw_rates = Vec::new();
    let mut check_rates = Vec::new();
    for _ in 0..ROUNDS {
        let (hash, password) = (stored.hash.clone(), users[0].password.clone());
        raw_rates.push(tokio::task::spawn_blocking(move || reference(&hash, &password, for_)).await.unwrap());
        let (rate, _) = checks(&credentials, &users, callers, for_).await;
        check_rates.push(rate);
    }
    let (raw, rate) = (median(&mut raw_rates), median(&mut check_rates));

    // Where the time goes: the service's hasher alone, the lookup alone.
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (hasher, stored, password) = (hasher.clone(), stored.clone(), users[0].password.clone());
        tasks.spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < for_ {
                assert!(hasher.verify(&password, &stored).await.unwrap());
                n += 1;
            }
            n
        });
    }
    let mut hashed = 0;
    while let Some(n) = tasks.join_next().await {
        hashed += n.unwrap();
    }
    let hasher_rate = hashed as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..callers {
        let (credentials, user) = (credentials.clone(), users[i % users.len()].clone());
        tasks.spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < for_ / 2 {
                assert!(credentials.lookup(&user.username).await.unwrap().is_some());
                n += 1;
            }
            n
        });
    }
    let mut looked_up = 0;
    while let Some(n) = tasks.join_next().await {
        looked_up += n.unwrap();
    }
    let lookup_rate = looked_up as f64 / start.elapsed().as_secs_f64();

    // Latency below saturation: one caller per core.
    let (_, latencies) = checks(&credentials, &users, threads, for_).await;

    println!("credential check, production Argon2id (19 MiB, 2 passes, 1 lane), Postgres, {threads} cores");
    println!("  reference: raw Argon2id verifications   {raw:>8.1}/s  (median of {ROUNDS} rounds: {raw_rates:.1?})");
    println!(
        "  credential checks, {callers:>2} callers         {rate:>8.1}/s  (median of {ROUNDS} rounds: {check_rates:.1?})"
    );
    println!(
        "  ratio to the reference {:.3} (overhead beyond hashing {:.1} %)",
        rate / raw,
        (1.0 - rate / raw) * 100.0
    );
    println!("  the service's hasher alone              {hasher_rate:>8.1}/s");
    println!("  the lookup alone (Postgres, no hashing) {lookup_rate:>8.1}/s");
    println!(
        "  latency at {threads} callers (one per core): p50 {:.1} ms, p99 {:.1} ms ({} checks)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.len()
    );
    db.close().await;
}
