//! The service-provider registry (SAML-2): SP metadata read from trusted
//! files and directories, and fetched from URLs (an SP's own metadata or a
//! federation aggregate) whose signature must verify with a configured
//! trust anchor. A reload builds a whole new snapshot and swaps it in; a
//! source that fails keeps its previous entries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use openssl::pkey::{PKey, Public};
use openssl::x509::X509;
use spid_xml::ns::{DSIG, MD};
use spid_xml::{Element, Limits};

pub const HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub const HTTP_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

/// An AssertionConsumerService of HTTP-POST binding (the only one SPID
/// answers with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acs {
    pub index: u16,
    pub location: String,
    pub is_default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeService {
    pub index: u16,
    pub name: String,
    /// The SPID attribute names asked, in metadata order.
    pub attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub binding: String,
    pub location: String,
    pub response_location: Option<String>,
}

/// One service provider as its metadata describes it.
#[derive(Clone)]
pub struct ServiceProvider {
    pub entity_id: String,
    pub signing_certs: Vec<X509>,
    pub acs: Vec<Acs>,
    pub attribute_services: Vec<AttributeService>,
    pub logout: Vec<Endpoint>,
    /// Where it came from (file path or URL), for `idpctl sp list`.
    pub source: String,
}

impl std::fmt::Debug for ServiceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProvider")
            .field("entity_id", &self.entity_id)
            .field("certificates", &self.signing_certs.len())
            .field("acs", &self.acs)
            .field("source", &self.source)
            .finish()
    }
}

impl ServiceProvider {
    /// The ACS used when a request names none usable: the one marked
    /// default, else the lowest index.
    pub fn default_acs(&self) -> Option<&Acs> {
        self.acs.iter().find(|a| a.is_default).or_else(|| self.acs.iter().min_by_key(|a| a.index))
    }

    pub fn acs_by_index(&self, index: u16) -> Option<&Acs> {
        self.acs.iter().find(|a| a.index == index)
    }

    pub fn acs_by_location(&self, location: &str) -> Option<&Acs> {
        self.acs.iter().find(|a| a.location == location)
    }

    pub fn attribute_service(&self, index: u16) -> Option<&AttributeService> {
        self.attribute_services.iter().find(|s| s.index == index)
    }

    /// The public keys of the certificates valid at `now` (an expired
    /// certificate authenticates nothing: nr05/nr07).
    pub fn verification_keys(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<PKey<Public>> {
        let Ok(now) = openssl::asn1::Asn1Time::from_unix(now.timestamp()) else { return Vec::new() };
        self.signing_certs
            .iter()
            .filter(|c| c.not_before() <= now && c.not_after() >= now)
            .filter_map(|c| c.public_key().ok())
            .collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("not readable XML: {0}")]
    Xml(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the metadata signature does not verify with a trust anchor: {0}")]
    Signature(String),
    #[error("cannot read {0}")]
    Source(String),
}

fn invalid(msg: impl Into<String>) -> MetadataError {
    MetadataError::Invalid(msg.into())
}

/// Parses `EntityDescriptor` or `EntitiesDescriptor` metadata; with
/// `anchors`, its root signature must verify with one of them first.
pub fn parse_metadata(
    xml: &[u8],
    anchors: Option<&[PKey<Public>]>,
    source: &str,
) -> Result<Vec<ServiceProvider>, MetadataError> {
    let root = spid_xml::parse(xml, Limits::metadata()).map_err(|e| MetadataError::Xml(e.to_string()))?;
    if let Some(anchors) = anchors {
        spid_xml::dsig::verify_root(&root, anchors).map_err(|e| MetadataError::Signature(e.to_string()))?;
    }
    // An old copy (say one listing a key since revoked) is not served
    // again: metadata past its validUntil is refused.
    if expired(&root) {
        return Err(invalid("the metadata is past its validUntil"));
    }
    if root.is(MD, "EntityDescriptor") {
        return Ok(parse_entity(&root, source)?.into_iter().collect());
    }
    if !root.is(MD, "EntitiesDescriptor") {
        return Err(invalid("the root is neither md:EntityDescriptor nor md:EntitiesDescriptor"));
    }
    let mut out = Vec::new();
    let mut stack = vec![&root];
    while let Some(group) = stack.pop() {
        for e in group.elements() {
            if e.is(MD, "EntitiesDescriptor") {
                stack.push(e);
            } else if e.is(MD, "EntityDescriptor") {
                // One broken SP in an aggregate does not take the others down.
                match parse_entity(e, source) {
                    Ok(Some(sp)) => out.push(sp),
                    Ok(None) => {}
                    Err(err) => tracing::warn!(source, error = %err, "SP metadata entry skipped"),
                }
            }
        }
    }
    Ok(out)
}

fn expired(e: &Element) -> bool {
    e.attribute("validUntil")
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v.trim()).ok())
        .is_some_and(|until| until < chrono::Utc::now())
}

