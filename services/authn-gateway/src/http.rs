//! The public HTTP face: metadata, the two SSO bindings and the login
//! pages. Handlers only translate between HTTP and [`Login`]; every page
//! carries a strict Content-Security-Policy and is never cached.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::anomaly::ErrorCode;
use crate::login::{Login, View, is_token};
use crate::metadata::{SLO, SSO_POST, SSO_REDIRECT};
use crate::pages::{Lang, Pages};
use crate::request::Incoming;

/// Form bodies larger than this are refused (a POST AuthnRequest is a few
/// KiB; the limit of the binding check is below it).
const MAX_FORM: usize = 192 * 1024;

pub struct Web {
    pub login: Arc<Login>,
    pub pages: Pages,
    /// The signed metadata, built at start.
    pub metadata: String,
    /// https origin: `__Host-` cookies, `Secure`.
    pub secure_cookies: bool,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<spid_config::saml::IpNet>,
    /// Bootstrap Italia's `dist` directory, when configured.
    pub assets: Option<std::path::PathBuf>,
    /// Our public origin (`scheme://host[:port]`), for the `Origin` check.
    pub origin: String,
}

impl Web {
    /// The level-1 session cookie.
    fn sso_cookie(&self) -> &'static str {
        if self.secure_cookies { "__Host-spid_sso" } else { "spid_sso" }
    }

    /// The browser cookie every login step must carry.
    fn browser_cookie(&self) -> &'static str {
        if self.secure_cookies { "__Host-spid_browser" } else { "spid_browser" }
    }

    /// `Set-Cookie` for the session cookie: cross-site POSTs from SPs must
    /// carry it, hence `SameSite=None` (which needs `Secure`).
    fn set_sso(&self, id: &str) -> String {
        let attrs = if self.secure_cookies { "; Secure; SameSite=None" } else { "; SameSite=Lax" };
        format!("{}={id}; Path=/; HttpOnly{attrs}", self.sso_cookie())
    }

    fn clear_sso(&self) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!("{}=; Path=/; HttpOnly; Max-Age=0{secure}", self.sso_cookie())
    }

    /// `Set-Cookie` for the browser id. It must come back on an SP's
    /// cross-site POST too (or a login open in another tab would lose its
    /// binding), hence `SameSite=None` on https; the steps themselves are
    /// guarded by their origin.
    fn set_browser(&self, id: &str) -> String {
        let attrs = if self.secure_cookies { "; Secure; SameSite=None" } else { "; SameSite=Lax" };
        format!("{}={id}; Path=/; HttpOnly{attrs}", self.browser_cookie())
    }

    /// The client: the TCP peer, or — when the peer is a trusted proxy —
    /// the last address of `X-Forwarded-For` that is not one.
    fn client_ip(&self, req: &HttpRequest) -> String {
        let Some(peer) = req.peer_addr().map(|a| a.ip()) else { return String::new() };
        let hops: Vec<String> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_owned())
            .collect();
        client_from(peer, &hops, &self.trusted_proxies).to_string()
    }
}

/// The client behind `peer`: from the right of `X-Forwarded-For`, past our
/// own proxies to the first address they did not add. An entry that does
/// not parse stops the walk — what is left of it was written by the client.
fn client_from(peer: std::net::IpAddr, hops: &[String], trusted: &[spid_config::saml::IpNet]) -> std::net::IpAddr {
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer;
    if !is_trusted(peer) {
        return client;
    }
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, `ip:port` or `[v6]:port`.
fn parse_hop(hop: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// A form posted from another site is not a step of our login pages:
/// `Sec-Fetch-Site: cross-site`, or an `Origin` other than ours.
fn cross_site(req: &HttpRequest, origin: &str) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    header("sec-fetch-site") == Some("cross-site") || header("origin").is_some_and(|o| o != origin && o != "null")
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
            .route("/static/autosubmit.js", web::get().to(script))
            .route("/static/bi/{path:.*}", web::get().to(bootstrap_italia));
    }
}

