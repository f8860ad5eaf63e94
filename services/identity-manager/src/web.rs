//! The applicant's HTML pages under `/registrazione` (REG-1…10): the
//! server-rendered counterpart of the JSON interface in [`crate::http`],
//! usable without JavaScript. Italian by default, English with `?lang=en`
//! or the `lang` cookie.
//!
//! | route | what |
//! |---|---|
//! | `GET /registrazione` | the application form |
//! | `POST /registrazione` | start: 422 with every problem next to its field, or the applicant cookie and 303 to the status |
//! | `GET /registrazione/stato` | the progress and the next steps |
//! | `POST /registrazione/contatti/{kind}/codice` | a new code for a contact |
//! | `POST /registrazione/contatti/{kind}/verifica` | check a contact's code (`code`) |
//! | `POST /registrazione/documenti` | accept documents (`<document>=<version>` pairs) |
//! | `POST /registrazione/caricamenti/{kind}` | upload a scan (multipart, field `file`) |
//! | `POST /registrazione/invia` | submit for identification |
//! | `POST /registrazione/metodo` | choose the method (`method`, `appointment` in Italian time) |
//! | `POST /registrazione/attiva` | accept and activate: shows the spidCode |
//! | `GET /registrazione/stile.css` | the pages' style sheet |
//!
//! The request id and the applicant's token travel only in the
//! `spid_applicant` cookie (`<request_id>.<token>`; HttpOnly,
//! SameSite=Strict, Path=/registrazione, Secure in production). Every change
//! is a POST, refused with 403 when its `Origin` (or, without it, its
//! `Referer`) names another host; a step that succeeds redirects (303) to
//! the status with a flash message, one that fails shows the status again
//! with the error next to its field. Every template is HTML-escaped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix_multipart::MultipartError;
use actix_multipart::form::bytes::Bytes as FilePart;
use actix_multipart::form::{MultipartForm, MultipartFormConfig};
use actix_web::error::PayloadError;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder, web};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};
use serde::{Deserialize, Serialize};
use spid_types::{ErrorKind, ServiceError};

use crate::application::{
    Address, Application, DOCUMENT_KINDS, HealthCard, IdentityDocument, IdentityType, Organisation, Problem,
};
use crate::identification::{APPOINTMENT_DAYS, Identification};
use crate::registration::{ContactKind, MAX_UPLOAD, Progress, Registrar, StartError, Upload};
use crate::request::Method;

const BASE: &str = "/registrazione";
const STATUS_PATH: &str = "/registrazione/stato";
/// `<request_id>.<token>`.
const APPLICANT_COOKIE: &str = "spid_applicant";
const LANG_COOKIE: &str = "lang";
/// The applicant comes back to accept after the identification and the
/// checks, which may take weeks.
const APPLICANT_COOKIE_DAYS: i64 = 60;
const FORM_LIMIT: usize = 64 * 1024;
/// Room for the multipart headers and boundaries around the file.
const MULTIPART_OVERHEAD: usize = 64 * 1024;
const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const TEMPLATES: [(&str, &str); 4] = [
    ("layout.html", include_str!("../templates/layout.html")),
    ("form.html", include_str!("../templates/form.html")),
    ("status.html", include_str!("../templates/status.html")),
    ("message.html", include_str!("../templates/message.html")),
];
const STYLE: &str = include_str!("../templates/style.css");

/// The pages under `/registrazione`. `secure_cookies`: the applicant's
/// cookie is `Secure` (production, behind TLS).
pub fn routes(
    registrar: Arc<Registrar>,
    identification: Arc<Identification>,
    secure_cookies: bool,
) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    let ctx = web::Data::new(Ctx::new(registrar, identification, secure_cookies));
    let multipart = MultipartFormConfig::default().total_limit(MAX_UPLOAD).memory_limit(MAX_UPLOAD);
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::scope(BASE)
                .app_data(ctx.clone())
                .app_data(multipart.clone())
                .app_data(web::FormConfig::default().limit(FORM_LIMIT))
                .route("", web::get().to(form_page))
                .route("", web::post().to(start))
                .route("/stile.css", web::get().to(style))
                .route("/stato", web::get().to(status))
                .route("/contatti/{kind}/codice", web::post().to(send_code))
                .route("/contatti/{kind}/verifica", web::post().to(verify))
                .route("/documenti", web::post().to(accept))
                .route("/caricamenti/{kind}", web::post().to(upload))
                .route("/invia", web::post().to(submit))
                .route("/metodo", web::post().to(choose_method))
                .route("/attiva", web::post().to(activate)),
        );
    }
}

// ---------------------------------------------------------------- language

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    It,
    En,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Self::It => "it",
            Self::En => "en",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "it" => Some(Self::It),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    fn other(self) -> Self {
        match self {
            Self::It => Self::En,
            Self::En => Self::It,
        }
    }
}

/// The text of `key` in `lang` (empty when there is none).
fn tr(lang: Lang, key: &str) -> &'static str {
    TEXT.iter().find(|(k, _, _)| *k == key).map(|(_, it, en)| if lang == Lang::It { *it } else { *en }).unwrap_or("")
}

fn texts(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    TEXT.iter().map(|(k, it, en)| (*k, if lang == Lang::It { *it } else { *en })).collect()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PageQuery {
    lang: Option<String>,
    esito: Option<String>,
}

fn page_query(req: &HttpRequest) -> PageQuery {
    web::Query::<PageQuery>::from_query(req.query_string()).map(web::Query::into_inner).unwrap_or_default()
}

/// The language of a request and the page the language switch leads to.
struct View {
    lang: Lang,
    /// `?lang=` named a language the cookie does not hold yet.
    remember: bool,
    path: &'static str,
}

impl View {
    fn of(req: &HttpRequest, path: &'static str) -> Self {
        let from_cookie = cookie(req, LANG_COOKIE).and_then(Lang::parse);
        match page_query(req).lang.as_deref().and_then(Lang::parse) {
            Some(lang) => Self { lang, remember: from_cookie != Some(lang), path },
            None => Self { lang: from_cookie.unwrap_or(Lang::It), remember: false, path },
        }
    }

    fn t(&self, key: &str) -> &'static str {
        tr(self.lang, key)
    }

    fn href(&self, path: &str) -> String {
        format!("{path}?lang={}", self.lang.code())
    }
}

// ----------------------------------------------------------------- cookies

/// The value of a cookie the browser sent.
fn cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// Characters of request ids and tokens (UUIDs, URL-safe base64): safe in
/// a cookie value.
fn cookie_safe(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whom the cookie names: never logged, never shown.
struct Applicant {
    id: String,
    token: String,
}

/// Why a page or a step is refused before anything else.
enum Refusal {
    /// No applicant cookie.
    Missing,
    /// A cookie that names no request of this applicant.
    Invalid,
    /// A POST from another origin.
    Foreign,
}

/// The applicant of a step: a POST from this origin with the cookie.
fn gate(req: &HttpRequest) -> Result<Applicant, Refusal> {
    if !same_origin(req) {
        return Err(Refusal::Foreign);
    }
    applicant(req)
}

fn applicant(req: &HttpRequest) -> Result<Applicant, Refusal> {
    let value = cookie(req, APPLICANT_COOKIE).filter(|v| !v.is_empty()).ok_or(Refusal::Missing)?;
    let (id, token) = value.split_once('.').ok_or(Refusal::Invalid)?;
    if !cookie_safe(id) || !cookie_safe(token) {
        return Err(Refusal::Invalid);
    }
    Ok(Applicant { id: id.to_owned(), token: token.to_owned() })
}

// ------------------------------------------------------------------ origin

/// A POST is refused when its `Origin` — or, without one, its `Referer` —
/// names a host other than the one it was sent to. Without either header
/// the SameSite=Strict cookie is the protection.
fn same_origin(req: &HttpRequest) -> bool {
    let info = req.connection_info();
    let host = info.host();
    let matches = |value: &str| {
        let Ok(from) = url::Url::parse(value) else { return false };
        let Ok(own) = url::Url::parse(&format!("{}://{host}", from.scheme())) else { return false };
        from.host_str().is_some()
            && from.host_str() == own.host_str()
            && from.port_or_known_default() == own.port_or_known_default()
    };
    let headers = req.headers();
    match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
        (Some(origin), _) => origin.to_str().is_ok_and(matches),
        (None, Some(referer)) => referer.to_str().is_ok_and(matches),
        (None, None) => true,
    }
}