/// https, or http to this machine (development, tests).
fn acceptable_endpoint(location: &str) -> bool {
    match url::Url::parse(location) {
        Ok(u) if u.scheme() == "https" => u.host().is_some(),
        Ok(u) if u.scheme() == "http" => {
            matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        }
        _ => false,
    }
}

/// SPID: RSA keys of at least 2048 bits, EC keys of at least 256.
fn strong_enough(cert: &X509) -> bool {
    cert.public_key().is_ok_and(|k| match k.id() {
        openssl::pkey::Id::RSA => k.bits() >= 2048,
        openssl::pkey::Id::EC => k.bits() >= 256,
        _ => false,
    })
}

fn parse_u16(value: Option<&str>, what: &str) -> Result<u16, MetadataError> {
    value.and_then(|v| v.trim().parse().ok()).ok_or_else(|| invalid(format!("{what} is not a number from 0 to 65535")))
}

/// `None` for entities that are not service providers.
fn parse_entity(e: &Element, source: &str) -> Result<Option<ServiceProvider>, MetadataError> {
    let entity_id = e.attribute("entityID").filter(|v| !v.trim().is_empty()).ok_or_else(|| invalid("no entityID"))?;
    if expired(e) {
        return Err(invalid(format!("{entity_id}: past its validUntil")));
    }
    let Some(sp) = e.first(MD, "SPSSODescriptor") else { return Ok(None) };
    let protocols = sp.attribute("protocolSupportEnumeration").unwrap_or_default();
    if !protocols.split_whitespace().any(|p| p == PROTOCOL) {
        return Err(invalid(format!("{entity_id}: SPSSODescriptor does not support SAML 2.0")));
    }
    let mut signing_certs = Vec::new();
    for kd in sp.children_named(MD, "KeyDescriptor") {
        if kd.attribute("use").is_some_and(|u| u != "signing") {
            continue;
        }
        let certs = kd
            .first(DSIG, "KeyInfo")
            .into_iter()
            .flat_map(|ki| ki.children_named(DSIG, "X509Data"))
            .flat_map(|xd| xd.children_named(DSIG, "X509Certificate"));
        for c in certs {
            let der = spid_xml::decode_base64(&c.text_content().unwrap_or_default())
                .ok_or_else(|| invalid(format!("{entity_id}: a certificate is not base64")))?;
            let cert = X509::from_der(&der).map_err(|_| invalid(format!("{entity_id}: a certificate is not X.509")))?;
            if !strong_enough(&cert) {
                return Err(invalid(format!(
                    "{entity_id}: a signing key is shorter than SPID allows (RSA 2048, EC 256)"
                )));
            }
            signing_certs.push(cert);
        }
    }
    if signing_certs.is_empty() {
        return Err(invalid(format!("{entity_id}: no signing certificate")));
    }
    let mut acs = Vec::new();
    for a in sp.children_named(MD, "AssertionConsumerService") {
        let index = parse_u16(a.attribute("index"), "AssertionConsumerService index")?;
        // SPID answers only by HTTP-POST: other bindings are not usable.
        if a.attribute("Binding") != Some(HTTP_POST) {
            continue;
        }
        let location = a
            .attribute("Location")
            .filter(|l| acceptable_endpoint(l))
            .ok_or_else(|| invalid(format!("{entity_id}: AssertionConsumerService {index} has no https Location")))?;
        if acs.iter().any(|x: &Acs| x.index == index) {
            return Err(invalid(format!("{entity_id}: AssertionConsumerService index {index} appears twice")));
        }
        let is_default = matches!(a.attribute("isDefault"), Some("true" | "1"));
        acs.push(Acs { index, location: location.to_owned(), is_default });
    }
    if acs.is_empty() {
        return Err(invalid(format!("{entity_id}: no HTTP-POST AssertionConsumerService")));
    }
    let mut attribute_services = Vec::new();
    for s in sp.children_named(MD, "AttributeConsumingService") {
        let index = parse_u16(s.attribute("index"), "AttributeConsumingService index")?;
        let name = s.first(MD, "ServiceName").and_then(Element::text_content).unwrap_or_default();
        let attributes = s
            .children_named(MD, "RequestedAttribute")
            .filter_map(|r| r.attribute("Name"))
            .filter(|n| crate::attributes::is_spid_attribute(n))
            .map(str::to_owned)
            .collect();
        attribute_services.push(AttributeService { index, name, attributes });
    }
    let logout = sp
        .children_named(MD, "SingleLogoutService")
        .filter_map(|s| {
            let response_location = s.attribute("ResponseLocation").map(str::to_owned);
            Some(Endpoint {
                binding: s.attribute("Binding")?.to_owned(),
                location: s.attribute("Location").filter(|l| acceptable_endpoint(l))?.to_owned(),
                response_location: match response_location {
                    Some(r) if !acceptable_endpoint(&r) => return None,
                    other => other,
                },
            })
        })
        .collect();
    Ok(Some(ServiceProvider {
        entity_id: entity_id.to_owned(),
        signing_certs,
        acs,
        attribute_services,
        logout,
        source: source.to_owned(),
    }))
}

