//! AuthnRequest intake (SAML-3): the two bindings decoded, then every check
//! of the anomaly table in the order it implies — the binding's format, the
//! sender and its signature (answered with a page: without a verified
//! sender nothing may go back), then the request's content (answered to the
//! service provider with the SAML status of the table).
//!
//! Everything here is pure: the caller passes the registry snapshot and the
//! time, and checks replays ([`Checked::replay_key`]) in the shared cache.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use spid_xml::dsig::{SignatureAlgorithm, verify_root};
use spid_xml::ns::{SAML, SAMLP};
use spid_xml::{Element, Limits};

use crate::anomaly::ErrorCode;
use crate::level::{Comparison, Level, Purpose};
use crate::registry::{Acs, HTTP_POST, Registry, ServiceProvider};

pub const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
pub const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
/// The SPID SAML extensions' namespace (`spid:Purpose`).
pub const SPID_EXTENSIONS: &str = "https://spid.gov.it/saml-extensions";
const UNSPECIFIED: [&str; 2] =
    ["urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified", "urn:oasis:names:tc:SAML:2.0:nameid-format:unspecified"];
/// Encoded SAMLRequest accepted at most (a signed request is a few KiB).
const MAX_ENCODED: usize = 64 * 1024;
/// Decompressed size at most (DEFLATE bombs stop here).
const MAX_XML: usize = 128 * 1024;
/// SAML bindings §3.4.3: RelayState MUST NOT exceed 80 bytes.
const MAX_RELAY_STATE: usize = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Binding {
    Redirect,
    Post,
}

impl Binding {
    /// As the transaction registry writes it (AUD-2).
    pub fn name(self) -> &'static str {
        match self {
            Binding::Redirect => "HTTP-REDIRECT",
            Binding::Post => "HTTP-POST",
        }
    }
}

/// The Redirect binding's detached signature.
#[derive(Debug, Clone)]
struct RedirectSignature {
    algorithm: String,
    value: Vec<u8>,
    /// `SAMLRequest=…&RelayState=…&SigAlg=…` exactly as received.
    signed: Vec<u8>,
}

/// A request as received, decoded but not yet trusted.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub binding: Binding,
    /// The base64 `SAMLRequest` value as received (deflated for Redirect).
    pub encoded: String,
    pub xml: Vec<u8>,
    pub relay_state: Option<String>,
    signature: Option<RedirectSignature>,
}

fn format_error() -> ErrorCode {
    ErrorCode::Nr04
}

/// Splits a query string or form body into (raw, decoded) pairs; a
/// parameter given twice is a format error.
fn pairs(raw: &str) -> Result<Vec<(String, String, String)>, ErrorCode> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let key = decode(raw_key);
        if out.iter().any(|(k, _, _)| *k == key) {
            return Err(format_error());
        }
        out.push((key, raw_value.to_owned(), decode(raw_value)));
    }
    Ok(out)
}

fn b64_decode(s: &str) -> Result<Vec<u8>, ErrorCode> {
    spid_xml::decode_base64(s).ok_or_else(format_error)
}

fn relay_state(value: Option<String>) -> Result<Option<String>, ErrorCode> {
    match value {
        Some(r) if r.len() > MAX_RELAY_STATE => Err(format_error()),
        Some(r) if r.is_empty() => Ok(None),
        other => Ok(other),
    }
}

