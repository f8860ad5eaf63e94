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

mod text;
use text::TEXT;

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
    ("layout.html", include_str!("../../templates/layout.html")),
    ("form.html", include_str!("../../templates/form.html")),
    ("status.html", include_str!("../../templates/status.html")),
    ("message.html", include_str!("../../templates/message.html")),
];
const STYLE: &str = include_str!("../../templates/style.css");

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

#[cfg(test)]
mod tests;
