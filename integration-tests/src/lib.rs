//! The harness of the cross-service suite: it starts a Kafka-protocol
//! broker, creates Postgres databases, and runs `idp` sub-commands as
//! separate processes on free loopback ports.
//!
//! Expected on the machine (and started by `make test`): PostgreSQL at
//! `SPID_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! and Redis at `SPID_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).
//! The binaries are taken from the cargo target directory (`make test`
//! builds them first) or from `SPID_BIN_DIR`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spid_types::ServiceName;

pub fn database_admin_url() -> String {
    std::env::var("SPID_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("SPID_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A binary of the workspace, next to the test executable's directory.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("SPID_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/suite-… → target/<profile>
            exe.parent().and_then(Path::parent).expect("target directory").to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: build it first (make test does: cargo build --bins)", path.display());
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A fresh Postgres database; returns its URL.
pub async fn postgres_database(prefix: &str) -> String {
    spid_server::testkit::create_postgres_database(&database_admin_url(), prefix)
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database (is PostgreSQL running?): {e}"))
}

/// The Kafka-protocol broker of a test: a tansu process of its own on a
/// free loopback port, with durable (SQLite-compatible) storage in a
/// temporary directory, so that it can crash and come back with its data.
///
/// The binary is `SPID_TANSU_BIN` (`make test` builds it once into the cargo
/// home: `deploy/dev/install-tansu.sh`).
pub struct Broker {
    pub bootstrap: String,
    child: Option<Child>,
    port: u16,
    storage: tempfile::TempDir,
    log: PathBuf,
}

fn tansu_bin() -> PathBuf {
    match std::env::var_os("SPID_TANSU_BIN") {
        Some(p) => PathBuf::from(p),
        None => panic!("SPID_TANSU_BIN is not set: run the suite with `make test` (it builds the tansu broker once)"),
    }
}

impl Broker {
    pub fn start() -> Self {
        let storage = tempfile::tempdir().expect("broker storage");
        let port = free_port();
        let log = storage.path().join("tansu.log");
        let mut broker = Self { bootstrap: format!("127.0.0.1:{port}"), child: None, port, storage, log };
        broker.up();
        broker
    }

    /// The broker crashes (SIGKILL): connections drop, new ones are refused.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (or restarts) the broker on the same port and storage, and
    /// waits until it accepts connections.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("broker log");
        let child = Command::new(tansu_bin())
            .arg("broker")
            .args(["--listener-url", &listener, "--advertised-listener-url", &listener])
            .arg("--storage-engine")
            .arg(format!("sqlite://{}", self.storage.path().join("tansu.db").display()))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "tansu did not listen within 30 s:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.down();
    }
}

/// Ports of every service, so each process knows where its peers are.
#[derive(Debug, Clone)]
pub struct Ports(pub BTreeMap<ServiceName, (u16, u16)>);

impl Ports {
    pub fn allocate() -> Self {
        Self(ServiceName::ALL.into_iter().map(|n| (n, (free_port(), free_port()))).collect())
    }
    pub fn grpc(&self, n: ServiceName) -> u16 {
        self.0[&n].0
    }
    pub fn http(&self, n: ServiceName) -> u16 {
        self.0[&n].1
    }
    pub fn grpc_url(&self, n: ServiceName) -> String {
        format!("http://127.0.0.1:{}", self.grpc(n))
    }
    pub fn http_url(&self, n: ServiceName) -> String {
        format!("http://127.0.0.1:{}", self.http(n))
    }

    /// `IDP__…` variables placing every service on these ports.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for (name, (grpc, http)) in &self.0 {
            let section = name.key().to_uppercase();
            env.push((format!("IDP__{section}__GRPC_LISTEN"), format!("127.0.0.1:{grpc}")));
            env.push((format!("IDP__{section}__HTTP_LISTEN"), format!("127.0.0.1:{http}")));
        }
        env
    }
}

/// One `idp <service>` process.
pub struct ServiceProcess {
    pub name: ServiceName,
    child: Option<Child>,
    env: Vec<(String, String)>,
    log: PathBuf,
    pub http_url: String,
}

impl ServiceProcess {
    pub fn spawn(name: ServiceName, env: Vec<(String, String)>, http_url: String, log_dir: &Path) -> Self {
        let log = log_dir.join(format!("{}.log", name.as_str()));
        let mut p = Self { name, child: None, env, log, http_url };
        p.start();
        p
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(bin("idp"))
            .arg(self.name.as_str())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().cloned())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn idp");
        self.child = Some(child);
    }

    /// Waits until `/readyz` answers 200; panics with the process log if not.
    pub async fn wait_ready(&mut self, within: Duration) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{} exited with {status} before being ready:\n{}", self.name, self.logs());
            }
            let ready = client.get(format!("{}/readyz", self.http_url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} not ready within {within:?}:\n{}", self.name, self.logs());
    }

    /// SIGKILL: no shutdown hook runs, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `idp` with arguments and environment to completion (start-up
/// failure tests). Returns (exit code, stdout, stderr).
pub fn run_idp(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(bin("idp"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn idp");
    let started = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `probe` until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match poll_until(within, probe).await {
        Some(v) => v,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// Polls `probe` until it returns `Some`; `None` after `within`.
pub async fn poll_until<T, F, Fut>(within: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
