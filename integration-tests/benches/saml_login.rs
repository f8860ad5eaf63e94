//! Full level-1 SAML logins through the multi-process stack (issue:
//! authn-gateway): 50 concurrent clients on loopback, each login a signed
//! HTTP-Redirect AuthnRequest, the password page, the consent page and the
//! signed Response — with identity-manager's production Argon2id
//! parameters (19 MiB, 2 iterations).
//!
//! Reports throughput, p50/p95 latency and the CPU each process spent per
//! login, read from `/proc`. The **reference**, measured in the same run:
//! one Argon2id verification with the same parameters in this process — a
//! login cannot be cheaper than that, and on 2 cores cannot go faster than
//! 2 ÷ its time.
//!
//! `SPID_BENCH_LOGINS` sets the number of logins (default 1 000). Run with
//! `make bench` (it builds the release `idp` first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use integration_tests::{Broker, Ports, ServiceProcess};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use spid_types::ServiceName;
use spid_xml::dsig::SigningKey;

const CLIENTS: usize = 50;
const SP: &str = "https://sp.bench.example";

fn logins() -> usize {
    std::env::var("SPID_BENCH_LOGINS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// One Argon2id verification with the production parameters.
fn argon2_reference() -> Duration {
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    let params = argon2::Params::new(19_456, 2, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"bench-salt-16byt").unwrap();
    let hash = argon.hash_password(b"Password#2026", &salt).unwrap().to_string();
    let parsed = PasswordHash::new(&hash).unwrap();
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        argon.verify_password(b"Password#2026", &parsed).unwrap();
    }
    started.elapsed() / rounds
}

async fn login(http: &reqwest::Client, url: &str, public: &str, user: &str, password: &str) -> Duration {
    let started = Instant::now();
    let page = http.get(url).send().await.unwrap().text().await.unwrap();
    let tx = integration_tests::hidden_field(&page, "tx").unwrap_or_else(|| panic!("no login page: {page}"));
    let page = http
        .post(format!("{public}/login/password"))
        .form(&[("tx", tx.as_str()), ("username", user), ("password", password), ("action", "login")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("login/consent"), "no consent page: {page}");
    let page = http
        .post(format!("{public}/login/consent"))
        .form(&[("tx", tx.as_str()), ("action", "accept")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("SAMLResponse"), "no Response: {page}");
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = logins();
    let broker = Broker::tansu();
    let ports = Ports::allocate();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let public = ports.http_url(ServiceName::AuthnGateway);
    let acs = format!("{SP}/acs");

    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let certificate = spid_secrets::self_signed_certificate(&key, &[(Nid::COMMONNAME, "bench SP")], 2).unwrap();
    let sp = SigningKey { key, certificate };
    std::fs::create_dir_all(data.join("sp-metadata")).unwrap();
    let metadata = authn_gateway::demo_sp::metadata_xml(SP, &acs, &sp.certificate).unwrap();
    std::fs::write(data.join("sp-metadata").join("bench.xml"), metadata).unwrap();

    let procs = integration_tests::all_services(&broker, &ports, &data, dir.path()).await;
    let holder = integration_tests::demo_holder(&data, 1);
    let (user, password) =
        (holder["username"].as_str().unwrap().to_owned(), holder["password"].as_str().unwrap().to_owned());

    // Every login needs its own signed request (IDs are single use).
    let sso = format!("{public}/saml/sso/redirect");
    let urls: Vec<String> = (0..n + CLIENTS)
        .map(|i| {
            let id = format!("_bench{i:08}");
            authn_gateway::demo_sp::signed_redirect_url(&sso, SP, &sp, &id, 1, chrono::Utc::now(), false).unwrap()
        })
        .collect();
    // Each client is a browser of its own (its cookies), logging in again
    // and again.
    let browsers: Vec<reqwest::Client> = (0..CLIENTS).map(|_| integration_tests::browser()).collect();
    let run = |urls: &[String]| {
        let chunks: Vec<Vec<String>> =
            (0..CLIENTS).map(|c| urls.iter().skip(c).step_by(CLIENTS).cloned().collect()).collect();
        let tasks = chunks.into_iter().zip(browsers.iter().cloned()).map(|(mine, http)| {
            let (public, user, password) = (public.clone(), user.clone(), password.clone());
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(mine.len());
                for u in &mine {
                    times.push(login(&http, u, &public, &user, &password).await);
                }
                times
            })
        });
        futures::future::join_all(tasks)
    };
    // Warm-up: one login per client.
    run(&urls[n..]).await;

    let pid = |name: ServiceName| procs.iter().find(|p| p.name == name).and_then(ServiceProcess::pid).unwrap();
    let watched = [ServiceName::AuthnGateway, ServiceName::IdentityManager, ServiceName::AuditLog];
    let before: Vec<f64> = watched.iter().map(|n| cpu_seconds(pid(*n))).collect();
    let started = Instant::now();
    let mut latencies: Vec<Duration> = run(&urls[..n]).await.into_iter().flat_map(|r| r.unwrap()).collect();
    let elapsed = started.elapsed();
    let after: Vec<f64> = watched.iter().map(|n| cpu_seconds(pid(*n))).collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    let hash = argon2_reference();

    println!("full level-1 SAML logins, {CLIENTS} concurrent clients, {n} logins, 2 cores");
    println!(
        "  reference: one Argon2id verification (19 MiB, t=2)   {:>7.1} ms  → at most {:.0} logins/s on 2 cores",
        hash.as_secs_f64() * 1e3,
        2.0 / hash.as_secs_f64()
    );
    println!(
        "  throughput                                    {:>7.1} logins/s  ({:.2}x that ceiling)",
        n as f64 / elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64() * hash.as_secs_f64() / 2.0
    );
    println!(
        "  latency p50 {:>7.1} ms   p95 {:>7.1} ms   (targets: p95 < 100 ms; SLA 3 s for 95%)",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.95).as_secs_f64() * 1e3
    );
    for (i, name) in watched.iter().enumerate() {
        println!("  CPU per login, {:<17} {:>7.2} ms", name.as_str(), (after[i] - before[i]) / n as f64 * 1e3);
    }
    println!("  (identity-manager's share is the password hash; the gateway's is everything else of the login)");
}
