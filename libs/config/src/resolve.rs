use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use spid_types::ServiceName;
use url::Url;

use crate::ConfigError;
use crate::settings::{ServiceSettings, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Production,
    Development,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The validated configuration a process runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub public_url: Url,
    pub telemetry: TelemetryConfig,
    pub bus: BusConfig,
    pub cache: CacheConfig,
    pub dev: DevConfig,
    pub database_max_connections: u32,
    pub database_connect_timeout_secs: u64,
    pub audit: AuditConfig,
    pub registration: RegistrationConfig,
    pub delivery: crate::delivery::DeliveryConfig,
    pub otp: crate::otp::OtpConfig,
    pub saml: crate::saml::SamlConfig,
    /// Indexed by `ServiceName as usize` (the order of `ServiceName::ALL`).
    services: [ServiceEndpoints; 5],
}

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    pub log_level: String,
    pub otlp_endpoint: Option<Url>,
}

#[derive(Debug, Clone)]
pub enum BusConfig {
    Kafka {
        brokers: String,
        properties: BTreeMap<String, String>,
        timeout_secs: u64,
    },
    /// The in-process bus, persisted in a SQLite file under the data dir.
    Embedded {
        path: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub enum CacheConfig {
    Redis { url: String, key_prefix: String },
    Memory,
}

/// See [`crate::AuditSettings`].
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// `None` only in production when not configured: audit-log refuses to
    /// start then (see [`AuditConfig::keys_dir`]).
    keys_dir: Option<PathBuf>,
    /// Development only: create missing keys at start.
    pub generate_keys: bool,
    pub retention_months: u32,
    pub evidence_retention_years: u32,
    pub tsa_url: Option<Url>,
    pub job_interval_secs: u64,
}

impl AuditConfig {
    /// The audit key directory, or the error naming the setting.
    pub fn keys_dir(&self) -> Result<&std::path::Path, ConfigError> {
        self.keys_dir.as_deref().ok_or_else(|| {
            ConfigError::new("audit.keys_dir", "required in production (the mounted audit key material)")
        })
    }
}

/// Where the authoritative sources are (VER-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcesConfig {
    /// Development: the local adapters on a data file (`None`: the sample).
    Local { file: Option<PathBuf> },
    /// Production: the SOAP services.
    Soap(Box<SoapSources>),
}

/// The SOAP endpoints of the sources, with the client identity for mutual
/// TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapSources {
    pub agenzia_entrate: Url,
    pub scipafi: Url,
    pub document_registry: Url,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// See [`crate::RegistrationSettings`].
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    pub idp_code: String,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// `None` only in production when not configured (see
    /// [`RegistrationConfig::evidence_keys_dir`]).
    evidence_keys_dir: Option<PathBuf>,
    /// Development only: create missing keys at start.
    pub generate_keys: bool,
    /// `None` only in production when not configured (see
    /// [`RegistrationConfig::sources`]).
    sources: Option<SourcesConfig>,
    pub signature_trust_file: Option<PathBuf>,
    pub contact_code_minutes: u32,
    pub cie_issuer: Option<String>,
    pub cie_client_id: Option<String>,
    pub cie_keys_file: Option<PathBuf>,
}

impl RegistrationConfig {
    /// The authoritative sources, or the error naming the setting.
    pub fn sources(&self) -> Result<&SourcesConfig, ConfigError> {
        self.sources.as_ref().ok_or_else(|| {
            ConfigError::new(
                "registration.agenzia_entrate_url",
                "required in production (the authoritative sources, VER-1)",
            )
        })
    }

    /// The evidence key directory, or the error naming the setting.
    pub fn evidence_keys_dir(&self) -> Result<&std::path::Path, ConfigError> {
        self.evidence_keys_dir.as_deref().ok_or_else(|| {
            ConfigError::new(
                "registration.evidence_keys_dir",
                "required in production (the mounted evidence key-encryption keys)",
            )
        })
    }
}

#[derive(Debug, Clone)]
pub struct DevConfig {
    pub data_dir: PathBuf,
    /// Development mode and `dev.seed_demo`.
    pub seed_demo: bool,
}