// ------------------------------------------------------------------- pages

struct Ctx {
    registrar: Arc<Registrar>,
    identification: Arc<Identification>,
    env: Environment<'static>,
    secure_cookies: bool,
}

#[derive(Serialize)]
struct ErrorLink {
    /// The id of the field the error is about.
    target: Option<String>,
    message: String,
}

/// A page to answer with.
struct Screen {
    status: StatusCode,
    template: &'static str,
    title: &'static str,
    errors: Vec<ErrorLink>,
    flash: Option<&'static str>,
    data: Value,
    cookies: Vec<String>,
}

impl Screen {
    fn new(status: StatusCode, template: &'static str, title: &'static str, data: Value) -> Self {
        Self { status, template, title, errors: Vec::new(), flash: None, data, cookies: Vec::new() }
    }
}

/// What a failed step shows, and next to which field.
struct StepError {
    target: String,
    message: String,
}

/// A link to one of these pages, built from the constants here and a
/// language code: shown as is (slashes unescaped).
fn internal_url(path: String) -> Value {
    Value::from_safe_string(path)
}

fn security_headers(b: &mut HttpResponseBuilder) {
    b.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "same-origin"));
}

impl Ctx {
    fn new(registrar: Arc<Registrar>, identification: Arc<Identification>, secure_cookies: bool) -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "registration page template not loaded");
            }
        }
        Self { registrar, identification, env, secure_cookies }
    }

    fn secure(&self) -> &'static str {
        if self.secure_cookies { "; Secure" } else { "" }
    }

    fn applicant_cookie(&self, request_id: &str, token: &str) -> String {
        format!(
            "{APPLICANT_COOKIE}={request_id}.{token}; Path={BASE}; Max-Age={}; HttpOnly; SameSite=Strict{}",
            APPLICANT_COOKIE_DAYS * 86_400,
            self.secure()
        )
    }

    fn clear_applicant_cookie(&self) -> String {
        format!("{APPLICANT_COOKIE}=; Path={BASE}; Max-Age=0; HttpOnly; SameSite=Strict{}", self.secure())
    }

    fn lang_cookie(&self, lang: Lang) -> String {
        format!("{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax{}", lang.code(), self.secure())
    }

    fn html(&self, view: &View, screen: &Screen) -> Result<String, minijinja::Error> {
        let t = texts(view.lang);
        let body = self.env.get_template(screen.template)?.render(context! {
            t => &t,
            lang => view.lang.code(),
            ..screen.data.clone()
        })?;
        let other = view.lang.other();
        self.env.get_template("layout.html")?.render(context! {
            t => &t,
            lang => view.lang.code(),
            other_lang => other.code(),
            switch_href => internal_url(format!("{}?lang={}", view.path, other.code())),
            title => view.t(screen.title),
            errors => &screen.errors,
            flash => screen.flash.map(|k| view.t(k)),
            body => Value::from_safe_string(body),
        })
    }

    fn respond(&self, view: &View, screen: Screen) -> HttpResponse {
        match self.html(view, &screen) {
            Ok(html) => {
                let mut b = HttpResponse::build(screen.status);
                security_headers(&mut b);
                for c in &screen.cookies {
                    b.append_header((header::SET_COOKIE, c.as_str()));
                }
                if view.remember {
                    b.append_header((header::SET_COOKIE, self.lang_cookie(view.lang)));
                }
                b.content_type("text/html; charset=utf-8").body(html)
            }
            Err(e) => {
                tracing::error!(template = screen.template, error = %e, "registration page not rendered");
                let mut b = HttpResponse::InternalServerError();
                security_headers(&mut b);
                b.content_type("text/plain; charset=utf-8").body("Errore interno. / Internal error.")
            }
        }
    }

    /// 303 to the status page with a flash message.
    fn see_other(&self, view: &View, flash: &str) -> HttpResponse {
        let mut b = HttpResponse::SeeOther();
        security_headers(&mut b);
        b.insert_header((header::LOCATION, format!("{}&esito={flash}", view.href(STATUS_PATH))));
        if view.remember {
            b.append_header((header::SET_COOKIE, self.lang_cookie(view.lang)));
        }
        b.finish()
    }

    fn message(
        &self,
        view: &View,
        status: StatusCode,
        title: &'static str,
        text: &str,
        links: Vec<(String, &'static str)>,
    ) -> Screen {
        let links: Vec<Value> =
            links.into_iter().map(|(href, k)| context! { href => internal_url(href), text => view.t(k) }).collect();
        let data = context! { heading => view.t(title), text => text, links };
        Screen::new(status, "message.html", title, data)
    }

    fn refuse(&self, view: &View, why: Refusal) -> HttpResponse {
        let link = vec![(view.href(BASE), "go_to_form")];
        let screen = match why {
            Refusal::Missing => {
                // A link from elsewhere (an e-mail) arrives without the
                // SameSite=Strict cookie; a click from here carries it.
                let link = vec![(view.href(STATUS_PATH), "go_to_status"), (view.href(BASE), "go_to_form")];
                self.message(view, StatusCode::UNAUTHORIZED, "no_request_title", view.t("no_request_text"), link)
            }
            Refusal::Invalid => {
                let mut s = self.message(
                    view,
                    StatusCode::FORBIDDEN,
                    "invalid_request_title",
                    view.t("invalid_request_text"),
                    link,
                );
                s.cookies.push(self.clear_applicant_cookie());
                s
            }
            Refusal::Foreign => {
                tracing::info!("registration page: a POST from another origin refused");
                self.message(view, StatusCode::FORBIDDEN, "foreign_title", view.t("foreign_text"), link)
            }
        };
        self.respond(view, screen)
    }

    fn bad_request(&self, view: &View) -> HttpResponse {
        let link = vec![(view.href(view.path), "go_back")];
        self.respond(
            view,
            self.message(view, StatusCode::BAD_REQUEST, "bad_request_title", view.t("bad_request_text"), link),
        )
    }

    fn not_found(&self, view: &View) -> HttpResponse {
        let link = vec![(view.href(STATUS_PATH), "go_to_status")];
        self.respond(view, self.message(view, StatusCode::NOT_FOUND, "not_found_title", view.t("not_found_text"), link))
    }

    fn failure(&self, view: &View, e: &ServiceError) -> HttpResponse {
        log_failure(e);
        let link = vec![(view.href(BASE), "go_to_form")];
        let text = error_text(view.lang, e);
        self.respond(view, self.message(view, status_of(e), "error_title", &text, link))
    }

    /// The application form, with what was typed and its problems.
    fn form(
        &self,
        view: &View,
        req: &HttpRequest,
        values: &Values,
        problems: &[Problem],
        general: Option<String>,
        status: StatusCode,
    ) -> HttpResponse {
        let (groups, mut errors) = form_groups(view.lang, values, problems);
        if let Some(message) = general {
            errors.insert(0, ErrorLink { target: None, message });
        }
        let data = context! { groups, has_request => applicant(req).is_ok() };
        let mut screen = Screen::new(status, "form.html", "form_title", data);
        screen.errors = errors;
        self.respond(view, screen)
    }

    /// The status page; a step's error next to its field.
    async fn status_page(&self, view: &View, a: &Applicant, status: StatusCode, outcome: Outcome<'_>) -> HttpResponse {
        let p = match self.registrar.progress(&a.id, &a.token).await {
            Ok(p) => p,
            Err(e) if e.kind == ErrorKind::Unauthenticated => return self.refuse(view, Refusal::Invalid),
            Err(e) => return self.failure(view, &e),
        };
        let now = self.registrar.clock().now();
        let (data, errors) = status_data(view.lang, &p, &outcome, now);
        let mut screen = Screen::new(status, "status.html", "status_title", data);
        screen.errors = errors;
        screen.flash = outcome.flash;
        self.respond(view, screen)
    }

    /// After a step: 303 to the status with `flash`, or the status again
    /// with the error next to `target`.
    async fn finish(
        &self,
        view: &View,
        a: &Applicant,
        result: Result<(), ServiceError>,
        target: &str,
        flash: &str,
        method: Option<&MethodForm>,
    ) -> HttpResponse {
        match result {
            Ok(()) => self.see_other(view, flash),
            Err(e) if e.kind == ErrorKind::Unauthenticated => self.refuse(view, Refusal::Invalid),
            Err(e) => {
                log_failure(&e);
                let error = StepError { target: target_for(&e, target), message: error_text(view.lang, &e) };
                let outcome = Outcome { error: Some(error), method, ..Outcome::default() };
                self.status_page(view, a, status_of(&e), outcome).await
            }
        }
    }
}

