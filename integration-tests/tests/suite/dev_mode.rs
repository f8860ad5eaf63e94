//! `idp dev` (what `make run` starts): all five services in one process on
//! embedded defaults, every readiness endpoint green, the development
//! outbox, and `idpctl health` reporting all five healthy.

use std::process::Command;
use std::time::Duration;

use integration_tests::{DevProcess, Ports, bin, eventually};
use spid_proto::notification::v1::{Channel, SendRequest, notifications_client::NotificationsClient};
use spid_types::ServiceName;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_runs_everything_in_one_process() {
    let data = tempfile::tempdir().unwrap();
    let ports = Ports::allocate();
    let public = ports.http_url(ServiceName::AuthnGateway);
    // Without demo holders: this test counts audit records.
    let child = DevProcess::start(&ports, data.path(), &["--seed-demo", "false"]).await;
    let banner = &child.banner;
    assert!(banner.iter().any(|l| l.contains(&format!("{public}/dev/outbox"))), "{banner:?}");
    for name in ServiceName::ALL {
        assert!(banner.iter().any(|l| l.contains(name.as_str())), "{name} missing from {banner:?}");
    }

    let http = reqwest::Client::new();
    for name in ServiceName::ALL {
        let base = ports.http_url(name);
        assert_eq!(http.get(format!("{base}/livez")).send().await.unwrap().status(), 200, "{name} livez");
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "{name} readyz");
        let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains(&format!("service=\"{}\"", name.as_str())), "{name} metrics");
    }
    assert!(data.path().join("notification.db").is_file() && data.path().join("bus.db").is_file());

    let outbox: serde_json::Value =
        http.get(format!("{public}/dev/outbox")).send().await.unwrap().json().await.unwrap();
    assert_eq!(outbox, serde_json::json!([]));

    let mut client = NotificationsClient::connect(ports.grpc_url(ServiceName::Notification)).await.unwrap();
    client
        .send(SendRequest {
            channel: Channel::Email as i32,
            recipient: "mario.rossi@example.it".into(),
            template: "contact-verification".into(),
            locale: "en".into(),
            data: [("code".to_owned(), "482913".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let outbox: serde_json::Value =
        http.get(format!("{public}/dev/outbox")).send().await.unwrap().json().await.unwrap();
    let entry = &outbox[0];
    assert_eq!(entry["channel"], "email");
    assert_eq!(entry["recipient"], "mario.rossi@example.it");
    assert_eq!(entry["subject"], "Confirm your contact");
    assert!(entry["body"].as_str().unwrap().contains("482913"));
    assert!(entry["created_at"].as_str().unwrap().contains('T'));

    // The delivery reached audit-log through the embedded bus.
    let mut audit =
        spid_proto::audit::v1::audit_query_client::AuditQueryClient::connect(ports.grpc_url(ServiceName::AuditLog))
            .await
            .unwrap();
    eventually(Duration::from_secs(20), "the delivery in audit-log", || {
        let mut audit = audit.clone();
        async move {
            let records = audit
                .search(spid_proto::audit::v1::SearchRequest {
                    r#type: "notification.delivered".into(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .records;
            (records.len() == 1).then_some(())
        }
    })
    .await;
    let _ = &mut audit;

    let mut idpctl = Command::new(bin("idpctl"));
    idpctl.arg("health");
    for name in ServiceName::ALL {
        idpctl.arg(format!("--{}", name.as_str())).arg(ports.grpc_url(name));
    }
    let out = idpctl.output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert_eq!(table.matches("SERVING").count(), 5, "{table}");

    // The audit log through the operators' tool: an authentication appended
    // over gRPC, the holder's extract verified by openssl, the chain intact.
    let mut ingest =
        spid_proto::audit::v1::audit_ingest_client::AuditIngestClient::connect(ports.grpc_url(ServiceName::AuditLog))
            .await
            .unwrap();
    let login = spid_proto::events::v1::Authentication {
        spid_code: "SPID0000000001".into(),
        service_provider: "https://sp.example.it".into(),
        level: "https://www.spid.gov.it/SpidL2".into(),
        outcome: "success".into(),
        protocol: "saml".into(),
        client_ip: "192.0.2.7".into(),
    };
    let event = spid_events::EventBuilder::new(
        "authn-gateway",
        "authn.authentication",
        "SPID0000000001",
        &spid_types::SystemClock,
    )
    .payload(&login)
    .build();
    let appended =
        ingest.append(spid_proto::audit::v1::AppendRequest { event: Some(event) }).await.unwrap().into_inner();
    assert!(appended.inserted && appended.sequence == 2, "{appended:?}");
    let idpctl_audit = |args: &[&str]| {
        let out = Command::new(bin("idpctl"))
            .arg("--audit-log")
            .arg(ports.grpc_url(ServiceName::AuditLog))
            .arg("audit")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = idpctl_audit(&["verify", "--json"]);
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["intact"].as_bool(), report["records_checked"].as_u64()), (Some(true), Some(2)), "{out}");
    let (ok, out, err) = idpctl_audit(&["authentications", "--spid-code", "SPID0000000001", "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["service_provider"], "https://sp.example.it");
    let extract = data.path().join("extract.csv");
    let (ok, out, err) =
        idpctl_audit(&["extract", "--spid-code", "SPID0000000001", "--out", extract.to_str().unwrap()]);
    assert!(ok && out.contains("1 records"), "{out}{err}");
    let verified = Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-out", "/dev/null", "-in"])
        .arg(data.path().join("extract.csv.p7s"))
        .arg("-content")
        .arg(&extract)
        .arg("-CAfile")
        .arg(data.path().join("extract.csv.signer.pem"))
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let (ok, out, _) = idpctl_audit(&["search", "--sp", "https://sp.example.it", "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().map(Vec::len), Some(1));
    let metrics = http
        .get(format!("{}/metrics", ports.http_url(ServiceName::AuditLog)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let records = metrics.lines().find(|l| l.starts_with("idp_audit_records_total")).unwrap_or_default();
    assert!(records.ends_with(" 2"), "{records}");
    assert!(metrics.contains("idp_audit_chain_broken{service=\"audit-log\"} 0"), "{metrics}");

    // A stopped deployment is reported, not hidden.
    drop(child);
    let mut idpctl = Command::new(bin("idpctl"));
    idpctl.args(["health", "--json", "--target", "127.0.0.1"]);
    for name in ServiceName::ALL {
        idpctl.arg(format!("--{}", name.as_str())).arg(ports.grpc_url(name));
    }
    let out = idpctl.output().unwrap();
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["healthy"], false);
    assert_eq!(report["services"][0]["status"], "UNREACHABLE");
}