fn lang(req: &HttpRequest) -> Lang {
    let query = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "lang")
        .map(|(_, v)| v.into_owned());
    let accept = req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    Lang::pick(query.as_deref(), accept)
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

/// Sends a view: a page, or the form that carries the Response to the SP,
/// with the `Set-Cookie` values given.
fn respond(state: &Web, view: &View, lang: Lang, cookies: &[String]) -> HttpResponse {
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
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; font-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let status = actix_web::http::StatusCode::from_u16(page.status).unwrap_or(actix_web::http::StatusCode::OK);
    let mut resp = HttpResponse::build(status);
    resp.content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    for c in cookies {
        resp.append_header((header::SET_COOKIE, c.as_str()));
    }
    resp.body(page.html)
}

fn unavailable(state: &Web, lang: Lang, e: &crate::login::LoginError) -> HttpResponse {
    tracing::error!(error = %e, "login step failed");
    let code = match e {
        crate::login::LoginError::Unavailable(_) => ErrorCode::Nr02,
        crate::login::LoginError::Internal(_) => ErrorCode::Nr03,
    };
    respond(state, &View::Error(code), lang, &[])
}

async fn metadata(state: web::Data<Web>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/samlmetadata+xml").body(state.metadata.clone())
}

async fn wrong_method(state: web::Data<Web>, req: HttpRequest) -> HttpResponse {
    respond(&state, &View::Error(ErrorCode::Nr06), lang(&req), &[])
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
    let sso = cookie(req, state.sso_cookie()).filter(|c| is_token(c));
    // The browser's id, made here when it has none (or a SP's cross-site
    // POST did not carry it): the login's pages must come back with it.
    let (browser, set) = match cookie(req, state.browser_cookie()).filter(|c| is_token(c)) {
        Some(b) => (b, Vec::new()),
        None => {
            let b = crate::login::random_token();
            let set = vec![state.set_browser(&b)];
            (b, set)
        }
    };
    match state.login.receive(incoming, &state.client_ip(req), sso.as_deref(), &browser).await {
        Ok(view) => respond(state, &view, lang, &set),
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
        // The cookie goes only when a session was really logged out.
        Ok((view, true)) => respond(state, &view, lang, &[state.clear_sso()]),
        Ok((view, false)) => respond(state, &view, lang, &[]),
        Err(e) => unavailable(state, lang, &e),
    }
}

/// A login step's form: its transaction, the browser it must come from,
/// or the page of a refused step.
/// A step's form fields and the browser id it came with.
type Step = (Vec<(String, String)>, String);

fn step(state: &Web, req: &HttpRequest, body: &[u8]) -> Result<Step, Box<HttpResponse>> {
    if cross_site(req, &state.origin) {
        return Err(Box::new(respond(state, &View::Error(ErrorCode::Nr04), lang(req), &[])));
    }
    let browser = cookie(req, state.browser_cookie()).unwrap_or_default();
    Ok((form(body), browser))
}

async fn password(state: web::Data<Web>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = lang(&req);
    let (f, browser) = match step(&state, &req, &body) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let tx = field(&f, "tx");
    let result = if field(&f, "action") == "cancel" {
        state.login.cancel(tx, &browser).await
    } else {
        state.login.password(tx, &browser, field(&f, "username").trim(), field(&f, "password")).await
    };
    match result {
        Ok(view) => respond(&state, &view, lang, &[]),
        Err(e) => unavailable(&state, lang, &e),
    }
}

async fn code(state: web::Data<Web>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = lang(&req);
    let (f, browser) = match step(&state, &req, &body) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let tx = field(&f, "tx");
    let action = field(&f, "action");
    let result = if action == "cancel" {
        state.login.cancel(tx, &browser).await
    } else if let Some(method) = action.strip_prefix("method:") {
        state.login.switch_method(tx, &browser, method).await
    } else {
        state.login.code(tx, &browser, field(&f, "code")).await
    };
    match result {
        Ok(view) => respond(&state, &view, lang, &[]),
        Err(e) => unavailable(&state, lang, &e),
    }
}

