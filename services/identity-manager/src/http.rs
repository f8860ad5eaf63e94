//! The applicant's JSON interface (REG-1…10) under `/registration`. The
//! calls after the start carry `Authorization: Bearer <applicant token>`.
//! Refusals are `application/problem+json` with the stable `code`; an
//! application with broken rules answers 422 with every problem, in
//! Italian and English. Contract: `docs/registration.md`.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use spid_server::errors::HttpProblem;
use spid_types::{ErrorKind, ServiceError};

use crate::application::Application;
use crate::holder_requests::{Ask, Contact, HolderRequests, Via};
use crate::identification::Identification;
use crate::registration::{ContactKind, DOCUMENTS, MAX_UPLOAD, Registrar, StartError, Upload};
use crate::request::Method;

/// The header the ingress puts the verified TLS client certificate in
/// (PEM, URL-escaped as nginx's `$ssl_client_escaped_cert`). The ingress
/// must drop the header when it comes from the client.
pub const CLIENT_CERT_HEADER: &str = "x-ssl-client-cert";

pub fn routes(
    registrar: Arc<Registrar>,
    identification: Arc<Identification>,
    holder_requests: Arc<HolderRequests>,
) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    let data = web::Data::from(registrar);
    let ident = web::Data::from(identification);
    let holders = web::Data::from(holder_requests);
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::scope("/holder/lifecycle-requests")
                .app_data(holders.clone())
                .app_data(spid_server::errors::json_config(8 * 1024))
                .route("", web::post().to(holder_request))
                .route("/{id}/confirm", web::post().to(holder_confirm)),
        );
        cfg.service(
            web::scope("/registration")
                .app_data(data.clone())
                .app_data(ident.clone())
                .app_data(spid_server::errors::json_config(64 * 1024))
                .app_data(web::PayloadConfig::default().limit(MAX_UPLOAD))
                .route("/documents", web::get().to(documents))
                .route("/email-available", web::get().to(email_available))
                .route("", web::post().to(start))
                .route("/{id}", web::get().to(progress))
                .route("/{id}/contacts/{kind}/code", web::post().to(send_code))
                .route("/{id}/contacts/{kind}/verify", web::post().to(verify))
                .route("/{id}/documents", web::post().to(accept))
                .route("/{id}/uploads/{kind}", web::put().to(upload))
                .route("/{id}/submit", web::post().to(submit))
                .route("/{id}/activate", web::post().to(activate))
                .route("/{id}/method", web::post().to(choose_method))
                .route("/{id}/form", web::get().to(form))
                .route("/{id}/signed-form", web::put().to(signed_form))
                .route("/{id}/cns", web::post().to(cns))
                .route("/{id}/cie-nonce", web::get().to(cie_nonce))
                .route("/{id}/cie", web::post().to(cie))
                .route("/{id}/self-video", web::put().to(self_video)),
        );
    }
}

type Reply = Result<HttpResponse, HttpProblem>;

fn token(req: &HttpRequest) -> Result<&str, HttpProblem> {
    req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(
        || {
            HttpProblem(ServiceError::new(
                ErrorKind::Unauthenticated,
                "request.token_missing",
                "send the applicant token as Authorization: Bearer <token>",
            ))
        },
    )
}

fn bad(code: &str, message: &str) -> HttpProblem {
    HttpProblem(ServiceError::invalid(code, message))
}

async fn documents() -> HttpResponse {
    let list: Vec<_> = DOCUMENTS.iter().map(|(d, v)| serde_json::json!({ "document": d, "version": v })).collect();
    HttpResponse::Ok().json(list)
}

#[derive(Deserialize)]
struct EmailQuery {
    email: String,
}

async fn email_available(r: web::Data<Registrar>, q: web::Query<EmailQuery>) -> Reply {
    let available = r.email_available(&q.email).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "available": available })))
}

