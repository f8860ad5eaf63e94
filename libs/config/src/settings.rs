use serde::{Deserialize, Serialize};

/// The file-facing configuration. Every section refuses unknown keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `production` (default) or `development`. Development keys, plain
    /// HTTP, the embedded bus and cache and the message outbox exist only in
    /// development.
    pub mode: String,
    /// The IdP's public HTTP origin (entityID base, SSO endpoints).
    pub public_url: String,
    pub database: DatabaseSettings,
    pub bus: BusSettings,
    pub cache: CacheSettings,
    pub telemetry: TelemetrySettings,
    pub dev: DevSettings,
    pub identity_manager: ServiceSettings,
    pub authn_gateway: ServiceSettings,
    pub otp_service: ServiceSettings,
    pub audit_log: ServiceSettings,
    pub notification: ServiceSettings,
    pub audit: AuditSettings,
    pub registration: RegistrationSettings,
    pub delivery: DeliverySettings,
    pub otp: OtpSettings,
    pub saml: SamlSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: "production".into(),
            public_url: "http://127.0.0.1:8080".into(),
            database: DatabaseSettings::default(),
            bus: BusSettings::default(),
            cache: CacheSettings::default(),
            telemetry: TelemetrySettings::default(),
            dev: DevSettings::default(),
            identity_manager: ServiceSettings::local(50051, 8081),
            authn_gateway: ServiceSettings::local(50052, 8080),
            otp_service: ServiceSettings::local(50053, 8082),
            audit_log: ServiceSettings::local(50054, 8083),
            notification: ServiceSettings::local(50055, 8084),
            audit: AuditSettings::default(),
            registration: RegistrationSettings::default(),
            delivery: DeliverySettings::default(),
            otp: OtpSettings::default(),
            saml: SamlSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`. A service's own `database_url`
    /// takes precedence; in development each service gets a SQLite file.
    pub url: Option<String>,
    pub max_connections: u32,
    /// Seconds to wait for a connection before giving up.
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { url: None, max_connections: 10, connect_timeout_secs: 5 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusSettings {
    /// `kafka` or `embedded` (development only). Empty: `kafka` in
    /// production, `embedded` in development.
    pub kind: String,
    /// Kafka bootstrap servers, comma separated (`host:port,host:port`).
    pub brokers: String,
    /// Extra librdkafka properties (security.protocol, sasl.*, ssl.*).
    pub properties: std::collections::BTreeMap<String, String>,
    /// Seconds to wait for the broker at start and per publish.
    pub timeout_secs: u64,
}

impl Default for BusSettings {
    fn default() -> Self {
        Self { kind: String::new(), brokers: String::new(), properties: Default::default(), timeout_secs: 10 }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// `redis://…` / `rediss://…`, or `memory://` (development only).
    pub url: String,
    /// Put before every key (then the service's name), so that several
    /// deployments or test runs can share one Redis: letters, digits and
    /// `-_:.`, at most 64.
    pub key_prefix: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `json` (default) or `text`.
    pub log_format: String,
    /// A tracing filter, e.g. `info` or `info,sqlx=warn`.
    pub log_level: String,
    /// OTLP/gRPC endpoint (e.g. `http://otel-collector:4317`); traces are
    /// exported only when set.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { log_format: "json".into(), log_level: "info,actix_server=warn".into(), otlp_endpoint: None }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevSettings {
    /// Where the development mode keeps its SQLite files and keys.
    pub data_dir: String,
    /// Development only: create demo holders at start and write them to
    /// `<data_dir>/demo-users.json`.
    pub seed_demo: bool,
}

impl Default for DevSettings {
    fn default() -> Self {
        Self { data_dir: "./var".into(), seed_demo: true }
    }
}

/// Listening addresses of one service and how the others reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceSettings {
    /// gRPC listen address, `host:port`.
    pub grpc_listen: String,
    /// HTTP listen address (health, metrics, pages), `host:port`.
    pub http_listen: String,
    /// URL other services use to reach this one's gRPC server; defaults to
    /// `http://<grpc_listen>`.
    pub grpc_url: Option<String>,
    /// This service's own database, overriding `database.url`.
    pub database_url: Option<String>,
}

impl ServiceSettings {
    fn local(grpc: u16, http: u16) -> Self {
        Self {
            grpc_listen: format!("127.0.0.1:{grpc}"),
            http_listen: format!("127.0.0.1:{http}"),
            grpc_url: None,
            database_url: None,
        }
    }
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self::local(0, 0)
    }
}

/// The audit log's keys and policies (AUD-4, EMI-3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Directory of the audit key material: data keys, search-index key,
    /// signing key and certificate. Development: `<dev.data_dir>/keys/audit`,
    /// created at first start. Production: required, never generated.
    pub keys_dir: Option<String>,
    /// Months the transaction registry stays online (AUD-4); at least 24.
    pub retention_months: u32,
    /// Years evidence references are kept after revocation or expiry
    /// (EMI-3); at least 20.
    pub evidence_retention_years: u32,
    /// RFC 3161 time-stamping authority for the daily seals. Empty: the
    /// seals are signed but not time-stamped (development: a local stamper).
    pub tsa_url: Option<String>,
    /// Seconds between runs of the sealing and retention jobs.
    pub job_interval_secs: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            keys_dir: None,
            retention_months: 24,
            evidence_retention_years: 20,
            tsa_url: None,
            job_interval_secs: 300,
        }
    }
}