/// Where one service listens, how the others reach it and where its data is.
#[derive(Debug, Clone)]
pub struct ServiceEndpoints {
    pub grpc_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub grpc_url: Url,
    /// `None` only when no database was configured for this service; the
    /// service refuses to start then (see [`Config::database_url`]).
    pub database_url: Option<String>,
    /// The setting `database_url` came from, for error messages.
    pub database_setting: String,
}

impl Config {
    pub fn is_dev(&self) -> bool {
        self.mode == Mode::Development
    }

    pub fn service(&self, name: ServiceName) -> &ServiceEndpoints {
        &self.services[name as usize]
    }

    /// The database URL of a service, or the error naming the setting.
    pub fn database_url(&self, name: ServiceName) -> Result<&str, ConfigError> {
        self.service(name).database_url.as_deref().ok_or_else(|| {
            ConfigError::new(
                format!("{}.database_url", name.key()),
                "no database configured (set database.url or this setting)",
            )
        })
    }

    /// Overrides where a service listens (tests bind port 0).
    pub fn set_listen(&mut self, name: ServiceName, grpc: SocketAddr, http: SocketAddr) {
        let s = &mut self.services[name as usize];
        s.grpc_listen = grpc;
        s.http_listen = http;
    }

    /// Overrides how a service is reached (after binding port 0).
    pub fn set_grpc_url(&mut self, name: ServiceName, url: Url) {
        self.services[name as usize].grpc_url = url;
    }
}

impl Settings {
    /// Validates every setting, destructuring all fields so that a new field
    /// that is not handled here fails to compile.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let Settings {
            mode,
            public_url,
            database,
            bus,
            cache,
            telemetry,
            dev,
            identity_manager,
            authn_gateway,
            otp_service,
            audit_log,
            notification,
            audit,
            registration,
            delivery,
            otp,
            saml,
        } = self;

        let mode = match mode.as_str() {
            "production" => Mode::Production,
            "development" | "dev" => Mode::Development,
            other => {
                return Err(ConfigError::new("mode", format!("\"{other}\" is not one of production, development")));
            }
        };
        let is_dev = mode == Mode::Development;

        let public_url = parse_http_url("public_url", &public_url)?;
        if !is_dev && public_url.scheme() != "https" {
            return Err(ConfigError::new(
                "public_url",
                "must be https:// in production (plain HTTP is development only)",
            ));
        }

        let log_format = match telemetry.log_format.as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(ConfigError::new("telemetry.log_format", format!("\"{other}\" is not one of json, text")));
            }
        };
        if telemetry.log_level.trim().is_empty() {
            return Err(ConfigError::new("telemetry.log_level", "must not be empty"));
        }
        let otlp_endpoint = telemetry
            .otlp_endpoint
            .filter(|s| !s.is_empty())
            .map(|s| parse_http_url("telemetry.otlp_endpoint", &s))
            .transpose()?;

        let data_dir = PathBuf::from(&dev.data_dir);
        if is_dev && dev.data_dir.trim().is_empty() {
            return Err(ConfigError::new("dev.data_dir", "must not be empty"));
        }

        let bus_kind = match (bus.kind.as_str(), is_dev) {
            ("", false) | ("kafka", _) => "kafka",
            ("", true) | ("embedded", true) => {
                if bus.brokers.is_empty() {
                    "embedded"
                } else {
                    "kafka"
                }
            }
            ("embedded", false) => {
                return Err(ConfigError::new("bus.kind", "the embedded bus is for development only; use kafka"));
            }
            (other, _) => {
                return Err(ConfigError::new("bus.kind", format!("\"{other}\" is not one of kafka, embedded")));
            }
        };
        let bus = if bus_kind == "kafka" {
            validate_brokers(&bus.brokers)?;
            if bus.timeout_secs == 0 {
                return Err(ConfigError::new("bus.timeout_secs", "must be at least 1"));
            }
            BusConfig::Kafka { brokers: bus.brokers, properties: bus.properties, timeout_secs: bus.timeout_secs }
        } else {
            BusConfig::Embedded { path: data_dir.join("bus.db") }
        };

        let cache = match cache.url.as_str() {
            "" if is_dev => CacheConfig::Memory,
            "" => return Err(ConfigError::new("cache.url", "required in production (redis://host:port)")),
            "memory://" if is_dev => CacheConfig::Memory,
            "memory://" => {
                return Err(ConfigError::new("cache.url", "the in-memory cache is for development only; use redis://"));
            }
            url => {
                let parsed = Url::parse(url).map_err(|e| ConfigError::new("cache.url", format!("not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "redis" | "rediss") {
                    return Err(ConfigError::new(
                        "cache.url",
                        format!("unsupported scheme \"{}\" (expected redis:// or rediss://)", parsed.scheme()),
                    ));
                }
                let prefix_ok = cache.key_prefix.len() <= 64
                    && cache.key_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c));
                if !prefix_ok {
                    return Err(ConfigError::new("cache.key_prefix", "letters, digits and -_:. only, at most 64"));
                }
                CacheConfig::Redis { url: url.to_owned(), key_prefix: cache.key_prefix.clone() }
            }
        };

        if database.max_connections == 0 {
            return Err(ConfigError::new("database.max_connections", "must be at least 1"));
        }
        if database.connect_timeout_secs == 0 {
            return Err(ConfigError::new("database.connect_timeout_secs", "must be at least 1"));
        }
        if let Some(url) = &database.url {
            validate_database_url("database.url", url)?;
        }

        let shared_db = database.url.as_deref();
        let services = [
            resolve_service(ServiceName::IdentityManager, identity_manager, shared_db, is_dev, &data_dir)?,
            resolve_service(ServiceName::AuthnGateway, authn_gateway, shared_db, is_dev, &data_dir)?,
            resolve_service(ServiceName::OtpService, otp_service, shared_db, is_dev, &data_dir)?,
            resolve_service(ServiceName::AuditLog, audit_log, shared_db, is_dev, &data_dir)?,
            resolve_service(ServiceName::Notification, notification, shared_db, is_dev, &data_dir)?,
        ];

        let audit = resolve_audit(audit, is_dev, &data_dir)?;
        let registration = resolve_registration(registration, is_dev, &data_dir)?;
        let delivery = crate::delivery::resolve(delivery, is_dev)?;
        let otp = crate::otp::resolve(otp, is_dev, &data_dir)?;
        let saml = crate::saml::resolve(saml, is_dev, &data_dir, &public_url)?;

        Ok(Config {
            audit,
            registration,
            delivery,
            otp,
            saml,
            mode,
            public_url,
            telemetry: TelemetryConfig { log_format, log_level: telemetry.log_level, otlp_endpoint },
            bus,
            cache,
            dev: DevConfig { data_dir, seed_demo: is_dev && dev.seed_demo },
            database_max_connections: database.max_connections,
            database_connect_timeout_secs: database.connect_timeout_secs,
            services,
        })
    }
}

