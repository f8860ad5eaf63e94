//! Database access shared by the services: one pool type for Postgres and
//! SQLite, chosen from the URL scheme at start-up, and a migration runner
//! that applies the migrations written for that backend.
//!
//! Queries go through sqlx's `Any` driver with `$1` placeholders (both
//! backends accept them). Bulk paths that need Postgres's own types (arrays
//! for `UNNEST`) use [`Db::postgres`], a native pool to the same database
//! that opens connections only when used. Portable column types only: `BIGINT` for integers
//! and timestamps (microseconds since the epoch), `TEXT`, and binary
//! (`BYTEA` on Postgres, `BLOB` on SQLite).

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

pub use sqlx;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{setting}: unsupported database URL (expected postgres:// or sqlite://)")]
    Scheme { setting: String },
    #[error("{setting}: cannot connect to {target}: {reason}")]
    Connect { setting: String, target: String, reason: String },
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// A connection pool to the service's own database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    postgres: Option<sqlx::PgPool>,
}

/// Options for [`Db::connect`].
#[derive(Debug, Clone)]
pub struct ConnectOptions<'a> {
    /// The configuration key the URL came from, named in errors.
    pub setting: &'a str,
    pub url: &'a str,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl Db {
    /// Connects and checks the database answers. Errors name the setting and
    /// the target without its password.
    pub async fn connect(opts: ConnectOptions<'_>) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(opts.url).ok_or_else(|| DbError::Scheme { setting: opts.setting.to_owned() })?;
        let target = redact(opts.url);
        let connect_err = |e: sqlx::Error| DbError::Connect {
            setting: opts.setting.to_owned(),
            target: target.clone(),
            reason: e.to_string(),
        };
        if backend == Backend::Sqlite {
            ensure_sqlite_parent(opts.url);
        }
        let options: AnyConnectOptions = opts.url.parse().map_err(connect_err)?;
        let mut pool_opts = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite {
                opts.max_connections.min(4)
            } else {
                opts.max_connections
            })
            .acquire_timeout(opts.connect_timeout);
        if backend == Backend::Sqlite {
            pool_opts = pool_opts.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = tokio::time::timeout(opts.connect_timeout, pool_opts.connect_with(options))
            .await
            .map_err(|_| DbError::Connect {
                setting: opts.setting.to_owned(),
                target: target.clone(),
                reason: format!("no answer within {:?}", opts.connect_timeout),
            })?
            .map_err(connect_err)?;
        let postgres = match backend {
            Backend::Postgres => {
                let native: sqlx::postgres::PgConnectOptions = opts.url.parse().map_err(connect_err)?;
                Some(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(opts.max_connections.div_ceil(2))
                        .acquire_timeout(opts.connect_timeout)
                        .connect_lazy_with(native),
                )
            }
            Backend::Sqlite => None,
        };
        let db = Db { pool, backend, postgres };
        db.ping().await.map_err(connect_err)?;
        Ok(db)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The native Postgres pool (bulk paths), on Postgres only.
    pub fn postgres(&self) -> Option<&sqlx::PgPool> {
        self.postgres.as_ref()
    }

    /// A trivial query, for readiness.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    /// Applies the migrations of this backend, recorded in their own table
    /// `_migrations_<set>`: several sets (the platform's outbox and inbox,
    /// the service's own schema) share one database without clashing.
    pub async fn migrate(&self, set: &str, postgres: &Migrator, sqlite: &Migrator) -> Result<(), DbError> {
        let source = match self.backend {
            Backend::Postgres => postgres,
            Backend::Sqlite => sqlite,
        };
        let mut migrator = Migrator::with_migrations(source.migrations.to_vec());
        migrator.dangerous_set_table_name(format!("_migrations_{set}"));
        migrator.set_locking(self.backend == Backend::Postgres);
        migrator.run(&self.pool).await.map_err(|e| DbError::Migrate(format!("{set}: {e}")))
    }

    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(pg) = &self.postgres {
            pg.close().await;
        }
    }
}

/// The backend a URL names, if supported.
pub fn backend_of(url: &str) -> Option<Backend> {
    match url.split_once("://").map(|(s, _)| s) {
        Some("postgres" | "postgresql") => Some(Backend::Postgres),
        Some("sqlite") => Some(Backend::Sqlite),
        _ => None,
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => url.split('?').next().unwrap_or_default().to_owned(),
    }
}

fn ensure_sqlite_parent(url: &str) {
    let path = url.trim_start_matches("sqlite://").split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return;
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_and_redaction() {
        assert_eq!(backend_of("postgres://u:p@h/db"), Some(Backend::Postgres));
        assert_eq!(backend_of("sqlite://var/x.db?mode=rwc"), Some(Backend::Sqlite));
        assert_eq!(backend_of("mysql://h/db"), None);
        let r = redact("postgres://idp:s3cret@db:5432/idp");
        assert!(!r.contains("s3cret") && r.contains("***"), "{r}");
    }

    #[tokio::test]
    async fn sqlite_connects_and_unreachable_postgres_names_setting() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/t.db?mode=rwc", dir.path().display());
        let db = Db::connect(ConnectOptions {
            setting: "database.url",
            url: &url,
            max_connections: 2,
            connect_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        assert_eq!(db.backend(), Backend::Sqlite);
        db.ping().await.unwrap();

        let err = Db::connect(ConnectOptions {
            setting: "audit_log.database_url",
            url: "postgres://idp:pw@127.0.0.1:1/none",
            max_connections: 2,
            connect_timeout: Duration::from_secs(2),
        })
        .await
        .unwrap_err();
        let line = err.to_string();
        assert!(
            line.starts_with("audit_log.database_url: cannot connect to postgres://idp:***@127.0.0.1:1/none"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