/// Registration, identification and credentials in identity-manager (REG,
/// IDN, VER, EMI, LC-5).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationSettings {
    /// The IdP's 4-letter code, the first part of every spidCode (EMI-1).
    pub idp_code: String,
    /// Argon2id memory cost in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id passes (OWASP: 2).
    pub argon2_iterations: u32,
    /// Argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Directory of the evidence key-encryption keys (`kek-NNNN.key`).
    /// Development: `<dev.data_dir>/keys/evidence`, created at first start.
    /// Production: required (or an HSM), never generated.
    pub evidence_keys_dir: Option<String>,
    /// Data file of the local authoritative-source adapters (Agenzia delle
    /// Entrate, SCIPAFI, document checks), development only. Empty: the
    /// built-in sample.
    pub sources_file: Option<String>,
    /// Production: the SOAP endpoints of the authoritative sources (VER-1).
    pub agenzia_entrate_url: Option<String>,
    pub scipafi_url: Option<String>,
    pub document_registry_url: Option<String>,
    /// The client certificate and key (PEM) for mutual TLS to the sources.
    pub sources_client_certificate: Option<String>,
    pub sources_client_key: Option<String>,
    /// Trust list for qualified signatures on signed request forms and for
    /// CNS client certificates (PEM bundle).
    pub signature_trust_file: Option<String>,
    /// Minutes a contact verification code stays valid.
    pub contact_code_minutes: u32,
    /// CIE identification (IDN-1 c): the CIE OpenID provider's issuer, our
    /// client id there, and its signing keys (PEM public keys). All three,
    /// or none (CIE not offered).
    pub cie_issuer: Option<String>,
    pub cie_client_id: Option<String>,
    pub cie_keys_file: Option<String>,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            idp_code: "XIDP".into(),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            evidence_keys_dir: None,
            sources_file: None,
            agenzia_entrate_url: None,
            scipafi_url: None,
            document_registry_url: None,
            sources_client_certificate: None,
            sources_client_key: None,
            signature_trust_file: None,
            contact_code_minutes: 15,
            cie_issuer: None,
            cie_client_id: None,
            cie_keys_file: None,
        }
    }
}

/// `[delivery]`: channels and retries of the notification service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Attempts per message before it is dead-lettered for the operators.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, with jitter.
    pub retry_base_secs: u64,
    /// Longest retry delay.
    pub retry_max_secs: u64,
    /// How long one delivery may take before another worker (or the same
    /// one after a restart) takes the message over.
    pub lease_secs: u64,
    /// Messages delivered at once by one process.
    pub concurrency: u32,
    /// E-mail (`[delivery.email]`). Development without a host: the
    /// development outbox. Production: required.
    pub email: SmtpSettings,
    /// PEC through the PEC provider's SMTP server (`[delivery.pec]`).
    /// Optional: without it PEC messages are refused.
    pub pec: SmtpSettings,
    /// SMS through an HTTP gateway (`[delivery.sms]`). Development without a
    /// URL: the development outbox. Production: required.
    pub sms: SmsSettings,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base_secs: 15,
            retry_max_secs: 3600,
            lease_secs: 120,
            concurrency: 16,
            email: SmtpSettings::default(),
            pec: SmtpSettings::default(),
            sms: SmsSettings::default(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    pub host: Option<String>,
    /// 0: the port of the TLS mode (465 for `tls`, 587 for `starttls`, 25).
    pub port: u16,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (loopback only).
    pub tls: String,
    pub username: Option<String>,
    /// From the secret store (`IDP__DELIVERY__EMAIL__PASSWORD`).
    pub password: Option<String>,
    /// The sender, e.g. `SPID XIDP <noreply@idp.example.it>`.
    pub from: String,
    pub timeout_secs: u64,
    /// PEM certificate(s) of a private CA the server's certificate chains
    /// to, besides the system's trust store.
    pub ca_file: Option<String>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: None,
            port: 0,
            tls: "starttls".into(),
            username: None,
            password: None,
            from: String::new(),
            timeout_secs: 30,
            ca_file: None,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsSettings {
    /// The gateway's send endpoint (POST).
    pub url: Option<String>,
    /// `json` (default) or `form` (application/x-www-form-urlencoded).
    pub format: String,
    /// Field names of the gateway's request.
    pub to_field: String,
    pub text_field: String,
    pub sender_field: String,
    /// Our message id, for the gateway's own de-duplication (empty: not sent).
    pub reference_field: String,
    /// The sender name or number (empty: the gateway's default).
    pub sender: String,
    /// Header carrying the credential, e.g. `Authorization`.
    pub auth_header: String,
    /// The header's value, e.g. `Bearer …`, from the secret store
    /// (`IDP__DELIVERY__SMS__TOKEN`).
    pub token: Option<String>,
    pub timeout_secs: u64,
}

/// Without the password.
impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Without the token or the URL's query (gateways put keys there).
impl std::fmt::Debug for SmsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.url.as_deref().map(|u| u.split('?').next().unwrap_or(""));
        f.debug_struct("SmsSettings").field("url", &url).field("format", &self.format).finish_non_exhaustive()
    }
}