fn resolve_audit(
    a: crate::AuditSettings,
    is_dev: bool,
    data_dir: &std::path::Path,
) -> Result<AuditConfig, ConfigError> {
    let crate::AuditSettings { keys_dir, retention_months, evidence_retention_years, tsa_url, job_interval_secs } = a;
    let keys_dir = match keys_dir.filter(|d| !d.trim().is_empty()) {
        Some(d) => Some(PathBuf::from(d)),
        None if is_dev => Some(data_dir.join("keys").join("audit")),
        None => None,
    };
    if retention_months < 24 {
        return Err(ConfigError::new("audit.retention_months", "must be at least 24 (AUD-4)"));
    }
    if evidence_retention_years < 20 {
        return Err(ConfigError::new("audit.evidence_retention_years", "must be at least 20 (EMI-3)"));
    }
    if job_interval_secs == 0 {
        return Err(ConfigError::new("audit.job_interval_secs", "must be at least 1"));
    }
    let tsa_url = tsa_url.filter(|u| !u.is_empty()).map(|u| parse_http_url("audit.tsa_url", &u)).transpose()?;
    Ok(AuditConfig {
        keys_dir,
        generate_keys: is_dev,
        retention_months,
        evidence_retention_years,
        tsa_url,
        job_interval_secs,
    })
}

