#![allow(clippy::result_large_err)] // figment::Jail closures return figment::Error

use super::*;

fn dev_overrides() -> Vec<(String, String)> {
    vec![("mode".into(), "development".into())]
}

fn load_with(overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let sources = Sources {
        file: None,
        environment: false,
        overrides: overrides.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    };
    load(&sources)
}

#[test]
fn development_defaults_are_fully_embedded() {
    let config = load(&Sources { overrides: dev_overrides(), ..Sources::default() }).unwrap();
    assert!(config.is_dev());
    assert!(matches!(config.bus, BusConfig::Embedded { .. }));
    assert!(matches!(config.cache, CacheConfig::Memory));
    let db = config.database_url(spid_types::ServiceName::AuditLog).unwrap();
    assert!(db.starts_with("sqlite://") && db.contains("audit_log.db"), "{db}");
    assert_eq!(config.service(spid_types::ServiceName::AuthnGateway).http_listen.port(), 8080);
}

#[test]
fn production_refuses_missing_and_insecure_settings() {
    let err = load_with(&[]).unwrap_err();
    assert_eq!(err.key, "public_url", "{err}");

    let err = load_with(&[("public_url", "https://idp.example.it")]).unwrap_err();
    assert_eq!(err.key, "bus.brokers", "{err}");

    let err = load_with(&[("public_url", "https://idp.example.it"), ("bus.brokers", "kafka:9092")]).unwrap_err();
    assert_eq!(err.key, "cache.url", "{err}");

    let err = load_with(&[
        ("public_url", "https://idp.example.it"),
        ("bus.brokers", "kafka:9092"),
        ("cache.url", "memory://"),
    ])
    .unwrap_err();
    assert_eq!(err.key, "cache.url");
    assert!(err.message.contains("development only"));

    let config = load_with(&[
        ("public_url", "https://idp.example.it"),
        ("bus.brokers", "kafka-0:9092,kafka-1:9092"),
        ("cache.url", "redis://redis:6379"),
    ])
    .unwrap();
    let err = config.database_url(spid_types::ServiceName::IdentityManager).unwrap_err();
    assert_eq!(err.key, "identity_manager.database_url");
}

#[test]
fn malformed_settings_name_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("mode", "staging", "mode"),
        ("database.url", "mysql://x/y", "database.url"),
        ("bus.brokers", "kafka", "bus.brokers"),
        ("audit_log.grpc_listen", "nowhere", "audit_log.grpc_listen"),
        ("telemetry.log_format", "xml", "telemetry.log_format"),
        ("telemetry.otlp_endpoint", "collector", "telemetry.otlp_endpoint"),
        ("cache.url", "memcached://x", "cache.url"),
    ];
    for (key, value, expected) in cases {
        let err = load_with(&[("mode", "development"), (key, value)]).unwrap_err();
        assert_eq!(&err.key, expected, "{key}={value}: {err}");
        let line = err.to_string();
        assert!(!line.contains('\n') && line.contains(expected), "{line}");
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_refused() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("idp.toml", "mode = \"development\"\n[database]\nmax_conections = 3\n")?;
        let err = load(&Sources { file: Some("idp.toml".into()), ..Sources::default() }).unwrap_err();
        assert_eq!(err.key, "database.max_conections");
        assert_eq!(err.message, "unknown setting");

        jail.create_file("bad.toml", "mode = \"development\"\n[database]\nmax_connections = \"many\"\n")?;
        let err = load(&Sources { file: Some("bad.toml".into()), ..Sources::default() }).unwrap_err();
        assert_eq!(err.key, "database.max_connections", "{err}");
        Ok(())
    });
}

#[test]
fn layers_apply_in_order_file_env_flags() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "idp.toml",
            "mode = \"development\"\n[database]\nmax_connections = 3\nurl = \"sqlite://file.db\"\n",
        )?;
        jail.set_env("IDP__DATABASE__MAX_CONNECTIONS", "7");
        let sources = Sources { file: Some("idp.toml".into()), environment: true, overrides: vec![] };
        let config = load(&sources).unwrap();
        assert_eq!(config.database_max_connections, 7);
        assert_eq!(config.database_url(spid_types::ServiceName::Notification).unwrap(), "sqlite://file.db");

        let sources = Sources {
            overrides: vec![
                ("database.url".into(), "postgres://localhost/flag".into()),
                ("bus.timeout_secs".into(), "3".into()),
            ],
            ..sources
        };
        let config = load(&sources).unwrap();
        assert_eq!(config.database_url(spid_types::ServiceName::Notification).unwrap(), "postgres://localhost/flag");
        assert_eq!(config.database_max_connections, 7);
        Ok(())
    });
}