/// Where metadata comes from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Trusted files, or directories of `*.xml` files.
    pub paths: Vec<PathBuf>,
    pub urls: Vec<url::Url>,
    pub anchors: Vec<PKey<Public>>,
}

impl Sources {
    /// Reads the trust anchors (a PEM file of certificates).
    pub fn with_anchors(
        paths: Vec<PathBuf>,
        urls: Vec<url::Url>,
        anchors: Option<&Path>,
    ) -> Result<Self, MetadataError> {
        let mut keys = Vec::new();
        if let Some(path) = anchors {
            let pem = std::fs::read(path).map_err(|e| MetadataError::Source(format!("{}: {e}", path.display())))?;
            for cert in
                X509::stack_from_pem(&pem).map_err(|_| invalid(format!("{}: not PEM certificates", path.display())))?
            {
                keys.push(cert.public_key().map_err(|_| invalid("a trust anchor has no usable key"))?);
            }
        }
        Ok(Sources { paths, urls, anchors: keys })
    }
}

/// The current registry; readers take a snapshot, reloads swap it.
#[derive(Debug, Default)]
pub struct Registry {
    current: RwLock<Arc<BTreeMap<String, Arc<ServiceProvider>>>>,
    /// Registered by this process itself (the development demo SP);
    /// survive reloads.
    added: RwLock<BTreeMap<String, Arc<ServiceProvider>>>,
}

/// What a reload did, per source.
#[derive(Debug, Default, Clone)]
pub struct ReloadReport {
    pub loaded: usize,
    pub errors: Vec<String>,
}

