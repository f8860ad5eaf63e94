//! notification delivering for real: e-mail to an SMTP server (aiosmtpd)
//! and SMS to an HTTP gateway, both on loopback, with the service in its
//! own process on Postgres and a Kafka-protocol broker — including
//! transient failures and retries, dead letters and the operators' retry,
//! the topic intake, and a kill in the middle of deliveries.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use integration_tests::{Broker, Fixture, Ports, ServiceProcess, bin, poll_until, postgres_database, redis_url};
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use spid_events::EventBuilder;
use spid_proto::events::v1::{Contacts, NotificationRequested};
use spid_proto::notification::v1::{Channel, SendRequest, notifications_client::NotificationsClient};
use spid_types::{ServiceName, SystemClock};

const TOKEN: &str = "gw-token-5f1c";
const FROM: &str = "SPID XIDP <noreply@idp.example.it>";

async fn notification(
    broker: &Broker,
    ports: &Ports,
    dir: &Path,
    mail: &Fixture,
    sms: &Fixture,
    extra: &[(&str, &str)],
) -> ServiceProcess {
    let name = ServiceName::Notification;
    let mut env = ports.env();
    env.extend(
        [
            ("IDP__MODE", "development".to_owned()),
            ("IDP__DATABASE__URL", postgres_database("notification").await),
            ("IDP__BUS__BROKERS", broker.bootstrap.clone()),
            ("IDP__BUS__TIMEOUT_SECS", "3".to_owned()),
            ("IDP__CACHE__URL", redis_url()),
            ("IDP__CACHE__KEY_PREFIX", integration_tests::cache_prefix()),
            ("IDP__TELEMETRY__LOG_FORMAT", "text".to_owned()),
            ("IDP__DEV__DATA_DIR", dir.join("data").display().to_string()),
            ("IDP__DELIVERY__EMAIL__HOST", "127.0.0.1".to_owned()),
            ("IDP__DELIVERY__EMAIL__PORT", mail.port.to_string()),
            ("IDP__DELIVERY__EMAIL__TLS", "none".to_owned()),
            ("IDP__DELIVERY__EMAIL__FROM", FROM.to_owned()),
            ("IDP__DELIVERY__SMS__URL", format!("http://127.0.0.1:{}/send", sms.port)),
            ("IDP__DELIVERY__SMS__TOKEN", format!("Bearer {TOKEN}")),
            ("IDP__DELIVERY__RETRY_BASE_SECS", "1".to_owned()),
            ("IDP__DELIVERY__RETRY_MAX_SECS", "2".to_owned()),
            ("IDP__DELIVERY__MAX_ATTEMPTS", "3".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let mut p = ServiceProcess::spawn(name, env, ports.http_url(name), dir);
    p.wait_ready(Duration::from_secs(30)).await;
    p
}

async fn client(ports: &Ports) -> NotificationsClient<tonic::transport::Channel> {
    NotificationsClient::connect(ports.grpc_url(ServiceName::Notification)).await.unwrap()
}

fn email(to: &str, spid_code: &str, key: &str) -> SendRequest {
    SendRequest {
        channel: Channel::Email as i32,
        recipient: to.into(),
        template: "identity-activated".into(),
        locale: "it".into(),
        data: [("spid_code".to_owned(), spid_code.to_owned())].into(),
        idempotency_key: key.into(),
        subject_id: spid_code.into(),
    }
}

async fn wait_for(what: &str, process: &ServiceProcess, mut done: impl FnMut() -> bool) {
    let ok = poll_until(Duration::from_secs(60), || {
        let r = done();
        async move { r.then_some(()) }
    })
    .await;
    assert!(ok.is_some(), "{what} never happened\n--- notification log ---\n{}", process.logs());
}

/// `idpctl --json …` against the notification service.
fn idpctl(ports: &Ports, args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = Command::new(bin("idpctl"))
        .arg("--json")
        .arg("--notification")
        .arg(ports.grpc_url(ServiceName::Notification))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_and_sms_reach_real_servers_through_failures_retries_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::tansu();
    let ports = Ports::allocate();
    // The first DATA and the first gateway request fail transiently.
    let mail = Fixture::start("smtp_sink.py", dir.path(), &["--fail-first", "1", "--refuse", "nobody@example.it"]);
    let sms = Fixture::start("sms_gateway.py", dir.path(), &["--token", TOKEN, "--fail-first", "1"]);
    let service = notification(&broker, &ports, dir.path(), &mail, &sms, &[]).await;
    let mut c = client(&ports).await;

    let activated =
        c.send(email("mario.rossi@example.it", "XIDPABCDEFGHIJ", "t1")).await.unwrap().into_inner().message_id;
    let otp = c
        .send(SendRequest {
            channel: Channel::Sms as i32,
            recipient: "+393331234567".into(),
            template: "otp-code".into(),
            data: [("code".to_owned(), "482913".to_owned()), ("minutes".to_owned(), "5".to_owned())].into(),
            idempotency_key: "t2".into(),
            subject_id: "XIDPABCDEFGHIJ".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .message_id;
    let refused = c.send(email("nobody@example.it", "XIDPZZZZZZZZZZ", "t3")).await.unwrap().into_inner().message_id;

    // Through the topic: the holder's contacts, the channels are ours to pick.
    let event = EventBuilder::new("identity-manager", "notification.requested", "XIDPABCDEFGHIJ", &SystemClock)
        .payload(&NotificationRequested {
            template: "identity-suspended".into(),
            locale: "en".into(),
            data: [("cause".to_owned(), "theft".to_owned()), ("date".to_owned(), "2026-12-02".to_owned())].into(),
            contacts: Some(Contacts {
                email: "mario.rossi@example.it".into(),
                mobile: "+393331234567".into(),
                pec: String::new(),
            }),
            ..Default::default()
        })
        .build();
    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &broker.bootstrap).create().unwrap();
    let payload = event.encode_to_vec();
    for _ in 0..2 {
        // Sent twice: a redelivery must not send twice.
        producer
            .send(
                FutureRecord::to(spid_types::topics::NOTIFICATION).key(&event.aggregate_id).payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }

    wait_for("two e-mails delivered", &service, || mail.records().len() >= 2).await;
    wait_for("two SMS delivered", &service, || sms.records().len() >= 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = mail.records();
    let texts = sms.records();
    assert_eq!(mails.len(), 2, "no duplicates: {mails:#?}");
    assert_eq!(texts.len(), 2, "no duplicates: {texts:#?}");

    let first = mails.iter().find(|m| m["message_id"] == format!("<{activated}@idp.example.it>")).expect("activation");
    assert_eq!(first["to"], serde_json::json!(["mario.rossi@example.it"]));
    assert_eq!(first["from"], "noreply@idp.example.it");
    assert_eq!(first["subject"], "La tua identità SPID è attiva");
    assert_eq!(first["content_type"], "text/plain");
    assert!(first["body"].as_str().unwrap().contains("XIDPABCDEFGHIJ"));
    let suspended = mails.iter().find(|m| m["subject"] != first["subject"]).unwrap();
    assert!(suspended["body"].as_str().unwrap().contains("theft"), "{suspended}");

    let code = texts.iter().find(|t| t["reference"] == otp.as_str()).expect("the OTP by its reference");
    assert_eq!(code["to"], "+393331234567");
    assert!(code["text"].as_str().unwrap().contains("482913"));
    assert!(texts.iter().any(|t| t["text"].as_str().unwrap().contains("theft")));

    // The refused address: dead-lettered after one attempt (550 is final).
    let found = poll_until(Duration::from_secs(30), || async {
        let (ok, v, _) = idpctl(&ports, &["notifications", "failed"]);
        (ok && v.as_array().is_some_and(|a| !a.is_empty())).then_some(v)
    })
    .await
    .expect("the refused message listed as failed");
    let failed = &found[0];
    assert_eq!(failed["id"], refused.as_str());
    assert_eq!(failed["recipient"], "nobody@example.it");
    assert_eq!(failed["attempts"], 1);
    assert!(failed["last_error"].as_str().unwrap().contains("550"), "{failed}");

    let (ok, _, err) = idpctl(&ports, &["notifications", "retry", "--operator", "op-7", &refused]);
    assert!(ok, "{err}");
    let (ok, _, err) = idpctl(&ports, &["notifications", "retry", "--operator", "op-7", &activated]);
    assert!(!ok && err.contains("no dead-lettered message"), "{err}");
    drop(service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_in_the_middle_of_deliveries_loses_and_doubles_nothing() {
    const MESSAGES: usize = 40;
    const BEFORE_HOLD: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::tansu();
    let ports = Ports::allocate();
    let mail = Fixture::start("smtp_sink.py", dir.path(), &["--hold-after", &BEFORE_HOLD.to_string()]);
    let hold = mail.log.with_extension("jsonl.hold");
    std::fs::write(&hold, b"").unwrap();
    let sms = Fixture::start("sms_gateway.py", dir.path(), &["--token", TOKEN]);
    let lease = [("IDP__DELIVERY__LEASE_SECS", "5"), ("IDP__DELIVERY__CONCURRENCY", "4")];
    let mut service = notification(&broker, &ports, dir.path(), &mail, &sms, &lease).await;
    let mut c = client(&ports).await;
    let mut ids = Vec::new();
    for n in 0..MESSAGES {
        let spid_code = format!("XIDPKILL{n:06}");
        ids.push(
            c.send(email("mario.rossi@example.it", &spid_code, &spid_code)).await.unwrap().into_inner().message_id,
        );
    }
    // Ten delivered, then the server holds the next ones mid-DATA…
    let status = mail.log.with_extension("jsonl.status");
    wait_for("deliveries held mid-DATA", &service, || {
        std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .is_some_and(|s| s["accepted"] == BEFORE_HOLD && s["held"].as_u64().unwrap_or(0) >= 1)
    })
    .await;
    // The ten delivered are recorded as such (the metric counts stored
    // outcomes): a kill between a 250 and its record would send a message
    // twice, which SMTP cannot prevent and this test is not about.
    let metrics = format!("{}/metrics", service.http_url);
    let recorded = poll_until(Duration::from_secs(30), || {
        let metrics = metrics.clone();
        async move {
            let text = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
            let delivered = text
                .lines()
                .find(|l| l.starts_with("idp_notification_attempts_total") && l.contains("outcome=\"delivered\""))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            (delivered >= BEFORE_HOLD as f64).then_some(())
        }
    })
    .await;
    assert!(recorded.is_some(), "the first deliveries were never recorded");
    // …when the service is killed: the held connections die before any 250.
    service.kill();
    // The server notices the dead connections and drops what they carried
    // before it is let go.
    let held = || {
        std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .map(|s| s["held"].as_u64().unwrap_or(0))
    };
    let dropped = poll_until(Duration::from_secs(10), || {
        let h = held();
        async move { (h == Some(0)).then_some(()) }
    })
    .await;
    assert!(dropped.is_some(), "the server still holds deliveries of a dead client");
    std::fs::remove_file(&hold).unwrap();
    assert_eq!(mail.records().len(), BEFORE_HOLD);
    service.restart();
    service.wait_ready(Duration::from_secs(30)).await;
    wait_for("every message delivered after the restart", &service, || mail.records().len() >= MESSAGES).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received: Vec<String> =
        mail.records().iter().map(|m| m["message_id"].as_str().unwrap_or_default().to_owned()).collect();
    let distinct: std::collections::BTreeSet<&String> = received.iter().collect();
    assert_eq!(received.len(), MESSAGES, "none doubled");
    assert_eq!(distinct.len(), MESSAGES);
    for id in &ids {
        assert!(distinct.contains(&format!("<{id}@idp.example.it>")), "{id} lost");
    }
    let (ok, failed, err) = idpctl(&ports, &["notifications", "failed"]);
    assert!(ok && failed.as_array().is_some_and(Vec::is_empty), "{failed} {err}");
}

/// A certificate for 127.0.0.1, self-signed (the test's private CA).
fn certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("smtp.crt"), dir.join("smtp.key"));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "openssl req");
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pec_goes_over_required_starttls_with_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::tansu();
    let ports = Ports::allocate();
    let (cert, key) = certificate(dir.path());
    let mail = Fixture::start("smtp_sink.py", dir.path(), &[]);
    let pec =
        Fixture::start("smtp_sink.py", dir.path(), &["--tls", &cert, &key, "--auth", "idp@pec.example.it:pec-pw-91"]);
    let sms = Fixture::start("sms_gateway.py", dir.path(), &["--token", TOKEN]);
    let port = pec.port.to_string();
    let settings = [
        ("IDP__DELIVERY__PEC__HOST", "127.0.0.1"),
        ("IDP__DELIVERY__PEC__PORT", port.as_str()),
        ("IDP__DELIVERY__PEC__TLS", "starttls"),
        ("IDP__DELIVERY__PEC__USERNAME", "idp@pec.example.it"),
        ("IDP__DELIVERY__PEC__PASSWORD", "pec-pw-91"),
        ("IDP__DELIVERY__PEC__FROM", "idp@pec.example.it"),
        ("IDP__DELIVERY__PEC__CA_FILE", cert.as_str()),
    ];
    let service = notification(&broker, &ports, dir.path(), &mail, &sms, &settings).await;
    let mut c = client(&ports).await;
    let id = c
        .send(SendRequest {
            channel: Channel::Pec as i32,
            recipient: "mario.rossi@pec.example.it".into(),
            template: "identity-revoked".into(),
            locale: "it".into(),
            data: [
                ("cause".to_owned(), "richiesta del titolare".to_owned()),
                ("date".to_owned(), "2026-12-02".to_owned()),
            ]
            .into(),
            idempotency_key: "pec-1".into(),
            subject_id: "XIDPABCDEFGHIJ".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .message_id;
    wait_for("the PEC delivered", &service, || !pec.records().is_empty()).await;
    let got = &pec.records()[0];
    assert_eq!(got["message_id"], format!("<{id}@pec.example.it>"));
    assert_eq!(got["tls"], true, "sent only after STARTTLS");
    assert_eq!(got["login"], "idp@pec.example.it", "authenticated");
    assert!(got["body"].as_str().unwrap().contains("richiesta del titolare"));
    assert!(mail.records().is_empty(), "PEC does not go out as e-mail");
    assert!(!service.logs().contains("pec-pw-91"), "no password in the log");
}