#[test]
fn missing_config_file_is_named() {
    let err = load(&Sources { file: Some("/nonexistent/idp.toml".into()), ..Sources::default() }).unwrap_err();
    assert_eq!(err.key, "--config");
}

#[test]
fn audit_policies_cannot_go_below_the_rules() {
    let dev = |k: &'static str, v: &'static str| load_with(&[("mode", "development"), (k, v)]);
    assert_eq!(dev("audit.retention_months", "12").unwrap_err().key, "audit.retention_months");
    assert_eq!(dev("audit.evidence_retention_years", "10").unwrap_err().key, "audit.evidence_retention_years");
    assert_eq!(dev("audit.tsa_url", "ftp://tsa").unwrap_err().key, "audit.tsa_url");
    let config = dev("audit.retention_months", "30").unwrap();
    assert_eq!(config.audit.retention_months, 30);
    assert!(config.audit.keys_dir().unwrap().ends_with("keys/audit"));
    assert!(config.audit.generate_keys);

    let production = load_with(&[
        ("public_url", "https://idp.example.it"),
        ("bus.brokers", "kafka:9092"),
        ("cache.url", "redis://redis:6379"),
    ])
    .unwrap();
    assert_eq!(production.audit.keys_dir().unwrap_err().key, "audit.keys_dir");
    assert!(!production.audit.generate_keys);
}

#[test]
fn registration_settings_keep_to_the_rules() {
    let dev = |k: &'static str, v: &'static str| load_with(&[("mode", "development"), (k, v)]);
    assert_eq!(dev("registration.idp_code", "abcd").unwrap_err().key, "registration.idp_code");
    assert_eq!(dev("registration.idp_code", "ABCDE").unwrap_err().key, "registration.idp_code");
    assert_eq!(dev("registration.argon2_memory_kib", "4096").unwrap_err().key, "registration.argon2_memory_kib");
    assert_eq!(dev("registration.argon2_memory_kib", "8192").unwrap_err().key, "registration.argon2_memory_kib");
    assert_eq!(dev("registration.argon2_iterations", "0").unwrap_err().key, "registration.argon2_iterations");
    assert_eq!(dev("registration.contact_code_minutes", "0").unwrap_err().key, "registration.contact_code_minutes");
    let config = dev("registration.idp_code", "ABCD").unwrap();
    assert_eq!(config.registration.idp_code, "ABCD");
    assert_eq!(config.registration.argon2_memory_kib, 19_456);
    assert!(config.registration.evidence_keys_dir().unwrap().ends_with("keys/evidence"));

    assert_eq!(config.registration.sources().unwrap(), &crate::SourcesConfig::Local { file: None });
    assert_eq!(dev("registration.cie_issuer", "https://id.cie.example").unwrap_err().key, "registration.cie_issuer");
    let partial = dev("registration.scipafi_url", "https://scipafi.example.it/ws").unwrap_err();
    assert_eq!(partial.key, "registration.agenzia_entrate_url");

    let base =
        [("public_url", "https://idp.example.it"), ("bus.brokers", "kafka:9092"), ("cache.url", "redis://redis:6379")];
    let without = load_with(&base).unwrap();
    assert_eq!(without.registration.sources().unwrap_err().key, "registration.agenzia_entrate_url", "required");
    let mut with_sources = base.to_vec();
    with_sources.extend([
        ("registration.agenzia_entrate_url", "https://ade.example.it/ws"),
        ("registration.scipafi_url", "https://scipafi.example.it/ws"),
        ("registration.document_registry_url", "http://viminale.example.it/ws"),
    ]);
    assert_eq!(load_with(&with_sources).unwrap_err().key, "registration.document_registry_url", "https only");
    with_sources[5].1 = "https://viminale.example.it/ws";
    let production = load_with(&with_sources).unwrap();
    assert!(matches!(production.registration.sources().unwrap(), crate::SourcesConfig::Soap(_)));
    assert_eq!(production.registration.evidence_keys_dir().unwrap_err().key, "registration.evidence_keys_dir");
    assert!(!production.registration.generate_keys);
}