impl Default for SmsSettings {
    fn default() -> Self {
        Self {
            url: None,
            format: "json".into(),
            to_field: "to".into(),
            text_field: "text".into(),
            sender_field: "from".into(),
            reference_field: "reference".into(),
            sender: String::new(),
            auth_header: "Authorization".into(),
            token: None,
            timeout_secs: 15,
        }
    }
}

/// `[otp]`: the second factors of level 2 (otp-service; OTP-1…8).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtpSettings {
    /// Directory of the key material: `master.key` (TOTP seed derivation,
    /// OTP-7), `data.key` (derivation keys at rest), `code-mac.key` (code
    /// hashes). Development: `<dev.data_dir>/keys/otp`, created at first
    /// start. Production: required, never generated.
    pub keys_dir: Option<String>,
    /// Seconds an SMS or e-mail code stays valid (OTP-1: 300).
    pub code_validity_secs: u64,
    /// Wrong codes before a challenge is dropped.
    pub max_attempts: u32,
    /// Codes one identity may ask for per window.
    pub codes_per_identity: u64,
    /// Codes one client address may ask for per window.
    pub codes_per_address: u64,
    pub rate_window_secs: u64,
    /// The issuer authenticator apps show next to the account.
    pub totp_issuer: String,
}

impl Default for OtpSettings {
    fn default() -> Self {
        Self {
            keys_dir: None,
            code_validity_secs: 300,
            max_attempts: 3,
            codes_per_identity: 5,
            codes_per_address: 30,
            rate_window_secs: 900,
            totp_issuer: "SPID".into(),
        }
    }
}

/// `[saml]`: the SAML 2.0 identity provider (authn-gateway; SAML-1…9).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamlSettings {
    /// The IdP's entityID; default: `public_url`.
    pub entity_id: Option<String>,
    /// Directory of the signing keys: `signing.key` and `signing.crt`, and
    /// during a rollover `next-signing.key` and `next-signing.crt` (both
    /// certificates are published). Development: `<dev.data_dir>/keys/saml`,
    /// a 3072-bit key generated at first start. Production: required.
    pub keys_dir: Option<String>,
    /// SP metadata trusted as it is (no signature needed): files, or
    /// directories whose `*.xml` files are read. Development adds
    /// `<dev.data_dir>/sp-metadata`.
    pub sp_metadata: Vec<String>,
    /// Metadata fetched over HTTPS (an SP's own, or a federation aggregate
    /// of `EntitiesDescriptor`); each must be signed by a trust anchor.
    pub sp_metadata_urls: Vec<String>,
    /// PEM file of the certificates that may sign fetched metadata.
    pub trust_anchors: Option<String>,
    /// Seconds between two reloads of every metadata source.
    pub refresh_secs: u64,
    /// How old an AuthnRequest's IssueInstant may be (nr13).
    pub request_max_age_secs: u64,
    /// How far in the future an IssueInstant may be (clock skew).
    pub clock_skew_secs: u64,
    /// Lifetime of an assertion (SubjectConfirmationData and Conditions).
    pub assertion_validity_secs: u64,
    /// Time a user has to complete a login (nr21 after it).
    pub login_timeout_secs: u64,
    /// Lifetime of a level-1 single sign-on session (SAML-7).
    pub sso_session_secs: u64,
    /// Wrong passwords in one login before nr19.
    pub password_attempts: u32,
    /// Proxies (IP addresses or CIDR ranges, e.g. the ingress controller's
    /// pods) whose `X-Forwarded-For` names the client. Empty: the TCP peer
    /// is the client.
    pub trusted_proxies: Vec<String>,
    /// Bootstrap Italia's `dist` directory (from npm: the gateway's
    /// `web/package.json`), served to the login pages; unset: the pages use
    /// their own small stylesheet only.
    pub assets_dir: Option<String>,
    /// Shown in the metadata's Organization element.
    pub organization_name: String,
    pub organization_url: Option<String>,
}

impl Default for SamlSettings {
    fn default() -> Self {
        Self {
            entity_id: None,
            keys_dir: None,
            sp_metadata: Vec::new(),
            sp_metadata_urls: Vec::new(),
            trust_anchors: None,
            refresh_secs: 3600,
            request_max_age_secs: 300,
            clock_skew_secs: 60,
            assertion_validity_secs: 300,
            login_timeout_secs: 900,
            sso_session_secs: 3600,
            password_attempts: 3,
            trusted_proxies: Vec::new(),
            assets_dir: None,
            organization_name: "SPID Identity Provider".into(),
            organization_url: None,
        }
    }
}
