//! SAML conformance from the outside, in the multi-process mode (every
//! service its own `idp` process on Postgres, Redis and the Kafka broker):
//! pysaml2, an independent SAML implementation, plays the service provider.
//! It signs AuthnRequests for both bindings and checks our Responses (both
//! signatures through xmlsec1, destination, audience, times, InResponseTo);
//! xmlsec1 also checks each signature directly. A level-1 login by
//! HTTP-Redirect, a level-2 login by HTTP-POST with the SMS code read from
//! the development outbox, a cancelled login (nr25), a page for a tampered
//! request (nr07) and for the wrong HTTP method (nr06), and the transaction
//! registry reaching audit-log over the broker.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use integration_tests::{Broker, Ports, ServiceProcess, eventually};
use spid_proto::audit::v1::SearchRequest;
use spid_proto::audit::v1::audit_query_client::AuditQueryClient;
use spid_types::ServiceName;

const SP_ENTITY: &str = "https://sp.example.test";
const SP_ACS: &str = "https://sp.example.test/acs";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("saml_sp.py")
}

/// Runs the pysaml2 SP; `Err` with its output when it refuses.
fn sp(args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new("python3").arg(fixture()).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")))
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn hidden(page: &str, name: &str) -> Option<String> {
    integration_tests::hidden_field(page, name)
}

struct Stack {
    ports: Ports,
    dir: tempfile::TempDir,
    _broker: Broker,
    _procs: Vec<ServiceProcess>,
}

impl Stack {
    fn sp_dir(&self) -> String {
        self.dir.path().join("sp").display().to_string()
    }

    fn idp_metadata(&self) -> String {
        self.dir.path().join("idp.xml").display().to_string()
    }

    fn gateway(&self) -> String {
        self.ports.http_url(ServiceName::AuthnGateway)
    }
}

async fn stack() -> Stack {
    let broker = Broker::tansu();
    let ports = Ports::allocate();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    sp(&["init", "--dir", &dir.path().join("sp").display().to_string(), "--entity-id", SP_ENTITY, "--acs", SP_ACS])
        .unwrap();
    std::fs::create_dir_all(data.join("sp-metadata")).unwrap();
    std::fs::copy(dir.path().join("sp").join("sp.xml"), data.join("sp-metadata").join("sp.xml")).unwrap();
    let procs = integration_tests::all_services(&broker, &ports, &data, dir.path()).await;
    let stack = Stack { ports, dir, _broker: broker, _procs: procs };
    let metadata = reqwest::get(format!("{}/metadata", stack.gateway())).await.unwrap().text().await.unwrap();
    std::fs::write(stack.idp_metadata(), metadata).unwrap();
    stack
}

/// Sends the SP's request (either binding) and returns the first page.
async fn start(s: &Stack, http: &reqwest::Client, binding: &str, level: &str) -> (String, String) {
    let r = sp(&[
        "request",
        "--dir",
        &s.sp_dir(),
        "--idp-metadata",
        &s.idp_metadata(),
        "--binding",
        binding,
        "--level",
        level,
        "--relay",
        "rs-1",
    ])
    .unwrap();
    let id = r["id"].as_str().unwrap().to_owned();
    let page = if binding == "redirect" {
        http.get(r["url"].as_str().unwrap()).send().await.unwrap()
    } else {
        let form: Vec<(String, String)> =
            r["form"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
        http.post(r["action"].as_str().unwrap()).form(&form).send().await.unwrap()
    };
    assert_eq!(page.status(), 200);
    (id, page.text().await.unwrap())
}

async fn submit(s: &Stack, http: &reqwest::Client, step: &str, form: &[(&str, &str)]) -> String {
    http.post(format!("{}/login/{step}", s.gateway())).form(form).send().await.unwrap().text().await.unwrap()
}

/// xmlsec1 checks one signature of the Response with the published key.
fn xmlsec1_verifies(s: &Stack, xml: &[u8], signature_xpath: &str) {
    let file = s.dir.path().join("response.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmlsec1")
        .args(["--verify", "--pubkey-cert-pem"])
        .arg(s.dir.path().join("data").join("keys").join("saml").join("signing.crt"))
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:Response",
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            "--node-xpath",
            signature_xpath,
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "xmlsec1: {}", String::from_utf8_lossy(&out.stderr));
}

/// The Response the last page carries, checked by pysaml2 and xmlsec1.
fn accept(s: &Stack, page: &str, request_id: &str) -> Result<serde_json::Value, String> {
    assert_eq!(hidden(page, "RelayState").as_deref(), Some("rs-1"));
    let response = hidden(page, "SAMLResponse").unwrap_or_else(|| panic!("no Response in {page}"));
    let xml = base64::engine::general_purpose::STANDARD.decode(&response).unwrap();
    xmlsec1_verifies(s, &xml, "/*[local-name()='Response']/*[local-name()='Signature']");
    if String::from_utf8_lossy(&xml).contains("Assertion") {
        xmlsec1_verifies(
            s,
            &xml,
            "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']",
        );
    }
    sp(&[
        "consume",
        "--dir",
        &s.sp_dir(),
        "--idp-metadata",
        &s.idp_metadata(),
        "--request-id",
        request_id,
        "--response",
        &response,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_logs_in_at_levels_one_and_two_in_both_bindings() {
    let s = stack().await;
    let user = |level: u64| integration_tests::demo_holder(&s.dir.path().join("data"), level);
    let http = integration_tests::browser();

    // Level 1, HTTP-Redirect: one wrong password, then the right one.
    let l1 = user(1);
    let (id, page) = start(&s, &http, "redirect", "1").await;
    let tx = hidden(&page, "tx").unwrap();
    let page = submit(
        &s,
        &http,
        "password",
        &[("tx", &tx), ("username", l1["username"].as_str().unwrap()), ("password", "sbagliata"), ("action", "login")],
    )
    .await;
    assert!(page.contains("Tentativi rimasti: 2"), "{page}");
    let page = submit(
        &s,
        &http,
        "password",
        &[
            ("tx", &tx),
            ("username", l1["username"].as_str().unwrap()),
            ("password", l1["password"].as_str().unwrap()),
            ("action", "login"),
        ],
    )
    .await;
    assert!(page.contains(l1["spid_code"].as_str().unwrap()), "the consent page shows the data: {page}");
    let page = submit(&s, &http, "consent", &[("tx", &tx), ("action", "accept")]).await;
    let accepted = accept(&s, &page, &id).unwrap();
    assert_eq!(accepted["authn_context"], "https://www.spid.gov.it/SpidL1");
    assert_eq!(accepted["attributes"]["spidCode"][0], l1["spid_code"]);
    assert_eq!(accepted["attributes"]["fiscalNumber"][0].as_str().unwrap().get(..6), Some("TINIT-"));
    assert_eq!(accepted["name_id_format"], "urn:oasis:names:tc:SAML:2.0:nameid-format:transient");
    assert_eq!(accepted["audience"][0], SP_ENTITY);
    assert!(accepted["session_index"].is_string(), "level 1 has a SessionIndex");

    // Level 2, HTTP-POST: the SMS code from the development outbox.
    let l2 = user(2);
    let (id, page) = start(&s, &http, "post", "2").await;
    let tx = hidden(&page, "tx").unwrap();
    let page = submit(
        &s,
        &http,
        "password",
        &[
            ("tx", &tx),
            ("username", l2["username"].as_str().unwrap()),
            ("password", l2["password"].as_str().unwrap()),
            ("action", "login"),
        ],
    )
    .await;
    assert!(page.contains(r#"name="code""#), "{page}");
    let outbox: serde_json::Value =
        http.get(format!("{}/dev/outbox", s.gateway())).send().await.unwrap().json().await.unwrap();
    let sms = outbox.as_array().unwrap().iter().rev().find(|m| m["channel"] == "sms").unwrap();
    assert_eq!(sms["recipient"], l2["mobile"]);
    let body = sms["body"].as_str().unwrap();
    let code = integration_tests::six_digit_code(body).unwrap();
    let page = submit(&s, &http, "code", &[("tx", &tx), ("code", &code), ("action", "verify")]).await;
    assert!(page.contains(l2["spid_code"].as_str().unwrap()), "the consent page after the code: {page}");
    let page = submit(&s, &http, "consent", &[("tx", &tx), ("action", "accept")]).await;
    let accepted = accept(&s, &page, &id).unwrap();
    assert_eq!(accepted["authn_context"], "https://www.spid.gov.it/SpidL2");
    assert!(accepted["session_index"].is_null(), "no SessionIndex at level 2");
    assert_eq!(accepted["attributes"]["spidCode"][0], l2["spid_code"]);

    // The user cancels: nr25, which pysaml2 reports as a failed authentication.
    let (id, page) = start(&s, &http, "post", "1").await;
    let tx = hidden(&page, "tx").unwrap();
    let page = submit(&s, &http, "password", &[("tx", &tx), ("action", "cancel")]).await;
    let refused = accept(&s, &page, &id).unwrap_err();
    assert!(refused.contains("StatusAuthnFailed") && refused.contains("ErrorCode nr25"), "{refused}");

    // A request altered after signing: a page, nothing to the SP.
    let r = sp(&[
        "request",
        "--dir",
        &s.sp_dir(),
        "--idp-metadata",
        &s.idp_metadata(),
        "--binding",
        "post",
        "--level",
        "1",
    ])
    .unwrap();
    let request = base64::engine::general_purpose::STANDARD.decode(r["form"]["SAMLRequest"].as_str().unwrap()).unwrap();
    let altered = String::from_utf8(request).unwrap().replace("SpidL1", "SpidL2");
    let altered = base64::engine::general_purpose::STANDARD.encode(altered);
    let resp =
        http.post(r["action"].as_str().unwrap()).form(&[("SAMLRequest", altered.as_str())]).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("ErrorCode nr07"));
    // The wrong HTTP method for the binding: nr06.
    let resp = http.get(r["action"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("ErrorCode nr06"));

    // The transaction registry reaches audit-log over the broker.
    let audit = AuditQueryClient::connect(s.ports.grpc_url(ServiceName::AuditLog)).await.unwrap();
    let records = eventually(Duration::from_secs(60), "three SAML transactions in audit-log", || {
        let mut audit = audit.clone();
        async move {
            let found = audit
                .search(SearchRequest { r#type: "saml.transaction".into(), limit: 100, ..Default::default() })
                .await
                .ok()?
                .into_inner()
                .records;
            (found.len() >= 3).then_some(found)
        }
    })
    .await;
    assert_eq!(records.len(), 3);

    // `idpctl sp`: the registry lists the SP; once removed its requests
    // are refused (nr10), once added again they are accepted.
    let idpctl = |args: &[&str]| integration_tests::idpctl(&s.ports, ServiceName::AuthnGateway, args);

    let (ok, out) = idpctl(&["--json", "sp", "list"]);
    assert!(ok && out.contains(SP_ENTITY) && out.contains(SP_ACS), "{out}");
    let (ok, out) = idpctl(&["sp", "remove", "--operator", "turno-1", SP_ENTITY]);
    assert!(ok, "{out}");
    let r = sp(&[
        "request",
        "--dir",
        &s.sp_dir(),
        "--idp-metadata",
        &s.idp_metadata(),
        "--binding",
        "redirect",
        "--level",
        "1",
    ])
    .unwrap();
    let resp = http.get(r["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("ErrorCode nr10"));
    let metadata = s.dir.path().join("sp").join("sp.xml");
    let (ok, out) = idpctl(&["sp", "add", "--operator", "turno-1", metadata.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (id, page) = start(&s, &http, "redirect", "1").await;
    assert!(hidden(&page, "tx").is_some(), "accepted again ({id}): {page}");
}

/// `make run`: the demo service provider's level-2 login in a browser's
/// steps — its signed Redirect request, the password, the SMS code read
/// from the development outbox, the consent, and its page showing the
/// attributes received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_sp_of_make_run_logs_in_at_level_two() {
    let data = tempfile::tempdir().unwrap();
    let ports = Ports::allocate();
    let _dev = integration_tests::DevProcess::start(&ports, data.path(), &[]).await;
    let holder = &integration_tests::demo_holder(data.path(), 2);
    let public = ports.http_url(ServiceName::AuthnGateway);
    let http = integration_tests::browser();
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{public}{path}");
        async move { http.post(url).form(&form).send().await.unwrap().text().await.unwrap() }
    };

    let page = http.get(format!("{public}/demo-sp/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Log in at level 2"), "{page}");
    let page = http.get(format!("{public}/demo-sp/login?level=2")).send().await.unwrap().text().await.unwrap();
    let tx = hidden(&page, "tx").unwrap_or_else(|| panic!("login page: {page}"));
    let username = holder["username"].as_str().unwrap().to_owned();
    let password = holder["password"].as_str().unwrap().to_owned();
    post(
        "/login/password",
        vec![("tx", tx.clone()), ("username", username), ("password", password), ("action", "login".into())],
    )
    .await;
    let outbox: serde_json::Value =
        http.get(format!("{public}/dev/outbox")).send().await.unwrap().json().await.unwrap();
    let body = outbox.as_array().unwrap().last().unwrap()["body"].as_str().unwrap().to_owned();
    let code = integration_tests::six_digit_code(&body).unwrap();
    post("/login/code", vec![("tx", tx.clone()), ("code", code), ("action", "verify".into())]).await;
    let page = post("/login/consent", vec![("tx", tx), ("action", "accept".into())]).await;
    let response = hidden(&page, "SAMLResponse").unwrap();
    let page = post("/demo-sp/acs", vec![("SAMLResponse", response), ("RelayState", "demo".into())]).await;
    assert!(page.contains("Logged in") && page.contains("SpidL2"), "{page}");
    assert!(page.contains(holder["spid_code"].as_str().unwrap()), "{page}");
}

/// Issue 7 across processes over the real broker: a level-1 session is
/// reused until `idpctl identity suspend`; then the session is gone and
/// the holder's next login is answered with nr23.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_ends_sessions_and_the_next_login_gets_nr23() {
    let s = stack().await;
    let holder = integration_tests::demo_holder(&s.dir.path().join("data"), 1);
    let (username, password) = (holder["username"].as_str().unwrap(), holder["password"].as_str().unwrap());
    let spid_code = holder["spid_code"].as_str().unwrap();
    let http = integration_tests::browser();

    let (id, page) = start(&s, &http, "redirect", "1").await;
    let tx = hidden(&page, "tx").unwrap();
    submit(&s, &http, "password", &[("tx", &tx), ("username", username), ("password", password), ("action", "login")])
        .await;
    let resp = http
        .post(format!("{}/login/consent", s.gateway()))
        .form(&[("tx", tx.as_str()), ("action", "accept")])
        .send()
        .await
        .unwrap();
    let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("spid_sso="), "{cookie}");
    // Without the browser's cookies another client cannot drive a login.
    let (_, page) = start(&s, &http, "redirect", "2").await;
    let stranger = reqwest::Client::new();
    let refused = stranger
        .post(format!("{}/login/password", s.gateway()))
        .form(&[
            ("tx", hidden(&page, "tx").unwrap().as_str()),
            ("username", username),
            ("password", password),
            ("action", "login"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    accept(&s, &resp.text().await.unwrap(), &id).unwrap();

    // The session is reused (the browser keeps its cookie): straight to
    // the consent page.
    let with_session = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let request = |s: &Stack| {
        sp(&[
            "request",
            "--dir",
            &s.sp_dir(),
            "--idp-metadata",
            &s.idp_metadata(),
            "--binding",
            "redirect",
            "--level",
            "1",
            "--relay",
            "rs-1",
        ])
        .unwrap()
    };
    let page = with_session(request(&s)["url"].as_str().unwrap().to_owned()).await;
    assert!(page.contains("login/consent"), "session reused: {page}");

    // An operator suspends the identity.
    let idpctl = |args: &[&str]| integration_tests::idpctl(&s.ports, ServiceName::IdentityManager, args);

    let (ok, out) =
        idpctl(&["operators", "add", "--first", "--id", "admin", "--name", "Admin", "--role", "administrator"]);
    assert!(ok, "{out}");
    let (ok, out) =
        idpctl(&["identity", "suspend", "--operator", "admin", spid_code, "--reason", "furto del telefono"]);
    assert!(ok, "{out}");

    // The session is gone: the login page again, and the login gets nr23.
    let r = request(&s);
    let page = with_session(r["url"].as_str().unwrap().to_owned()).await;
    let tx = hidden(&page, "tx").unwrap_or_else(|| panic!("the login page, not the consent: {page}"));
    let page = submit(
        &s,
        &http,
        "password",
        &[("tx", &tx), ("username", username), ("password", password), ("action", "login")],
    )
    .await;
    let refused = accept(&s, &page, r["id"].as_str().unwrap()).unwrap_err();
    assert!(refused.contains("ErrorCode nr23"), "{refused}");
}