async fn start(r: web::Data<Registrar>, body: web::Json<Application>) -> Reply {
    match r.start(&body, false).await {
        Ok(s) => Ok(HttpResponse::Created().json(s)),
        Err(StartError::Invalid(problems)) => {
            Ok(HttpResponse::UnprocessableEntity().content_type("application/problem+json").json(serde_json::json!({
                "type": "urn:spid-idp:error:application.invalid",
                "title": "Unprocessable Entity",
                "status": 422,
                "code": problems.first().map(|p| p.code.as_str()).unwrap_or("application.invalid"),
                "problems": problems,
            })))
        }
        Err(StartError::Failed(e)) => Err(e.into()),
    }
}

async fn progress(r: web::Data<Registrar>, req: HttpRequest, id: web::Path<String>) -> Reply {
    Ok(HttpResponse::Ok().json(r.progress(&id, token(&req)?).await?))
}

fn contact(kind: &str) -> Result<ContactKind, HttpProblem> {
    ContactKind::parse(kind).ok_or_else(|| bad("contact.unknown", "contact: one of email, mobile, pec"))
}

async fn send_code(r: web::Data<Registrar>, req: HttpRequest, path: web::Path<(String, String)>) -> Reply {
    let (id, kind) = path.into_inner();
    let t = token(&req)?;
    r.send_code(&id, t, contact(&kind)?).await?;
    Ok(HttpResponse::Ok().json(r.progress(&id, t).await?))
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

async fn verify(
    r: web::Data<Registrar>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<Code>,
) -> Reply {
    let (id, kind) = path.into_inner();
    let t = token(&req)?;
    r.verify_contact(&id, t, contact(&kind)?, &body.code).await?;
    Ok(HttpResponse::Ok().json(r.progress(&id, t).await?))
}

#[derive(Deserialize)]
struct Accepted {
    document: String,
    version: String,
}

#[derive(Deserialize)]
struct Acceptance {
    accepted: Vec<Accepted>,
}

async fn accept(
    r: web::Data<Registrar>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<Acceptance>,
) -> Reply {
    let t = token(&req)?;
    let accepted: Vec<(String, String)> =
        body.into_inner().accepted.into_iter().map(|a| (a.document, a.version)).collect();
    r.accept_documents(&id, t, &accepted).await?;
    Ok(HttpResponse::Ok().json(r.progress(&id, t).await?))
}

async fn upload(
    r: web::Data<Registrar>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Reply {
    let (id, kind) = path.into_inner();
    let t = token(&req)?;
    let kind = Upload::parse(&kind).ok_or_else(|| bad("evidence.kind_unknown", "not an upload kind"))?;
    r.upload(&id, t, kind, &body).await?;
    Ok(HttpResponse::Ok().json(r.progress(&id, t).await?))
}

async fn submit(r: web::Data<Registrar>, req: HttpRequest, id: web::Path<String>) -> Reply {
    let t = token(&req)?;
    r.submit(&id, t).await?;
    Ok(HttpResponse::Ok().json(r.progress(&id, t).await?))
}

async fn activate(r: web::Data<Registrar>, req: HttpRequest, id: web::Path<String>) -> Reply {
    let e = r.activate(&id, token(&req)?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "spid_code": e.spid_code, "identity_type": e.identity_type })))
}

#[derive(Deserialize)]
struct MethodChoice {
    method: String,
    appointment: Option<chrono::DateTime<chrono::Utc>>,
}

async fn choose_method(
    r: web::Data<Registrar>,
    i: web::Data<Identification>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<MethodChoice>,
) -> Reply {
    let t = token(&req)?;
    let method = Method::parse(&body.method).ok_or_else(|| bad("identification.method_unknown", "not a method"))?;
    i.choose_method(&id, t, method, body.appointment).await?;
    Ok(HttpResponse::Ok().json(r.progress(&id, t).await?))
}

async fn form(i: web::Data<Identification>, req: HttpRequest, id: web::Path<String>) -> Reply {
    let text = i.form(&id, token(&req)?).await?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(text))
}

async fn signed_form(
    r: web::Data<Registrar>,
    i: web::Data<Identification>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Reply {
    let t = token(&req)?;
    i.identify_with_signed_form(&id, t, &body).await?;
    Ok(HttpResponse::Ok().json(r.progress(&id, t).await?))
}

async fn cns(r: web::Data<Registrar>, i: web::Data<Identification>, req: HttpRequest, id: web::Path<String>) -> Reply {
    let t = token(&req)?;
    let cert = req
        .headers()
        .get(CLIENT_CERT_HEADER)
        .map(|v| v.as_bytes().to_vec())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("identification.no_certificate", "no client certificate was presented"))?;
    i.identify_with_cns(&id, t, &cert).await?;
    Ok(HttpResponse::Ok().json(r.progress(&id, t).await?))
}

