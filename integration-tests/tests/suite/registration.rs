//! Registration to login in `idp dev`, from the outside: the demo holders
//! log in through the gateway's credential check; an applicant registers
//! through the JSON interface with the codes the development outbox shows;
//! operators identify them with `idpctl`; the identity is activated, logs
//! in, and every step reaches the audit log.

use std::process::Command;
use std::time::Duration;

use integration_tests::{DevProcess, Ports, bin, eventually};
use spid_proto::identity::v1::check_password_response::Outcome;
use spid_proto::identity::v1::credentials_client::CredentialsClient;
use spid_proto::identity::v1::{CheckPasswordRequest, Level};
use spid_types::ServiceName;

async fn check(
    c: &mut CredentialsClient<tonic::transport::Channel>,
    username: &str,
    password: &str,
) -> spid_proto::identity::v1::CheckPasswordResponse {
    c.check_password(CheckPasswordRequest {
        username: username.into(),
        password: password.into(),
        client_ip: "192.0.2.1".into(),
        transaction_id: "t-1".into(),
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applicant_registers_is_identified_and_logs_in() {
    let data = tempfile::tempdir().unwrap();
    let ports = Ports::allocate();
    let dev = DevProcess::start(&ports, data.path(), &[]).await;
    assert!(dev.banner.iter().any(|l| l.contains("demo holder (level 2)")), "{:?}", dev.banner);

    // The development contract: ./var/demo-users.json, and they log in.
    let demo: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("demo-users.json")).unwrap()).unwrap();
    let mut credentials = CredentialsClient::connect(ports.grpc_url(ServiceName::IdentityManager)).await.unwrap();
    for (user, level) in demo.as_array().unwrap().iter().zip([Level::SpidL1, Level::SpidL2]) {
        let r = check(&mut credentials, user["username"].as_str().unwrap(), user["password"].as_str().unwrap()).await;
        assert_eq!(r.outcome(), Outcome::Ok);
        assert_eq!(r.spid_code, user["spid_code"].as_str().unwrap());
        assert_eq!(r.max_level(), level);
    }
    let first = demo[0]["username"].as_str().unwrap();
    let wrong = check(&mut credentials, first, "Sbagliata#2026").await;
    let unknown = check(&mut credentials, "nessuno@example.it", "Sbagliata#2026").await;
    assert_eq!((wrong.outcome(), unknown.outcome()), (Outcome::WrongCredentials, Outcome::WrongCredentials));
    assert_eq!(wrong, unknown, "a wrong password and an unknown user answer alike");

    // The applicant, through the JSON interface.
    let http = reqwest::Client::new();
    let im = ports.http_url(ServiceName::IdentityManager);
    let public = ports.http_url(ServiceName::AuthnGateway);
    let taken: serde_json::Value = http
        .get(format!("{im}/registration/email-available?email={first}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(taken["available"], false);
    let application = serde_json::json!({
        "identity_type": "private",
        "email": "chiara.esposito@example.it",
        "password": "Mirtillo#2026",
        "surname": "Esposito", "given_name": "Chiara", "sex": "F", "birth_date": "1992-03-15",
        "birthplace": "F839", "codice_fiscale": "SPSCHR92C55F839N",
        "document": {"kind": "passaporto", "number": "YA7654321", "issuer": "Questura di Torino",
                     "issued_on": "2022-05-01", "expires_on": "2032-04-30"},
        "health_card": {"number": "80380000001234567896", "expires_on": "2030-01-01"},
        "domicile": {"street": "Via Po 1", "postal_code": "10124", "municipality": "Torino", "province": "TO",
                     "country": "IT"},
        "mobile": "+393479876543", "pec": null, "organisation": null
    });
    let mut bad = application.clone();
    bad["password"] = "esposito1992".into();
    let refused = http.post(format!("{im}/registration")).json(&bad).send().await.unwrap();
    assert_eq!(refused.status(), 422);
    let problems: serde_json::Value = refused.json().await.unwrap();
    let codes: Vec<&str> =
        problems["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"password.personal_data") && codes.contains(&"password.no_uppercase"), "{codes:?}");

    let started = http.post(format!("{im}/registration")).json(&application).send().await.unwrap();
    assert_eq!(started.status(), 201);
    let started: serde_json::Value = started.json().await.unwrap();
    let id = started["request_id"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {}", started["applicant_token"].as_str().unwrap());
    let outbox: serde_json::Value =
        http.get(format!("{public}/dev/outbox")).send().await.unwrap().json().await.unwrap();
    let code_for = |recipient: &str| -> String {
        let entry = outbox.as_array().unwrap().iter().rev().find(|m| m["recipient"] == recipient).unwrap();
        let body = entry["body"].as_str().unwrap();
        integration_tests::six_digit_code(body).unwrap()
    };
    for (kind, to) in [("email", "chiara.esposito@example.it"), ("mobile", "+393479876543")] {
        let r = http
            .post(format!("{im}/registration/{id}/contacts/{kind}/verify"))
            .header("authorization", &bearer)
            .json(&serde_json::json!({ "code": code_for(to) }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{kind}: {}", r.text().await.unwrap());
    }
    let documents: serde_json::Value =
        http.get(format!("{im}/registration/documents")).send().await.unwrap().json().await.unwrap();
    let r = http
        .post(format!("{im}/registration/{id}/documents"))
        .header("authorization", &bearer)
        .json(&serde_json::json!({ "accepted": documents }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for side in ["document_front", "document_back"] {
        let r = http
            .put(format!("{im}/registration/{id}/uploads/{side}"))
            .header("authorization", &bearer)
            .body(b"%PDF-1.7 scansione".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let forged = http.post(format!("{im}/registration/{id}/submit")).header("authorization", "Bearer x").send();
    assert_eq!(forged.await.unwrap().status(), 401);
    let submitted: serde_json::Value = http
        .post(format!("{im}/registration/{id}/submit"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(submitted["state"], "submitted");
    let appointment = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let r = http
        .post(format!("{im}/registration/{id}/method"))
        .header("authorization", &bearer)
        .json(&serde_json::json!({ "method": "counter", "appointment": appointment }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // The operators, with idpctl.
    let idpctl = |args: &[&str]| {
        let out = Command::new(bin("idpctl"))
            .arg("--identity-manager")
            .arg(ports.grpc_url(ServiceName::IdentityManager))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, out) =
        idpctl(&["operators", "add", "--first", "--id", "admin", "--name", "Admin", "--role", "administrator"]);
    assert!(ok, "{out}");
    let (ok, out) = idpctl(&[
        "operators",
        "add",
        "--operator",
        "admin",
        "--id",
        "sportello-1",
        "--name",
        "Sportello",
        "--role",
        "counter",
    ]);
    assert!(ok, "{out}");
    let (ok, out) =
        idpctl(&["--json", "requests", "list", "--operator", "sportello-1", "--state", "awaiting_identification"]);
    assert!(ok, "{out}");
    let queue: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(queue[0]["request_id"], id.as_str());
    let (ok, out) = idpctl(&["requests", "identify", "--operator", "sportello-1", &id, "--note", "originali visti"]);
    assert!(!ok && out.contains("confirm the appointment"), "{out}");
    let (ok, out) =
        idpctl(&["requests", "confirm-appointment", "--operator", "sportello-1", &id, "--at", &appointment]);
    assert!(ok, "{out}");
    let (ok, out) = idpctl(&["requests", "identify", "--operator", "sportello-1", &id, "--note", "originali visti"]);
    assert!(ok && out.contains("awaiting_acceptance"), "{out}");
    let (ok, out) = idpctl(&["requests", "show", "--operator", "sportello-1", &id]);
    assert!(ok, "{out}");
    let view: serde_json::Value = serde_json::from_str(&out).unwrap();
    let checks = view["source_checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "{view}");
    assert!(checks.iter().all(|c| c["verdict"] == "confirmed"), "{view}");

    // The final acceptance, and the new holder logs in.
    let activated: serde_json::Value = http
        .post(format!("{im}/registration/{id}/activate"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spid_code = activated["spid_code"].as_str().unwrap().to_owned();
    let r = check(&mut credentials, "Chiara.Esposito@example.it", "Mirtillo#2026").await;
    assert_eq!((r.outcome(), r.spid_code.as_str()), (Outcome::Ok, spid_code.as_str()));
    assert_eq!(r.second_factors, ["sms", "email"]);

    // The activation's message went out through identity-manager's outbox,
    // the bus and the notification service.
    eventually(Duration::from_secs(20), "the activation e-mail in the outbox", || {
        let (http, public, spid_code) = (http.clone(), public.clone(), spid_code.clone());
        async move {
            let outbox: serde_json::Value =
                http.get(format!("{public}/dev/outbox")).send().await.ok()?.json().await.ok()?;
            outbox
                .as_array()?
                .iter()
                .any(|m| {
                    m["recipient"] == "chiara.esposito@example.it"
                        && m["body"].as_str().is_some_and(|b| b.contains(&spid_code))
                })
                .then_some(())
        }
    })
    .await;

    // Three activations (two demo holders and this one) reached the audit log.
    let audit =
        spid_proto::audit::v1::audit_query_client::AuditQueryClient::connect(ports.grpc_url(ServiceName::AuditLog))
            .await
            .unwrap();
    eventually(Duration::from_secs(20), "the activations in audit-log", || {
        let mut audit = audit.clone();
        async move {
            let records = audit
                .search(spid_proto::audit::v1::SearchRequest {
                    r#type: "identity.activated".into(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .records;
            (records.len() == 3).then_some(())
        }
    })
    .await;
    drop(dev);
}