fn resolve_registration(
    r: crate::RegistrationSettings,
    is_dev: bool,
    data_dir: &std::path::Path,
) -> Result<RegistrationConfig, ConfigError> {
    let crate::RegistrationSettings {
        idp_code,
        argon2_memory_kib,
        argon2_iterations,
        argon2_parallelism,
        evidence_keys_dir,
        sources_file,
        agenzia_entrate_url,
        scipafi_url,
        document_registry_url,
        sources_client_certificate,
        sources_client_key,
        signature_trust_file,
        contact_code_minutes,
        cie_issuer,
        cie_client_id,
        cie_keys_file,
    } = r;
    if idp_code.len() != 4 || !idp_code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ConfigError::new("registration.idp_code", "must be 4 upper-case letters (EMI-1)"));
    }
    // OWASP's floor for Argon2id: 19 MiB with 2 passes, or 7 MiB with 5.
    if argon2_memory_kib < 7_168 || (argon2_memory_kib < 19_456 && argon2_iterations < 5) {
        return Err(ConfigError::new(
            "registration.argon2_memory_kib",
            "below OWASP's minimum for Argon2id (19456 KiB with 2 passes, or 7168 KiB with 5)",
        ));
    }
    if !(1..=10).contains(&argon2_iterations) {
        return Err(ConfigError::new("registration.argon2_iterations", "must be between 1 and 10"));
    }
    if !(1..=16).contains(&argon2_parallelism) {
        return Err(ConfigError::new("registration.argon2_parallelism", "must be between 1 and 16"));
    }
    if !(1..=60).contains(&contact_code_minutes) {
        return Err(ConfigError::new("registration.contact_code_minutes", "must be between 1 and 60"));
    }
    let path = |p: Option<String>| p.filter(|d| !d.trim().is_empty()).map(PathBuf::from);
    let text = |t: Option<String>| t.filter(|t| !t.trim().is_empty());
    let (cie_issuer, cie_client_id, cie_keys_file) = (text(cie_issuer), text(cie_client_id), path(cie_keys_file));
    let cie_given = [cie_issuer.is_some(), cie_client_id.is_some(), cie_keys_file.is_some()];
    if cie_given.iter().any(|g| *g) && !cie_given.iter().all(|g| *g) {
        return Err(ConfigError::new(
            "registration.cie_issuer",
            "set cie_issuer, cie_client_id and cie_keys_file together",
        ));
    }
    if let Some(issuer) = &cie_issuer {
        let url = parse_http_url("registration.cie_issuer", issuer)?;
        if !is_dev && url.scheme() != "https" {
            return Err(ConfigError::new("registration.cie_issuer", "must be https in production"));
        }
    }
    let evidence_keys_dir = match path(evidence_keys_dir) {
        Some(d) => Some(d),
        None if is_dev => Some(data_dir.join("keys").join("evidence")),
        None => None,
    };
    Ok(RegistrationConfig {
        idp_code,
        argon2_memory_kib,
        argon2_iterations,
        argon2_parallelism,
        evidence_keys_dir,
        generate_keys: is_dev,
        sources: resolve_sources(
            is_dev,
            path(sources_file),
            [agenzia_entrate_url, scipafi_url, document_registry_url],
            path(sources_client_certificate),
            path(sources_client_key),
        )?,
        signature_trust_file: path(signature_trust_file),
        contact_code_minutes,
        cie_issuer,
        cie_client_id,
        cie_keys_file,
    })
}

