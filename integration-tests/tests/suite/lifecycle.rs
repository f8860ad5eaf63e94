//! An operator suspends, restores and revokes a holder with `idpctl
//! identity` in `idp dev`: the login is refused while suspended, the
//! holder's live second-factor code stops working (otp-service acts on the
//! lifecycle event), the holder is told by e-mail and SMS, and the history
//! shows who did what and why.

use std::time::Duration;

use integration_tests::{DevProcess, Ports, eventually};
use spid_proto::identity::v1::check_password_response::Outcome as Login;
use spid_proto::identity::v1::credentials_client::CredentialsClient;
use spid_proto::identity::v1::{CheckPasswordRequest, IdentityStatus};
use spid_proto::otp::v1::challenges_client::ChallengesClient;
use spid_proto::otp::v1::verify_response::Outcome;
use spid_proto::otp::v1::{Method, StartRequest, VerifyRequest};
use spid_types::ServiceName;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_suspends_restores_and_revokes_and_every_service_follows() {
    let data = tempfile::tempdir().unwrap();
    let ports = Ports::allocate();
    let _dev = DevProcess::start(&ports, data.path(), &[]).await;
    let holder = &integration_tests::demo_holder(data.path(), 2);
    let spid_code = holder["spid_code"].as_str().unwrap().to_owned();
    let (username, password) = (holder["username"].as_str().unwrap(), holder["password"].as_str().unwrap());
    let mobile = holder["mobile"].as_str().unwrap();

    let idpctl = |args: &[&str]| integration_tests::idpctl(&ports, ServiceName::IdentityManager, args);
    let (ok, out) =
        idpctl(&["operators", "add", "--first", "--id", "admin", "--name", "Admin", "--role", "administrator"]);
    assert!(ok, "{out}");
    let (ok, out) =
        idpctl(&["operators", "add", "--operator", "admin", "--id", "turno-1", "--name", "Turno", "--role", "counter"]);
    assert!(ok, "{out}");

    // A second-factor challenge is live when the suspension comes.
    let mut challenges = ChallengesClient::connect(ports.grpc_url(ServiceName::OtpService)).await.unwrap();
    let started = challenges
        .start(StartRequest {
            spid_code: spid_code.clone(),
            transaction_id: "tx-1".into(),
            method: Method::Sms as i32,
            client_ip: "198.51.100.7".into(),
            service_provider: String::new(),
        })
        .await
        .unwrap()
        .into_inner();

    let (ok, out) = idpctl(&[
        "identity",
        "suspend",
        "--operator",
        "turno-1",
        &spid_code,
        "--reason",
        "furto del telefono",
        "--justification",
        "telefonata 2026-12-02 10:14",
    ]);
    assert!(ok && out.contains("suspended"), "{out}");
    let (ok, out) = idpctl(&["identity", "suspend", "--operator", "turno-1", &spid_code, "--reason", "di nuovo"]);
    assert!(!ok && out.contains("cannot suspend"), "{out}");

    let mut credentials = CredentialsClient::connect(ports.grpc_url(ServiceName::IdentityManager)).await.unwrap();
    let check = || CheckPasswordRequest {
        username: username.into(),
        password: password.into(),
        client_ip: "198.51.100.7".into(),
        transaction_id: "tx-1".into(),
    };
    let r = credentials.check_password(check()).await.unwrap().into_inner();
    assert_eq!((r.outcome(), r.status()), (Login::IdentityNotActive, IdentityStatus::Suspended));

    // otp-service dropped the live challenge (lifecycle topic, embedded
    // bus): the right code no longer works.
    let public = ports.http_url(ServiceName::AuthnGateway);
    let outbox: serde_json::Value = reqwest::get(format!("{public}/dev/outbox")).await.unwrap().json().await.unwrap();
    let six_digits = |m: &serde_json::Value| integration_tests::six_digit_code(m["body"].as_str().unwrap_or(""));
    let code = outbox
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter(|m| m["recipient"] == mobile && m["subject"] == "Codice di verifica")
        .find_map(six_digits)
        .expect("the code sent by SMS");
    let verify = VerifyRequest {
        challenge_id: started.challenge_id.clone(),
        transaction_id: "tx-1".into(),
        code,
        client_ip: "198.51.100.7".into(),
    };
    // Once otp-service has acted (its audit event), the right code is refused.
    let audit =
        spid_proto::audit::v1::audit_query_client::AuditQueryClient::connect(ports.grpc_url(ServiceName::AuditLog))
            .await
            .unwrap();
    eventually(Duration::from_secs(20), "otp-service dropping the challenge", || {
        let mut audit = audit.clone();
        let spid_code = spid_code.clone();
        async move {
            let records = audit
                .search(spid_proto::audit::v1::SearchRequest { r#type: "otp.dropped".into(), ..Default::default() })
                .await
                .ok()?
                .into_inner()
                .records;
            records.iter().any(|r| r.event.as_ref().is_some_and(|e| e.aggregate_id == spid_code)).then_some(())
        }
    })
    .await;
    let r = challenges.verify(verify).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Expired, "the suspended holder's code no longer opens the login");

    // The holder is told, by e-mail and by SMS.
    eventually(Duration::from_secs(20), "the holder told of the suspension", || {
        let url = format!("{public}/dev/outbox");
        async move {
            let outbox: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
            let told: Vec<&serde_json::Value> = outbox
                .as_array()?
                .iter()
                .filter(|m| m["body"].as_str().is_some_and(|b| b.contains("furto del telefono")))
                .collect();
            (told.iter().any(|m| m["recipient"] == username) && told.iter().any(|m| m["recipient"] == mobile))
                .then_some(())
        }
    })
    .await;

    let (ok, out) = idpctl(&["identity", "restore", "--operator", "turno-1", &spid_code, "--reason", "ritrovato"]);
    assert!(ok, "{out}");
    assert_eq!(credentials.check_password(check()).await.unwrap().into_inner().outcome(), Login::Ok);
    let (ok, out) = idpctl(&["identity", "revoke", "--operator", "turno-1", &spid_code, "--cause", "decesso"]);
    assert!(!ok && out.contains("administrator"), "{out}");
    let (ok, out) = idpctl(&["identity", "revoke", "--operator", "admin", &spid_code, "--cause", "richiesta"]);
    assert!(ok && out.contains("revoked"), "{out}");

    let (ok, out) = idpctl(&["--json", "identity", "history", "--operator", "admin", &spid_code]);
    assert!(ok, "{out}");
    let history: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps: Vec<(&str, &str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from"].as_str().unwrap(), e["to"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("active", "suspended", "operator:turno-1"),
            ("suspended", "active", "operator:turno-1"),
            ("active", "revoked", "administrator:admin"),
        ]
    );
    assert_eq!(history[0]["justification_ref"], "telefonata 2026-12-02 10:14");
}
