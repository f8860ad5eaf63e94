//! The applicant's pages, through actix's test server.

use std::collections::HashSet;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::{App, test as atest};
use spid_types::Clock;

use super::*;
use crate::application::sample;
use crate::registration::ContactStatus;
use crate::request::{Action, Actor};
use crate::tests::{World, world};

const PDF: &[u8] = b"%PDF-1.7 scansione del documento";
const HOST: &str = "idp.example.it";

macro_rules! app {
    ($w:expr, $secure:expr) => {
        atest::init_service(App::new().configure(routes($w.registrar.clone(), $w.identification.clone(), $secure)))
            .await
    };
}

fn get(uri: &str) -> atest::TestRequest {
    atest::TestRequest::get().uri(uri).insert_header(("host", HOST))
}

fn post(uri: &str) -> atest::TestRequest {
    atest::TestRequest::post()
        .uri(uri)
        .insert_header(("host", HOST))
        .insert_header(("origin", format!("https://{HOST}")))
}

async fn body_of<B: MessageBody>(resp: ServiceResponse<B>) -> String {
    String::from_utf8(atest::read_body(resp).await.to_vec()).unwrap()
}

fn header_of<B>(resp: &ServiceResponse<B>, name: &str) -> String {
    resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

fn set_cookies<B>(resp: &ServiceResponse<B>) -> Vec<String> {
    resp.headers().get_all("set-cookie").map(|v| v.to_str().unwrap().to_owned()).collect()
}

fn applicant_set_cookie<B>(resp: &ServiceResponse<B>) -> Option<String> {
    set_cookies(resp).into_iter().find(|c| c.starts_with("spid_applicant="))
}

/// `spid_applicant=<id>.<token>` as the browser sends it back.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

fn id_and_token(pair: &str) -> (String, String) {
    let (id, token) = pair.trim_start_matches("spid_applicant=").split_once('.').unwrap();
    (id.to_owned(), token.to_owned())
}

fn form_of(a: &Application) -> Vec<(String, String)> {
    let mut f: Vec<(&str, String)> = vec![
        ("identity_type", a.identity_type.as_str().into()),
        ("email", a.email.clone()),
        ("password", a.password.clone()),
        ("surname", a.surname.clone()),
        ("given_name", a.given_name.clone()),
        ("sex", a.sex.clone()),
        ("birth_date", a.birth_date.clone()),
        ("birthplace", a.birthplace.clone()),
        ("codice_fiscale", a.codice_fiscale.clone()),
        ("document.kind", a.document.kind.clone()),
        ("document.number", a.document.number.clone()),
        ("document.issuer", a.document.issuer.clone()),
        ("document.issued_on", a.document.issued_on.clone()),
        ("document.expires_on", a.document.expires_on.clone()),
        ("health_card.number", a.health_card.number.clone()),
        ("health_card.expires_on", a.health_card.expires_on.clone()),
        ("domicile.street", a.domicile.street.clone()),
        ("domicile.postal_code", a.domicile.postal_code.clone()),
        ("domicile.municipality", a.domicile.municipality.clone()),
        ("domicile.province", a.domicile.province.clone()),
        ("domicile.country", a.domicile.country.clone()),
        ("mobile", a.mobile.clone()),
        ("pec", a.pec.clone().unwrap_or_default()),
    ];
    // What a browser sends for the organisation's empty fieldset.
    for (_, fields) in GROUPS {
        for d in fields.iter().filter(|d| d.name.starts_with("organisation.")) {
            f.push((d.name, String::new()));
        }
    }
    f.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn multipart(content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----spid-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"scan.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn requests(w: &World) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM identity_requests").fetch_one(w.registrar.db().pool()).await.unwrap()
}

fn all_field_names() -> Vec<&'static str> {
    GROUPS.iter().flat_map(|(_, fields)| fields.iter().map(|f| f.name)).collect()
}

