//! An operator suspends, restores and revokes a holder with `idpctl
//! identity` in `idp dev`: the login is refused while suspended, the
//! holder's live second-factor code stops working (otp-service acts on the
//! lifecycle event), the holder is told by e-mail and SMS, a holder's call
//! to the help desk is verified with a code, and the history shows who did
//! what, why and how.

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
    let revoke = |operator: &str, cause: &str| {
        idpctl(&[
            "identity",
            "revoke",
            "--operator",
            operator,
            &spid_code,
            "--reason",
            "denuncia di furto",
            "--cause",
            cause,
            "--justification",
            "denuncia 2026/4411",
        ])
    };
    let (ok, out) = revoke("turno-1", "police_report");
    assert!(!ok && out.contains("administrator"), "{out}");
    let (ok, out) = revoke("admin", "");
    assert!(!ok && out.contains("names its cause"), "{out}");
    let (ok, out) = revoke("admin", "decesso");
    assert!(!ok && out.contains("unknown cause"), "{out}");
    // The latest code of a holder's request, from the development outbox.
    let code_for_request = || {
        eventually(Duration::from_secs(20), "the request's code by e-mail", || {
            let url = format!("{public}/dev/outbox");
            async move {
                let outbox: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
                outbox.as_array()?.iter().rev().find_map(|m| {
                    let subject = m["subject"].as_str()?;
                    (m["recipient"] == username && subject.starts_with("Codice per la tua richiesta"))
                        .then(|| integration_tests::six_digit_code(m["body"].as_str()?))
                        .flatten()
                })
            }
        })
    };

    // The holder's own channel (JSON), for the emergency: a suspension,
    // confirmed with a code sent to the e-mail, with a receipt.
    let holder_api = format!("{}/holder/lifecycle-requests", ports.http_url(ServiceName::IdentityManager));
    let web = reqwest::Client::new();
    let problem = |ask: serde_json::Value| {
        let (web, url) = (web.clone(), holder_api.clone());
        async move {
            let r = web.post(&url).json(&ask).send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap()["code"].as_str().unwrap().to_owned())
        }
    };
    assert_eq!(problem(serde_json::json!({"holder": username})).await, (400, "body.invalid".into()));
    let restore = serde_json::json!({"holder": username, "action": "restore", "reason": "x"});
    assert_eq!(problem(restore).await, (400, "action.not_online".into()));
    let ask = serde_json::json!({"holder": username, "action": "suspend", "reason": "furto", "contact": "email"});
    let r = web.post(&holder_api).json(&ask).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let started: serde_json::Value = r.json().await.unwrap();
    let code = code_for_request().await;
    let url = format!("{holder_api}/{}/confirm", started["request_id"].as_str().unwrap());
    let r = web.post(&url).json(&serde_json::json!({"code": code})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let receipt: serde_json::Value = r.json().await.unwrap();
    assert_eq!((receipt["action"].as_str(), receipt["status"].as_str()), (Some("suspend"), Some("suspended")));
    let receipt_id = receipt["receipt_id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(20), "the receipt by e-mail", || {
        let url = format!("{public}/dev/outbox");
        let receipt_id = receipt_id.clone();
        async move {
            let outbox: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
            outbox
                .as_array()?
                .iter()
                .any(|m| m["recipient"] == username && m["body"].as_str().is_some_and(|b| b.contains(&receipt_id)))
                .then_some(())
        }
    })
    .await;
    // A code used once is refused like any wrong one.
    let r = web.post(&url).json(&serde_json::json!({"code": code})).send().await.unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["code"], "code.refused");
    // An unknown holder gets the same answer.
    let ask = serde_json::json!({"holder": "nessuno@example.it", "action": "suspend", "reason": "x"});
    let r = web.post(&holder_api).json(&ask).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let quiet: serde_json::Value = r.json().await.unwrap();
    assert_eq!(quiet["message"], started["message"]);

    // The holder calls the help desk (LC-2) to lift it: the code goes to
    // the e-mail that confirmed the suspension, never to the (stolen)
    // phone; the holder reads it back.
    let request = |contact: &str| {
        idpctl(&[
            "--json",
            "identity",
            "request",
            "--operator",
            "turno-1",
            username,
            "--action",
            "restore",
            "--reason",
            "telefono ritrovato",
            "--contact",
            contact,
        ])
    };
    let (ok, out) = request("mobile");
    assert!(!ok && out.contains("confirmed on the other contact"), "{out}");
    let (ok, out) = request("email");
    assert!(ok, "{out}");
    let started: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(started["sent_to"].as_str().unwrap().starts_with("e-mail "), "{out}");
    let code = code_for_request().await;
    let request_id = started["request_id"].as_str().unwrap();
    let confirm =
        |code: &str| idpctl(&["--json", "identity", "confirm", "--operator", "turno-1", request_id, "--code", code]);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (ok, out) = confirm(wrong);
    assert!(!ok && out.contains("not right"), "{out}");
    let (ok, out) = confirm(&code);
    assert!(ok, "{out}");
    let receipt: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((receipt["status"].as_str(), receipt["action"].as_str()), (Some("active"), Some("restore")));
    assert!(receipt["receipt_id"].as_str().unwrap().starts_with("RIC-"), "{out}");

    // A police report: revoked.
    let (ok, out) = revoke("admin", "police_report");
    assert!(ok && out.contains("revoked"), "{out}");

    let (ok, out) = idpctl(&["--json", "identity", "history", "--operator", "admin", &spid_code]);
    assert!(ok, "{out}");
    let history: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps: Vec<(&str, &str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["to"].as_str().unwrap(), e["actor"].as_str().unwrap(), e["cause"].as_str().unwrap()))
        .collect();
    let holder_actor = format!("holder:{spid_code}");
    assert_eq!(
        steps,
        [
            ("suspended", "operator:turno-1", "other"),
            ("active", "operator:turno-1", "other"),
            ("suspended", holder_actor.as_str(), "holder_request"),
            ("active", holder_actor.as_str(), "holder_request"),
            ("revoked", "administrator:admin", "police_report"),
        ]
    );
    assert_eq!(history[2]["channel"], "online");
    assert_eq!(history[3]["channel"], "phone");
    assert_eq!(history[0]["justification_ref"], "telefonata 2026-12-02 10:14");
}