fn resolve_sources(
    is_dev: bool,
    file: Option<PathBuf>,
    urls: [Option<String>; 3],
    client_certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
) -> Result<Option<SourcesConfig>, ConfigError> {
    const KEYS: [&str; 3] =
        ["registration.agenzia_entrate_url", "registration.scipafi_url", "registration.document_registry_url"];
    let urls: Vec<Option<String>> = urls.into_iter().map(|u| u.filter(|u| !u.trim().is_empty())).collect();
    if urls.iter().all(Option::is_none) {
        // Production without sources: refused by identity-manager alone.
        return Ok(is_dev.then_some(SourcesConfig::Local { file }));
    }
    if file.is_some() {
        return Err(ConfigError::new("registration.sources_file", "either the local data file or the SOAP endpoints"));
    }
    let mut parsed = Vec::new();
    for (key, url) in KEYS.iter().zip(urls) {
        let url = url.ok_or_else(|| ConfigError::new(*key, "set all three source endpoints"))?;
        let url = parse_http_url(key, &url)?;
        if !is_dev && url.scheme() != "https" {
            return Err(ConfigError::new(*key, "must be https in production"));
        }
        parsed.push(url);
    }
    if client_certificate.is_some() != client_key.is_some() {
        return Err(ConfigError::new("registration.sources_client_key", "give both the certificate and the key"));
    }
    let mut parsed = parsed.into_iter();
    match (parsed.next(), parsed.next(), parsed.next()) {
        (Some(agenzia_entrate), Some(scipafi), Some(document_registry)) => {
            Ok(Some(SourcesConfig::Soap(Box::new(SoapSources {
                agenzia_entrate,
                scipafi,
                document_registry,
                client_certificate,
                client_key,
            }))))
        }
        _ => Err(ConfigError::new(KEYS[0], "set all three source endpoints")),
    }
}

fn resolve_service(
    name: ServiceName,
    s: ServiceSettings,
    shared_db: Option<&str>,
    is_dev: bool,
    data_dir: &std::path::Path,
) -> Result<ServiceEndpoints, ConfigError> {
    let ServiceSettings { grpc_listen, http_listen, grpc_url, database_url } = s;
    let section = name.key();
    let grpc_listen = parse_addr(&format!("{section}.grpc_listen"), &grpc_listen)?;
    let http_listen = parse_addr(&format!("{section}.http_listen"), &http_listen)?;
    let grpc_url = match grpc_url.filter(|u| !u.is_empty()) {
        Some(u) => parse_http_url(&format!("{section}.grpc_url"), &u)?,
        None => {
            let host =
                if grpc_listen.ip().is_unspecified() { "127.0.0.1".to_owned() } else { grpc_listen.ip().to_string() };
            let host =
                if grpc_listen.is_ipv6() && !grpc_listen.ip().is_unspecified() { format!("[{host}]") } else { host };
            parse_http_url(&format!("{section}.grpc_url"), &format!("http://{host}:{}", grpc_listen.port()))?
        }
    };
    let (database_url, database_setting) = match database_url.filter(|u| !u.is_empty()) {
        Some(u) => {
            validate_database_url(&format!("{section}.database_url"), &u)?;
            (Some(u), format!("{section}.database_url"))
        }
        None => match shared_db {
            Some(u) => (Some(u.to_owned()), "database.url".to_owned()),
            None if is_dev => (
                Some(format!("sqlite://{}?mode=rwc", data_dir.join(format!("{section}.db")).display())),
                "dev.data_dir".to_owned(),
            ),
            None => (None, format!("{section}.database_url")),
        },
    };
    Ok(ServiceEndpoints { grpc_listen, http_listen, grpc_url, database_url, database_setting })
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::new(key, format!("\"{value}\" is not a host:port socket address (e.g. 127.0.0.1:8080)"))
    })
}

pub(crate) fn parse_http_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::new(key, format!("\"{value}\" is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(key, format!("\"{value}\" must be an http:// or https:// URL with a host")));
    }
    Ok(url)
}

fn validate_database_url(key: &str, value: &str) -> Result<(), ConfigError> {
    let scheme = value.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "postgres" | "postgresql" => {
            Url::parse(value).map_err(|e| ConfigError::new(key, format!("not a valid postgres URL: {e}")))?;
            Ok(())
        }
        "sqlite" => Ok(()),
        "" => Err(ConfigError::new(key, "must start with postgres:// or sqlite://")),
        other => {
            Err(ConfigError::new(key, format!("unsupported scheme \"{other}\" (expected postgres:// or sqlite://)")))
        }
    }
}

fn validate_brokers(brokers: &str) -> Result<(), ConfigError> {
    if brokers.trim().is_empty() {
        return Err(ConfigError::new("bus.brokers", "required for the kafka bus (host:port[,host:port])"));
    }
    for broker in brokers.split(',') {
        let broker = broker.trim();
        let valid = broker
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !valid {
            return Err(ConfigError::new("bus.brokers", format!("\"{broker}\" is not host:port")));
        }
    }
    Ok(())
}