fn log_failure(e: &ServiceError) {
    match e.kind {
        ErrorKind::Internal | ErrorKind::Unavailable => {
            tracing::error!(code = %e.code, message = %e.message, "registration page: step failed");
        }
        _ => tracing::debug!(code = %e.code, "registration page: step refused"),
    }
}

fn status_of(e: &ServiceError) -> StatusCode {
    match e.kind {
        ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
        kind => spid_server::errors::http_status(kind),
    }
}

/// The field an error is about, when the code tells better than the step.
fn target_for(e: &ServiceError, default: &str) -> String {
    if e.code.starts_with("appointment.") {
        "appointment".to_owned()
    } else if e.code.starts_with("identification.") {
        "method".to_owned()
    } else {
        default.to_owned()
    }
}

/// An error in the applicant's language: ours for the known codes, the
/// domain's (English) message otherwise; never the details of a fault.
fn error_text(lang: Lang, e: &ServiceError) -> String {
    let known = tr(lang, &format!("err.{}", e.code));
    if !known.is_empty() {
        return known.to_owned();
    }
    match e.kind {
        ErrorKind::Internal | ErrorKind::Unavailable | ErrorKind::RateLimited => tr(lang, "err.unavailable").to_owned(),
        _ if lang == Lang::En => e.message.clone(),
        _ => format!("{} ({})", tr(lang, "err.generic"), e.code),
    }
}

// ------------------------------------------------------- application form

/// What the applicant typed, by field name (`document.expires_on`).
struct Values(HashMap<String, String>);

impl Values {
    fn new(pairs: Vec<(String, String)>) -> Self {
        let mut map = HashMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Self(map)
    }

    fn empty() -> Self {
        Self(HashMap::new())
    }

    fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }

    fn address(&self, prefix: &str) -> Address {
        let f = |name: &str| self.get(&format!("{prefix}.{name}")).to_owned();
        Address {
            street: f("street"),
            postal_code: f("postal_code"),
            municipality: f("municipality"),
            province: f("province"),
            country: f("country"),
        }
    }

    /// The application, or the problem with its identity type (then the
    /// rest is checked as a private identity).
    fn application(&self) -> (Application, Option<Problem>) {
        let identity_type = IdentityType::parse(self.get("identity_type"));
        let g = |name: &str| self.get(name).to_owned();
        let pec = self.get("pec").trim();
        let a = Application {
            identity_type: identity_type.unwrap_or(IdentityType::Private),
            email: g("email"),
            password: g("password"),
            surname: g("surname"),
            given_name: g("given_name"),
            sex: g("sex"),
            birth_date: g("birth_date"),
            birthplace: g("birthplace"),
            codice_fiscale: g("codice_fiscale"),
            document: IdentityDocument {
                kind: g("document.kind"),
                number: g("document.number"),
                issuer: g("document.issuer"),
                issued_on: g("document.issued_on"),
                expires_on: g("document.expires_on"),
            },
            health_card: HealthCard { number: g("health_card.number"), expires_on: g("health_card.expires_on") },
            domicile: self.address("domicile"),
            mobile: g("mobile"),
            pec: (!pec.is_empty()).then(|| pec.to_owned()),
            organisation: identity_type.filter(|t| t.is_professional()).map(|_| Organisation {
                company_name: g("organisation.company_name"),
                legal_seat: self.address("organisation.legal_seat"),
                vat_number: g("organisation.vat_number"),
                codice_fiscale: g("organisation.codice_fiscale"),
                representation_proof: g("organisation.representation_proof"),
            }),
        };
        let problem = identity_type.is_none().then(|| {
            Problem::new(
                "identity_type",
                "identity_type.invalid",
                tr(Lang::It, "problem.identity_type"),
                tr(Lang::En, "problem.identity_type"),
            )
        });
        (a, problem)
    }
}

#[derive(Clone, Copy)]
enum Choices {
    IdentityType,
    Sex,
    DocumentKind,
    RepresentationProof,
}

