//! Building [`Deps`] for in-process tests: a SQLite database and an
//! embedded bus in a temporary directory, the in-memory cache, listeners on
//! free loopback ports. Set `SPID_TEST_DATABASE_URL` to a Postgres URL to run
//! the same tests against Postgres (a fresh database is created per call).

use std::path::Path;
use std::sync::Arc;

use spid_db::{ConnectOptions, Db};
use spid_events::EmbeddedBus;

use crate::deps::{Deps, Listeners};

/// Deps for one service under test. `bus` may be shared between services.
pub async fn deps(dir: &Path, service: &str, bus: Arc<dyn spid_events::EventBus>) -> Result<Deps, String> {
    let db = database(dir, service).await?;
    let loopback = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    Ok(Deps {
        db,
        bus,
        cache: Arc::new(spid_cache::MemoryCache::new()),
        clock: Arc::new(spid_types::SystemClock),
        metrics: spid_telemetry::Metrics::new(service).map_err(|e| e.to_string())?,
        listeners: Listeners { http: crate::bind("http", loopback)?, grpc: crate::bind("grpc", loopback)? },
    })
}

/// An embedded bus in `dir`.
pub async fn bus(dir: &Path) -> Result<Arc<dyn spid_events::EventBus>, String> {
    Ok(Arc::new(EmbeddedBus::open(&dir.join("bus.db")).await.map_err(|e| e.to_string())?))
}

/// A fresh database: SQLite in `dir`, or a new Postgres database on the
/// server named by `SPID_TEST_DATABASE_URL`.
pub async fn database(dir: &Path, name: &str) -> Result<Db, String> {
    let url = match std::env::var("SPID_TEST_DATABASE_URL") {
        Ok(admin_url) if admin_url.starts_with("postgres") => create_postgres_database(&admin_url, name).await?,
        _ => format!("sqlite://{}/{name}.db?mode=rwc", dir.display()),
    };
    Db::connect(ConnectOptions {
        setting: "test database",
        url: &url,
        max_connections: 5,
        connect_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .map_err(|e| e.to_string())
}

/// Creates `<prefix>_<random>` on the server of `admin_url`; returns its URL.
pub async fn create_postgres_database(admin_url: &str, prefix: &str) -> Result<String, String> {
    let admin = Db::connect(ConnectOptions {
        setting: "SPID_TEST_DATABASE_URL",
        url: admin_url,
        max_connections: 1,
        connect_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .map_err(|e| e.to_string())?;
    let name = format!("t_{}_{}", prefix.replace(|c: char| !c.is_ascii_alphanumeric(), "_"), uuid_like_suffix());
    spid_db::sqlx::query(spid_db::sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .map_err(|e| e.to_string())?;
    admin.close().await;
    let mut url = url::Url::parse(admin_url).map_err(|e| e.to_string())?;
    url.set_path(&name);
    Ok(url.to_string())
}

fn uuid_like_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}