impl Registry {
    pub fn get(&self, entity_id: &str) -> Option<Arc<ServiceProvider>> {
        let snapshot = self.current.read().ok()?.clone();
        snapshot.get(entity_id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<ServiceProvider>> {
        self.current.read().map(|s| s.values().cloned().collect()).unwrap_or_default()
    }

    /// Adds (or replaces) one SP in this process only (the development
    /// demo SP); operators' additions go through [`crate::sp_admin`].
    pub fn add(&self, sp: ServiceProvider) {
        let sp = Arc::new(sp);
        if let Ok(mut added) = self.added.write() {
            added.insert(sp.entity_id.clone(), sp.clone());
        }
        if let Ok(mut cur) = self.current.write() {
            let mut next = (**cur).clone();
            next.insert(sp.entity_id.clone(), sp);
            *cur = Arc::new(next);
        }
    }

    /// Reads every source, applies the operators' `overrides`, and swaps
    /// the result in. A failing source keeps the entries it gave before.
    pub async fn reload(&self, sources: &Sources, http: &reqwest::Client, overrides: &[Override]) -> ReloadReport {
        let mut report = ReloadReport::default();
        let previous = self.current.read().map(|c| c.clone()).unwrap_or_default();
        let mut next: BTreeMap<String, Arc<ServiceProvider>> = BTreeMap::new();
        // A failed source keeps what it gave before, never over an entry
        // another source gave in this reload.
        let keep_from = |source: &str, next: &mut BTreeMap<String, Arc<ServiceProvider>>| {
            for (id, sp) in previous.iter() {
                if sp.source == source {
                    next.entry(id.clone()).or_insert_with(|| sp.clone());
                }
            }
        };
        for path in &sources.paths {
            for (source, result) in read_path(path) {
                match result {
                    Ok(sps) => sps.into_iter().for_each(|sp| {
                        next.insert(sp.entity_id.clone(), Arc::new(sp));
                    }),
                    Err(e) => {
                        report.errors.push(format!("{source}: {e}"));
                        keep_from(&source, &mut next);
                    }
                }
            }
        }
        for url in &sources.urls {
            let source = url.to_string();
            match fetch(http, url).await.and_then(|body| parse_metadata(&body, Some(&sources.anchors), &source)) {
                Ok(sps) => {
                    for sp in sps {
                        // The operator's own files win over a fetched source.
                        let fetched = |source: &str| sources.urls.iter().any(|u| u.as_str() == source);
                        if next.get(&sp.entity_id).is_some_and(|known| !fetched(&known.source)) {
                            tracing::warn!(entity_id = %sp.entity_id, %source, "a fetched entry for an SP registered from a file is ignored");
                            continue;
                        }
                        next.insert(sp.entity_id.clone(), Arc::new(sp));
                    }
                }
                Err(e) => {
                    report.errors.push(format!("{source}: {e}"));
                    keep_from(&source, &mut next);
                }
            }
        }
        for o in overrides {
            match o {
                Override::Add(sp) => {
                    next.insert(sp.entity_id.clone(), sp.clone());
                }
                Override::Remove(entity_id) => {
                    next.remove(entity_id);
                }
            }
        }
        if let Ok(added) = self.added.read() {
            next.extend(added.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        report.loaded = next.len();
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(next);
        }
        for e in &report.errors {
            tracing::warn!(error = %e, "SP metadata source failed; its previous entries are kept");
        }
        report
    }
}

/// An operator's change, applied over the sources (`idpctl sp`).
#[derive(Debug, Clone)]
pub enum Override {
    Add(Arc<ServiceProvider>),
    Remove(String),
}

/// A file, or every `*.xml` file of a directory (missing directories are
/// empty: development creates `sp-metadata` on first use).
fn read_path(path: &Path) -> Vec<(String, Result<Vec<ServiceProvider>, MetadataError>)> {
    let read = |p: &Path| {
        let source = p.display().to_string();
        let result = std::fs::read(p)
            .map_err(|e| MetadataError::Source(e.to_string()))
            .and_then(|bytes| parse_metadata(&bytes, None, &source));
        (source, result)
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.iter().map(|p| read(p)).collect()
    } else if path.exists() {
        vec![read(path)]
    } else {
        Vec::new()
    }
}

async fn fetch(http: &reqwest::Client, url: &url::Url) -> Result<Vec<u8>, MetadataError> {
    let err = |e: reqwest::Error| MetadataError::Source(e.without_url().to_string());
    let resp = http.get(url.clone()).send().await.map_err(err)?.error_for_status().map_err(err)?;
    let limit = Limits::metadata().max_bytes;
    if resp.content_length().is_some_and(|n| n as usize > limit) {
        return Err(MetadataError::Source(format!("larger than {limit} bytes")));
    }
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(err)? {
        if body.len() + chunk.len() > limit {
            return Err(MetadataError::Source(format!("larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