impl Choices {
    /// The values and the prefix of their labels' keys.
    fn values(self) -> (Vec<&'static str>, &'static str) {
        match self {
            Self::IdentityType => (IdentityType::ALL.iter().map(|t| t.as_str()).collect(), "identity_type"),
            Self::Sex => (vec!["M", "F"], "sex"),
            Self::DocumentKind => (DOCUMENT_KINDS.to_vec(), "document_kind"),
            Self::RepresentationProof => {
                (vec!["chamber_of_commerce_extract", "power_of_attorney"], "representation_proof")
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Input {
    Text,
    Email,
    Password,
    Date,
    Tel,
    Choice(Choices),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Optional,
    /// Required for professional identities only.
    Professional,
}

struct FieldDef {
    name: &'static str,
    input: Input,
    autocomplete: &'static str,
    need: Need,
}

const fn fd(name: &'static str, input: Input, autocomplete: &'static str, need: Need) -> FieldDef {
    FieldDef { name, input, autocomplete, need }
}

use Input::{Choice, Date, Email, Password, Tel, Text};
use Need::{Optional, Professional, Required};

/// The form, fieldset by fieldset, in the order of the Application.
const GROUPS: &[(&str, &[FieldDef])] = &[
    ("identity", &[fd("identity_type", Choice(Choices::IdentityType), "", Required)]),
    ("access", &[fd("email", Email, "email", Required), fd("password", Password, "new-password", Required)]),
    (
        "person",
        &[
            fd("surname", Text, "family-name", Required),
            fd("given_name", Text, "given-name", Required),
            fd("sex", Choice(Choices::Sex), "sex", Required),
            fd("birth_date", Date, "bday", Required),
            fd("birthplace", Text, "", Required),
            fd("codice_fiscale", Text, "", Required),
        ],
    ),
    (
        "document",
        &[
            fd("document.kind", Choice(Choices::DocumentKind), "", Required),
            fd("document.number", Text, "", Required),
            fd("document.issuer", Text, "", Required),
            fd("document.issued_on", Date, "", Required),
            fd("document.expires_on", Date, "", Required),
        ],
    ),
    ("health_card", &[fd("health_card.number", Text, "", Required), fd("health_card.expires_on", Date, "", Required)]),
    (
        "domicile",
        &[
            fd("domicile.street", Text, "address-line1", Required),
            fd("domicile.postal_code", Text, "postal-code", Required),
            fd("domicile.municipality", Text, "address-level2", Required),
            fd("domicile.province", Text, "address-level1", Required),
            fd("domicile.country", Text, "country", Required),
        ],
    ),
    ("contacts", &[fd("mobile", Tel, "tel", Required), fd("pec", Email, "", Optional)]),
    (
        "organisation",
        &[
            fd("organisation.company_name", Text, "organization", Professional),
            fd("organisation.legal_seat.street", Text, "", Professional),
            fd("organisation.legal_seat.postal_code", Text, "", Professional),
            fd("organisation.legal_seat.municipality", Text, "", Professional),
            fd("organisation.legal_seat.province", Text, "", Professional),
            fd("organisation.legal_seat.country", Text, "", Professional),
            fd("organisation.vat_number", Text, "", Professional),
            fd("organisation.codice_fiscale", Text, "", Professional),
            fd("organisation.representation_proof", Choice(Choices::RepresentationProof), "", Professional),
        ],
    ),
];

/// What the form shows before anything was typed.
const DEFAULTS: [(&str, &str); 3] =
    [("identity_type", "private"), ("domicile.country", "IT"), ("organisation.legal_seat.country", "IT")];

fn field_id(name: &str) -> String {
    format!("f-{}", name.replace('.', "-"))
}

/// The form field a problem is about: the field itself, or the first of
/// the group it names (`organisation`).
fn problem_field(field: &str) -> Option<&'static str> {
    let fields = || GROUPS.iter().flat_map(|(_, fields)| fields.iter());
    fields()
        .find(|f| f.name == field)
        .or_else(|| fields().find(|f| f.name.starts_with(&format!("{field}."))))
        .map(|f| f.name)
}

#[derive(Serialize)]
struct OptionView {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Serialize)]
struct FieldView {
    name: &'static str,
    id: String,
    label: &'static str,
    input_type: &'static str,
    value: String,
    options: Vec<OptionView>,
    autocomplete: &'static str,
    required: bool,
    optional: bool,
    hint: Option<&'static str>,
    errors: Vec<String>,
    describedby: String,
}

#[derive(Serialize)]
struct GroupView {
    id: String,
    legend: &'static str,
    note: Option<&'static str>,
    fields: Vec<FieldView>,
}

fn non_empty(s: &'static str) -> Option<&'static str> {
    (!s.is_empty()).then_some(s)
}

/// The form's fieldsets with the values and the problems, and the error
/// summary linking to the fields.
fn form_groups(lang: Lang, values: &Values, problems: &[Problem]) -> (Vec<GroupView>, Vec<ErrorLink>) {
    let message = |p: &Problem| if lang == Lang::It { p.message_it.clone() } else { p.message_en.clone() };
    let mut summary = Vec::new();
    let mut by_field: HashMap<&'static str, Vec<String>> = HashMap::new();
    for p in problems {
        let field = problem_field(&p.field);
        summary.push(ErrorLink { target: field.map(field_id), message: message(p) });
        if let Some(f) = field {
            by_field.entry(f).or_default().push(message(p));
        }
    }
    let groups = GROUPS
        .iter()
        .map(|(group, fields)| GroupView {
            id: format!("g-{group}"),
            legend: tr(lang, &format!("group.{group}")),
            note: non_empty(tr(lang, &format!("group_note.{group}"))),
            fields: fields
                .iter()
                .map(|f| field_view(lang, f, values, by_field.remove(f.name).unwrap_or_default()))
                .collect(),
        })
        .collect();
    (groups, summary)
}

fn field_view(lang: Lang, f: &FieldDef, values: &Values, errors: Vec<String>) -> FieldView {
    let id = field_id(f.name);
    let value = match f.input {
        // Never sent back.
        Input::Password => String::new(),
        _ if values.0.is_empty() => {
            DEFAULTS.iter().find(|(n, _)| *n == f.name).map(|(_, v)| (*v).to_owned()).unwrap_or_default()
        }
        _ => values.get(f.name).to_owned(),
    };
    let hint = non_empty(tr(lang, &format!("hint.{}", f.name)))
        .or_else(|| matches!(f.input, Input::Date).then(|| tr(lang, "hint.date")));
    let mut describedby = Vec::new();
    if hint.is_some() {
        describedby.push(format!("{id}-hint"));
    }
    if !errors.is_empty() {
        describedby.push(format!("{id}-error"));
    }
    let (input_type, options) = match f.input {
        Input::Text => ("text", Vec::new()),
        Input::Email => ("email", Vec::new()),
        Input::Password => ("password", Vec::new()),
        Input::Date => ("date", Vec::new()),
        Input::Tel => ("tel", Vec::new()),
        Input::Choice(c) => {
            let (choices, prefix) = c.values();
            let mut options = vec![OptionView { value: "", label: tr(lang, "choose"), selected: value.is_empty() }];
            options.extend(choices.into_iter().map(|v| OptionView {
                value: v,
                label: tr(lang, &format!("{prefix}.{v}")),
                selected: v == value,
            }));
            ("select", options)
        }
    };
    FieldView {
        name: f.name,
        label: tr(lang, &format!("field.{}", f.name)),
        input_type,
        value,
        options,
        autocomplete: f.autocomplete,
        required: f.need == Need::Required,
        optional: f.need == Need::Optional,
        hint,
        errors,
        describedby: describedby.join(" "),
        id,
    }
}

// ------------------------------------------------------------ status page

/// What the status page shows besides the progress.
#[derive(Default)]
struct Outcome<'a> {
    flash: Option<&'static str>,
    error: Option<StepError>,
    /// The method form as sent, shown again with its error.
    method: Option<&'a MethodForm>,
    /// Shown once, right after the activation.
    spid_code: Option<String>,
}

#[derive(Serialize)]
struct ContactView {
    kind: String,
    label: &'static str,
    value: String,
    verified: bool,
    code_id: String,
    error: Option<String>,
    describedby: String,
}

#[derive(Serialize)]
struct DocumentView {
    document: String,
    version: String,
    label: &'static str,
    id: String,
}

#[derive(Serialize)]
struct UploadView {
    kind: &'static str,
    label: &'static str,
    id: String,
    error: Option<String>,
    describedby: String,
}

#[derive(Serialize)]
struct MethodView {
    value: &'static str,
    label: &'static str,
    id: String,
    checked: bool,
}

/// The methods offered here: those that need only an appointment.
const PAGE_METHODS: [Method; 2] = [Method::Counter, Method::Video];

/// The flash messages a redirect may name (`?esito=`), with their text.
const FLASHES: [(&str, &str); 6] = [
    ("code_sent", "flash.code_sent"),
    ("contact_verified", "flash.contact_verified"),
    ("documents_accepted", "flash.documents_accepted"),
    ("uploaded", "flash.uploaded"),
    ("submitted", "flash.submitted"),
    ("method_chosen", "flash.method_chosen"),
];

fn datetime_local(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M").to_string()
}

fn status_data(lang: Lang, p: &Progress, o: &Outcome<'_>, now: DateTime<Utc>) -> (Value, Vec<ErrorLink>) {
    let error_for = |target: &str| o.error.as_ref().filter(|e| e.target == target).map(|e| e.message.clone());
    let described = |id: &str, error: &Option<String>| {
        if error.is_some() { format!("{id}-hint {id}-error") } else { format!("{id}-hint") }
    };
    let contacts: Vec<ContactView> = p
        .contacts
        .iter()
        .map(|c| {
            let code_id = format!("code-{}", c.kind);
            let error = error_for(&code_id);
            ContactView {
                kind: c.kind.clone(),
                label: tr(lang, &format!("contact.{}", c.kind)),
                value: c.value.clone(),
                verified: c.verified,
                describedby: described(&code_id, &error),
                code_id,
                error,
            }
        })
        .collect();
    let documents: Vec<DocumentView> = p
        .documents_to_accept
        .iter()
        .map(|(d, v)| DocumentView {
            document: d.clone(),
            version: v.clone(),
            label: tr(lang, &format!("doc.{d}")),
            id: format!("doc-{d}"),
        })
        .collect();
    let uploads: Vec<UploadView> = p
        .uploads_missing
        .iter()
        .map(|kind| {
            let id = format!("file-{kind}");
            let error = error_for(&id);
            UploadView {
                kind,
                label: tr(lang, &format!("upload.{kind}")),
                describedby: described(&id, &error),
                id,
                error,
            }
        })
        .collect();
    let can_submit = contacts.iter().all(|c| c.verified) && documents.is_empty() && uploads.is_empty();
    let chosen = o.method.map(|m| m.method.as_str()).unwrap_or("");
    let methods: Vec<MethodView> = PAGE_METHODS
        .iter()
        .map(|m| MethodView {
            value: m.as_str(),
            label: tr(lang, &format!("method.{}", m.as_str())),
            id: format!("method-{}", m.as_str()),
            checked: m.as_str() == chosen,
        })
        .collect();
    let local_now = utc_to_rome(now);
    let data = context! {
        request_id => &p.request_id,
        state => p.state,
        state_label => tr(lang, &format!("state.{}", p.state)),
        state_help => tr(lang, &format!("state_help.{}", p.state)),
        spid_code => &o.spid_code,
        show_draft => p.state == "draft",
        contacts,
        documents,
        documents_error => error_for("documents"),
        uploads,
        can_submit,
        submit_error => error_for("submit"),
        show_method => p.state == "submitted",
        methods,
        method_error => error_for("method"),
        appointment_error => error_for("appointment"),
        appointment_value => o.method.map(|m| m.appointment.clone()).unwrap_or_default(),
        appointment_min => local_now.map(datetime_local).unwrap_or_default(),
        appointment_max => local_now
            .and_then(|n| n.checked_add_signed(Duration::days(APPOINTMENT_DAYS)))
            .map(datetime_local)
            .unwrap_or_default(),
        show_activate => p.state == "awaiting_acceptance",
        activate_error => error_for("activate"),
        show_new_request => matches!(p.state, "denied" | "lapsed"),
    };
    let errors =
        o.error.iter().map(|e| ErrorLink { target: Some(e.target.clone()), message: e.message.clone() }).collect();
    (data, errors)
}

// ---------------------------------------------------------- Italian time

fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    let next =
        if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) };
    let last = next?.pred_opt()?;
    last.checked_sub_days(chrono::Days::new(u64::from(last.weekday().num_days_from_sunday())))
}