impl Incoming {
    /// HTTP-Redirect: `SAMLRequest` (DEFLATE, base64), `SigAlg`,
    /// `Signature`, optional `RelayState`, from the raw query string.
    pub fn from_redirect(query: &str) -> Result<Self, ErrorCode> {
        if query.len() > MAX_ENCODED * 2 {
            return Err(format_error());
        }
        let params = pairs(query)?;
        let get = |k: &str| params.iter().find(|(key, _, _)| key == k);
        let (Some(request), Some(alg), Some(sig)) = (get("SAMLRequest"), get("SigAlg"), get("Signature")) else {
            return Err(format_error());
        };
        if request.2.len() > MAX_ENCODED {
            return Err(format_error());
        }
        // Bounded inflation: a DEFLATE bomb stops at MAX_XML.
        let xml = spid_events::registry::inflate_base64(&request.2, MAX_XML).map_err(|_| format_error())?;
        let relay = get("RelayState");
        let mut signed = format!("SAMLRequest={}", request.1);
        if let Some(r) = relay {
            signed.push_str(&format!("&RelayState={}", r.1));
        }
        signed.push_str(&format!("&SigAlg={}", alg.1));
        Ok(Incoming {
            binding: Binding::Redirect,
            encoded: request.2.clone(),
            xml,
            relay_state: relay_state(relay.map(|r| r.2.clone()))?,
            signature: Some(RedirectSignature {
                algorithm: alg.2.clone(),
                value: b64_decode(&sig.2).map_err(|_| ErrorCode::Nr05)?,
                signed: signed.into_bytes(),
            }),
        })
    }

    /// HTTP-POST: `SAMLRequest` (base64) and optional `RelayState` from an
    /// `application/x-www-form-urlencoded` body.
    pub fn from_post(body: &str) -> Result<Self, ErrorCode> {
        if body.len() > MAX_ENCODED * 2 {
            return Err(format_error());
        }
        let params = pairs(body)?;
        let get = |k: &str| params.iter().find(|(key, _, _)| key == k).map(|(_, _, v)| v.clone());
        let request = get("SAMLRequest").filter(|r| !r.is_empty()).ok_or_else(format_error)?;
        if request.len() > MAX_ENCODED {
            return Err(format_error());
        }
        let xml = b64_decode(&request)?;
        Ok(Incoming {
            binding: Binding::Post,
            encoded: request,
            xml,
            relay_state: relay_state(get("RelayState"))?,
            signature: None,
        })
    }
}

/// What the gateway checks a request against.
pub struct Context<'a> {
    pub registry: &'a Registry,
    pub entity_id: &'a str,
    /// The SingleSignOnService locations of the metadata (a Destination
    /// may also be the entityID: Avviso SPID 11).
    pub sso_locations: &'a [String],
    pub now: DateTime<Utc>,
    pub max_age: chrono::Duration,
    pub skew: chrono::Duration,
}

/// A request every check accepted.
#[derive(Debug, Clone)]
pub struct Checked {
    pub sp: Arc<ServiceProvider>,
    pub request_id: String,
    pub issue_instant: String,
    pub acs_url: String,
    /// The level to authenticate at (the comparison applied).
    pub level: Level,
    pub force_authn: bool,
    /// The SPID attributes to release; empty without an
    /// AttributeConsumingServiceIndex.
    pub attributes: Vec<String>,
    pub relay_state: Option<String>,
    /// The `spid:Purpose` extension, when present.
    pub purpose: Option<Purpose>,
}

impl Checked {
    /// The replay-cache key of this request (SAML-9): per SP, per ID.
    pub fn replay_key(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}\n{}", self.sp.entity_id, self.request_id).as_bytes());
        format!("saml:request:{}", hex::encode(&digest[..16]))
    }
}

/// Why a request was not accepted, and where the answer goes.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// An error page to the user; nothing goes to the SP.
    Page(ErrorCode),
    /// A SAML Response with this code to the SP's ACS.
    ToSp {
        code: ErrorCode,
        sp: Arc<ServiceProvider>,
        acs_url: String,
        request_id: Option<String>,
        relay_state: Option<String>,
    },
}

impl Refusal {
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Page(c) | Refusal::ToSp { code: c, .. } => *c,
        }
    }
}

/// `YYYY-MM-DDThh:mm:ss[.fff]Z`, UTC only.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let body = s.strip_suffix('Z')?;
    NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// xs:ID is an NCName.
pub(crate) fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && s.len() <= 256
}

fn text(e: &Element) -> Option<String> {
    e.text_content().map(|t| t.trim().to_owned())
}

