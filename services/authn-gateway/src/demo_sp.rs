//! A demo service provider, development mode only (`make run`): a page
//! that starts a login at level 1 or 2 with a signed HTTP-Redirect
//! AuthnRequest, and an AssertionConsumerService that checks the Response's
//! signature and shows what came back — so a newcomer sees the whole flow in
//! a browser. Its key lives in memory; it registers itself in the SP
//! registry at start.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::SecondsFormat;
use minijinja::{Environment, context};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;
use spid_cache::Cache;
use spid_types::Clock;
use spid_xml::Element;
use spid_xml::dsig::{SignatureAlgorithm, SigningKey};
use spid_xml::ns::{SAML, SAMLP};

use crate::registry::ServiceProvider;
use crate::request::{ENTITY_FORMAT, TRANSIENT};

pub const PATH: &str = "/demo-sp";
const ATTRIBUTES: [&str; 6] = ["spidCode", "name", "familyName", "fiscalNumber", "dateOfBirth", "email"];

pub struct DemoSp {
    key: SigningKey,
    entity_id: String,
    acs: String,
    sso_redirect: String,
    idp_key: PKey<Public>,
    cache: Arc<dyn Cache>,
    clock: Arc<dyn Clock>,
    env: Environment<'static>,
}

#[derive(Debug, thiserror::Error)]
#[error("demo SP: {0}")]
pub struct DemoError(String);