async fn self_video(
    r: web::Data<Registrar>,
    i: web::Data<Identification>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Reply {
    let t = token(&req)?;
    i.upload_self_video(&id, t, &body).await?;
    Ok(HttpResponse::Ok().json(r.progress(&id, t).await?))
}

async fn cie_nonce(i: web::Data<Identification>, req: HttpRequest, id: web::Path<String>) -> Reply {
    let nonce = i.cie_nonce(&id, token(&req)?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "nonce": nonce })))
}

#[derive(Deserialize)]
struct CieResult {
    id_token: String,
}

async fn cie(
    r: web::Data<Registrar>,
    i: web::Data<Identification>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<CieResult>,
) -> Reply {
    let t = token(&req)?;
    i.identify_with_cie(&id, t, &body.id_token).await?;
    Ok(HttpResponse::Ok().json(r.progress(&id, t).await?))
}

#[derive(Deserialize)]
struct HolderRequestBody {
    /// Username (e-mail) or spidCode.
    holder: String,
    action: String,
    reason: String,
    #[serde(default)]
    contact: String,
}

/// LC-2: a holder asks to suspend their identity; a code goes to the
/// contact they chose. The answer is the same whether or not the identity
/// exists.
async fn holder_request(
    req: HttpRequest,
    holders: web::Data<HolderRequests>,
    body: web::Json<HolderRequestBody>,
) -> Reply {
    let body = body.into_inner();
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = client_address(req.peer_addr().map(|a| a.ip()), forwarded);
    let action =
        crate::lifecycle::Action::parse(&body.action).ok_or_else(|| bad("action.invalid", "action: suspend"))?;
    let contact = Contact::parse(&body.contact).ok_or_else(|| bad("contact.invalid", "contact: email or mobile"))?;
    let ask = Ask { who: body.holder, action, reason: body.reason, contact };
    let started = holders.into_inner().start(&ask, &Via::Online { client }).await.map_err(HttpProblem)?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "request_id": started.request_id,
        "expires_at": started.expires_at,
        "message": "If the identity exists and the request applies to it, a code is on its way to the contact you chose.",
    })))
}

/// The client's address for rate limits: the peer, or, when the peer is
/// a proxy inside the cluster (a private or loopback address), the last
/// `X-Forwarded-For` hop — the one that proxy appended. A client can only
/// prepend hops, never replace the last.
fn client_address(peer: Option<IpAddr>, forwarded: Option<&str>) -> Option<IpAddr> {
    let internal = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    };
    match (peer, forwarded) {
        (Some(peer), Some(hops)) if internal(&peer) => {
            let last = hops.rsplit(',').next().map(str::trim).unwrap_or_default();
            last.parse::<IpAddr>().ok().or(Some(peer))
        }
        (peer, _) => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::client_address;

    #[test]
    fn the_client_is_the_peer_or_the_hop_the_proxy_added() {
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(client_address(ip("203.0.113.9"), Some("198.51.100.1")), ip("203.0.113.9"), "public peer");
        assert_eq!(client_address(ip("10.0.0.5"), Some("6.6.6.6, 198.51.100.1")), ip("198.51.100.1"));
        assert_eq!(client_address(ip("127.0.0.1"), Some("garbage")), ip("127.0.0.1"));
        assert_eq!(client_address(ip("10.0.0.5"), None), ip("10.0.0.5"));
        assert_eq!(client_address(None, Some("198.51.100.1")), None);
    }
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

/// The code back: the request is acted on at once; the answer is the
/// evidence of receipt.
async fn holder_confirm(holders: web::Data<HolderRequests>, id: web::Path<String>, body: web::Json<CodeBody>) -> Reply {
    let receipt = holders.confirm(&id, &body.code, &Via::Online { client: None }).await.map_err(HttpProblem)?;
    Ok(HttpResponse::Ok().json(receipt))
}