fn is_true(v: Option<&str>) -> bool {
    matches!(v.map(str::trim), Some("true" | "1"))
}

/// The ACS the request names, if it names one correctly (nr16 otherwise).
fn chosen_acs<'a>(req: &Element, sp: &'a ServiceProvider) -> Option<&'a Acs> {
    let index = req.attribute("AssertionConsumerServiceIndex");
    let url = req.attribute("AssertionConsumerServiceURL");
    let binding = req.attribute("ProtocolBinding");
    match (index, url, binding) {
        (Some(i), None, None) => i.trim().parse::<u16>().ok().and_then(|i| sp.acs_by_index(i)),
        (None, Some(u), Some(HTTP_POST)) => sp.acs_by_location(u),
        _ => None,
    }
}

/// Runs every check; see the module documentation for the order.
/// The message's sender, authenticated: the Issuer names the SP whose
/// registered keys must verify the signature (a page otherwise: nr04 for
/// what is not XML, nr10 for an unknown sender, nr05/nr07 for the
/// signature). Used for AuthnRequests and LogoutRequests alike.
pub fn authenticate(incoming: &Incoming, ctx: &Context<'_>) -> Result<(Element, Arc<ServiceProvider>), ErrorCode> {
    let root = spid_xml::parse(&incoming.xml, Limits::default()).map_err(|_| ErrorCode::Nr04)?;
    let issuer_el = root.first(SAML, "Issuer").ok_or(ErrorCode::Nr10)?;
    let issuer = text(issuer_el).filter(|i| !i.is_empty()).ok_or(ErrorCode::Nr10)?;
    let sp = ctx.registry.get(&issuer).ok_or(ErrorCode::Nr10)?;
    let keys = sp.verification_keys(ctx.now);
    match &incoming.signature {
        Some(sig) => {
            let algorithm = SignatureAlgorithm::from_uri(&sig.algorithm).ok_or(ErrorCode::Nr05)?;
            if !keys.iter().any(|k| algorithm.verify(k, &sig.signed, &sig.value)) {
                return Err(ErrorCode::Nr05);
            }
        }
        None => verify_root(&root, &keys).map_err(|_| ErrorCode::Nr07)?,
    }
    Ok((root, sp))
}

/// Whether `IssueInstant` is well formed and within the accepted window.
pub fn fresh(instant: &str, ctx: &Context<'_>) -> bool {
    parse_instant(instant).is_some_and(|t| t <= ctx.now + ctx.skew && t >= ctx.now - ctx.max_age)
}