#[test]
fn every_text_is_there_in_both_languages() {
    let mut keys = HashSet::new();
    for (k, it, en) in TEXT {
        assert!(keys.insert(*k), "{k} twice");
        assert!(!it.trim().is_empty() && !en.trim().is_empty(), "{k}");
    }
    let mut needed: Vec<String> = Vec::new();
    for (group, fields) in GROUPS {
        needed.push(format!("group.{group}"));
        for f in *fields {
            needed.push(format!("field.{}", f.name));
            if let Input::Choice(c) = f.input {
                let (values, prefix) = c.values();
                needed.extend(values.iter().map(|v| format!("{prefix}.{v}")));
            }
        }
    }
    needed.extend(crate::request::RequestState::ALL.iter().map(|s| format!("state.{}", s.as_str())));
    needed.extend(crate::request::RequestState::ALL.iter().map(|s| format!("state_help.{}", s.as_str())));
    needed.extend(Upload::ALL.iter().map(|u| format!("upload.{}", u.as_str())));
    needed.extend(["email", "mobile", "pec"].iter().map(|c| format!("contact.{c}")));
    needed.extend(crate::registration::DOCUMENTS.iter().map(|(d, _)| format!("doc.{d}")));
    needed.extend(PAGE_METHODS.iter().map(|m| format!("method.{}", m.as_str())));
    needed.extend(FLASHES.iter().map(|(_, key)| (*key).to_owned()));
    for k in needed {
        assert!(keys.contains(k.as_str()), "no text for {k}");
    }
}

#[test]
fn italian_time() {
    let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    // Winter (+1), summer (+2), and the days the clocks change in 2026.
    assert_eq!(parse_appointment("2026-12-03T10:30"), Some(utc("2026-12-03T09:30:00Z")));
    assert_eq!(parse_appointment("2026-07-01T10:30:00"), Some(utc("2026-07-01T08:30:00Z")));
    assert_eq!(parse_appointment("2026-03-29T01:59"), Some(utc("2026-03-29T00:59:00Z")));
    assert_eq!(parse_appointment("2026-03-29T03:00"), Some(utc("2026-03-29T01:00:00Z")));
    assert_eq!(parse_appointment("2026-10-25T02:30"), Some(utc("2026-10-25T00:30:00Z")));
    assert_eq!(parse_appointment("2026-10-25T03:30"), Some(utc("2026-10-25T02:30:00Z")));
    assert_eq!(parse_appointment("2026-12-03T10:30:00+01:00"), Some(utc("2026-12-03T09:30:00Z")));
    assert_eq!(parse_appointment("domani"), None);
    assert_eq!(utc_to_rome(utc("2026-07-01T08:30:00Z")).map(datetime_local).as_deref(), Some("2026-07-01T10:30"));
}

#[actix_web::test]
async fn the_form_renders_in_italian_and_english() {
    let w = world().await;
    let app = app!(w, false);

    let resp = atest::call_service(&app, get("/registrazione").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_of(&resp, "cache-control"), "no-store");
    assert!(header_of(&resp, "content-security-policy").contains("frame-ancestors 'none'"));
    let html = body_of(resp).await;
    assert!(html.contains("<html lang=\"it\">"));
    assert!(html.contains("Richiedi la tua identità SPID"));
    assert!(html.contains("href=\"/registrazione?lang=en\" lang=\"en\""));
    // Every field has its label, bound by id.
    for name in all_field_names() {
        let id = field_id(name);
        assert!(html.contains(&format!("<label for=\"{id}\">")), "label of {name}");
        assert!(html.contains(&format!("id=\"{id}\" name=\"{name}\"")), "input of {name}");
    }
    assert!(html.contains("aria-describedby=\"f-password-hint\""));
    assert!(html.contains("<option value=\"passaporto\">Passaporto</option>"));
    assert!(html.contains("<fieldset id=\"g-organisation\""));
    assert!(!html.contains("error-summary"));

    let resp = atest::call_service(&app, get("/registrazione?lang=en").to_request()).await;
    assert!(set_cookies(&resp).iter().any(|c| c.starts_with("lang=en;")));
    let html = body_of(resp).await;
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("Apply for your SPID identity"));
    assert!(html.contains("<option value=\"passaporto\">Passport</option>"));
    assert!(html.contains("action=\"/registrazione?lang=en\""));

    // The cookie alone keeps English.
    let resp = atest::call_service(&app, get("/registrazione").insert_header(("cookie", "lang=en")).to_request()).await;
    assert!(set_cookies(&resp).is_empty());
    assert!(body_of(resp).await.contains("<html lang=\"en\">"));

    let resp = atest::call_service(&app, get("/registrazione/stile.css").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header_of(&resp, "content-type").starts_with("text/css"));
}