async fn consent(state: web::Data<Web>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = lang(&req);
    let (f, browser) = match step(&state, &req, &body) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let mut sso = None;
    match state.login.consent(field(&f, "tx"), &browser, field(&f, "action") == "accept", &mut sso).await {
        Ok(view) => {
            let cookies: Vec<String> = sso.iter().map(|id| state.set_sso(id)).collect();
            respond(&state, &view, lang, &cookies)
        }
        Err(e) => unavailable(&state, lang, &e),
    }
}

/// The current page again, in the language asked (`?lang=`).
async fn show(state: web::Data<Web>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lang = lang(&req);
    let (f, browser) = match step(&state, &req, &body) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    match state.login.show(field(&f, "tx"), &browser).await {
        Ok(view) => respond(&state, &view, lang, &[]),
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

/// The files of Bootstrap Italia the pages use — its stylesheet and the
/// Titillium Web fonts — and nothing else of the directory.
fn asset_path(path: &str) -> Option<(&'static str, &str)> {
    if path == "css/bootstrap-italia.min.css" {
        return Some(("text/css; charset=utf-8", path));
    }
    let name = path.strip_prefix("fonts/Titillium_Web/")?;
    let plain =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !plain || name.starts_with('.') {
        return None;
    }
    match name.rsplit_once('.')?.1 {
        "woff2" => Some(("font/woff2", path)),
        "woff" => Some(("font/woff", path)),
        _ => None,
    }
}

async fn bootstrap_italia(state: web::Data<Web>, path: web::Path<String>) -> HttpResponse {
    let (Some(dir), Some((content_type, relative))) = (&state.assets, asset_path(&path)) else {
        return HttpResponse::NotFound().finish();
    };
    match tokio::fs::read(dir.join(relative)).await {
        Ok(bytes) => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .body(bytes),
        Err(_) => HttpResponse::NotFound().finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::{asset_path, client_from};

    #[test]
    fn the_client_is_the_first_hop_our_proxies_did_not_add() {
        let trusted = [spid_config::saml::IpNet::parse("10.0.0.0/8").unwrap()];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let hops = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Straight from the Internet: the peer, whatever it claims.
        assert_eq!(client_from(ip("203.0.113.9"), &hops(&["1.2.3.4"]), &trusted), ip("203.0.113.9"));
        // Through the ingress: the address it added.
        assert_eq!(client_from(ip("10.1.0.5"), &hops(&["6.6.6.6", "203.0.113.9"]), &trusted), ip("203.0.113.9"));
        assert_eq!(client_from(ip("10.1.0.5"), &hops(&["203.0.113.9:51234", "10.2.0.1"]), &trusted), ip("203.0.113.9"));
        assert_eq!(client_from(ip("10.1.0.5"), &hops(&["[2001:db8::1]:443"]), &trusted), ip("2001:db8::1"));
        // Garbage written by the client stops the walk at our last hop.
        assert_eq!(client_from(ip("10.1.0.5"), &hops(&["6.6.6.6", "bogus", "10.2.0.1"]), &trusted), ip("10.2.0.1"));
        assert_eq!(client_from(ip("10.1.0.5"), &hops(&[]), &trusted), ip("10.1.0.5"));
    }

    #[test]
    fn only_the_stylesheet_and_fonts_are_served() {
        assert!(asset_path("css/bootstrap-italia.min.css").is_some());
        assert_eq!(
            asset_path("fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-300.woff2").map(|a| a.0),
            Some("font/woff2")
        );
        for bad in [
            "../../../etc/passwd",
            "fonts/Titillium_Web/../../package.json",
            "fonts/Titillium_Web/x.ttf",
            "fonts/Titillium_Web/.woff2",
            "js/bootstrap-italia.bundle.min.js",
            "css/bootstrap-italia.min.css.map",
        ] {
            assert_eq!(asset_path(bad), None, "{bad}");
        }
    }
}