/// Runs every check; see the module documentation for the order.
pub fn check(incoming: &Incoming, ctx: &Context<'_>) -> Result<Checked, Refusal> {
    let (root, sp) = authenticate(incoming, ctx).map_err(Refusal::Page)?;
    // The Issuer's form (manual A 317-319): entity Format, NameQualifier
    // naming the SP itself.
    let issuer_ok = root.first(SAML, "Issuer").is_some_and(|i| {
        i.attribute("Format") == Some(ENTITY_FORMAT)
            && i.attribute("NameQualifier").map(str::trim) == Some(sp.entity_id.as_str())
    });
    if !issuer_ok {
        return Err(Refusal::Page(ErrorCode::Nr10));
    }

    // From here on the sender is known: errors go back to it.
    let acs = chosen_acs(&root, &sp);
    let reply_acs = acs.or_else(|| sp.default_acs()).map(|a| a.location.clone()).unwrap_or_default();
    let request_id = root.attribute("ID").filter(|id| is_ncname(id)).map(str::to_owned);
    let to_sp = |code: ErrorCode| Refusal::ToSp {
        code,
        sp: sp.clone(),
        acs_url: reply_acs.clone(),
        request_id: request_id.clone(),
        relay_state: incoming.relay_state.clone(),
    };

    if !root.is(SAMLP, "AuthnRequest") {
        return Err(to_sp(ErrorCode::Nr08));
    }
    if root.attribute("Version") != Some("2.0") {
        return Err(to_sp(ErrorCode::Nr09));
    }
    let Some(request_id) = request_id.clone() else { return Err(to_sp(ErrorCode::Nr11)) };
    let issue_instant = root.attribute("IssueInstant").unwrap_or_default().to_owned();
    if !fresh(&issue_instant, ctx) {
        return Err(to_sp(ErrorCode::Nr13));
    }
    let destination = root.attribute("Destination").unwrap_or_default();
    if destination != ctx.entity_id && !ctx.sso_locations.iter().any(|l| l == destination) {
        return Err(to_sp(ErrorCode::Nr14));
    }
    let level = requested_level(&root).ok_or_else(|| to_sp(ErrorCode::Nr12))?;
    if is_true(root.attribute("IsPassive")) {
        return Err(to_sp(ErrorCode::Nr15));
    }
    let Some(acs) = acs else { return Err(to_sp(ErrorCode::Nr16)) };
    let policy = root.first(SAMLP, "NameIDPolicy");
    if policy.and_then(|p| p.attribute("Format")) != Some(TRANSIENT) {
        return Err(to_sp(ErrorCode::Nr17));
    }
    let attributes = match root.attribute("AttributeConsumingServiceIndex") {
        None => Vec::new(),
        Some(i) => match i.trim().parse::<u16>().ok().and_then(|i| sp.attribute_service(i)) {
            Some(service) => service.attributes.clone(),
            None => return Err(to_sp(ErrorCode::Nr18)),
        },
    };
    if let Some(subject) = root.first(SAML, "Subject") {
        let name_id = subject.first(SAML, "NameID");
        let ok = name_id.is_some_and(|n| {
            n.attribute("Format").is_some_and(|f| UNSPECIFIED.contains(&f))
                && n.attribute("NameQualifier").is_some_and(|q| !q.is_empty())
                && text(n).is_some_and(|t| !t.is_empty())
        });
        if !ok {
            return Err(to_sp(ErrorCode::Nr08));
        }
    }
    if let Some(conditions) = root.first(SAML, "Conditions") {
        let bound = |name: &str| conditions.attribute(name).map(parse_instant);
        let not_before_ok = match bound("NotBefore") {
            None => true,
            Some(Some(t)) => t <= ctx.now + ctx.skew,
            Some(None) => false,
        };
        let not_after_ok = match bound("NotOnOrAfter") {
            None => true,
            Some(Some(t)) => t > ctx.now - ctx.skew,
            Some(None) => false,
        };
        if !not_before_ok || !not_after_ok {
            return Err(to_sp(ErrorCode::Nr08));
        }
    }

    // Avviso SPID 18: which identities the service is for.
    let purpose = match root.first(SAMLP, "Extensions").and_then(|x| x.first(SPID_EXTENSIONS, "Purpose")) {
        None => None,
        Some(p) => match text(p).as_deref().and_then(Purpose::parse) {
            Some(purpose) => Some(purpose),
            None => return Err(to_sp(ErrorCode::Nr08)),
        },
    };

    Ok(Checked {
        purpose,
        sp: sp.clone(),
        request_id,
        issue_instant,
        acs_url: acs.location.clone(),
        level,
        force_authn: is_true(root.attribute("ForceAuthn")),
        attributes,
        relay_state: incoming.relay_state.clone(),
    })
}

/// Exactly one SPID class reference and a comparison (nr12).
fn requested_level(root: &Element) -> Option<Level> {
    let ctx = root.first(SAMLP, "RequestedAuthnContext")?;
    let comparison = Comparison::parse(ctx.attribute("Comparison")?)?;
    let mut refs = ctx.children_named(SAML, "AuthnContextClassRef");
    let (Some(only), None) = (refs.next(), refs.next()) else { return None };
    if ctx.elements().count() != 1 {
        return None;
    }
    comparison.target(Level::from_uri(&text(only)?)?)
}

#[cfg(test)]
#[path = "request_tests.rs"]
pub(crate) mod tests;