fn err(e: impl std::fmt::Display) -> DemoError {
    DemoError(e.to_string())
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Demo service provider</title><link rel="stylesheet" href="/static/idp.css"></head>
<body><header class="it-header"><div class="container"><span class="brand">Demo service provider</span></div></header>
<main class="container">
{% if result %}
<h1>{% if result.ok %}Logged in{% else %}Not logged in{% endif %}</h1>
{% if result.ok %}<p>Level <strong>{{ result.level }}</strong>, NameID <code>{{ result.name_id }}</code></p>
<table class="table"><tbody>{% for a in result.attributes %}<tr><th scope="row">{{ a.0 }}</th><td>{{ a.1 }}</td></tr>{% endfor %}</tbody></table>
{% else %}<div class="alert alert-danger" role="alert">{{ result.status }} {{ result.message }}</div>{% endif %}
<p><a href="{{ path }}/">Start again</a></p>
{% else %}
<h1>Log in with SPID</h1>
<p>This page plays a service provider: it sends a signed AuthnRequest to the IdP and shows the attributes it gets back. The demo holders are printed by <code>make run</code> and listed in <code>var/demo-users.json</code>; level-2 codes appear at <a href="/dev/outbox">/dev/outbox</a>.</p>
<form method="get" action="{{ path }}/login"><button class="btn btn-primary" name="level" value="1">Log in at level 1</button>
<button class="btn btn-primary" name="level" value="2">Log in at level 2</button></form>
{% endif %}
</main></body></html>"#;

impl DemoSp {
    pub fn new(
        origin: &str,
        sso_redirect: String,
        idp_key: PKey<Public>,
        cache: Arc<dyn Cache>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DemoError> {
        let key = PKey::from_rsa(Rsa::generate(2048).map_err(err)?).map_err(err)?;
        let certificate =
            spid_secrets::self_signed_certificate(&key, &[(Nid::COMMONNAME, "demo service provider")], 365)
                .map_err(err)?;
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.add_template("page", PAGE).map_err(err)?;
        Ok(DemoSp {
            key: SigningKey { key, certificate },
            entity_id: format!("{origin}{PATH}"),
            acs: format!("{origin}{PATH}/acs"),
            sso_redirect,
            idp_key,
            cache,
            clock,
            env,
        })
    }

    /// The registry entry that makes the IdP accept this SP: its own
    /// metadata, read as any other.
    pub fn service_provider(&self) -> Result<ServiceProvider, DemoError> {
        let xml = metadata_xml(&self.entity_id, &self.acs, &self.key.certificate)?;
        let mut sps = crate::registry::parse_metadata(xml.as_bytes(), None, "development demo SP").map_err(err)?;
        sps.pop().ok_or_else(|| DemoError("no SP in the demo metadata".into()))
    }

    /// The signed Redirect URL of a new AuthnRequest at `level`.
    async fn login_url(&self, level: u8) -> Result<String, DemoError> {
        let id = crate::response::new_id();
        let url =
            signed_redirect_url(&self.sso_redirect, &self.entity_id, &self.key, &id, level, self.clock.now(), false)?;
        self.cache
            .set(&format!("demo-sp:request:{id}"), b"1", std::time::Duration::from_secs(900))
            .await
            .map_err(err)?;
        Ok(url)
    }

    /// What the Response says, after its signature and InResponseTo are
    /// checked.
    async fn consume(&self, saml_response: &str) -> Result<minijinja::Value, DemoError> {
        let xml = B64.decode(saml_response.trim()).map_err(err)?;
        let root = spid_xml::parse(&xml, spid_xml::Limits::default()).map_err(err)?;
        spid_xml::dsig::verify_root(&root, std::slice::from_ref(&self.idp_key)).map_err(err)?;
        let in_response_to = root.attribute("InResponseTo").unwrap_or_default();
        if self.cache.take(&format!("demo-sp:request:{in_response_to}")).await.map_err(err)?.is_none() {
            return Err(DemoError("a Response to no request of ours (or a replay)".into()));
        }
        let status = root.first(SAMLP, "Status").and_then(|s| s.first(SAMLP, "StatusCode"));
        let top = status.and_then(|s| s.attribute("Value")).unwrap_or_default();
        let Some(assertion) = root.first(SAML, "Assertion").filter(|_| top.ends_with(":Success")) else {
            let message = root
                .first(SAMLP, "Status")
                .and_then(|s| s.first(SAMLP, "StatusMessage"))
                .and_then(Element::text_content);
            let sub = status.and_then(|s| s.first(SAMLP, "StatusCode")).and_then(|s| s.attribute("Value"));
            return Ok(context! { ok => false, status => sub.unwrap_or(top), message });
        };
        let text = |e: Option<&Element>| e.and_then(Element::text_content).unwrap_or_default();
        let name_id = text(assertion.first(SAML, "Subject").and_then(|s| s.first(SAML, "NameID")));
        let level = text(
            assertion
                .first(SAML, "AuthnStatement")
                .and_then(|s| s.first(SAML, "AuthnContext"))
                .and_then(|c| c.first(SAML, "AuthnContextClassRef")),
        );
        let attributes: Vec<(String, String)> = assertion
            .first(SAML, "AttributeStatement")
            .map(|s| {
                s.children_named(SAML, "Attribute")
                    .map(|a| {
                        (a.attribute("Name").unwrap_or_default().to_owned(), text(a.first(SAML, "AttributeValue")))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(context! { ok => true, level, name_id, attributes })
    }

    fn page(&self, result: Option<minijinja::Value>) -> HttpResponse {
        match self.env.get_template("page").and_then(|t| t.render(context! { path => PATH, result })) {
            Ok(html) => HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(html),
            Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
        }
    }
}

/// Minimal SPID SP metadata: one signing certificate, ACS 0 (HTTP-POST),
/// attribute service 0 asking the demo attributes.
pub fn metadata_xml(entity_id: &str, acs: &str, certificate: &openssl::x509::X509) -> Result<String, DemoError> {
    let der = B64.encode(certificate.to_der().map_err(err)?);
    let md = |l: &str| Element::new(Some("md"), l, Some(spid_xml::ns::MD));
    let ds = |l: &str| Element::new(Some("ds"), l, Some(spid_xml::ns::DSIG));
    let mut service = md("AttributeConsumingService")
        .attr("index", "0")
        .child(md("ServiceName").ns_attr("xml", "lang", spid_xml::ns::XML, "it").text("Demo"));
    for a in ATTRIBUTES {
        service = service.child(md("RequestedAttribute").attr("Name", a));
    }
    let root = md("EntityDescriptor")
        .declare(Some("md"), spid_xml::ns::MD)
        .declare(Some("ds"), spid_xml::ns::DSIG)
        .attr("entityID", entity_id)
        .child(
            md("SPSSODescriptor")
                .attr("protocolSupportEnumeration", "urn:oasis:names:tc:SAML:2.0:protocol")
                .attr("AuthnRequestsSigned", "true")
                .child(
                    md("KeyDescriptor")
                        .attr("use", "signing")
                        .child(ds("KeyInfo").child(ds("X509Data").child(ds("X509Certificate").text(der)))),
                )
                .child(md("NameIDFormat").text(TRANSIENT))
                .child(
                    md("AssertionConsumerService")
                        .attr("index", "0")
                        .attr("isDefault", "true")
                        .attr("Binding", crate::registry::HTTP_POST)
                        .attr("Location", acs),
                )
                .child(service),
        );
    Ok(root.to_xml())
}

/// A service provider's signed HTTP-Redirect AuthnRequest URL (ACS and
/// attribute service index 0, transient NameID, comparison minimum): the
/// demo SP's, and the load generator's in `make bench`.
pub fn signed_redirect_url(
    sso_redirect: &str,
    entity_id: &str,
    key: &SigningKey,
    id: &str,
    level: u8,
    now: chrono::DateTime<chrono::Utc>,
    reuse_session: bool,
) -> Result<String, DemoError> {
    let saml = |l: &str| Element::new(Some("saml"), l, Some(SAML));
    let samlp = |l: &str| Element::new(Some("samlp"), l, Some(SAMLP));
    let mut request = samlp("AuthnRequest")
        .declare(Some("samlp"), SAMLP)
        .declare(Some("saml"), SAML)
        .attr("ID", id)
        .attr("Version", "2.0")
        .attr("IssueInstant", now.to_rfc3339_opts(SecondsFormat::Secs, true))
        .attr("Destination", sso_redirect);
    if !reuse_session {
        request = request.attr("ForceAuthn", "true");
    }
    let request = request
        .attr("AssertionConsumerServiceIndex", "0")
        .attr("AttributeConsumingServiceIndex", "0")
        .child(saml("Issuer").attr("Format", ENTITY_FORMAT).attr("NameQualifier", entity_id).text(entity_id))
        .child(samlp("NameIDPolicy").attr("Format", TRANSIENT))
        .child(
            samlp("RequestedAuthnContext")
                .attr("Comparison", "minimum")
                .child(saml("AuthnContextClassRef").text(format!("https://www.spid.gov.it/SpidL{level}"))),
        );
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let signed = format!(
        "SAMLRequest={}&RelayState={}&SigAlg={}",
        enc(&spid_events::registry::deflate_base64(request.to_xml().as_bytes())),
        enc("demo"),
        enc(SignatureAlgorithm::RsaSha256.uri())
    );
    let signature = key.sign_bytes(signed.as_bytes()).map_err(err)?;
    Ok(format!("{sso_redirect}?{signed}&Signature={}", enc(&B64.encode(signature))))
}

pub fn routes(demo: Option<Arc<DemoSp>>) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    let data = demo.map(web::Data::from);
    move |cfg: &mut web::ServiceConfig| {
        if let Some(data) = &data {
            cfg.app_data(data.clone())
                .route(&format!("{PATH}/"), web::get().to(home))
                .route(&format!("{PATH}/login"), web::get().to(login))
                .route(&format!("{PATH}/acs"), web::post().to(acs));
        }
    }
}

async fn home(demo: web::Data<DemoSp>) -> HttpResponse {
    demo.page(None)
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    level: u8,
}

async fn login(demo: web::Data<DemoSp>, q: web::Query<LoginQuery>) -> HttpResponse {
    let level = if q.level == 2 { 2 } else { 1 };
    match demo.login_url(level).await {
        Ok(url) => HttpResponse::Found().insert_header((header::LOCATION, url)).finish(),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

async fn acs(demo: web::Data<DemoSp>, body: web::Bytes) -> HttpResponse {
    let response = url::form_urlencoded::parse(&body).find(|(k, _)| k == "SAMLResponse").map(|(_, v)| v.into_owned());
    let result = match response {
        Some(r) => demo.consume(&r).await,
        None => Err(DemoError("no SAMLResponse".into())),
    };
    match result {
        Ok(v) => demo.page(Some(v)),
        Err(e) => demo.page(Some(context! { ok => false, status => "refused", message => e.to_string() })),
    }
}
