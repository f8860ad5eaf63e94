//! Second-factor verifications per second (issue: otp-service), each
//! against a reference measured in the same run on the same machine:
//!
//! - **code verifications** (`Codes::verify`, right codes: read the
//!   challenge, count the attempt, HMAC and constant-time compare, take it)
//!   on Redis from 32 concurrent callers — against the **reference** of the
//!   same number of bare Redis round trips per verification (4) from the
//!   same callers: how close the check gets to what Redis allows.
//! - **TOTP checks** (`Authenticators::check`: read the token, open its
//!   derivation key, HKDF, three HMAC-SHA1, conditional update) on
//!   Postgres — against the **reference** of the same read and update
//!   alone.
//!
//! `SPID_BENCH_OPS` sets the operations per phase (default 20 000 codes,
//! a tenth of that for TOTP). Run with `make bench`; Redis and Postgres as
//! for the tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use otp_service::authenticator::Authenticators;
use otp_service::challenge::{Codes, Method, Policy};
use otp_service::keys::LocalKeyFile;
use spid_cache::{Cache, RedisCache};
use spid_db::{ConnectOptions, Db};
use spid_types::{Clock, SystemClock};

const CALLERS: usize = 32;

fn ops() -> usize {
    std::env::var("SPID_BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

fn redis_url() -> String {
    std::env::var("SPID_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

fn database_url() -> String {
    std::env::var("SPID_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn rate<F, Fut>(n: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    futures::stream::iter(0..n).map(f).buffer_unordered(CALLERS).collect::<Vec<()>>().await;
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = ops();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "otp-service bench: {n} code verifications on Redis, {} TOTP checks on Postgres, {CALLERS} callers",
        n / 10
    );

    // Codes on Redis.
    let redis = Arc::new(RedisCache::connect(&redis_url(), "otp-bench", Duration::from_secs(5)).await.unwrap());
    let policy = Policy { per_identity: u64::MAX, per_address: u64::MAX, ..Policy::default() };
    let codes = Arc::new(Codes::new(redis.clone(), spid_secrets::SecretKey::random().unwrap(), clock.clone(), policy));
    let db_url = database_url();
    let db = Db::connect(ConnectOptions {
        setting: "SPID_TEST_DATABASE_URL",
        url: &db_url,
        max_connections: CALLERS as u32,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    otp_service::migrate(&db).await.unwrap();
    let master = Arc::new(LocalKeyFile::open(&dir.path().join("master.key"), true).unwrap());
    let apps = Arc::new(Authenticators::new(
        db.clone(),
        master,
        spid_secrets::SecretKey::random().unwrap(),
        clock.clone(),
        "SPID",
    ));
    let mut issued = Vec::with_capacity(n);
    for i in 0..n {
        let spid = format!("XIDPBENCH{i:06}");
        let c = codes.issue(&spid, "tx", Method::Sms, "203.0.113.1", "").await.unwrap();
        issued.push((c.challenge_id, c.code));
    }
    let issued = Arc::new(issued);
    let verify = rate(n, |i| {
        let (codes, issued, apps) = (codes.clone(), issued.clone(), apps.clone());
        async move {
            let (id, code) = &issued[i];
            let (v, _, _) = codes.verify(id, "tx", code, &apps).await.unwrap();
            assert_eq!(v, otp_service::challenge::Verdict::Ok);
        }
    })
    .await;
    redis.set("bench:key", b"v", Duration::from_secs(60)).await.unwrap();
    let round_trips = rate(n * 4, |_| {
        let redis = redis.clone();
        async move {
            redis.get("bench:key").await.unwrap();
        }
    })
    .await;
    let redis_ceiling = round_trips / 4.0;

    // TOTP on Postgres: one token per holder, each checked once.
    let m = n / 10;
    let mut holders = Vec::with_capacity(m);
    for i in 0..m {
        let spid = format!("XIDPTOTP{i:07}-{}", uuid_suffix());
        let e = apps.enrol(&spid, "bench").await.unwrap();
        let seed = seed_of(&e.provisioning_uri);
        let now = clock.now().timestamp() as u64;
        let code = otp_service::totp::DEFAULT.code_at(&seed, now).unwrap();
        assert!(apps.confirm(&spid, &e.token_id, &code).await.unwrap());
        holders.push((spid, seed));
    }
    let holders = Arc::new(holders);
    let totp = rate(m, |i| {
        let (apps, holders, clock) = (apps.clone(), holders.clone(), clock.clone());
        async move {
            let (spid, seed) = &holders[i];
            // The next step: the current one was spent confirming.
            let code = otp_service::totp::DEFAULT.code_at(seed, clock.now().timestamp() as u64 + 30).unwrap();
            apps.check(spid, &code).await.unwrap();
        }
    })
    .await;
    let bare = rate(m, |i| {
        let (db, holders) = (db.clone(), holders.clone());
        async move {
            let (spid, _) = &holders[i];
            let row: Option<(String,)> =
                sqlx::query_as("SELECT id FROM totp_tokens WHERE spid_code = $1 AND status = 'active'")
                    .bind(spid)
                    .fetch_optional(db.pool())
                    .await
                    .unwrap();
            let id = row.unwrap().0;
            sqlx::query("UPDATE totp_tokens SET last_used_step = last_used_step WHERE id = $1")
                .bind(id)
                .execute(db.pool())
                .await
                .unwrap();
        }
    })
    .await;
    sqlx::query("DELETE FROM totp_tokens WHERE spid_code LIKE 'XIDPTOTP%'").execute(db.pool()).await.unwrap();

    println!();
    println!("| measure | /s | ratio |");
    println!("|---|---:|---:|");
    println!("| reference: bare Redis round trips ÷ 4 | {redis_ceiling:.0} | |");
    println!(
        "| **SMS/e-mail code verifications (Redis)** | **{verify:.0}** | {:.2}× reference |",
        verify / redis_ceiling
    );
    println!("| reference: the token's read and update alone (Postgres) | {bare:.0} | |");
    println!("| **TOTP checks (Postgres)** | **{totp:.0}** | {:.2}× reference |", totp / bare);
}

fn uuid_suffix() -> String {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b).unwrap();
    hex::encode(b)
}

fn seed_of(uri: &str) -> Vec<u8> {
    let secret = uri.split("secret=").nth(1).unwrap().split('&').next().unwrap();
    otp_service::totp::base32_decode(secret).unwrap()
}