/// Italy's offset from UTC at `at`: CEST (+2) from the last Sunday of
/// March to the last Sunday of October, 01:00 UTC; CET (+1) otherwise.
fn rome_offset(at: DateTime<Utc>) -> Duration {
    let change = |month| last_sunday(at.year(), month).and_then(|d| d.and_hms_opt(1, 0, 0)).map(|t| t.and_utc());
    match (change(3), change(10)) {
        (Some(start), Some(end)) if at >= start && at < end => Duration::hours(2),
        _ => Duration::hours(1),
    }
}

/// A time on Italian clocks, in UTC (the earlier one when the clocks go
/// back; a time skipped when they go forward counts as winter time).
fn rome_to_utc(local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let summer = local.checked_sub_signed(Duration::hours(2))?.and_utc();
    if rome_offset(summer) == Duration::hours(2) {
        return Some(summer);
    }
    Some(local.checked_sub_signed(Duration::hours(1))?.and_utc())
}

fn utc_to_rome(at: DateTime<Utc>) -> Option<NaiveDateTime> {
    at.naive_utc().checked_add_signed(rome_offset(at))
}

/// An appointment as the browser sends it (`2026-12-03T10:30`, Italian
/// time), or RFC 3339.
fn parse_appointment(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    rome_to_utc(local)
}

// ---------------------------------------------------------------- uploads

/// The upload form: one file in the field `file`, at most [`MAX_UPLOAD`]
/// (10 MiB).
#[derive(MultipartForm)]
#[multipart(deny_unknown_fields, duplicate_field = "deny")]
struct UploadForm {
    #[multipart(limit = "10 MiB")]
    file: FilePart,
}

fn too_large() -> ServiceError {
    ServiceError::invalid("evidence.too_large", "at most 10 MiB per file")
}

/// The file of an upload form, refused as soon as it passes
/// [`MAX_UPLOAD`]: a larger declared length is refused before reading.
async fn read_upload(req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes, ServiceError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD + MULTIPART_OVERHEAD) {
        return Err(too_large());
    }
    let mut payload = payload.into_inner();
    match MultipartForm::<UploadForm>::from_request(req, &mut payload).await {
        Ok(form) if form.file.data.is_empty() => Err(ServiceError::invalid("evidence.missing", "choose a file")),
        Ok(form) => Ok(form.into_inner().file.data),
        Err(e) => Err(match e.as_error::<MultipartError>() {
            Some(MultipartError::Payload(PayloadError::Overflow)) => too_large(),
            Some(MultipartError::MissingField(_)) => ServiceError::invalid("evidence.missing", "choose a file"),
            _ => ServiceError::invalid("evidence.unreadable", "the upload could not be read"),
        }),
    }
}

// --------------------------------------------------------------- handlers

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .content_type("text/css; charset=utf-8")
        .body(STYLE)
}

async fn form_page(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let view = View::of(&req, BASE);
    ctx.form(&view, &req, &Values::empty(), &[], None, StatusCode::OK)
}

type FormPairs = Result<web::Form<Vec<(String, String)>>, actix_web::Error>;

