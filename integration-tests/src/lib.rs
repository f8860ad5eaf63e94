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
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use spid_types::ServiceName;

pub fn database_admin_url() -> String {
    std::env::var("SPID_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A Redis key prefix of its own for one test's processes
/// (`IDP__CACHE__KEY_PREFIX`): runs sharing the machine's Redis never see
/// each other's counters.
pub fn cache_prefix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("t{:x}-{:x}:", std::process::id(), nanos & 0xffff_ffff_ffff)
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

/// The Kafka-protocol broker of a test, in a process of its own on a free
/// loopback port. Two kinds, each for what it is good at:
///
/// - [`Broker::tansu`]: a real Kafka-protocol broker (tansu, with durable
///   SQLite-compatible storage in a temporary directory): the suite's
///   round trips run against it. The binary is `SPID_TANSU_BIN`, or the one
///   `deploy/dev/install-tansu.sh` builds once into the cargo home.
/// - [`Broker::mock`]: librdkafka's mock cluster (`mock-kafka`), for fault
///   injection: [`Broker::down`] drops every connection and refuses new ones,
///   [`Broker::up`] brings it back with its data.
pub struct Broker {
    pub bootstrap: String,
    child: Child,
    kind: BrokerKind,
}

enum BrokerKind {
    Tansu { _storage: tempfile::TempDir, log: PathBuf },
    Mock { stdin: ChildStdin, replies: BufReader<ChildStdout> },
}

/// `SPID_TANSU_BIN`, or what `deploy/dev/install-tansu.sh` (which builds it
/// once into the cargo home) says.
fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SPID_TANSU_BIN") {
        return PathBuf::from(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/install-tansu.sh");
    let out = Command::new(&script).stderr(Stdio::inherit()).output().expect("run install-tansu.sh");
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

impl Broker {
    pub fn tansu() -> Self {
        let storage = tempfile::tempdir().expect("broker storage");
        let port = free_port();
        let listener = format!("tcp://127.0.0.1:{port}");
        let log = storage.path().join("tansu.log");
        let log_file = std::fs::File::create(&log).expect("broker log");
        let child = Command::new(tansu_bin())
            .arg("broker")
            .args(["--listener-url", &listener, "--advertised-listener-url", &listener])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(storage.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("start tansu");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "tansu did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { bootstrap: format!("127.0.0.1:{port}"), child, kind: BrokerKind::Tansu { _storage: storage, log } }
    }

    pub fn mock() -> Self {
        let mut child = Command::new(bin("mock-kafka"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mock-kafka");
        let stdin = child.stdin.take().expect("stdin");
        let mut replies = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        replies.read_line(&mut line).expect("bootstrap line");
        let bootstrap = line.trim().strip_prefix("bootstrap=").expect("bootstrap= line").to_owned();
        Self { bootstrap, child, kind: BrokerKind::Mock { stdin, replies } }
    }

    fn command(&mut self, cmd: &str) {
        let BrokerKind::Mock { stdin, replies } = &mut self.kind else {
            panic!("fault injection needs Broker::mock()");
        };
        writeln!(stdin, "{cmd}").expect("send command");
        stdin.flush().expect("flush");
        let mut line = String::new();
        replies.read_line(&mut line).expect("reply");
        assert_eq!(line.trim(), format!("ok {cmd}"));
    }

    /// The broker goes away: connections drop, new ones are refused.
    pub fn down(&mut self) {
        self.command("down");
    }

    /// The broker is back at the same address, with its data.
    pub fn up(&mut self) {
        self.command("up");
    }

    pub fn logs(&self) -> String {
        match &self.kind {
            BrokerKind::Tansu { log, .. } => std::fs::read_to_string(log).unwrap_or_default(),
            BrokerKind::Mock { .. } => String::new(),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let BrokerKind::Mock { stdin, .. } = &mut self.kind {
            let _ = writeln!(stdin, "exit");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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

    /// The process id while it runs (CPU accounting in benchmarks).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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

/// `idp dev` (what `make run` starts) running until dropped.
pub struct DevProcess {
    child: std::process::Child,
    /// What it printed up to "all services ready".
    pub banner: Vec<String>,
}

impl DevProcess {
    /// Starts `idp dev` on `ports` with its data in `data_dir`, with
    /// `extra` arguments after `dev`, and waits (up to 60 s) until it says
    /// every service is ready.
    pub async fn start(ports: &Ports, data_dir: &Path, extra: &[&str]) -> Self {
        let public = ports.http_url(ServiceName::AuthnGateway);
        let mut cmd = std::process::Command::new(bin("idp"));
        cmd.args(["--log-format", "text", "--public-url", &public, "dev", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(ports.env())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let banner = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let done = line.starts_with("all services ready");
                lines.push(line);
                if done {
                    break;
                }
            }
            lines
        });
        let mut me = Self { child, banner: Vec::new() };
        me.banner = tokio::time::timeout(Duration::from_secs(60), banner).await.expect("ready within 60 s").unwrap();
        assert!(me.banner.last().is_some_and(|l| l.starts_with("all services ready")), "{:?}", me.banner);
        me
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test server from `integration-tests/fixtures` (Python, loopback only),
/// killed when dropped.
pub struct Fixture {
    child: Child,
    pub port: u16,
    /// The JSON-lines file it records what it received in.
    pub log: PathBuf,
}

impl Fixture {
    /// Starts `fixtures/<script>` on a free port with `--log` in `dir` and
    /// `args`, and waits until it says it is ready.
    pub fn start(script: &str, dir: &Path, args: &[&str]) -> Self {
        let port = free_port();
        let log = dir.join(format!("{}-{port}.jsonl", script.trim_end_matches(".py")));
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(script);
        let mut child = Command::new("python3")
            .arg(&path)
            .arg("--port")
            .arg(port.to_string())
            .arg("--log")
            .arg(&log)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("fixture output");
        assert!(line.starts_with("ready"), "{script} did not start: {line:?}");
        Self { child, port, log }
    }

    /// What it recorded so far, one JSON value per request.
    pub fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of a hidden form field in a page of the gateway, with the
/// HTML escaping of attribute values undone.
pub fn hidden_field(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(
        page[start..end]
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// An HTTP client that keeps cookies: one browser of a login test.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).build().expect("HTTP client")
}

/// Every service as its own `idp` process in development mode on real
/// infrastructure: a Postgres database each, the broker, Redis under a key
/// prefix of their own, `data_dir` shared (development keys, demo holders,
/// SP metadata), each told where the others are; ready when this returns.
pub async fn all_services(broker: &Broker, ports: &Ports, data_dir: &Path, log_dir: &Path) -> Vec<ServiceProcess> {
    all_services_with_prefix(broker, ports, data_dir, log_dir, &cache_prefix()).await
}

/// [`all_services`] with the Redis key prefix given (a [`cache_prefix`]), so
/// the caller can read the services' keys: a service's key `k` is
/// `{prefix}{service name}:{k}`.
pub async fn all_services_with_prefix(
    broker: &Broker,
    ports: &Ports,
    data_dir: &Path,
    log_dir: &Path,
    prefix: &str,
) -> Vec<ServiceProcess> {
    let mut procs = Vec::new();
    for name in ServiceName::ALL {
        let mut env = ports.env();
        env.extend(
            [
                ("IDP__MODE", "development".to_owned()),
                ("IDP__PUBLIC_URL", ports.http_url(ServiceName::AuthnGateway)),
                ("IDP__DATABASE__URL", postgres_database(name.key()).await),
                ("IDP__BUS__BROKERS", broker.bootstrap.clone()),
                ("IDP__BUS__TIMEOUT_SECS", "3".to_owned()),
                ("IDP__CACHE__URL", redis_url()),
                ("IDP__CACHE__KEY_PREFIX", prefix.to_owned()),
                ("IDP__TELEMETRY__LOG_FORMAT", "text".to_owned()),
                ("IDP__DEV__DATA_DIR", data_dir.display().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
        );
        for peer in ServiceName::ALL {
            env.push((format!("IDP__{}__GRPC_URL", peer.key().to_uppercase()), ports.grpc_url(peer)));
        }
        procs.push(ServiceProcess::spawn(name, env, ports.http_url(name), log_dir));
    }
    for p in &mut procs {
        p.wait_ready(Duration::from_secs(60)).await;
    }
    procs
}

/// A demo holder of `level` from `demo-users.json` in `data_dir`.
pub fn demo_holder(data_dir: &Path, level: u64) -> serde_json::Value {
    let demo: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data_dir.join("demo-users.json")).expect("demo-users.json"))
            .expect("JSON");
    demo.as_array().and_then(|a| a.iter().find(|u| u["level"] == level)).cloned().expect("a demo holder of that level")
}

/// `idpctl --<service> <url> args…`: whether it succeeded, and all it printed.
pub fn idpctl(ports: &Ports, service: ServiceName, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin("idpctl"))
        .arg(format!("--{}", service.as_str()))
        .arg(ports.grpc_url(service))
        .args(args)
        .output()
        .expect("idpctl");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The six-digit code in a message body (SMS or e-mail).
pub fn six_digit_code(body: &str) -> Option<String> {
    body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).map(str::to_owned)
}

/// The `spid-device` simulator (the provider's app) against otp-service,
/// keeping its state in `state`: whether it succeeded, and all it printed.
pub fn spid_device(ports: &Ports, state: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin("spid-device"))
        .arg("--otp")
        .arg(ports.grpc_url(ServiceName::OtpService))
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .expect("spid-device");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
