use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use spid_config::{Config, Sources};
use spid_server::CancellationToken;
use spid_types::ServiceName;

#[derive(Debug, Parser)]
#[command(name = "idp", version, about = "SPID identity provider services")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings that override the file and the environment (`IDP__…`).
#[derive(Debug, Args)]
pub struct Global {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `production` or `development`.
    #[arg(long, global = true)]
    pub mode: Option<String>,
    /// The IdP's public origin (`https://…` in production).
    #[arg(long, global = true, value_name = "URL")]
    pub public_url: Option<String>,
    /// Database of the service(s) started (`postgres://…`, `sqlite://…`).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Kafka bootstrap servers (`host:port,…`).
    #[arg(long, global = true, value_name = "LIST")]
    pub kafka_brokers: Option<String>,
    /// Redis URL (`redis://host:port`).
    #[arg(long, global = true, value_name = "URL")]
    pub redis_url: Option<String>,
    /// `json` or `text`.
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info,sqlx=warn`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Any setting, as `section.key=value` (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run identity-manager.
    IdentityManager,
    /// Run authn-gateway (the public SAML/OIDC origin).
    AuthnGateway,
    /// Run otp-service.
    OtpService,
    /// Run audit-log.
    AuditLog,
    /// Run notification.
    Notification,
    /// Run all five services in one process with embedded defaults
    /// (SQLite under the data directory, embedded bus and cache).
    Dev {
        /// Where SQLite files and keys are kept.
        #[arg(long, value_name = "DIR", default_value = "./var")]
        data_dir: PathBuf,
        /// Create demo holders (level 1 and 2) and write them to
        /// `<DIR>/demo-users.json`.
        #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
        seed_demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Services whose database to migrate (repeatable).
        #[arg(long = "service", value_name = "NAME")]
        services: Vec<ServiceName>,
        /// Every service.
        #[arg(long, conflicts_with = "services")]
        all: bool,
    },
}

pub enum Failure {
    Config(String),
    Run(String),
}

impl From<spid_config::ConfigError> for Failure {
    fn from(e: spid_config::ConfigError) -> Self {
        Failure::Config(e.to_string())
    }
}

impl From<spid_server::RunError> for Failure {
    fn from(e: spid_server::RunError) -> Self {
        Failure::Run(e.to_string())
    }
}

fn sources(global: &Global, extra: Vec<(String, String)>) -> Result<Sources, Failure> {
    let mut overrides = Vec::new();
    let flags = [
        ("mode", &global.mode),
        ("public_url", &global.public_url),
        ("database.url", &global.database_url),
        ("bus.brokers", &global.kafka_brokers),
        ("cache.url", &global.redis_url),
        ("telemetry.log_format", &global.log_format),
        ("telemetry.log_level", &global.log_level),
    ];
    for (key, value) in flags {
        if let Some(v) = value {
            overrides.push((key.to_owned(), v.clone()));
        }
    }
    for pair in &global.set {
        let (k, v) =
            pair.split_once('=').ok_or_else(|| Failure::Config(format!("--set {pair}: expected section.key=value")))?;
        overrides.push((k.trim().to_owned(), v.to_owned()));
    }
    overrides.extend(extra);
    Ok(Sources { file: global.config.clone(), environment: true, overrides })
}

pub async fn dispatch(cli: Cli) -> Result<(), Failure> {
    let Cli { global, command } = cli;
    let service = match &command {
        Command::IdentityManager => Some(ServiceName::IdentityManager),
        Command::AuthnGateway => Some(ServiceName::AuthnGateway),
        Command::OtpService => Some(ServiceName::OtpService),
        Command::AuditLog => Some(ServiceName::AuditLog),
        Command::Notification => Some(ServiceName::Notification),
        Command::Dev { .. } | Command::Migrate { .. } => None,
    };
    let extra = match &command {
        Command::Dev { data_dir, seed_demo } => vec![
            ("mode".to_owned(), "development".to_owned()),
            ("dev.data_dir".to_owned(), data_dir.display().to_string()),
            ("dev.seed_demo".to_owned(), seed_demo.to_string()),
        ],
        _ => Vec::new(),
    };
    let config = spid_config::load(&sources(&global, extra)?)?;
    let process = service.map_or("idp", ServiceName::as_str);
    let _telemetry = spid_telemetry::init(&config.telemetry, process).map_err(|e| Failure::Config(e.to_string()))?;
    let shutdown = CancellationToken::new();
    spid_server::cancel_on_signal(shutdown.clone());
    match command {
        Command::Dev { .. } => crate::dev::run(config, shutdown).await,
        Command::Migrate { services, all } => {
            let services = if all || services.is_empty() { ServiceName::ALL.to_vec() } else { services };
            migrate(&config, &services).await
        }
        _ => match service {
            Some(name) => run_one(&config, name, shutdown).await,
            None => Ok(()),
        },
    }
}

/// Runs one service as its own process against the configured database,
/// bus and cache.
async fn run_one(config: &Config, name: ServiceName, shutdown: CancellationToken) -> Result<(), Failure> {
    // Settings only one service needs: refused like any other (exit 2).
    if name == ServiceName::AuditLog {
        config.audit.keys_dir()?;
    }
    if name == ServiceName::IdentityManager {
        config.registration.sources()?;
        config.registration.evidence_keys_dir()?;
    }
    if name == ServiceName::Notification {
        config.delivery.require_channels()?;
    }
    if name == ServiceName::OtpService {
        config.otp.keys_dir()?;
    }
    let bus = crate::deps::bus(config).await?;
    let deps = crate::deps::for_service(config, name, bus).await?;
    tracing::info!(service = %name, grpc = %config.service(name).grpc_listen, http = %config.service(name).http_listen, "starting");
    crate::deps::run_service(config, name, deps, shutdown).await.map_err(Failure::from)
}

async fn migrate(config: &Config, services: &[ServiceName]) -> Result<(), Failure> {
    for name in services {
        let db = crate::deps::database(config, *name).await?;
        crate::deps::migrate_service(*name, &db).await.map_err(|e| Failure::Run(format!("{name}: {e}")))?;
        println!("{name}: migrations applied");
        db.close().await;
    }
    Ok(())
}