async fn start(ctx: web::Data<Ctx>, req: HttpRequest, body: FormPairs) -> HttpResponse {
    let view = View::of(&req, BASE);
    if !same_origin(&req) {
        return ctx.refuse(&view, Refusal::Foreign);
    }
    let Ok(body) = body else { return ctx.bad_request(&view) };
    let values = Values::new(body.into_inner());
    let (application, type_problem) = values.application();
    if let Some(problem) = type_problem {
        let today = ctx.registrar.clock().now().date_naive();
        let mut problems = vec![problem];
        if let Err(more) = crate::application::check(&application, today) {
            problems.extend(more);
        }
        return ctx.form(&view, &req, &values, &problems, None, StatusCode::UNPROCESSABLE_ENTITY);
    }
    match ctx.registrar.start(&application, false).await {
        Ok(s) if cookie_safe(&s.request_id) && cookie_safe(&s.applicant_token) => {
            let cookie = ctx.applicant_cookie(&s.request_id, &s.applicant_token);
            let mut b = HttpResponse::SeeOther();
            security_headers(&mut b);
            b.insert_header((header::LOCATION, view.href(STATUS_PATH))).append_header((header::SET_COOKIE, cookie));
            if view.remember {
                b.append_header((header::SET_COOKIE, ctx.lang_cookie(view.lang)));
            }
            b.finish()
        }
        Ok(_) => ctx.failure(&view, &ServiceError::internal("applicant token not fit for a cookie")),
        Err(StartError::Invalid(problems)) => {
            ctx.form(&view, &req, &values, &problems, None, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(StartError::Failed(e)) => {
            log_failure(&e);
            ctx.form(&view, &req, &values, &[], Some(error_text(view.lang, &e)), status_of(&e))
        }
    }
}

async fn status(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let view = View::of(&req, STATUS_PATH);
    let a = match applicant(&req) {
        Ok(a) => a,
        Err(why) => return ctx.refuse(&view, why),
    };
    let flash = page_query(&req).esito.and_then(|f| FLASHES.iter().find(|(name, _)| *name == f)).map(|(_, key)| *key);
    ctx.status_page(&view, &a, StatusCode::OK, Outcome { flash, ..Outcome::default() }).await
}

async fn send_code(ctx: web::Data<Ctx>, req: HttpRequest, kind: web::Path<String>) -> HttpResponse {
    let view = View::of(&req, STATUS_PATH);
    let a = match gate(&req) {
        Ok(a) => a,
        Err(why) => return ctx.refuse(&view, why),
    };
    let Some(kind) = ContactKind::parse(&kind) else { return ctx.not_found(&view) };
    let result = ctx.registrar.send_code(&a.id, &a.token, kind).await;
    ctx.finish(&view, &a, result, &format!("code-{}", kind.as_str()), "code_sent", None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CodeForm {
    code: String,
}

async fn verify(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    kind: web::Path<String>,
    body: Result<web::Form<CodeForm>, actix_web::Error>,
) -> HttpResponse {
    let view = View::of(&req, STATUS_PATH);
    let a = match gate(&req) {
        Ok(a) => a,
        Err(why) => return ctx.refuse(&view, why),
    };
    let Some(kind) = ContactKind::parse(&kind) else { return ctx.not_found(&view) };
    let Ok(body) = body else { return ctx.bad_request(&view) };
    let code = body.code.trim();
    let result = if code.is_empty() {
        Err(ServiceError::invalid("contact.code_missing", "type the code you received"))
    } else {
        ctx.registrar.verify_contact(&a.id, &a.token, kind, code).await
    };
    ctx.finish(&view, &a, result, &format!("code-{}", kind.as_str()), "contact_verified", None).await
}

async fn accept(ctx: web::Data<Ctx>, req: HttpRequest, body: FormPairs) -> HttpResponse {
    let view = View::of(&req, STATUS_PATH);
    let a = match gate(&req) {
        Ok(a) => a,
        Err(why) => return ctx.refuse(&view, why),
    };
    let Ok(body) = body else { return ctx.bad_request(&view) };
    let accepted = body.into_inner();
    let result = if accepted.is_empty() {
        Err(ServiceError::invalid("documents.none", "tick the documents you accept"))
    } else {
        ctx.registrar.accept_documents(&a.id, &a.token, &accepted).await
    };
    ctx.finish(&view, &a, result, "documents", "documents_accepted", None).await
}

async fn upload(ctx: web::Data<Ctx>, req: HttpRequest, kind: web::Path<String>, payload: web::Payload) -> HttpResponse {
    let view = View::of(&req, STATUS_PATH);
    let a = match gate(&req) {
        Ok(a) => a,
        Err(why) => return ctx.refuse(&view, why),
    };
    let Some(kind) = Upload::parse(&kind) else { return ctx.not_found(&view) };
    let result = async {
        // Nothing is read for someone else's request.
        ctx.registrar.authorize(&a.id, &a.token).await?;
        let content = read_upload(&req, payload).await?;
        ctx.registrar.upload(&a.id, &a.token, kind, &content).await.map(|_| ())
    }
    .await;
    ctx.finish(&view, &a, result, &format!("file-{}", kind.as_str()), "uploaded", None).await
}

async fn submit(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let view = View::of(&req, STATUS_PATH);
    let a = match gate(&req) {
        Ok(a) => a,
        Err(why) => return ctx.refuse(&view, why),
    };
    let result = ctx.registrar.submit(&a.id, &a.token).await.map(|_| ());
    ctx.finish(&view, &a, result, "submit", "submitted", None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MethodForm {
    method: String,
    appointment: String,
}

async fn choose_method(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: Result<web::Form<MethodForm>, actix_web::Error>,
) -> HttpResponse {
    let view = View::of(&req, STATUS_PATH);
    let a = match gate(&req) {
        Ok(a) => a,
        Err(why) => return ctx.refuse(&view, why),
    };
    let Ok(body) = body else { return ctx.bad_request(&view) };
    let form = body.into_inner();
    let result = match (Method::parse(&form.method), form.appointment.trim()) {
        (None, _) => Err(ServiceError::invalid("identification.method_missing", "choose a method")),
        (Some(method), "") => ctx.identification.choose_method(&a.id, &a.token, method, None).await.map(|_| ()),
        (Some(method), text) => match parse_appointment(text) {
            None => Err(ServiceError::invalid("appointment.invalid", "write the date and time as 2026-12-03T10:30")),
            Some(at) => ctx.identification.choose_method(&a.id, &a.token, method, Some(at)).await.map(|_| ()),
        },
    };
    ctx.finish(&view, &a, result, "method", "method_chosen", Some(&form)).await
}

async fn activate(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let view = View::of(&req, STATUS_PATH);
    let a = match gate(&req) {
        Ok(a) => a,
        Err(why) => return ctx.refuse(&view, why),
    };
    match ctx.registrar.activate(&a.id, &a.token).await {
        Ok(emitted) => {
            let outcome = Outcome { spid_code: Some(emitted.spid_code), ..Outcome::default() };
            ctx.status_page(&view, &a, StatusCode::OK, outcome).await
        }
        Err(e) => ctx.finish(&view, &a, Err(e), "activate", "", None).await,
    }
}

// ------------------------------------------------------------------- text

/// Every visible string: key, Italian, English.
const TEXT: &[(&str, &str, &str)] = &[
    // layout
    ("site_name", "Richiesta dell'identità SPID", "SPID identity application"),
    ("skip_link", "Vai al contenuto", "Skip to content"),
    ("language_nav", "Lingua", "Language"),
    ("other_language", "English", "Italiano"),
    ("error_prefix", "Errore:", "Error:"),
    ("error_summary_title", "Correggi questi errori", "Fix these problems"),
    // the form
    ("form_title", "Richiedi la tua identità SPID", "Apply for your SPID identity"),
    (
        "form_intro",
        "Compila tutti i campi, tranne quelli indicati come facoltativi. Dopo l'invio riceverai un codice per e-mail e uno per SMS per confermare i tuoi contatti.",
        "Fill in every field except those marked optional. After sending, you will receive a code by e-mail and one by SMS to confirm your contacts.",
    ),
    (
        "existing_request",
        "Hai già una richiesta in corso in questo browser.",
        "You already have an application in progress in this browser.",
    ),
    ("existing_request_link", "Vedi lo stato della richiesta", "See the application's status"),
    ("optional", "(facoltativo)", "(optional)"),
    ("choose", "— scegli —", "— choose —"),
    ("form_submit", "Invia la richiesta", "Send the application"),
    ("problem.identity_type", "Scegli il tipo di identità.", "Choose the type of identity."),
    ("group.identity", "Tipo di identità", "Type of identity"),
    ("group.access", "Dati di accesso", "Sign-in details"),
    ("group.person", "Dati anagrafici", "Personal details"),
    ("group.document", "Documento d'identità", "Identity document"),
    ("group.health_card", "Tessera sanitaria", "Health card"),
    ("group.domicile", "Domicilio", "Address"),
    ("group.contacts", "Recapiti", "Contacts"),
    ("group.organisation", "Organizzazione", "Organisation"),
    (
        "group_note.organisation",
        "Solo per le identità per uso professionale: i dati dell'organizzazione per cui agisci.",
        "For professional identities only: the details of the organisation you act for.",
    ),
    ("field.identity_type", "Tipo di identità", "Type of identity"),
    ("field.email", "Indirizzo e-mail", "E-mail address"),
    ("field.password", "Password", "Password"),
    ("field.surname", "Cognome", "Surname"),
    ("field.given_name", "Nome", "Given name"),
    ("field.sex", "Sesso", "Sex"),
    ("field.birth_date", "Data di nascita", "Date of birth"),
    ("field.birthplace", "Luogo di nascita (codice catastale)", "Place of birth (cadastral code)"),
    ("field.codice_fiscale", "Codice fiscale", "Codice fiscale (Italian tax code)"),
    ("field.document.kind", "Tipo di documento", "Kind of document"),
    ("field.document.number", "Numero del documento", "Document number"),
    ("field.document.issuer", "Rilasciato da", "Issued by"),
    ("field.document.issued_on", "Data di rilascio", "Date of issue"),
    ("field.document.expires_on", "Data di scadenza", "Expiry date"),
    ("field.health_card.number", "Numero della tessera sanitaria", "Health card number"),
    ("field.health_card.expires_on", "Scadenza della tessera sanitaria", "Health card expiry date"),
    ("field.domicile.street", "Indirizzo", "Street and number"),
    ("field.domicile.postal_code", "CAP", "Postal code"),
    ("field.domicile.municipality", "Comune", "Municipality"),
    ("field.domicile.province", "Provincia", "Province"),
    ("field.domicile.country", "Stato", "Country"),
    ("field.mobile", "Numero di cellulare", "Mobile number"),
    ("field.pec", "Indirizzo PEC", "PEC (certified e-mail) address"),
    ("field.organisation.company_name", "Ragione sociale", "Company name"),
    ("field.organisation.legal_seat.street", "Sede legale: indirizzo", "Registered office: street and number"),
    ("field.organisation.legal_seat.postal_code", "Sede legale: CAP", "Registered office: postal code"),
    ("field.organisation.legal_seat.municipality", "Sede legale: comune", "Registered office: municipality"),
    ("field.organisation.legal_seat.province", "Sede legale: provincia", "Registered office: province"),
    ("field.organisation.legal_seat.country", "Sede legale: stato", "Registered office: country"),
    ("field.organisation.vat_number", "Partita IVA", "VAT number"),
    ("field.organisation.codice_fiscale", "Codice fiscale dell'organizzazione", "The organisation's codice fiscale"),
    (
        "field.organisation.representation_proof",
        "Prova dei poteri di rappresentanza",
        "Proof of powers of representation",
    ),
    ("hint.email", "Sarà anche il tuo nome utente.", "It will also be your username."),
    (
        "hint.password",
        "Da 8 a 16 caratteri, con lettere minuscole e maiuscole, almeno una cifra e un carattere speciale; nessun carattere ripetuto tre volte di seguito e nessun tuo dato personale.",
        "8 to 16 characters, with lower and upper case letters, at least one digit and one special character; no character three times in a row and none of your personal data.",
    ),
    (
        "hint.birthplace",
        "Il codice del comune o dello stato estero di nascita, ad esempio H501 per Roma: è nel tuo codice fiscale, dal dodicesimo al quindicesimo carattere.",
        "The code of the municipality or foreign state of birth, e.g. H501 for Rome: it is in your codice fiscale, characters twelve to fifteen.",
    ),
    ("hint.codice_fiscale", "16 caratteri, come sulla tessera sanitaria.", "16 characters, as on the health card."),
    (
        "hint.document.issuer",
        "Ad esempio: Comune di Roma, Questura di Milano.",
        "For example: Comune di Roma, Questura di Milano.",
    ),
    ("hint.health_card.number", "Le 20 cifre sul retro della tessera.", "The 20 digits on the back of the card."),
    (
        "hint.domicile.province",
        "La sigla, ad esempio RM; EE se abiti all'estero.",
        "The abbreviation, e.g. RM; EE if you live abroad.",
    ),
    ("hint.domicile.country", "Il codice di due lettere, ad esempio IT.", "The two-letter code, e.g. IT."),
    (
        "hint.mobile",
        "Con il prefisso internazionale, ad esempio +393471234567.",
        "With the country code, e.g. +393471234567.",
    ),
    (
        "hint.pec",
        "Se ne hai una, riceverai anche lì un codice di conferma.",
        "If you have one, a confirmation code will be sent there too.",
    ),
    (
        "hint.organisation.legal_seat.province",
        "La sigla, ad esempio MI; EE all'estero.",
        "The abbreviation, e.g. MI; EE abroad.",
    ),
    (
        "hint.organisation.legal_seat.country",
        "Il codice di due lettere, ad esempio IT.",
        "The two-letter code, e.g. IT.",
    ),
    ("hint.organisation.vat_number", "11 cifre.", "11 digits."),
    (
        "hint.organisation.codice_fiscale",
        "11 cifre (di solito la partita IVA), o 16 caratteri per una ditta individuale.",
        "11 digits (usually the VAT number), or 16 characters for a sole trader.",
    ),
    (
        "hint.organisation.representation_proof",
        "Dovrai caricarne la scansione dopo l'invio.",
        "You will upload its scan after sending the application.",
    ),
    ("hint.date", "Nella forma aaaa-mm-gg, ad esempio 1980-02-01.", "As yyyy-mm-dd, e.g. 1980-02-01."),
    ("identity_type.private", "Per uso personale", "For personal use"),
    (
        "identity_type.professional_natural",
        "Per uso professionale, persona fisica",
        "For professional use, natural person",
    ),
    (
        "identity_type.professional_legal",
        "Per uso professionale, persona giuridica",
        "For professional use, legal person",
    ),
    ("sex.M", "Maschile", "Male"),
    ("sex.F", "Femminile", "Female"),
    ("document_kind.carta_identita", "Carta d'identità cartacea", "Paper identity card"),
    ("document_kind.carta_identita_elettronica", "Carta d'identità elettronica", "Electronic identity card"),
    ("document_kind.passaporto", "Passaporto", "Passport"),
    ("document_kind.patente", "Patente di guida", "Driving licence"),
    (
        "document_kind.tessera_riconoscimento",
        "Tessera di riconoscimento di un'amministrazione dello Stato",
        "Identification card of a State administration",
    ),
    ("representation_proof.chamber_of_commerce_extract", "Visura camerale", "Chamber of commerce extract"),
    ("representation_proof.power_of_attorney", "Procura notarile", "Power of attorney"),
    // the status page
    ("status_title", "La tua richiesta", "Your application"),
    ("request_number", "Numero della richiesta", "Application number"),
    ("state_label", "Stato", "State"),
    ("state.draft", "Da completare", "To be completed"),
    ("state.submitted", "Inviata: scegli come farti identificare", "Sent: choose how to be identified"),
    ("state.awaiting_identification", "In attesa di identificazione", "Awaiting identification"),
    ("state.identified", "Identificazione registrata: controlli in corso", "Identified: checks in progress"),
    ("state.verified", "Controlli conclusi", "Checks completed"),
    ("state.awaiting_acceptance", "In attesa della tua accettazione", "Awaiting your acceptance"),
    ("state.active", "Identità attiva", "Identity active"),
    ("state.denied", "Respinta", "Denied"),
    ("state.lapsed", "Scaduta", "Lapsed"),
    (
        "state_help.draft",
        "Conferma i tuoi contatti con i codici ricevuti, accetta i documenti e carica le scansioni richieste; poi invia la richiesta.",
        "Confirm your contacts with the codes you received, accept the documents and upload the scans asked for; then send the application.",
    ),
    ("state_help.submitted", "Scegli come vuoi essere identificato.", "Choose how you want to be identified."),
    (
        "state_help.awaiting_identification",
        "Un operatore confermerà l'appuntamento. Presentati con il documento d'identità indicato nella richiesta e con la tessera sanitaria.",
        "An operator will confirm the appointment. Bring the identity document given in the application and your health card.",
    ),
    (
        "state_help.identified",
        "Stiamo controllando i tuoi dati presso le fonti ufficiali. Ti scriveremo per e-mail.",
        "We are checking your data with the official sources. We will write to you by e-mail.",
    ),
    (
        "state_help.verified",
        "I controlli sono conclusi: a breve potrai accettare le condizioni finali e attivare l'identità.",
        "The checks are complete: you will soon be able to accept the final terms and activate the identity.",
    ),
    ("state_help.awaiting_acceptance", "Manca solo la tua accettazione.", "Only your acceptance is missing."),
    (
        "state_help.active",
        "La tua identità SPID è attiva: accedi ai servizi online con il tuo indirizzo e-mail e la password scelta.",
        "Your SPID identity is active: sign in to online services with your e-mail address and the password you chose.",
    ),
    (
        "state_help.denied",
        "La richiesta è stata respinta. Puoi presentarne una nuova.",
        "The application was denied. You may send a new one.",
    ),
    (
        "state_help.lapsed",
        "La richiesta è scaduta perché non è stata completata in tempo. Puoi presentarne una nuova.",
        "The application lapsed because it was not completed in time. You may send a new one.",
    ),
    (
        "spid_code_text",
        "La tua identità SPID è attiva. Il suo codice identificativo è",
        "Your SPID identity is active. Its identification code is",
    ),
    ("contacts_title", "Conferma i tuoi contatti", "Confirm your contacts"),
    ("contact.email", "E-mail", "E-mail"),
    ("contact.mobile", "Cellulare", "Mobile"),
    ("contact.pec", "PEC", "PEC"),
    ("verified", "Confermato.", "Confirmed."),
    ("code_label", "Codice ricevuto su", "Code received at"),
    ("code_hint", "Il codice ha 6 cifre.", "The code has 6 digits."),
    ("verify_button", "Conferma", "Confirm"),
    ("resend_button", "Invia un nuovo codice", "Send a new code"),
    ("documents_title", "Accetta i documenti", "Accept the documents"),
    ("documents_legend", "Ho letto e accetto:", "I have read and accept:"),
    ("version", "versione", "version"),
    ("accept_button", "Accetta i documenti selezionati", "Accept the selected documents"),
    ("doc.membership_form", "Modulo di adesione", "Membership form"),
    ("doc.privacy_notice", "Informativa sul trattamento dei dati personali", "Privacy notice"),
    (
        "doc.risk_notice",
        "Informativa sui rischi dell'uso dell'identità digitale",
        "Notice on the risks of using a digital identity",
    ),
    ("doc.terms", "Condizioni generali del servizio", "Terms of service"),
    ("uploads_title", "Carica le scansioni", "Upload the scans"),
    ("upload_hint", "Un file PDF, JPEG o PNG, al massimo 10 MiB.", "A PDF, JPEG or PNG file, at most 10 MiB."),
    ("upload_button", "Carica", "Upload"),
    ("upload.document_front", "Fronte del documento d'identità", "Front of the identity document"),
    ("upload.document_back", "Retro del documento d'identità", "Back of the identity document"),
    ("upload.health_card_front", "Fronte della tessera sanitaria", "Front of the health card"),
    ("upload.health_card_back", "Retro della tessera sanitaria", "Back of the health card"),
    (
        "upload.representation_proof",
        "Prova dei poteri di rappresentanza (visura camerale o procura)",
        "Proof of powers of representation (chamber of commerce extract or power of attorney)",
    ),
    ("submit_title", "Invia la richiesta", "Send the application"),
    (
        "submit_ready",
        "È tutto pronto: invia la richiesta per passare all'identificazione.",
        "Everything is ready: send the application to go on to identification.",
    ),
    (
        "submit_missing",
        "Completa i passi qui sopra per poter inviare la richiesta.",
        "Complete the steps above to send the application.",
    ),
    ("submit_button", "Invia la richiesta per l'identificazione", "Send the application for identification"),
    ("method_title", "Scegli come farti identificare", "Choose how to be identified"),
    ("method_legend", "Modalità di identificazione", "Identification method"),
    ("method.counter", "Di persona, allo sportello", "In person, at a counter"),
    ("method.video", "In videochiamata con un operatore", "By video call with an operator"),
    (
        "appointment_label",
        "Data e ora dell'appuntamento (ora italiana)",
        "Date and time of the appointment (Italian time)",
    ),
    (
        "appointment_hint",
        "Entro i prossimi 30 giorni, nella forma aaaa-mm-ggThh:mm, ad esempio 2026-12-03T10:30.",
        "Within the next 30 days, as yyyy-mm-ddThh:mm, e.g. 2026-12-03T10:30.",
    ),
    ("method_button", "Conferma la scelta", "Confirm the choice"),
    ("activate_title", "Accetta e attiva", "Accept and activate"),
    (
        "activate_text",
        "Identificazione e controlli sono conclusi. Accetta per attivare la tua identità SPID.",
        "Identification and checks are complete. Accept to activate your SPID identity.",
    ),
    ("activate_button", "Accetta e attiva l'identità", "Accept and activate the identity"),
    ("new_request", "Presenta una nuova richiesta", "Send a new application"),
    ("flash.code_sent", "Ti abbiamo inviato un nuovo codice.", "We have sent you a new code."),
    ("flash.contact_verified", "Contatto confermato.", "Contact confirmed."),
    ("flash.documents_accepted", "Accettazione registrata.", "Acceptance recorded."),
    ("flash.uploaded", "File caricato.", "File uploaded."),
    ("flash.submitted", "Richiesta inviata.", "Application sent."),
    ("flash.method_chosen", "Scelta registrata.", "Choice recorded."),
    // messages
    ("no_request_title", "Nessuna richiesta in corso", "No application in progress"),
    (
        "no_request_text",
        "Non troviamo una richiesta associata a questo browser. Se l'hai già iniziata, segui il collegamento qui sotto dallo stesso browser con cui hai compilato il modulo; altrimenti compila il modulo di richiesta.",
        "We find no application linked to this browser. If you have started one, follow the link below in the browser you filled in the form with; otherwise fill in the application form.",
    ),
    ("invalid_request_title", "Accesso non consentito", "Access not allowed"),
    (
        "invalid_request_text",
        "Il collegamento di questo browser con la richiesta non è valido.",
        "This browser's link to the application is not valid.",
    ),
    ("foreign_title", "Richiesta rifiutata", "Request refused"),
    (
        "foreign_text",
        "L'operazione è partita da un altro sito ed è stata rifiutata. Se l'hai fatta tu, riprova da questa pagina.",
        "The operation came from another site and was refused. If it was you, try again from this page.",
    ),
    ("bad_request_title", "Richiesta non valida", "Invalid request"),
    ("bad_request_text", "Non siamo riusciti a leggere i dati inviati.", "We could not read the data sent."),
    ("not_found_title", "Pagina non trovata", "Page not found"),
    ("not_found_text", "La pagina richiesta non esiste.", "The page asked for does not exist."),
    ("error_title", "Si è verificato un problema", "Something went wrong"),
    ("go_to_form", "Vai al modulo di richiesta", "Go to the application form"),
    ("go_to_status", "Vai alla tua richiesta", "Go to your application"),
    ("go_back", "Torna indietro", "Go back"),
    // errors of the steps, by code
    ("err.generic", "Non è stato possibile completare l'operazione", "The operation could not be completed"),
    (
        "err.unavailable",
        "Il servizio non è disponibile in questo momento: riprova più tardi.",
        "The service is not available right now: try again later.",
    ),
    ("err.contact.code_missing", "Scrivi il codice che hai ricevuto.", "Type the code you received."),
    ("err.contact.code_wrong", "Il codice non è corretto.", "The code is not right."),
    (
        "err.contact.code_expired",
        "Il codice è scaduto: chiedine uno nuovo.",
        "The code has expired: ask for a new one.",
    ),
    (
        "err.contact.code_exhausted",
        "Troppi codici errati: chiedine uno nuovo.",
        "Too many wrong codes: ask for a new one.",
    ),
    (
        "err.contact.no_code",
        "Non c'è un codice valido: chiedine uno nuovo.",
        "There is no valid code: ask for a new one.",
    ),
    ("err.contact.already_verified", "Questo contatto è già confermato.", "This contact is already confirmed."),
    (
        "err.contact.none",
        "Questo contatto non fa parte della richiesta.",
        "This contact is not part of the application.",
    ),
    (
        "err.request.not_draft",
        "La richiesta è già stata inviata: questo passo non è più possibile.",
        "The application has been sent: this step is no longer possible.",
    ),
    ("err.request.closed", "La richiesta è chiusa.", "The application is closed."),
    (
        "err.request.conflict",
        "La richiesta è cambiata nel frattempo: riprova.",
        "The application changed meanwhile: try again.",
    ),
    (
        "err.request.illegal_transition",
        "Questo passo non è possibile nello stato attuale della richiesta.",
        "This step is not possible in the application's current state.",
    ),
    ("err.documents.none", "Seleziona i documenti che accetti.", "Tick the documents you accept."),
    ("err.documents.unknown", "Uno dei documenti non esiste.", "One of the documents does not exist."),
    (
        "err.documents.version_outdated",
        "Un documento è stato aggiornato: rileggilo e accettalo di nuovo.",
        "A document has been updated: read it again and accept it.",
    ),
    ("err.evidence.format", "Carica un file PDF, JPEG o PNG.", "Upload a PDF, JPEG or PNG file."),
    ("err.evidence.too_large", "Il file supera i 10 MiB.", "The file is larger than 10 MiB."),
    ("err.evidence.missing", "Scegli un file da caricare.", "Choose a file to upload."),
    (
        "err.evidence.unreadable",
        "Non siamo riusciti a leggere il file: riprova.",
        "We could not read the file: try again.",
    ),
    ("err.submit.contact_unverified", "Conferma prima tutti i tuoi contatti.", "Confirm all your contacts first."),
    ("err.submit.documents_not_accepted", "Accetta prima tutti i documenti.", "Accept all the documents first."),
    (
        "err.submit.upload_missing",
        "Carica prima tutte le scansioni richieste.",
        "Upload all the scans asked for first.",
    ),
    (
        "err.identification.method_missing",
        "Scegli una modalità di identificazione.",
        "Choose an identification method.",
    ),
    ("err.identification.method_unknown", "Scegli una delle modalità proposte.", "Choose one of the methods offered."),
    (
        "err.identification.method_not_allowed",
        "Questa modalità non è ammessa per il tuo tipo di identità.",
        "This method is not allowed for your type of identity.",
    ),
    ("err.identification.method_unavailable", "Questa modalità non è disponibile.", "This method is not available."),
    ("err.appointment.missing", "Indica data e ora dell'appuntamento.", "Give the date and time of the appointment."),
    (
        "err.appointment.invalid",
        "Scrivi data e ora nella forma 2026-12-03T10:30.",
        "Write the date and time as 2026-12-03T10:30.",
    ),
    (
        "err.appointment.out_of_range",
        "Scegli un appuntamento entro i prossimi 30 giorni.",
        "Choose an appointment within the next 30 days.",
    ),
    (
        "err.appointment.unexpected",
        "Questa modalità non richiede un appuntamento: lascia vuoto il campo.",
        "This method needs no appointment: leave the field empty.",
    ),
];

#[cfg(test)]
mod tests {
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
        let resp =
            atest::call_service(&app, get("/registrazione").insert_header(("cookie", "lang=en")).to_request()).await;
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
            html.contains(
                "action=\"/registrazione/caricamenti/document_front?lang=it\" enctype=\"multipart/form-data\""
            )
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
                atest::call_service(&app, get("/registrazione/stato").insert_header(("cookie", cookie)).to_request())
                    .await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{cookie}");
            assert!(applicant_set_cookie(&resp).unwrap().contains("Max-Age=0"));
            assert!(body_of(resp).await.contains("Accesso non consentito"));
        }
        let resp = atest::call_service(
            &app,
            post("/registrazione/invia").insert_header(("cookie", forged.as_str())).to_request(),
        )
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
        for (header, value) in [
            ("referer", "https://idp.example.it/registrazione"),
            ("origin", "https://IDP.example.it:443"),
            ("x-none", ""),
        ] {
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
}
