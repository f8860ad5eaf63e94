//! The public HTTP face: metadata, the two SSO bindings and the login
//! pages. Handlers only translate between HTTP and [`Login`]; every page
//! carries a strict Content-Security-Policy and is never cached.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::anomaly::ErrorCode;
use crate::login::{Login, View};
use crate::metadata::{SLO, SSO_POST, SSO_REDIRECT};
use crate::pages::{Lang, Pages};
use crate::request::Incoming;

pub const SSO_COOKIE: &str = "spid_sso";
/// Form bodies larger than this are refused (a POST AuthnRequest is a few
/// KiB; the limit of the binding check is below it).
const MAX_FORM: usize = 192 * 1024;

pub struct Web {
    pub login: Arc<Login>,
    pub pages: Pages,
    /// The signed metadata, built at start.
    pub metadata: String,
    /// `Secure; SameSite=None` cookies on https origins.
    pub secure_cookies: bool,
}

pub fn routes(web_state: Arc<Web>) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    let data = web::Data::from(web_state);
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_FORM))
            .route("/metadata", web::get().to(metadata))
            .route(SSO_REDIRECT, web::get().to(sso_redirect))
            .route(SSO_REDIRECT, web::post().to(wrong_method))
            .route(SSO_POST, web::post().to(sso_post))
            .route(SSO_POST, web::get().to(wrong_method))
            .route(SLO, web::get().to(slo_redirect))
            .route(SLO, web::post().to(slo_post))
            .route("/login/password", web::post().to(password))
            .route("/login/code", web::post().to(code))
            .route("/login/consent", web::post().to(consent))
            .route("/login/show", web::post().to(show))
            .route("/static/idp.css", web::get().to(css))
            .route("/static/autosubmit.js", web::get().to(script));
    }
}

fn lang(req: &HttpRequest) -> Lang {
    let query = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "lang")
        .map(|(_, v)| v.into_owned());
    let accept = req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    Lang::pick(query.as_deref(), accept)
}

fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default()
}

fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    let raw = req.headers().get(header::COOKIE)?.to_str().ok()?;
    raw.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_owned())
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

/// Sends a view: a page, or the form that carries the Response to the SP.
fn respond(state: &Web, view: &View, lang: Lang, set_sso: Option<String>) -> HttpResponse {
    let page = match state.pages.render(view, lang) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            return HttpResponse::InternalServerError().body("internal error");
        }
    };
    let form_action = match view {
        View::Post { acs_url, .. } => {
            let origin = url::Url::parse(acs_url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
            format!("'self' {origin}")
        }
        _ => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let status = actix_web::http::StatusCode::from_u16(page.status).unwrap_or(actix_web::http::StatusCode::OK);
    let mut resp = HttpResponse::build(status);
    resp.content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if let Some(id) = set_sso {
        let attrs = if state.secure_cookies { "; Secure; SameSite=None" } else { "; SameSite=Lax" };
        resp.insert_header((header::SET_COOKIE, format!("{SSO_COOKIE}={id}; Path=/; HttpOnly{attrs}")));
    }
    resp.body(page.html)
}

fn unavailable(state: &Web, lang: Lang, e: &crate::login::LoginError) -> HttpResponse {
    tracing::error!(error = %e, "login step failed");
    let code = match e {
        crate::login::LoginError::Unavailable(_) => ErrorCode::Nr02,
        crate::login::LoginError::Internal(_) => ErrorCode::Nr03,
    };
    respond(state, &View::Error(code), lang, None)
}

async fn metadata(state: web::Data<Web>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/samlmetadata+xml").body(state.metadata.clone())
}

async fn wrong_method(state: web::Data<Web>, req: HttpRequest) -> HttpResponse {
    respond(&state, &View::Error(ErrorCode::Nr06), lang(&req), None)
}

async fn sso_redirect(state: web::Data<Web>, req: HttpRequest) -> HttpResponse {
    let incoming = Incoming::from_redirect(req.query_string());
    receive(&state, &req, incoming).await
}

async fn sso_post(state: web::Data<Web>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let incoming = std::str::from_utf8(&body).map_err(|_| ErrorCode::Nr04).and_then(Incoming::from_post);
    receive(&state, &req, incoming).await
}

async fn receive(state: &Web, req: &HttpRequest, incoming: Result<Incoming, ErrorCode>) -> HttpResponse {
    let lang = lang(req);
    let sso = cookie(req, SSO_COOKIE);
    match state.login.receive(incoming, &client_ip(req), sso.as_deref()).await {
        Ok(view) => respond(state, &view, lang, None),
        Err(e) => unavailable(state, lang, &e),
    }
}

async fn slo_redirect(state: web::Data<Web>, req: HttpRequest) -> HttpResponse {
    let incoming = Incoming::from_redirect(req.query_string());
    logout(&state, &req, incoming).await
}

async fn slo_post(state: web::Data<Web>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let incoming = std::str::from_utf8(&body).map_err(|_| ErrorCode::Nr04).and_then(Incoming::from_post);
    logout(&state, &req, incoming).await
}

/// Single logout: the LogoutResponse form, and the browser's session
/// cookie cleared.
async fn logout(state: &Web, req: &HttpRequest, incoming: Result<Incoming, ErrorCode>) -> HttpResponse {
    let lang = lang(req);
    match state.login.logout(incoming).await {
        Ok(view) => {
            let mut resp = respond(state, &view, lang, None);
            if matches!(view, View::Post { .. })
                && let Ok(v) = header::HeaderValue::from_str(&format!("{SSO_COOKIE}=; Path=/; HttpOnly; Max-Age=0"))
            {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => unavailable(state, lang, &e),
    }
}

async fn password(state: web::Data<Web>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = lang(&req);
    let f = form(&body);
    let tx = field(&f, "tx");
    let result = if field(&f, "action") == "cancel" {
        state.login.cancel(tx).await
    } else {
        state.login.password(tx, field(&f, "username").trim(), field(&f, "password")).await
    };
    match result {
        Ok(view) => respond(&state, &view, lang, None),
        Err(e) => unavailable(&state, lang, &e),
    }
}

async fn code(state: web::Data<Web>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = lang(&req);
    let f = form(&body);
    let tx = field(&f, "tx");
    let action = field(&f, "action");
    let result = if action == "cancel" {
        state.login.cancel(tx).await
    } else if let Some(method) = action.strip_prefix("method:") {
        state.login.switch_method(tx, method).await
    } else {
        state.login.code(tx, field(&f, "code")).await
    };
    match result {
        Ok(view) => respond(&state, &view, lang, None),
        Err(e) => unavailable(&state, lang, &e),
    }
}

async fn consent(state: web::Data<Web>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = lang(&req);
    let f = form(&body);
    let mut sso = None;
    match state.login.consent(field(&f, "tx"), field(&f, "action") == "accept", &mut sso).await {
        Ok(view) => respond(&state, &view, lang, sso),
        Err(e) => unavailable(&state, lang, &e),
    }
}

/// The current page again, in the language asked (`?lang=`).
async fn show(state: web::Data<Web>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = lang(&req);
    let f = form(&body);
    match state.login.show(field(&f, "tx")).await {
        Ok(view) => respond(&state, &view, lang, None),
        Err(e) => unavailable(&state, lang, &e),
    }
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../static/idp.css"))
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../static/autosubmit.js"))
}
