//! The second factor across the services of `idp dev`: otp-service asks
//! identity-manager where the demo holder's code may go, sends it through
//! notification (the development outbox shows it), and checks it once; the
//! authenticator app is enrolled and used with codes computed by an
//! independent TOTP implementation (Python's standard library); the
//! provider's app (the `spid-device` simulator) is bound and approves a
//! push and refuses a QR login.

use std::process::Command;

use integration_tests::{DevProcess, Ports};
use spid_proto::otp::v1::authenticators_client::AuthenticatorsClient;
use spid_proto::otp::v1::challenges_client::ChallengesClient;
use spid_proto::otp::v1::device_activation_client::DeviceActivationClient;
use spid_proto::otp::v1::verify_response::Outcome;
use spid_proto::otp::v1::{
    ActivateRequest, ConfirmRequest, EnrolRequest, ListMethodsRequest, Method, StartRequest, VerifyRequest,
};
use spid_types::ServiceName;

const IP: &str = "198.51.100.23";

/// RFC 6238 with SHA-1, 6 digits, 30 s, written with Python's hmac: the
/// code an authenticator app would show for the URI's secret, `offset`
/// steps from now.
fn python_totp(uri: &str, offset: i64) -> String {
    let script = r#"
import base64, hashlib, hmac, struct, sys, time, urllib.parse
q = urllib.parse.parse_qs(urllib.parse.urlparse(sys.argv[1]).query)
secret = q["secret"][0]
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
step = int(time.time()) // 30 + int(sys.argv[2])
mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
o = mac[-1] & 15
print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000))
"#;
    let out = Command::new("python3").args(["-c", script, uri, &offset.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_two_holder_uses_sms_codes_an_authenticator_and_the_bound_app() {
    let data = tempfile::tempdir().unwrap();
    let ports = Ports::allocate();
    let _dev = DevProcess::start(&ports, data.path(), &[]).await;
    let holder = &integration_tests::demo_holder(data.path(), 2);
    let spid_code = holder["spid_code"].as_str().unwrap().to_owned();
    let mobile = holder["mobile"].as_str().unwrap().to_owned();

    let mut challenges = ChallengesClient::connect(ports.grpc_url(ServiceName::OtpService)).await.unwrap();
    let methods = challenges
        .list_methods(ListMethodsRequest { spid_code: spid_code.clone() })
        .await
        .unwrap()
        .into_inner()
        .methods;
    assert_eq!(methods, [Method::Sms as i32], "a private holder with a mobile: SMS only");

    let start = |tx: &str, method: Method| StartRequest {
        spid_code: spid_code.clone(),
        transaction_id: tx.into(),
        method: method as i32,
        client_ip: IP.into(),
        service_provider: String::new(),
    };
    let started = challenges.start(start("tx-1", Method::Sms)).await.unwrap().into_inner();
    assert!(started.masked_destination.ends_with(&mobile[mobile.len() - 2..]), "{}", started.masked_destination);
    let email = challenges.start(start("tx-1", Method::Email)).await.unwrap_err();
    assert_eq!(email.code(), tonic::Code::FailedPrecondition, "e-mail codes are not for private holders");

    // The code, as the holder's phone would get it.
    let public = ports.http_url(ServiceName::AuthnGateway);
    let outbox: serde_json::Value = reqwest::get(format!("{public}/dev/outbox")).await.unwrap().json().await.unwrap();
    let sms = outbox.as_array().unwrap().iter().rev().find(|m| m["recipient"] == mobile.as_str()).unwrap();
    let body = sms["body"].as_str().unwrap();
    let code = integration_tests::six_digit_code(body).unwrap();

    let verify = |challenge: &str, tx: &str, code: &str| VerifyRequest {
        challenge_id: challenge.into(),
        transaction_id: tx.into(),
        code: code.into(),
        client_ip: IP.into(),
    };
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let r = challenges.verify(verify(&started.challenge_id, "tx-1", wrong)).await.unwrap().into_inner();
    assert_eq!((r.outcome(), r.attempts_left), (Outcome::WrongCode, 2));
    let r = challenges.verify(verify(&started.challenge_id, "tx-1", &code)).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Ok);
    let r = challenges.verify(verify(&started.challenge_id, "tx-1", &code)).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Expired, "an intercepted code cannot be replayed");

    // The authenticator app: enrolled, confirmed, then offered and used.
    let mut apps = AuthenticatorsClient::connect(ports.grpc_url(ServiceName::OtpService)).await.unwrap();
    let enrolled =
        apps.enrol(EnrolRequest { spid_code: spid_code.clone(), account: "demo".into() }).await.unwrap().into_inner();
    assert!(enrolled.provisioning_uri.starts_with("otpauth://totp/"), "{}", enrolled.provisioning_uri);
    assert!(enrolled.qr_svg.starts_with("<?xml") && enrolled.qr_svg.contains("<svg"), "the QR image to scan");
    let first = python_totp(&enrolled.provisioning_uri, 0);
    let confirmed = apps
        .confirm(ConfirmRequest {
            spid_code: spid_code.clone(),
            token_id: enrolled.token_id.clone(),
            code: first.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(confirmed.confirmed);
    let methods = challenges
        .list_methods(ListMethodsRequest { spid_code: spid_code.clone() })
        .await
        .unwrap()
        .into_inner()
        .methods;
    assert_eq!(methods, [Method::Sms as i32, Method::Totp as i32]);
    let app = challenges.start(start("tx-2", Method::Totp)).await.unwrap().into_inner();
    // The confirming code's step is spent; the next step's code works.
    let r = challenges.verify(verify(&app.challenge_id, "tx-2", &first)).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::WrongCode);
    let next = python_totp(&enrolled.provisioning_uri, 1);
    let r = challenges.verify(verify(&app.challenge_id, "tx-2", &next)).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Ok);

    // The provider's app (the device simulator): bound with an activation
    // code and a PIN, then approving a push and refusing a QR login.
    let mut devices = DeviceActivationClient::connect(ports.grpc_url(ServiceName::OtpService)).await.unwrap();
    let activate = || ActivateRequest { spid_code: spid_code.clone() };
    let code = devices.activate(activate()).await.unwrap().into_inner().activation_code;
    let state = data.path().join("device.json");
    let device = |args: &[&str]| integration_tests::spid_device(&ports, &state, args);
    let (ok, text) = device(&["bind", "--activation-code", &code, "--pin", "123456"]);
    assert!(!ok && text.contains("pin.sequence"), "{text}");
    let (ok, text) = device(&["bind", "--activation-code", &code, "--pin", "a7k2m9", "--name", "Pixel"]);
    assert!(ok, "{text}");
    let (ok, text) = device(&["bind", "--activation-code", &code, "--pin", "a7k2m9"]);
    assert!(!ok && text.contains("activation code"), "an activation code works once: {text}");

    let push = challenges.start(start("tx-3", Method::Push)).await.unwrap().into_inner();
    assert_eq!(push.masked_destination, "Pixel");
    let r = challenges.verify(verify(&push.challenge_id, "tx-3", "")).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Pending);
    let (ok, text) = device(&["approve", "--wait", "10"]);
    assert!(ok && text.contains("approved"), "{text}");
    let r = challenges.verify(verify(&push.challenge_id, "tx-3", "")).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Ok);

    let qr = challenges.start(start("tx-4", Method::Qr)).await.unwrap().into_inner();
    assert!(qr.qr_payload.starts_with("spid-idp-qr:v1:"), "{}", qr.qr_payload);
    let (ok, text) = device(&["scan", "--qr", &qr.qr_payload, "--refuse"]);
    assert!(ok, "{text}");
    let r = challenges.verify(verify(&qr.challenge_id, "tx-4", "")).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Refused);
}

