//! A service with an unreachable dependency or a malformed setting exits
//! non-zero with one line naming the setting, and never panics.

use std::time::Duration;

use integration_tests::{Broker, free_port, postgres_database, redis_url, run_idp};

fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

fn assert_clean_failure(code: Option<i32>, stderr: &str, setting: &str) {
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}, stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = last_line(stderr);
    assert!(line.starts_with("idp: ") && line.contains(setting), "expected a line naming {setting}, got:\n{stderr}");
}

/// The authoritative sources every production configuration names.
const SOURCES: [(&str, &str); 3] = [
    ("IDP__REGISTRATION__AGENZIA_ENTRATE_URL", "https://ade.example.it/ws"),
    ("IDP__REGISTRATION__SCIPAFI_URL", "https://scipafi.example.it/ws"),
    ("IDP__REGISTRATION__DOCUMENT_REGISTRY_URL", "https://viminale.example.it/ws"),
];
#[tokio::test]
async fn unreachable_dependencies_and_bad_settings_fail_fast_with_one_line() {
    let db = postgres_database("startup").await;
    let broker = Broker::tansu();
    let redis = redis_url();
    let grpc = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let base: Vec<(&str, &str)> = vec![
        ("IDP__MODE", "development"),
        ("IDP__TELEMETRY__LOG_FORMAT", "text"),
        ("IDP__AUDIT_LOG__GRPC_LISTEN", &grpc),
        ("IDP__AUDIT_LOG__HTTP_LISTEN", &http),
    ];
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&str, String)> {
        base.iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .chain(extra.iter().map(|(k, v)| (*k, (*v).to_owned())))
            .collect()
    };
    let run = |env: Vec<(&str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_idp(&["audit-log"], &env, Duration::from_secs(30))
    };

    // Unreachable database.
    let (code, _, err) = run(with(&[
        ("IDP__DATABASE__URL", "postgres://postgres@127.0.0.1:1/none"),
        ("IDP__BUS__BROKERS", &broker.bootstrap),
        ("IDP__CACHE__URL", &redis),
    ]));
    assert_clean_failure(code, &err, "database.url");
    assert!(last_line(&err).contains("cannot connect"), "{err}");
    assert_eq!(err.lines().count(), 1, "exactly one line: {err}");

    // Unreachable broker.
    let (code, _, err) = run(with(&[
        ("IDP__DATABASE__URL", &db),
        ("IDP__BUS__BROKERS", "127.0.0.1:1"),
        ("IDP__BUS__TIMEOUT_SECS", "2"),
        ("IDP__CACHE__URL", &redis),
    ]));
    assert_clean_failure(code, &err, "bus.brokers");
    assert_eq!(err.lines().count(), 1, "exactly one line: {err}");

    // Unreachable Redis.
    let (code, _, err) = run(with(&[
        ("IDP__DATABASE__URL", &db),
        ("IDP__BUS__BROKERS", &broker.bootstrap),
        ("IDP__CACHE__URL", "redis://127.0.0.1:1"),
    ]));
    assert_clean_failure(code, &err, "cache.url");

    // Malformed settings: exit code 2, the key named.
    for (key, value, setting) in [
        ("IDP__DATABASE__URL", "mysql://x/y", "database.url"),
        ("IDP__BUS__BROKERS", "no-port", "bus.brokers"),
        ("IDP__AUDIT_LOG__GRPC_LISTEN", "everywhere", "audit_log.grpc_listen"),
        ("IDP__DATABASE__MAX_CONNECTIONS", "lots", "database.max_connections"),
        ("IDP__DATABSE__URL", "postgres://x/y", "databse"),
    ] {
        let (code, _, err) = run(with(&[(key, value)]));
        assert_clean_failure(code, &err, setting);
        assert_eq!(code, Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "exactly one line: {err}");
    }

    // Production refuses development-only defaults.
    let (code, _, err) = run(vec![("IDP__PUBLIC_URL", "https://idp.example.it".to_owned())]);
    assert_clean_failure(code, &err, "bus.brokers");

    // Production without the audit key material: refused before anything
    // starts, and nothing is generated.
    let production = vec![
        ("IDP__TELEMETRY__LOG_FORMAT", "text".to_owned()),
        ("IDP__PUBLIC_URL", "https://idp.example.it".to_owned()),
        ("IDP__DATABASE__URL", db.clone()),
        ("IDP__BUS__BROKERS", broker.bootstrap.clone()),
        ("IDP__CACHE__URL", redis.clone()),
    ];
    let (code, _, err) = run(production.clone());
    assert_clean_failure(code, &err, "audit.keys_dir");
    assert_eq!(code, Some(2), "{err}");

    // identity-manager in production: the authoritative sources (VER-1),
    // then the evidence keys, each refused by name.
    let identity_manager = |env: &[(&str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_idp(&["identity-manager"], &env, Duration::from_secs(30))
    };
    let (code, _, err) = identity_manager(&production);
    assert_clean_failure(code, &err, "registration.agenzia_entrate_url");
    assert_eq!(code, Some(2), "{err}");
    let mut with_sources = production;
    with_sources.extend(SOURCES.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let (code, _, err) = identity_manager(&with_sources);
    assert_clean_failure(code, &err, "registration.evidence_keys_dir");

    // notification without its channels, otp-service without its keys.
    for (service, key) in [("notification", "delivery.email.host"), ("otp-service", "otp.keys_dir")] {
        let env: Vec<(&str, &str)> = with_sources.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, _, err) = run_idp(&[service], &env, Duration::from_secs(30));
        assert_clean_failure(code, &err, key);
        assert_eq!(code, Some(2), "{service}: {err}");
    }

    // A taken port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(with(&[
        ("IDP__DATABASE__URL", &db),
        ("IDP__BUS__BROKERS", &broker.bootstrap),
        ("IDP__CACHE__URL", &redis),
        ("IDP__AUDIT_LOG__HTTP_LISTEN", &taken_addr),
    ]));
    assert_clean_failure(code, &err, "audit_log.http_listen");
}

#[tokio::test]
async fn migrate_applies_every_service_schema_and_is_idempotent() {
    let mut env: Vec<(String, String)> = vec![("IDP__PUBLIC_URL".into(), "https://idp.example.it".into())];
    for name in spid_types::ServiceName::ALL {
        env.push((format!("IDP__{}__DATABASE_URL", name.key().to_uppercase()), postgres_database(name.key()).await));
    }
    // Migrations need no broker and no cache.
    env.push(("IDP__BUS__BROKERS".into(), "127.0.0.1:1".into()));
    env.push(("IDP__CACHE__URL".into(), "redis://127.0.0.1:1".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for _ in 0..2 {
        let (code, out, err) = run_idp(&["migrate", "--all"], &env, Duration::from_secs(60));
        assert_eq!(code, Some(0), "{out}\n{err}");
        for name in spid_types::ServiceName::ALL {
            assert!(out.contains(&format!("{name}: migrations applied")), "{out}");
        }
    }
    let (code, _, err) = run_idp(
        &["migrate", "--service", "audit-log"],
        &[
            ("IDP__PUBLIC_URL", "https://idp.example.it"),
            ("IDP__BUS__BROKERS", "k:9092"),
            ("IDP__CACHE__URL", "redis://r:6379"),
        ],
        Duration::from_secs(30),
    );
    assert_clean_failure(code, &err, "audit_log.database_url");
}