#[actix_web::test]
async fn an_invalid_application_comes_back_with_its_problems_and_stores_nothing() {
    let w = world().await;
    let app = app!(w, false);
    let mut a = sample("non-una-email");
    a.surname = "<script>alert(1)</script>".into();
    a.password = "corta".into();
    a.document.expires_on = "2020-01-01".into();

    let resp = atest::call_service(&app, post("/registrazione").set_form(form_of(&a)).to_request()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(applicant_set_cookie(&resp).is_none());
    let html = body_of(resp).await;
    // Summary at the top, linked to the fields.
    assert!(html.contains("<title>Errore: Richiedi la tua identità SPID"));
    assert!(html.contains("class=\"error-summary\" role=\"alert\""));
    assert!(html.contains("<a href=\"#f-email\">L&#x27;indirizzo e-mail non è valido.</a>"));
    assert!(html.contains("href=\"#f-document-expires_on\""));
    assert!(html.contains("href=\"#f-password\""));
    // Each message next to its field, linked by aria-describedby.
    assert!(html.contains("<p class=\"error-message\" id=\"f-email-error\">"));
    assert!(html.contains(
        "id=\"f-email\" name=\"email\" type=\"email\" value=\"non-una-email\" autocomplete=\"email\" required \
         aria-describedby=\"f-email-hint f-email-error\" aria-invalid=\"true\""
    ));
    assert!(html.contains("aria-describedby=\"f-document-expires_on-hint f-document-expires_on-error\""));
    // The values come back, escaped; the password never does.
    assert!(html.contains("value=\"Mario\""));
    assert!(html.contains("<option value=\"carta_identita_elettronica\" selected>"));
    assert!(html.contains("name=\"password\" type=\"password\" value=\"\""));
    assert!(!html.contains("corta"));
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
    assert_eq!(requests(&w).await, 0);

    // In English, and an unknown identity type is a problem of its own.
    let mut form = form_of(&a);
    form[0].1 = "emperor".into();
    let resp = atest::call_service(&app, post("/registrazione?lang=en").set_form(form).to_request()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body_of(resp).await;
    assert!(html.contains("<a href=\"#f-identity_type\">Choose the type of identity.</a>"));
    assert!(html.contains("The e-mail address is not valid."));
    assert_eq!(requests(&w).await, 0);

    // A professional identity without its organisation: problems on
    // the organisation's fields.
    let mut form = form_of(&sample("mario.rossi@example.it"));
    form[0].1 = "professional_natural".into();
    let resp = atest::call_service(&app, post("/registrazione").set_form(form).to_request()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body_of(resp).await;
    assert!(html.contains("href=\"#f-organisation-vat_number\""));
    assert!(html.contains("id=\"f-organisation-vat_number-error\""));
    assert_eq!(requests(&w).await, 0);
}

#[actix_web::test]
async fn a_valid_application_sets_the_cookie_and_redirects() {
    let w = world().await;
    let app = app!(w, true);
    let a = sample("mario.rossi@example.it");
    let resp = atest::call_service(&app, post("/registrazione").set_form(form_of(&a)).to_request()).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&resp, "location"), "/registrazione/stato?lang=it");
    let set = applicant_set_cookie(&resp).unwrap();
    let attributes: Vec<&str> = set.split("; ").skip(1).collect();
    for a in ["HttpOnly", "SameSite=Strict", "Path=/registrazione", "Secure"] {
        assert!(attributes.contains(&a), "{a} in {set}");
    }
    let (id, token) = id_and_token(&cookie_pair(&set));
    assert_eq!(w.registrar.progress(&id, &token).await.unwrap().state, "draft");
    assert_eq!(requests(&w).await, 1);

    // The same address again: taken.
    let resp = atest::call_service(&app, post("/registrazione").set_form(form_of(&a)).to_request()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_of(resp).await.contains("<a href=\"#f-email\">Questo indirizzo e-mail è già usato"));

    // Without TLS (development) the cookie is not Secure.
    let w = world().await;
    let app = app!(w, false);
    let resp = atest::call_service(&app, post("/registrazione").set_form(form_of(&a)).to_request()).await;
    assert!(!applicant_set_cookie(&resp).unwrap().contains("Secure"));
}

#[actix_web::test]
async fn an_applicant_goes_through_the_pages_to_activation() {
    let w = world().await;
    let app = app!(w, true);
    let a = sample("Mario.Rossi@Example.it");
    let resp = atest::call_service(&app, post("/registrazione").set_form(form_of(&a)).to_request()).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let pair = cookie_pair(&applicant_set_cookie(&resp).unwrap());
    let (id, token) = id_and_token(&pair);
    let page = |uri: &str| get(uri).insert_header(("cookie", pair.clone())).to_request();
    let act = |uri: &str| post(uri).insert_header(("cookie", pair.clone()));

    let resp = atest::call_service(&app, page("/registrazione/stato")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = body_of(resp).await;
    assert!(html.contains(&id));
    assert!(!html.contains(&token));
    assert!(html.contains("data-state=\"draft\""));
    assert!(html.contains("<label for=\"code-email\">Codice ricevuto su mario.rossi@example.it</label>"));
    assert!(html.contains("action=\"/registrazione/contatti/mobile/codice?lang=it\""));
    assert!(html.contains("name=\"privacy_notice\" type=\"checkbox\" value=\"2026.1\""));
    assert!(
        html.contains("action=\"/registrazione/caricamenti/document_front?lang=it\" enctype=\"multipart/form-data\"")
    );
    assert!(html.contains("Completa i passi qui sopra"));
    assert!(!html.contains("action=\"/registrazione/invia"));

    // The e-mail code.
    let code = w.outbox.code_for("mario.rossi@example.it");
    let resp = atest::call_service(
        &app,
        act("/registrazione/contatti/email/verifica?lang=it").set_form([("code", code.as_str())]).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&resp, "location"), "/registrazione/stato?lang=it&esito=contact_verified");
    let html = body_of(atest::call_service(&app, page("/registrazione/stato?esito=contact_verified")).await).await;
    assert!(html.contains("<div class=\"flash\" role=\"status\"><p>Contatto confermato.</p></div>"));
    assert!(!html.contains("id=\"code-email\""));

    // A wrong mobile code comes back next to its field; a new code works.
    let resp = atest::call_service(
        &app,
        act("/registrazione/contatti/mobile/verifica?lang=it").set_form([("code", "000000x")]).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body_of(resp).await;
    assert!(html.contains("<a href=\"#code-mobile\">Il codice non è corretto.</a>"));
    assert!(html.contains("aria-describedby=\"code-mobile-hint code-mobile-error\" aria-invalid=\"true\""));
    let before = w.outbox.code_for(&a.mobile);
    let resp = atest::call_service(&app, act("/registrazione/contatti/mobile/codice?lang=it").to_request()).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let code = w.outbox.code_for(&a.mobile);
    assert_ne!(code, before);
    let resp = atest::call_service(
        &app,
        act("/registrazione/contatti/mobile/verifica?lang=it").set_form([("code", code.as_str())]).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // Submitting too early is refused with its reason.
    let resp = atest::call_service(&app, act("/registrazione/invia?lang=it").to_request()).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(body_of(resp).await.contains("Accetta prima tutti i documenti."));

    // The documents: none ticked, then all.
    let none: [(&str, &str); 0] = [];
    let resp = atest::call_service(&app, act("/registrazione/documenti?lang=it").set_form(none).to_request()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_of(resp).await.contains("<a href=\"#documents\">Seleziona i documenti che accetti.</a>"));
    let all: Vec<(&str, &str)> = crate::registration::DOCUMENTS.to_vec();
    let resp = atest::call_service(&app, act("/registrazione/documenti?lang=it").set_form(all).to_request()).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // The scans: a text file is refused, PDFs are taken.
    let (content_type, body) = multipart(b"just text");
    let resp = atest::call_service(
        &app,
        act("/registrazione/caricamenti/document_front?lang=it")
            .insert_header(("content-type", content_type))
            .set_payload(body)
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_of(resp).await.contains("<a href=\"#file-document_front\">Carica un file PDF, JPEG o PNG.</a>"));
    for kind in ["document_front", "document_back"] {
        let (content_type, body) = multipart(PDF);
        let resp = atest::call_service(
            &app,
            act(&format!("/registrazione/caricamenti/{kind}?lang=it"))
                .insert_header(("content-type", content_type))
                .set_payload(body)
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{kind}");
        assert_eq!(header_of(&resp, "location"), "/registrazione/stato?lang=it&esito=uploaded");
    }
    let (_, content) = w.registrar.open_evidence(&evidence_id(&w, &id).await).await.unwrap();
    assert_eq!(content, PDF);

    let html = body_of(atest::call_service(&app, page("/registrazione/stato")).await).await;
    assert!(html.contains("action=\"/registrazione/invia?lang=it\""));
    let resp = atest::call_service(&app, act("/registrazione/invia?lang=it").to_request()).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // The method: an appointment is needed, within 30 days.
    let html = body_of(atest::call_service(&app, page("/registrazione/stato?lang=en")).await).await;
    assert!(html.contains("data-state=\"submitted\""));
    assert!(html.contains("<label for=\"method-counter\">In person, at a counter</label>"));
    assert!(html.contains("type=\"datetime-local\""));
    let resp = atest::call_service(
        &app,
        act("/registrazione/metodo?lang=it").set_form([("method", "counter"), ("appointment", "")]).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = body_of(resp).await;
    assert!(html.contains("<a href=\"#appointment\">Indica data e ora dell&#x27;appuntamento.</a>"));
    assert!(html.contains("id=\"method-counter\" name=\"method\" type=\"radio\" value=\"counter\" checked"));
    let far = datetime_local(utc_to_rome(w.clock.now() + Duration::days(45)).unwrap());
    let resp = atest::call_service(
        &app,
        act("/registrazione/metodo?lang=it")
            .set_form([("method", "counter"), ("appointment", far.as_str())])
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_of(resp).await.contains(&format!("value=\"{far}\"")));
    let soon = datetime_local(utc_to_rome(w.clock.now() + Duration::days(2)).unwrap());
    let resp = atest::call_service(
        &app,
        act("/registrazione/metodo?lang=it")
            .set_form([("method", "counter"), ("appointment", soon.as_str())])
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(w.registrar.progress(&id, &token).await.unwrap().state, "awaiting_identification");
    let html = body_of(atest::call_service(&app, page("/registrazione/stato")).await).await;
    assert!(html.contains("data-state=\"awaiting_identification\""));
    assert!(!html.contains("<form"));

    // Identified and verified by the back office; the applicant accepts.
    let clock = w.clock.as_ref() as &dyn spid_types::Clock;
    w.requests.apply(&id, &Action::Identify, Actor::Operator, "op-1", clock).await.unwrap();
    w.requests.apply(&id, &Action::Verify, Actor::Verifier, "ver-1", clock).await.unwrap();
    w.requests.apply(&id, &Action::OfferDocuments, Actor::Verifier, "ver-1", clock).await.unwrap();
    let html = body_of(atest::call_service(&app, page("/registrazione/stato")).await).await;
    assert!(html.contains("action=\"/registrazione/attiva?lang=it\""));
    let resp = atest::call_service(&app, act("/registrazione/attiva?lang=it").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = body_of(resp).await;
    assert!(html.contains("data-state=\"active\""));
    let (_, code) = html.split_once("<strong class=\"spid-code\">").unwrap();
    let (code, _) = code.split_once("</strong>").unwrap();
    assert!(code.len() == 14 && code.starts_with("TEST"), "{code}");
    // Activating twice is refused.
    let resp = atest::call_service(&app, act("/registrazione/attiva?lang=it").to_request()).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
}

async fn evidence_id(w: &World, request_id: &str) -> String {
    sqlx::query_scalar("SELECT id FROM evidence WHERE request_id = $1 AND kind = 'document_front'")
        .bind(request_id)
        .fetch_one(w.registrar.db().pool())
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_missing_or_forged_cookie_is_refused() {
    let w = world().await;
    let app = app!(w, false);
    let resp = atest::call_service(&app, get("/registrazione/stato").to_request()).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let html = body_of(resp).await;
    assert!(html.contains("Nessuna richiesta in corso"));
    assert!(html.contains("<li><a href=\"/registrazione/stato?lang=it\">Vai alla tua richiesta</a></li>"));
    assert!(html.contains("<li><a href=\"/registrazione?lang=it\">Vai al modulo di richiesta</a></li>"));

    let started = w.registrar.start(&sample("mario.rossi@example.it"), false).await.unwrap();
    let forged = format!("spid_applicant={}.{}", started.request_id, crate::registration::random_token());
    for cookie in [forged.as_str(), "spid_applicant=nonsense", "spid_applicant=a.b<script>"] {
        let resp =
            atest::call_service(&app, get("/registrazione/stato").insert_header(("cookie", cookie)).to_request()).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{cookie}");
        assert!(applicant_set_cookie(&resp).unwrap().contains("Max-Age=0"));
        assert!(body_of(resp).await.contains("Accesso non consentito"));
    }
    let resp =
        atest::call_service(&app, post("/registrazione/invia").insert_header(("cookie", forged.as_str())).to_request())
            .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (content_type, body) = multipart(PDF);
    let resp = atest::call_service(
        &app,
        post("/registrazione/caricamenti/document_front")
            .insert_header(("cookie", forged.as_str()))
            .insert_header(("content-type", content_type))
            .set_payload(body)
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let evidence: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM evidence").fetch_one(w.registrar.db().pool()).await.unwrap();
    assert_eq!(evidence, 0);
}

#[actix_web::test]
async fn a_post_from_another_origin_is_refused() {
    let w = world().await;
    let app = app!(w, false);
    let a = sample("mario.rossi@example.it");
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("origin", "https://idp.example.it:8443"),
        ("referer", "https://evil.example/registrazione"),
    ] {
        let req = atest::TestRequest::post()
            .uri("/registrazione")
            .insert_header(("host", HOST))
            .insert_header((header, value))
            .set_form(form_of(&a))
            .to_request();
        let resp = atest::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert!(applicant_set_cookie(&resp).is_none());
    }
    assert_eq!(requests(&w).await, 0);

    // The same host, by Referer or by Origin with its default port; no
    // header at all relies on SameSite.
    for (header, value) in
        [("referer", "https://idp.example.it/registrazione"), ("origin", "https://IDP.example.it:443"), ("x-none", "")]
    {
        let req = atest::TestRequest::post()
            .uri("/registrazione")
            .insert_header(("host", HOST))
            .insert_header((header, value))
            .set_form(form_of(&sample(&format!("m{}@example.it", requests(&w).await))))
            .to_request();
        let resp = atest::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{header}: {value}");
    }

    // The steps too, even with the applicant's cookie.
    let started = w.registrar.start(&sample("chiara@example.it"), false).await.unwrap();
    let cookie = format!("spid_applicant={}.{}", started.request_id, started.applicant_token);
    let req = atest::TestRequest::post()
        .uri("/registrazione/contatti/email/codice")
        .insert_header(("host", HOST))
        .insert_header(("origin", "https://evil.example"))
        .insert_header(("cookie", cookie))
        .to_request();
    let resp = atest::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(body_of(resp).await.contains("è partita da un altro sito"));
}

#[actix_web::test]
async fn an_upload_over_the_limit_is_refused() {
    let w = world().await;
    let app = app!(w, false);
    let started = w.registrar.start(&sample("mario.rossi@example.it"), false).await.unwrap();
    let cookie = format!("spid_applicant={}.{}", started.request_id, started.applicant_token);
    let mut big = PDF.to_vec();
    big.resize(MAX_UPLOAD + 1, b'x');
    let (content_type, body) = multipart(&big);
    let resp = atest::call_service(
        &app,
        post("/registrazione/caricamenti/document_front?lang=en")
            .insert_header(("cookie", cookie.as_str()))
            .insert_header(("content-type", content_type))
            .set_payload(body)
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_of(resp).await.contains("The file is larger than 10 MiB."));

    // No file chosen, an unknown kind.
    let (content_type, body) = multipart(b"");
    let resp = atest::call_service(
        &app,
        post("/registrazione/caricamenti/document_back")
            .insert_header(("cookie", cookie.as_str()))
            .insert_header(("content-type", content_type))
            .set_payload(body)
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_of(resp).await.contains("Scegli un file da caricare."));
    let resp = atest::call_service(
        &app,
        post("/registrazione/caricamenti/selfie").insert_header(("cookie", cookie.as_str())).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// Every state of the status page renders in both languages.
#[actix_web::test]
async fn every_state_renders() {
    let w = world().await;
    let ctx = Ctx::new(w.registrar.clone(), w.identification.clone(), false);
    for state in crate::request::RequestState::ALL {
        for lang in [Lang::It, Lang::En] {
            let p = Progress {
                request_id: "r-1".into(),
                state: state.as_str(),
                contacts: vec![
                    ContactStatus { kind: "email".into(), value: "a@example.it".into(), verified: true },
                    ContactStatus { kind: "pec".into(), value: "<b>@example.it".into(), verified: false },
                ],
                documents_to_accept: vec![("terms".into(), "2026.1".into())],
                uploads_missing: vec!["representation_proof"],
            };
            let outcome = Outcome {
                error: Some(StepError { target: "code-pec".into(), message: "<i>no</i>".into() }),
                spid_code: Some("TESTABCDEFGHIJ".into()),
                ..Outcome::default()
            };
            let (data, errors) = status_data(lang, &p, &outcome, Utc::now());
            let view = View { lang, remember: false, path: STATUS_PATH };
            let mut screen = Screen::new(StatusCode::OK, "status.html", "status_title", data);
            screen.errors = errors;
            let html = ctx.html(&view, &screen).unwrap();
            assert!(html.contains(tr(lang, &format!("state.{}", state.as_str()))), "{state:?}");
            assert!(!html.contains("<b>") && !html.contains("<i>"), "{state:?}");
        }
    }
}