/// Issue 5's login in `make run`: the demo SP's level-2 login through the
/// gateway's pages with each second factor — the authenticator app (codes
/// from Python's hmac), a push approved on the device simulator, and a QR
/// code the simulator scans and approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level_two_logins_in_make_run_with_the_app_push_and_qr() {
    use integration_tests::hidden_field;
    let data = tempfile::tempdir().unwrap();
    let ports = Ports::allocate();
    let _dev = DevProcess::start(&ports, data.path(), &[]).await;
    let holder = &integration_tests::demo_holder(data.path(), 2);
    let spid_code = holder["spid_code"].as_str().unwrap().to_owned();
    let (username, password) = (holder["username"].as_str().unwrap(), holder["password"].as_str().unwrap());
    let public = ports.http_url(ServiceName::AuthnGateway);
    let http = integration_tests::browser();
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{public}{path}");
        async move { http.post(url).form(&form).send().await.unwrap().text().await.unwrap() }
    };
    // The reserved area enrols an authenticator and activates the app.
    let mut apps = AuthenticatorsClient::connect(ports.grpc_url(ServiceName::OtpService)).await.unwrap();
    let enrolled =
        apps.enrol(EnrolRequest { spid_code: spid_code.clone(), account: "demo".into() }).await.unwrap().into_inner();
    let confirm = ConfirmRequest {
        spid_code: spid_code.clone(),
        token_id: enrolled.token_id.clone(),
        code: python_totp(&enrolled.provisioning_uri, 0),
    };
    assert!(apps.confirm(confirm).await.unwrap().into_inner().confirmed);
    let mut activation = DeviceActivationClient::connect(ports.grpc_url(ServiceName::OtpService)).await.unwrap();
    let code = activation
        .activate(ActivateRequest { spid_code: spid_code.clone() })
        .await
        .unwrap()
        .into_inner()
        .activation_code;
    let state = data.path().join("device.json");
    let device = |args: &[&str]| integration_tests::spid_device(&ports, &state, args);
    let (ok, text) = device(&["bind", "--activation-code", &code, "--pin", "a7k2m9", "--name", "Pixel"]);
    assert!(ok, "{text}");

    // Up to the second-factor page, then switched to `method`.
    let second_factor = |method: &'static str| {
        let http = http.clone();
        let public = public.clone();
        async move {
            let page = http.get(format!("{public}/demo-sp/login?level=2")).send().await.unwrap().text().await.unwrap();
            let tx = hidden_field(&page, "tx").unwrap();
            let page = post(
                "/login/password",
                vec![
                    ("tx", tx.clone()),
                    ("username", username.into()),
                    ("password", password.into()),
                    ("action", "login".into()),
                ],
            )
            .await;
            assert!(page.contains(&format!("method:{method}")), "{method} offered: {page}");
            let page = post("/login/code", vec![("tx", tx.clone()), ("action", format!("method:{method}"))]).await;
            (tx, page)
        }
    };
    let finish = |tx: String| async move {
        let page = post("/login/consent", vec![("tx", tx), ("action", "accept".into())]).await;
        let response = hidden_field(&page, "SAMLResponse").unwrap_or_else(|| panic!("{page}"));
        let page = post("/demo-sp/acs", vec![("SAMLResponse", response), ("RelayState", "demo".into())]).await;
        assert!(page.contains("Logged in") && page.contains("SpidL2"), "{page}");
    };

    // The authenticator app.
    let (tx, page) = second_factor("totp").await;
    assert!(page.contains("Digita il codice mostrato dalla tua app"), "the authenticator page: {page}");
    let page = post(
        "/login/code",
        vec![("tx", tx.clone()), ("code", python_totp(&enrolled.provisioning_uri, 1)), ("action", "verify".into())],
    )
    .await;
    assert!(page.contains("login/consent"), "{page}");
    finish(tx).await;

    // A push, approved on the app.
    let (tx, page) = second_factor("push").await;
    assert!(page.contains("Pixel"), "{page}");
    let page = post("/login/code", vec![("tx", tx.clone()), ("action", "verify".into())]).await;
    assert!(page.contains("non ha ancora risposto"), "pending: {page}");
    let (ok, text) = device(&["approve", "--wait", "10"]);
    assert!(ok && text.contains("approved"), "{text}");
    let page = post("/login/code", vec![("tx", tx.clone()), ("action", "verify".into())]).await;
    assert!(page.contains("login/consent"), "{page}");
    finish(tx).await;

    // A QR code, scanned and approved.
    let (tx, page) = second_factor("qr").await;
    assert!(page.contains("<svg"), "the QR image: {page}");
    let start = page.find("spid-idp-qr:v1:").unwrap();
    let payload: String = page[start..].chars().take_while(|c| *c != '<').collect();
    let (ok, text) = device(&["scan", "--qr", &payload]);
    assert!(ok, "{text}");
    let page = post("/login/code", vec![("tx", tx.clone()), ("action", "verify".into())]).await;
    assert!(page.contains("login/consent"), "{page}");
    finish(tx).await;
}
