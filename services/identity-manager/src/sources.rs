//! Verification of an applicant against authoritative sources (VER-1):
//! Agenzia delle Entrate (is the codice fiscale assigned, current, and does
//! it belong to this person), SCIPAFI (the Ministry of Economy's
//! identity-theft prevention system: document and health card data against
//! the registries) and the Ministry of the Interior's document registry (is
//! the document valid, not reported lost, stolen or invalidated).
//!
//! Each source is an [`AuthoritativeSource`]. A call answers a
//! [`SourceCheck`]: the verdict, the exact request and response texts and
//! the source's transaction reference — what the caller keeps as evidence.
//! [`Sources`] holds every configured source and asks them all.
//!
//! Each source has two implementations speaking the same protocol:
//!
//! - [`SoapClient`]: SOAP 1.1 over HTTPS with mutual TLS, for production.
//! - [`LocalSource`]: decides from a data file ([`LocalData`]), for
//!   development and tests. It writes the same envelopes the real client
//!   sends and receives and reads its own answer back through the same
//!   parser, so evidence looks the same in development and production. It
//!   never pretends: what it does not find in its data it refuses, except
//!   unknown codici fiscali under [`UnknownCodes::ConfirmIfWellFormed`].
//!
//! # The protocol
//!
//! We do not have the official WSDLs. The envelopes use our own element
//! names, in one namespace per source ([`Source::namespace`]); at
//! integration they must be aligned with each service's WSDL, which changes
//! only [`request_envelope`], [`response_envelope`] and [`parse_response`].
//! A request (fields per source in [`request_fields`]):
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ade="urn:spid-idp:sources:ade:v1">
//!   <soapenv:Header/>
//!   <soapenv:Body>
//!     <ade:VerifyCodiceFiscale>
//!       <ade:RequestId>0b0f6f0e-…</ade:RequestId>
//!       <ade:RequestedAt>2025-03-01T10:00:00.000Z</ade:RequestedAt>
//!       <ade:CodiceFiscale>RSSMRA80B01H501T</ade:CodiceFiscale>
//!       <ade:Surname>Rossi</ade:Surname>
//!       …
//!     </ade:VerifyCodiceFiscale>
//!   </soapenv:Body>
//! </soapenv:Envelope>
//! ```
//!
//! The answer, `VerifyCodiceFiscaleResponse` in the same namespace, echoes
//! `RequestId` and carries the source's `Reference`, the `Outcome`
//! (`confirmed` or `refused`) and, when refused, one `Reason` per cause:
//! stable codes `<subject field>.<condition>` such as
//! `codice_fiscale.replaced`, `surname.mismatch`, `document.reported_stolen`.
//! Errors are SOAP 1.1 `Fault`s ([`SourceError::Protocol`]); transport
//! failures and HTTP errors without a fault are [`SourceError::Unavailable`].
//! Responses with a DOCTYPE, with entities other than the five predefined
//! ones, nested deeper than 32 elements or larger than 1 MiB are refused.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde::{Deserialize, Serialize};
use spid_codice_fiscale::{CfError, CodiceFiscale, Person, Sex};
use spid_types::Clock;

use crate::application::{Application, DOCUMENT_KINDS};

/// The applicant's data as the sources check it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub codice_fiscale: String,
    pub surname: String,
    pub given_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// `M` or `F`.
    pub sex: String,
    /// Belfiore code of the municipality or foreign state of birth.
    pub birthplace: String,
    /// One of [`DOCUMENT_KINDS`].
    pub document_kind: String,
    pub document_number: String,
    /// `YYYY-MM-DD`.
    pub document_issued_on: String,
    /// `YYYY-MM-DD`.
    pub document_expires_on: String,
    /// The 20-digit tessera sanitaria number.
    pub health_card_number: String,
    /// `YYYY-MM-DD`.
    pub health_card_expires_on: String,
}

impl Subject {
    /// The fields of an application the sources check.
    pub fn from_application(a: &Application) -> Self {
        Self {
            codice_fiscale: a.codice_fiscale.trim().to_ascii_uppercase(),
            surname: a.surname.clone(),
            given_name: a.given_name.clone(),
            birth_date: a.birth_date.clone(),
            sex: a.sex.clone(),
            birthplace: a.birthplace.clone(),
            document_kind: a.document.kind.clone(),
            document_number: a.document.number.clone(),
            document_issued_on: a.document.issued_on.clone(),
            document_expires_on: a.document.expires_on.clone(),
            health_card_number: a.health_card.number.clone(),
            health_card_expires_on: a.health_card.expires_on.clone(),
        }
    }
}

/// Personal data stays out of logs: only the codice fiscale is shown.
impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject").field("codice_fiscale", &self.codice_fiscale).finish_non_exhaustive()
    }
}

/// The authoritative sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    AgenziaEntrate,
    Scipafi,
    DocumentRegistry,
}

impl Source {
    pub const ALL: [Source; 3] = [Self::AgenziaEntrate, Self::Scipafi, Self::DocumentRegistry];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgenziaEntrate => "agenzia_entrate",
            Self::Scipafi => "scipafi",
            Self::DocumentRegistry => "document_registry",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The XML namespace of this source's messages (ours, until aligned
    /// with the official WSDL).
    pub fn namespace(self) -> &'static str {
        match self {
            Self::AgenziaEntrate => "urn:spid-idp:sources:ade:v1",
            Self::Scipafi => "urn:spid-idp:sources:scipafi:v1",
            Self::DocumentRegistry => "urn:spid-idp:sources:documents:v1",
        }
    }

    /// The request element; the response element adds `Response`.
    pub fn operation(self) -> &'static str {
        match self {
            Self::AgenziaEntrate => "VerifyCodiceFiscale",
            Self::Scipafi => "VerifyIdentity",
            Self::DocumentRegistry => "VerifyDocument",
        }
    }

    /// The `SOAPAction` HTTP header (unquoted).
    pub fn soap_action(self) -> String {
        format!("{}#{}", self.namespace(), self.operation())
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::AgenziaEntrate => "ade",
            Self::Scipafi => "scipafi",
            Self::DocumentRegistry => "doc",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a source answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    /// With at least one reason: stable codes `<subject field>.<condition>`.
    Refused {
        reasons: Vec<String>,
    },
}

impl Verdict {
    pub fn is_confirmed(&self) -> bool {
        matches!(self, Self::Confirmed)
    }
}

/// One call and its answer: what is stored as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceCheck {
    pub source: Source,
    pub verdict: Verdict,
    /// Exactly what was sent (the SOAP envelope).
    pub request: String,
    /// Exactly what came back (the SOAP envelope).
    pub response: String,
    /// The source's transaction id.
    pub reference: String,
    /// When the request was sent (its `RequestedAt`).
    pub at: DateTime<Utc>,
}

/// Why a source gave no verdict. None of these is a refusal of the
/// applicant: the check must be made again or reviewed by an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Transport failure, timeout, or an HTTP error without a SOAP fault.
    #[error("authoritative source unavailable: {0}")]
    Unavailable(String),
    /// A SOAP fault, or an answer outside the protocol.
    #[error("authoritative source protocol error: {0}")]
    Protocol(String),
    /// Unusable data: the local data file, the client settings, or a
    /// subject that cannot be put in a request.
    #[error("authoritative source data: {0}")]
    Data(String),
}

impl SourceError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "source.unavailable",
            Self::Protocol(_) => "source.protocol",
            Self::Data(_) => "source.data",
        }
    }
}

/// An authoritative source: asked about a subject, it answers a verdict
/// with the exchange that produced it.
#[async_trait::async_trait]
pub trait AuthoritativeSource: Send + Sync {
    fn source(&self) -> Source;
    async fn check(&self, s: &Subject) -> Result<SourceCheck, SourceError>;
}

/// Every configured source, in order.
#[derive(Clone)]
pub struct Sources(Vec<Arc<dyn AuthoritativeSource>>);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sources").field(&self.list()).finish()
    }
}

impl Sources {
    pub fn new(v: Vec<Arc<dyn AuthoritativeSource>>) -> Self {
        Self(v)
    }

    /// The three local adapters, sharing `data`.
    pub fn local(data: LocalData, clock: Arc<dyn Clock>) -> Self {
        let data = Arc::new(data);
        Self(
            Source::ALL
                .into_iter()
                .map(|s| Arc::new(LocalSource::new(s, data.clone(), clock.clone())) as Arc<dyn AuthoritativeSource>)
                .collect(),
        )
    }

    /// The three SOAP clients.
    pub fn soap(
        agenzia_entrate: SoapSettings,
        scipafi: SoapSettings,
        document_registry: SoapSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SourceError> {
        let clients = [
            (Source::AgenziaEntrate, agenzia_entrate),
            (Source::Scipafi, scipafi),
            (Source::DocumentRegistry, document_registry),
        ]
        .into_iter()
        .map(|(s, settings)| {
            SoapClient::new(s, settings, clock.clone()).map(|c| Arc::new(c) as Arc<dyn AuthoritativeSource>)
        })
        .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(clients))
    }

    /// The sources, in the order [`Sources::check_all`] answers.
    pub fn list(&self) -> Vec<Source> {
        self.0.iter().map(|s| s.source()).collect()
    }

    /// Asks every source at once; one result per source, in order.
    pub async fn check_all(&self, s: &Subject) -> Vec<Result<SourceCheck, SourceError>> {
        let mut set = tokio::task::JoinSet::new();
        for (i, source) in self.0.iter().enumerate() {
            let (source, subject) = (source.clone(), s.clone());
            set.spawn(async move { (i, source.check(&subject).await) });
        }
        let mut results: Vec<Option<Result<SourceCheck, SourceError>>> = self.0.iter().map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            if let Ok((i, result)) = joined
                && let Some(slot) = results.get_mut(i)
            {
                *slot = Some(result);
            }
        }
        results
            .into_iter()
            .zip(&self.0)
            .map(|(r, source)| {
                r.unwrap_or_else(|| {
                    Err(SourceError::Unavailable(format!("{}: the check did not complete", source.source())))
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The protocol: envelopes out, answers in.

pub const SOAP_ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// Largest response accepted.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const MAX_DEPTH: usize = 32;
const MAX_ELEMENTS: usize = 10_000;

/// The request fields of a source, in order: (element, value).
pub fn request_fields(source: Source, s: &Subject) -> Vec<(&'static str, &str)> {
    let person = [
        ("CodiceFiscale", s.codice_fiscale.as_str()),
        ("Surname", s.surname.as_str()),
        ("GivenName", s.given_name.as_str()),
        ("BirthDate", s.birth_date.as_str()),
        ("Sex", s.sex.as_str()),
        ("Birthplace", s.birthplace.as_str()),
    ];
    let document = [
        ("DocumentKind", s.document_kind.as_str()),
        ("DocumentNumber", s.document_number.as_str()),
        ("DocumentIssuedOn", s.document_issued_on.as_str()),
        ("DocumentExpiresOn", s.document_expires_on.as_str()),
    ];
    let health_card = [
        ("HealthCardNumber", s.health_card_number.as_str()),
        ("HealthCardExpiresOn", s.health_card_expires_on.as_str()),
    ];
    match source {
        Source::AgenziaEntrate => person.to_vec(),
        Source::Scipafi => person.into_iter().chain(document).chain(health_card).collect(),
        Source::DocumentRegistry => document.to_vec(),
    }
}

/// Escapes text for an XML element. Characters XML 1.0 cannot carry at all
/// (most control characters) are refused rather than altered.
pub fn escape_xml(text: &str) -> Result<String, SourceError> {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if u32::from(c) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                return Err(SourceError::Data(format!("character U+{:04X} cannot be sent in XML", u32::from(c))));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn envelope(source: Source, element: &str, fields: &[(&str, &str)]) -> Result<String, SourceError> {
    let p = source.prefix();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<soapenv:Envelope xmlns:soapenv=\"{SOAP_ENVELOPE_NS}\" xmlns:{p}=\"{}\">\n  <soapenv:Header/>\n  <soapenv:Body>\n    <{p}:{element}>\n",
        source.namespace()
    ));
    for (name, value) in fields {
        x.push_str(&format!("      <{p}:{name}>{}</{p}:{name}>\n", escape_xml(value)?));
    }
    x.push_str(&format!("    </{p}:{element}>\n  </soapenv:Body>\n</soapenv:Envelope>\n"));
    Ok(x)
}

/// The SOAP request for `s`, identified by `request_id` and sent at `at`.
pub fn request_envelope(
    source: Source,
    request_id: &str,
    at: DateTime<Utc>,
    s: &Subject,
) -> Result<String, SourceError> {
    let at = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut fields = vec![("RequestId", request_id), ("RequestedAt", at.as_str())];
    fields.extend(request_fields(source, s));
    envelope(source, source.operation(), &fields)
}

/// The SOAP answer a source gives (what [`LocalSource`] writes).
pub fn response_envelope(
    source: Source,
    request_id: &str,
    reference: &str,
    verdict: &Verdict,
) -> Result<String, SourceError> {
    let mut fields = vec![("RequestId", request_id), ("Reference", reference)];
    match verdict {
        Verdict::Confirmed => fields.push(("Outcome", "confirmed")),
        Verdict::Refused { reasons } => {
            fields.push(("Outcome", "refused"));
            fields.extend(reasons.iter().map(|r| ("Reason", r.as_str())));
        }
    }
    envelope(source, &format!("{}Response", source.operation()), &fields)
}

/// A source's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Verdict {
        reference: String,
        verdict: Verdict,
    },
    /// A SOAP 1.1 fault.
    Fault {
        code: String,
        message: String,
    },
}

/// Reads a source's SOAP answer to the request `request_id`. `Err` is a
/// text that is not an answer of the protocol.
pub fn parse_response(source: Source, request_id: &str, xml: &str) -> Result<Answer, String> {
    let root = parse_xml(xml)?;
    if !root.is(SOAP_ENVELOPE_NS, "Envelope") {
        return Err(format!("the root element is {}, not a SOAP 1.1 Envelope", root.qualified()));
    }
    let body = root.only_child(SOAP_ENVELOPE_NS, "Body")?;
    let mut payload = body.children.iter();
    let first = payload.next().ok_or("the SOAP Body is empty")?;
    if payload.next().is_some() {
        return Err("the SOAP Body holds more than one element".into());
    }
    if first.is(SOAP_ENVELOPE_NS, "Fault") {
        let text = |name: &str| first.children.iter().find(|c| c.name == name).map(|c| c.text.trim().to_owned());
        return Ok(Answer::Fault {
            code: text("faultcode").unwrap_or_default(),
            message: text("faultstring").unwrap_or_default(),
        });
    }
    let ns = source.namespace();
    let expected = format!("{}Response", source.operation());
    if !first.is(ns, &expected) {
        return Err(format!("expected {{{ns}}}{expected}, found {}", first.qualified()));
    }
    let echoed = first.only_child(ns, "RequestId")?.text.trim();
    if echoed != request_id {
        return Err(format!("the answer is to request {echoed}, not {request_id}"));
    }
    let reference = first.only_child(ns, "Reference")?.text.trim();
    if reference.is_empty() || reference.len() > 200 {
        return Err("the Reference is empty or longer than 200 characters".into());
    }
    let reasons: Vec<String> = first.children_named(ns, "Reason").map(|r| r.text.trim().to_owned()).collect();
    if reasons.iter().any(String::is_empty) {
        return Err("an empty Reason".into());
    }
    let verdict = match first.only_child(ns, "Outcome")?.text.trim() {
        "confirmed" if reasons.is_empty() => Verdict::Confirmed,
        "confirmed" => return Err("a confirmation with reasons for refusal".into()),
        "refused" if reasons.is_empty() => return Err("a refusal without a reason".into()),
        "refused" => Verdict::Refused { reasons },
        other => return Err(format!("unknown Outcome {other:?}")),
    };
    Ok(Answer::Verdict { reference: reference.to_owned(), verdict })
}

/// A parsed XML element: namespace, local name, text, element children.
#[derive(Debug, Default)]
struct Element {
    ns: String,
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    fn qualified(&self) -> String {
        format!("{{{}}}{}", self.ns, self.name)
    }

    fn children_named<'a>(&'a self, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    fn only_child(&self, ns: &str, name: &str) -> Result<&Element, String> {
        let mut found = self.children.iter().filter(|c| c.is(ns, name));
        match (found.next(), found.next()) {
            (Some(c), None) => Ok(c),
            (None, _) => Err(format!("{} has no {name}", self.name)),
            (Some(_), Some(_)) => Err(format!("{} has more than one {name}", self.name)),
        }
    }
}

/// Parses a whole document into elements. No DTD: a DOCTYPE is refused, so
/// is any entity but the five predefined ones.
fn parse_xml(xml: &str) -> Result<Element, String> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let not_xml = |e: &dyn std::fmt::Display| format!("not well-formed XML: {e}");
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|e| not_xml(&e))?;
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.0).into_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(p) => {
                return Err(format!("undeclared namespace prefix {}", String::from_utf8_lossy(&p)));
            }
        };
        match event {
            Event::Start(e) => open(&mut stack, &mut elements, ns, e.local_name().as_ref())?,
            Event::Empty(e) => {
                open(&mut stack, &mut elements, ns, e.local_name().as_ref())?;
                close(&mut stack, &mut root)?;
            }
            Event::End(_) => close(&mut stack, &mut root)?,
            Event::Text(t) => {
                let text = t.xml_content().map_err(|e| not_xml(&e))?;
                append_text(&mut stack, &text)?;
            }
            Event::CData(c) => {
                let text = std::str::from_utf8(&c.into_inner()).map_err(|e| not_xml(&e))?.to_owned();
                append_text(&mut stack, &text)?;
            }
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().map_err(|e| not_xml(&e))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| not_xml(&e))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("undeclared entity &{name};"))?
                            .to_owned()
                    }
                };
                append_text(&mut stack, &text)?;
            }
            Event::DocType(_) => return Err("a DOCTYPE is not accepted".into()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("not well-formed XML: unclosed element".into());
    }
    root.ok_or_else(|| "no root element".to_owned())
}

fn open(stack: &mut Vec<Element>, elements: &mut usize, ns: String, local_name: &[u8]) -> Result<(), String> {
    *elements += 1;
    if stack.len() >= MAX_DEPTH || *elements > MAX_ELEMENTS {
        return Err("the document is nested too deep or has too many elements".into());
    }
    let name = std::str::from_utf8(local_name).map_err(|e| format!("not well-formed XML: {e}"))?.to_owned();
    stack.push(Element { ns, name, ..Element::default() });
    Ok(())
}

fn close(stack: &mut Vec<Element>, root: &mut Option<Element>) -> Result<(), String> {
    let element = stack.pop().ok_or("not well-formed XML: an end tag without a start tag")?;
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err("not well-formed XML: more than one root element".into()),
    }
    Ok(())
}

fn append_text(stack: &mut [Element], text: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(element) => element.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err("not well-formed XML: text outside the root element".into()),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The real client.

/// The client certificate and its PKCS#8 private key, both PEM, presented
/// to the source (mutual TLS).
#[derive(Clone)]
pub struct TlsIdentity {
    pub certificate_pem: Vec<u8>,
    pub private_key_pem: Vec<u8>,
}

impl TlsIdentity {
    pub fn load(certificate: &Path, private_key: &Path) -> Result<Self, SourceError> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| SourceError::Data(format!("{}: {e}", p.display())));
        Ok(Self { certificate_pem: read(certificate)?, private_key_pem: read(private_key)? })
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").field("private_key_pem", &"<redacted>").finish_non_exhaustive()
    }
}

/// How to reach one source.
#[derive(Debug, Clone)]
pub struct SoapSettings {
    /// The service's HTTPS endpoint.
    pub endpoint: String,
    /// For the whole exchange, connection included.
    pub timeout: Duration,
    /// The client identity for mutual TLS.
    pub identity: Option<TlsIdentity>,
    /// A CA certificate (PEM) trusted besides the system's, for sources
    /// whose server certificates chain to a private CA.
    pub ca_certificate_pem: Option<Vec<u8>>,
    /// Allows `http://` endpoints: tests and local simulators only.
    pub allow_plain_http: bool,
}

impl SoapSettings {
    /// HTTPS to `endpoint`, 10 seconds, no client identity yet.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            timeout: Duration::from_secs(10),
            identity: None,
            ca_certificate_pem: None,
            allow_plain_http: false,
        }
    }
}

/// A source's SOAP 1.1 web service over HTTPS with mutual TLS.
#[derive(Debug)]
pub struct SoapClient {
    source: Source,
    endpoint: reqwest::Url,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl SoapClient {
    pub fn new(source: Source, settings: SoapSettings, clock: Arc<dyn Clock>) -> Result<Self, SourceError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| SourceError::Data(format!("{source}: {what}: {e}"));
        let endpoint = reqwest::Url::parse(&settings.endpoint).map_err(|e| bad("endpoint", &e))?;
        match endpoint.scheme() {
            "https" => {}
            "http" if settings.allow_plain_http => {}
            other => return Err(bad("endpoint", &format!("{other}:// is not allowed, use https://"))),
        }
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!settings.allow_plain_http);
        if let Some(id) = &settings.identity {
            let identity = reqwest::Identity::from_pkcs8_pem(&id.certificate_pem, &id.private_key_pem)
                .map_err(|e| bad("client identity", &e))?;
            builder = builder.identity(identity);
        }
        if let Some(pem) = &settings.ca_certificate_pem {
            let ca = reqwest::Certificate::from_pem(pem).map_err(|e| bad("CA certificate", &e))?;
            builder = builder.add_root_certificate(ca);
        }
        let http = builder.build().map_err(|e| bad("HTTP client", &e))?;
        Ok(Self { source, endpoint, http, clock })
    }

    async fn exchange(&self, request: String) -> Result<(reqwest::StatusCode, Vec<u8>), SourceError> {
        let source = self.source;
        let unavailable = |e: reqwest::Error| SourceError::Unavailable(format!("{source}: {e}"));
        let mut response = self
            .http
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("SOAPAction", format!("\"{}\"", source.soap_action()))
            .body(request)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        let too_large = || SourceError::Protocol(format!("{source}: the answer exceeds {MAX_RESPONSE_BYTES} bytes"));
        if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

#[async_trait::async_trait]
impl AuthoritativeSource for SoapClient {
    fn source(&self) -> Source {
        self.source
    }

    async fn check(&self, s: &Subject) -> Result<SourceCheck, SourceError> {
        let source = self.source;
        let request_id = uuid::Uuid::new_v4().to_string();
        let at = self.clock.now();
        let request = request_envelope(source, &request_id, at, s)?;
        let (status, body) = self.exchange(request.clone()).await?;
        let http_error = || SourceError::Unavailable(format!("{source}: HTTP {status}"));
        let response = match String::from_utf8(body) {
            Ok(text) => text,
            Err(_) if !status.is_success() => return Err(http_error()),
            Err(_) => return Err(SourceError::Protocol(format!("{source}: the answer is not UTF-8"))),
        };
        match parse_response(source, &request_id, &response) {
            Ok(Answer::Fault { code, message }) => {
                Err(SourceError::Protocol(format!("{source}: SOAP fault {code}: {}", truncate(&message, 500))))
            }
            Ok(Answer::Verdict { .. }) if !status.is_success() => {
                Err(SourceError::Protocol(format!("{source}: an answer with HTTP {status}")))
            }
            Ok(Answer::Verdict { reference, verdict }) => {
                tracing::info!(source = source.as_str(), %reference, confirmed = verdict.is_confirmed(), "authoritative source answered");
                Ok(SourceCheck { source, verdict, request, response, reference, at })
            }
            Err(_) if !status.is_success() => Err(http_error()),
            Err(e) => Err(SourceError::Protocol(format!("{source}: {e}"))),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

// ---------------------------------------------------------------------------
// The local sources and their data.

/// What the local Agenzia delle Entrate answers for codes not in its
/// registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownCodes {
    /// Confirms a well-formed code consistent with the declared surname,
    /// name, birth date, sex and birthplace (development: anyone can
    /// register).
    ConfirmIfWellFormed,
    /// Refuses it (`codice_fiscale.unknown`): tests and strict simulators.
    #[default]
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeStatus {
    /// Assigned and current.
    Valid,
    /// Replaced by another code (omocodia, correction).
    Replaced,
    /// Ceased (the holder died, or the code was cancelled).
    Ceased,
}

/// A codice fiscale in the local registry, with the person it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredCode {
    pub codice_fiscale: String,
    pub status: CodeStatus,
    /// The code that replaced this one, when known (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    pub surname: String,
    pub given_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// `M` or `F`.
    pub sex: String,
    /// Belfiore code.
    pub birthplace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    Lost,
    Stolen,
    Invalidated,
}

impl Report {
    /// The reason a source gives for a document so reported.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Lost => "document.reported_lost",
            Self::Stolen => "document.reported_stolen",
            Self::Invalidated => "document.invalidated",
        }
    }
}

/// A document reported to the Ministry of the Interior (seen by the
/// document registry and by SCIPAFI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedDocument {
    /// One of [`DOCUMENT_KINDS`].
    pub kind: String,
    pub number: String,
    pub report: Report,
    /// `YYYY-MM-DD` (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_on: Option<String>,
}

/// A field of [`Subject`], as named in its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectField {
    CodiceFiscale,
    Surname,
    GivenName,
    BirthDate,
    Sex,
    Birthplace,
    DocumentKind,
    DocumentNumber,
    DocumentIssuedOn,
    DocumentExpiresOn,
    HealthCardNumber,
    HealthCardExpiresOn,
}

impl SubjectField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CodiceFiscale => "codice_fiscale",
            Self::Surname => "surname",
            Self::GivenName => "given_name",
            Self::BirthDate => "birth_date",
            Self::Sex => "sex",
            Self::Birthplace => "birthplace",
            Self::DocumentKind => "document_kind",
            Self::DocumentNumber => "document_number",
            Self::DocumentIssuedOn => "document_issued_on",
            Self::DocumentExpiresOn => "document_expires_on",
            Self::HealthCardNumber => "health_card_number",
            Self::HealthCardExpiresOn => "health_card_expires_on",
        }
    }

    fn mismatch(self) -> String {
        format!("{}.mismatch", self.as_str())
    }
}

/// What SCIPAFI's registries disagree with, for subjects matching every
/// key given (at least one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScipafiMismatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codice_fiscale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_card_number: Option<String>,
    /// The fields answered as not matching (`<field>.mismatch`).
    pub fields: Vec<SubjectField>,
}

impl ScipafiMismatch {
    fn applies_to(&self, s: &Subject) -> bool {
        let key = |k: &Option<String>, v: &str| k.as_deref().is_none_or(|k| compact(k) == compact(v));
        key(&self.codice_fiscale, &s.codice_fiscale)
            && key(&self.document_number, &s.document_number)
            && key(&self.health_card_number, &s.health_card_number)
    }
}

/// The local sources' data (a JSON file): see [`LocalData::sample`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalData {
    #[serde(default)]
    pub unknown_codes: UnknownCodes,
    /// The Agenzia delle Entrate's registry.
    #[serde(default)]
    pub codici_fiscali: Vec<RegisteredCode>,
    /// Documents reported lost, stolen or invalidated.
    #[serde(default)]
    pub reported_documents: Vec<ReportedDocument>,
    /// What SCIPAFI answers as not matching.
    #[serde(default)]
    pub scipafi_mismatches: Vec<ScipafiMismatch>,
}

impl LocalData {
    /// Reads and checks a data file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| SourceError::Data(format!("{}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| SourceError::Data(format!("{}: {e}", path.display())))
    }

    pub fn from_json(text: &str) -> Result<Self, SourceError> {
        let data: Self = serde_json::from_str(text).map_err(|e| SourceError::Data(e.to_string()))?;
        data.validate()?;
        Ok(data)
    }

    /// Every entry usable: codes well-formed and unique, dates and sexes
    /// valid, every mismatch keyed and naming a field.
    pub fn validate(&self) -> Result<(), SourceError> {
        let bad = |what: String| Err(SourceError::Data(what));
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.codici_fiscali.iter().enumerate() {
            let at = format!("codici_fiscali[{i}]");
            if let Err(e) = CodiceFiscale::parse(&c.codice_fiscale) {
                return bad(format!("{at}.codice_fiscale: {e}"));
            }
            if !seen.insert(c.codice_fiscale.to_ascii_uppercase()) {
                return bad(format!("{at}.codice_fiscale: {} appears twice", c.codice_fiscale));
            }
            if date(&c.birth_date).is_none() {
                return bad(format!("{at}.birth_date: not a YYYY-MM-DD date"));
            }
            if sex(&c.sex).is_none() {
                return bad(format!("{at}.sex: M or F"));
            }
            if c.surname.trim().is_empty() || c.given_name.trim().is_empty() || c.birthplace.trim().is_empty() {
                return bad(format!("{at}: surname, given_name and birthplace are required"));
            }
        }
        for (i, d) in self.reported_documents.iter().enumerate() {
            if compact(&d.number).is_empty() || d.kind.trim().is_empty() {
                return bad(format!("reported_documents[{i}]: kind and number are required"));
            }
        }
        for (i, m) in self.scipafi_mismatches.iter().enumerate() {
            let keys = [&m.codice_fiscale, &m.document_number, &m.health_card_number];
            if keys.iter().all(|k| k.as_deref().is_none_or(|k| compact(k).is_empty())) {
                return bad(format!(
                    "scipafi_mismatches[{i}]: give codice_fiscale, document_number or health_card_number"
                ));
            }
            if m.fields.is_empty() {
                return bad(format!("scipafi_mismatches[{i}].fields: name at least one field"));
            }
        }
        Ok(())
    }

    /// Development data: unknown well-formed codes are confirmed; Mario
    /// Rossi (`RSSMRA80B01H501T`) and Giulia Bianchi (`BNCGLI85L55F205B`)
    /// are registered and valid; Luca Verdi's `VRDLCU70T31L219M` was
    /// replaced by `VRDLCU70T31L21VB`; Anna Neri's `NRENNA50C50A944H` has
    /// ceased; CIE `CA00000AA` is stolen and passport `YA0000000` lost;
    /// SCIPAFI flags health card `80380000009999999998` and the dates of
    /// CIE `CA99999ZZ`.
    pub fn sample() -> Self {
        let person =
            |cf: &str, status, surname: &str, given: &str, birth: &str, sex: &str, place: &str| RegisteredCode {
                codice_fiscale: cf.into(),
                status,
                replaced_by: None,
                surname: surname.into(),
                given_name: given.into(),
                birth_date: birth.into(),
                sex: sex.into(),
                birthplace: place.into(),
            };
        let verdi = |cf: &str, status| person(cf, status, "Verdi", "Luca", "1970-12-31", "M", "L219");
        Self {
            unknown_codes: UnknownCodes::ConfirmIfWellFormed,
            codici_fiscali: vec![
                person("RSSMRA80B01H501T", CodeStatus::Valid, "Rossi", "Mario", "1980-02-01", "M", "H501"),
                person("BNCGLI85L55F205B", CodeStatus::Valid, "Bianchi", "Giulia", "1985-07-15", "F", "F205"),
                RegisteredCode {
                    replaced_by: Some("VRDLCU70T31L21VB".into()),
                    ..verdi("VRDLCU70T31L219M", CodeStatus::Replaced)
                },
                verdi("VRDLCU70T31L21VB", CodeStatus::Valid),
                person("NRENNA50C50A944H", CodeStatus::Ceased, "Neri", "Anna", "1950-03-10", "F", "A944"),
            ],
            reported_documents: vec![
                ReportedDocument {
                    kind: "carta_identita_elettronica".into(),
                    number: "CA00000AA".into(),
                    report: Report::Stolen,
                    reported_on: Some("2024-05-02".into()),
                },
                ReportedDocument {
                    kind: "passaporto".into(),
                    number: "YA0000000".into(),
                    report: Report::Lost,
                    reported_on: Some("2023-11-20".into()),
                },
            ],
            scipafi_mismatches: vec![
                ScipafiMismatch {
                    codice_fiscale: None,
                    document_number: None,
                    health_card_number: Some("80380000009999999998".into()),
                    fields: vec![SubjectField::HealthCardNumber],
                },
                ScipafiMismatch {
                    codice_fiscale: None,
                    document_number: Some("CA99999ZZ".into()),
                    health_card_number: None,
                    fields: vec![SubjectField::DocumentIssuedOn, SubjectField::DocumentExpiresOn],
                },
            ],
        }
    }

    fn registered(&self, code: &str) -> Option<&RegisteredCode> {
        self.codici_fiscali.iter().find(|c| c.codice_fiscale.eq_ignore_ascii_case(code.trim()))
    }

    fn reported(&self, s: &Subject) -> Option<&ReportedDocument> {
        self.reported_documents
            .iter()
            .find(|d| d.kind.trim() == s.document_kind.trim() && compact(&d.number) == compact(&s.document_number))
    }
}

/// One source answered from [`LocalData`], with the envelopes of the real
/// protocol.
#[derive(Debug)]
pub struct LocalSource {
    source: Source,
    data: Arc<LocalData>,
    clock: Arc<dyn Clock>,
}

impl LocalSource {
    pub fn new(source: Source, data: Arc<LocalData>, clock: Arc<dyn Clock>) -> Self {
        Self { source, data, clock }
    }

    /// The reasons for refusing `s`; none to confirm.
    fn decide(&self, s: &Subject, today: NaiveDate) -> Vec<String> {
        let mut reasons = match self.source {
            Source::AgenziaEntrate => agenzia_entrate(&self.data, s),
            Source::Scipafi => scipafi(&self.data, s),
            Source::DocumentRegistry => document_registry(&self.data, s, today),
        };
        let mut seen = std::collections::HashSet::new();
        reasons.retain(|r| seen.insert(r.clone()));
        reasons
    }
}

#[async_trait::async_trait]
impl AuthoritativeSource for LocalSource {
    fn source(&self) -> Source {
        self.source
    }

    async fn check(&self, s: &Subject) -> Result<SourceCheck, SourceError> {
        let source = self.source;
        let request_id = uuid::Uuid::new_v4().to_string();
        let at = self.clock.now();
        let request = request_envelope(source, &request_id, at, s)?;
        let reasons = self.decide(s, at.date_naive());
        let verdict = if reasons.is_empty() { Verdict::Confirmed } else { Verdict::Refused { reasons } };
        let reference = format!("LOCAL-{}-{}", source.prefix().to_ascii_uppercase(), uuid::Uuid::new_v4().simple());
        let response = response_envelope(source, &request_id, &reference, &verdict)?;
        // Read back as the real client would: the verdict is the one the
        // evidence shows.
        match parse_response(source, &request_id, &response) {
            Ok(Answer::Verdict { reference, verdict }) => {
                Ok(SourceCheck { source, verdict, request, response, reference, at })
            }
            Ok(Answer::Fault { code, message }) => {
                Err(SourceError::Protocol(format!("{source}: SOAP fault {code}: {message}")))
            }
            Err(e) => Err(SourceError::Protocol(format!("{source}: {e}"))),
        }
    }
}

/// Agenzia delle Entrate: is the code assigned and current, and does the
/// person match the registry.
fn agenzia_entrate(data: &LocalData, s: &Subject) -> Vec<String> {
    let Ok(cf) = CodiceFiscale::parse(s.codice_fiscale.trim()) else {
        return vec!["codice_fiscale.malformed".into()];
    };
    if let Some(entry) = data.registered(cf.as_str()) {
        let mut reasons = match entry.status {
            CodeStatus::Valid => vec![],
            CodeStatus::Replaced => vec!["codice_fiscale.replaced".to_owned()],
            CodeStatus::Ceased => vec!["codice_fiscale.ceased".to_owned()],
        };
        reasons.extend(person_mismatches(entry, s));
        return reasons;
    }
    match data.unknown_codes {
        UnknownCodes::Refuse => vec!["codice_fiscale.unknown".into()],
        UnknownCodes::ConfirmIfWellFormed => consistency(&cf, s),
    }
}

/// Whether the declared data are those the code encodes (first mismatch).
fn consistency(cf: &CodiceFiscale, s: &Subject) -> Vec<String> {
    let (Some(birth_date), Some(sex)) = (date(&s.birth_date), sex(&s.sex)) else {
        let mut reasons = vec![];
        if date(&s.birth_date).is_none() {
            reasons.push(SubjectField::BirthDate.mismatch());
        }
        if sex(&s.sex).is_none() {
            reasons.push(SubjectField::Sex.mismatch());
        }
        return reasons;
    };
    let person = Person { surname: &s.surname, name: &s.given_name, birth_date, sex, birthplace: s.birthplace.trim() };
    match cf.check(&person) {
        Ok(()) => vec![],
        Err(e) => vec![match e {
            CfError::Surname => SubjectField::Surname.mismatch(),
            CfError::Name => SubjectField::GivenName.mismatch(),
            CfError::BirthDate => SubjectField::BirthDate.mismatch(),
            CfError::Sex => SubjectField::Sex.mismatch(),
            CfError::Birthplace | CfError::PlaceNotValidThen(_) => SubjectField::Birthplace.mismatch(),
            CfError::Length
            | CfError::Format { .. }
            | CfError::CheckCharacter { .. }
            | CfError::Date
            | CfError::UnknownPlace(_) => "codice_fiscale.malformed".to_owned(),
        }],
    }
}

/// The person's data against a registry entry, field by field.
fn person_mismatches(entry: &RegisteredCode, s: &Subject) -> Vec<String> {
    let checks = [
        (SubjectField::Surname, name_key(&entry.surname) == name_key(&s.surname)),
        (SubjectField::GivenName, name_key(&entry.given_name) == name_key(&s.given_name)),
        (SubjectField::BirthDate, date(&s.birth_date).is_some() && date(&entry.birth_date) == date(&s.birth_date)),
        (SubjectField::Sex, sex(&s.sex).is_some() && sex(&entry.sex) == sex(&s.sex)),
        (SubjectField::Birthplace, entry.birthplace.trim().eq_ignore_ascii_case(s.birthplace.trim())),
    ];
    checks.into_iter().filter(|(_, ok)| !ok).map(|(f, _)| f.mismatch()).collect()
}

/// SCIPAFI: the document's reports, what its registries flag, and the
/// person's data against the tax registry when the code is there.
fn scipafi(data: &LocalData, s: &Subject) -> Vec<String> {
    let mut reasons = vec![];
    if let Some(d) = data.reported(s) {
        reasons.push(d.report.reason().to_owned());
    }
    for m in data.scipafi_mismatches.iter().filter(|m| m.applies_to(s)) {
        reasons.extend(m.fields.iter().map(|f| f.mismatch()));
    }
    if let Some(entry) = data.registered(&s.codice_fiscale) {
        reasons.extend(person_mismatches(entry, s));
    }
    reasons
}

/// The Ministry of the Interior: a known kind, a plausible number, not
/// reported, not expired (dates in UTC).
fn document_registry(data: &LocalData, s: &Subject, today: NaiveDate) -> Vec<String> {
    let mut reasons = vec![];
    if !DOCUMENT_KINDS.contains(&s.document_kind.trim()) {
        reasons.push("document_kind.unknown".to_owned());
    }
    let number = compact(&s.document_number);
    if !(5..=20).contains(&number.len()) || !number.chars().all(|c| c.is_ascii_alphanumeric()) {
        reasons.push("document_number.malformed".to_owned());
    }
    if let Some(d) = data.reported(s) {
        reasons.push(d.report.reason().to_owned());
    }
    match date(&s.document_expires_on) {
        Some(expires) if expires < today => reasons.push("document.expired".to_owned()),
        Some(_) => {}
        None => reasons.push("document_expires_on.malformed".to_owned()),
    }
    reasons
}

fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

fn sex(s: &str) -> Option<Sex> {
    match s.trim() {
        "M" | "m" => Some(Sex::Male),
        "F" | "f" => Some(Sex::Female),
        _ => None,
    }
}

/// Upper case without spaces: document, card and tax code numbers.
fn compact(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect()
}

/// A name as registries compare it: upper case, accents folded,
/// apostrophes and hyphens as spaces, spaces collapsed.
fn name_key(s: &str) -> String {
    let folded: String = s
        .chars()
        .flat_map(char::to_uppercase)
        .map(|c| match c {
            'À' | 'Á' | 'Â' | 'Ä' | 'Ã' | 'Å' => 'A',
            'È' | 'É' | 'Ê' | 'Ë' => 'E',
            'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
            'Ò' | 'Ó' | 'Ô' | 'Ö' | 'Õ' => 'O',
            'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
            'Ç' => 'C',
            'Ñ' => 'N',
            '\'' | '’' | '`' | '-' => ' ',
            c => c,
        })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use chrono::TimeZone;
    use spid_types::ManualClock;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 10, 0, 0).unwrap()
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(ManualClock::new(now()))
    }

    fn mario() -> Subject {
        Subject {
            codice_fiscale: "RSSMRA80B01H501T".into(),
            surname: "Rossi".into(),
            given_name: "Mario".into(),
            birth_date: "1980-02-01".into(),
            sex: "M".into(),
            birthplace: "H501".into(),
            document_kind: "carta_identita_elettronica".into(),
            document_number: "CA12345AB".into(),
            document_issued_on: "2021-02-01".into(),
            document_expires_on: "2031-02-01".into(),
            health_card_number: "80380000001234567896".into(),
            health_card_expires_on: "2027-12-31".into(),
        }
    }

    /// Registered: Mario Rossi (valid), a replaced and a ceased code;
    /// unknown codes refused.
    fn strict() -> LocalData {
        LocalData { unknown_codes: UnknownCodes::Refuse, ..LocalData::sample() }
    }

    async fn ask(data: &LocalData, source: Source, s: &Subject) -> SourceCheck {
        LocalSource::new(source, Arc::new(data.clone()), clock()).check(s).await.unwrap()
    }

    fn refused(reasons: &[&str]) -> Verdict {
        Verdict::Refused { reasons: reasons.iter().map(|r| r.to_string()).collect() }
    }

    #[tokio::test]
    async fn agenzia_entrate_confirms_a_current_code_of_the_person() {
        let check = ask(&strict(), Source::AgenziaEntrate, &mario()).await;
        assert_eq!(check.verdict, Verdict::Confirmed);
        assert_eq!(check.source, Source::AgenziaEntrate);
        assert_eq!(check.at, now());
        // Case and accents do not make a mismatch.
        let s = Subject { surname: "ROSSI".into(), given_name: "mario".into(), ..mario() };
        assert_eq!(ask(&strict(), Source::AgenziaEntrate, &s).await.verdict, Verdict::Confirmed);
    }

    #[tokio::test]
    async fn agenzia_entrate_refuses_replaced_and_ceased_codes() {
        let verdi = Subject {
            codice_fiscale: "VRDLCU70T31L219M".into(),
            surname: "Verdi".into(),
            given_name: "Luca".into(),
            birth_date: "1970-12-31".into(),
            birthplace: "L219".into(),
            ..mario()
        };
        let check = ask(&strict(), Source::AgenziaEntrate, &verdi).await;
        assert_eq!(check.verdict, refused(&["codice_fiscale.replaced"]));
        // The code that replaced it is current.
        let current = Subject { codice_fiscale: "VRDLCU70T31L21VB".into(), ..verdi };
        assert_eq!(ask(&strict(), Source::AgenziaEntrate, &current).await.verdict, Verdict::Confirmed);
        let neri = Subject {
            codice_fiscale: "NRENNA50C50A944H".into(),
            surname: "Neri".into(),
            given_name: "Anna".into(),
            birth_date: "1950-03-10".into(),
            sex: "F".into(),
            birthplace: "A944".into(),
            ..mario()
        };
        assert_eq!(ask(&strict(), Source::AgenziaEntrate, &neri).await.verdict, refused(&["codice_fiscale.ceased"]));
    }

    #[tokio::test]
    async fn agenzia_entrate_refuses_data_not_matching_the_registry() {
        let s = Subject { surname: "Russo".into(), birth_date: "1980-02-02".into(), ..mario() };
        let check = ask(&strict(), Source::AgenziaEntrate, &s).await;
        assert_eq!(check.verdict, refused(&["surname.mismatch", "birth_date.mismatch"]));
        assert!(check.response.contains("<ade:Reason>surname.mismatch</ade:Reason>"), "{}", check.response);
    }

    #[tokio::test]
    async fn unknown_codes_follow_the_policy() {
        // A well-formed code nobody registered: Paolo D'Amico.
        let damico = Subject {
            codice_fiscale: "DMCPLA75A01H501I".into(),
            surname: "D'Amico".into(),
            given_name: "Paolo".into(),
            birth_date: "1975-01-01".into(),
            ..mario()
        };
        assert_eq!(ask(&strict(), Source::AgenziaEntrate, &damico).await.verdict, refused(&["codice_fiscale.unknown"]));
        let open = LocalData::sample();
        assert_eq!(open.unknown_codes, UnknownCodes::ConfirmIfWellFormed);
        assert_eq!(ask(&open, Source::AgenziaEntrate, &damico).await.verdict, Verdict::Confirmed);
        // Well-formed but not this person's.
        let other = Subject { birth_date: "1975-01-02".into(), ..damico.clone() };
        assert_eq!(ask(&open, Source::AgenziaEntrate, &other).await.verdict, refused(&["birth_date.mismatch"]));
        // Not well-formed: wrong check character, wrong length.
        for code in ["DMCPLA75A01H501X", "DMCPLA75A01H501"] {
            let bad = Subject { codice_fiscale: code.into(), ..damico.clone() };
            for data in [&open, &strict()] {
                assert_eq!(
                    ask(data, Source::AgenziaEntrate, &bad).await.verdict,
                    refused(&["codice_fiscale.malformed"])
                );
            }
        }
    }

    #[tokio::test]
    async fn document_registry_refuses_reported_and_expired_documents() {
        let data = strict();
        assert_eq!(ask(&data, Source::DocumentRegistry, &mario()).await.verdict, Verdict::Confirmed);
        let stolen = Subject { document_number: "ca 00000 aa".into(), ..mario() };
        assert_eq!(ask(&data, Source::DocumentRegistry, &stolen).await.verdict, refused(&["document.reported_stolen"]));
        let lost = Subject { document_kind: "passaporto".into(), document_number: "YA0000000".into(), ..mario() };
        assert_eq!(ask(&data, Source::DocumentRegistry, &lost).await.verdict, refused(&["document.reported_lost"]));
        // The same number on another kind of document was not reported.
        let other_kind = Subject { document_kind: "patente".into(), ..stolen };
        assert_eq!(ask(&data, Source::DocumentRegistry, &other_kind).await.verdict, Verdict::Confirmed);
        let expired = Subject { document_expires_on: "2025-02-28".into(), ..mario() };
        assert_eq!(ask(&data, Source::DocumentRegistry, &expired).await.verdict, refused(&["document.expired"]));
        let odd = Subject { document_kind: "tessera_club".into(), document_number: "A-1".into(), ..mario() };
        assert_eq!(
            ask(&data, Source::DocumentRegistry, &odd).await.verdict,
            refused(&["document_kind.unknown", "document_number.malformed"])
        );
    }

    #[tokio::test]
    async fn scipafi_refuses_what_the_registries_flag() {
        let data = strict();
        assert_eq!(ask(&data, Source::Scipafi, &mario()).await.verdict, Verdict::Confirmed);
        let card = Subject { health_card_number: "80380000009999999998".into(), ..mario() };
        assert_eq!(ask(&data, Source::Scipafi, &card).await.verdict, refused(&["health_card_number.mismatch"]));
        let document = Subject { document_number: "CA99999ZZ".into(), ..mario() };
        assert_eq!(
            ask(&data, Source::Scipafi, &document).await.verdict,
            refused(&["document_issued_on.mismatch", "document_expires_on.mismatch"])
        );
        let stolen = Subject { document_number: "CA00000AA".into(), ..mario() };
        assert_eq!(ask(&data, Source::Scipafi, &stolen).await.verdict, refused(&["document.reported_stolen"]));
        let impostor = Subject { given_name: "Marco".into(), ..mario() };
        assert_eq!(ask(&data, Source::Scipafi, &impostor).await.verdict, refused(&["given_name.mismatch"]));
    }

    #[tokio::test]
    async fn local_evidence_has_the_shape_of_the_protocol() {
        let s = Subject { surname: "D'Amico & <Figli>".into(), ..mario() };
        let check = ask(&strict(), Source::Scipafi, &s).await;
        // The request is the envelope the real client sends, escaped.
        let request = parse_xml(&check.request).unwrap();
        assert!(request.is(SOAP_ENVELOPE_NS, "Envelope"));
        let body = request.only_child(SOAP_ENVELOPE_NS, "Body").unwrap();
        let op = body.only_child(Source::Scipafi.namespace(), "VerifyIdentity").unwrap();
        let field = |name: &str| op.only_child(Source::Scipafi.namespace(), name).unwrap().text.clone();
        assert_eq!(field("Surname"), "D'Amico & <Figli>");
        assert_eq!(field("HealthCardNumber"), "80380000001234567896");
        assert_eq!(field("RequestedAt"), "2025-03-01T10:00:00.000Z");
        assert!(check.request.contains("D&apos;Amico &amp; &lt;Figli&gt;"), "{}", check.request);
        // The response reads back to the same verdict and reference.
        let id = field("RequestId");
        assert_eq!(
            parse_response(Source::Scipafi, &id, &check.response).unwrap(),
            Answer::Verdict { reference: check.reference.clone(), verdict: check.verdict.clone() }
        );
        assert!(check.reference.starts_with("LOCAL-SCIPAFI-"), "{}", check.reference);
        assert_eq!(check.verdict, refused(&["surname.mismatch"]));
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(json["source"], "scipafi");
        assert_eq!(json["verdict"]["outcome"], "refused");
        assert_eq!(json["verdict"]["reasons"][0], "surname.mismatch");
    }

    #[tokio::test]
    async fn check_all_asks_every_source_in_order() {
        let sources = Sources::local(strict(), clock());
        assert_eq!(sources.list(), Source::ALL.to_vec());
        let results = sources.check_all(&mario()).await;
        let got: Vec<_> = results.into_iter().map(|r| r.map(|c| (c.source, c.verdict))).collect();
        assert_eq!(got, Source::ALL.iter().map(|s| Ok((*s, Verdict::Confirmed))).collect::<Vec<_>>());
        let stolen = Subject { document_number: "CA00000AA".into(), ..mario() };
        let verdicts: Vec<_> =
            sources.check_all(&stolen).await.into_iter().map(|r| r.unwrap().verdict.is_confirmed()).collect();
        assert_eq!(verdicts, [true, false, false]);
        assert_eq!(Source::parse("document_registry"), Some(Source::DocumentRegistry));
    }

    const EXAMPLE: &str = r#"{
      "unknown_codes": "refuse",
      "codici_fiscali": [
        { "codice_fiscale": "RSSMRA80B01H501T", "status": "valid", "surname": "Rossi", "given_name": "Mario",
          "birth_date": "1980-02-01", "sex": "M", "birthplace": "H501" },
        { "codice_fiscale": "VRDLCU70T31L219M", "status": "replaced", "replaced_by": "VRDLCU70T31L21VB",
          "surname": "Verdi", "given_name": "Luca", "birth_date": "1970-12-31", "sex": "M", "birthplace": "L219" },
        { "codice_fiscale": "NRENNA50C50A944H", "status": "ceased", "surname": "Neri", "given_name": "Anna",
          "birth_date": "1950-03-10", "sex": "F", "birthplace": "A944" }
      ],
      "reported_documents": [
        { "kind": "carta_identita_elettronica", "number": "CA00000AA", "report": "stolen", "reported_on": "2024-05-02" },
        { "kind": "passaporto", "number": "YA0000000", "report": "lost" }
      ],
      "scipafi_mismatches": [
        { "health_card_number": "80380000009999999998", "fields": ["health_card_number"] },
        { "document_number": "CA99999ZZ", "fields": ["document_issued_on", "document_expires_on"] }
      ]
    }"#;

    #[tokio::test]
    async fn local_data_loads_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources.json");
        std::fs::write(&path, serde_json::to_string_pretty(&LocalData::sample()).unwrap()).unwrap();
        assert_eq!(LocalData::load(&path).unwrap(), LocalData::sample());
        std::fs::write(&path, EXAMPLE).unwrap();
        let example = LocalData::load(&path).unwrap();
        assert_eq!(example.unknown_codes, UnknownCodes::Refuse);
        assert_eq!(example.codici_fiscali[1].status, CodeStatus::Replaced);
        let stolen = Subject { document_number: "CA00000AA".into(), ..mario() };
        assert_eq!(
            ask(&example, Source::DocumentRegistry, &stolen).await.verdict,
            refused(&["document.reported_stolen"])
        );
        // An empty object is valid: nothing registered, unknown codes refused.
        assert_eq!(LocalData::from_json("{}").unwrap(), LocalData::default());
    }

    #[test]
    fn malformed_local_data_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources.json");
        let bad = [
            r#"{"codici_fiscali": [ "#,
            r#"{"unknown_codes": "maybe"}"#,
            r#"{"surprise": true}"#,
            r#"{"codici_fiscali": [{"codice_fiscale": "RSSMRA80B01H501X", "status": "valid", "surname": "Rossi",
                "given_name": "Mario", "birth_date": "1980-02-01", "sex": "M", "birthplace": "H501"}]}"#,
            r#"{"codici_fiscali": [{"codice_fiscale": "RSSMRA80B01H501T", "status": "valid", "surname": "Rossi",
                "given_name": "Mario", "birth_date": "01/02/1980", "sex": "M", "birthplace": "H501"}]}"#,
            r#"{"scipafi_mismatches": [{"fields": ["surname"]}]}"#,
            r#"{"scipafi_mismatches": [{"document_number": "CA1", "fields": []}]}"#,
            r#"{"scipafi_mismatches": [{"document_number": "CA1", "fields": ["shoe_size"]}]}"#,
        ];
        for text in bad {
            std::fs::write(&path, text).unwrap();
            let e = LocalData::load(&path).unwrap_err();
            assert!(matches!(e, SourceError::Data(_)), "{text}: {e:?}");
            assert_eq!(e.code(), "source.data");
        }
        let missing = LocalData::load(dir.path().join("missing.json")).unwrap_err();
        assert!(matches!(missing, SourceError::Data(_)), "{missing:?}");
    }

    #[test]
    fn xml_text_is_escaped_and_unsendable_characters_refused() {
        assert_eq!(escape_xml(r#"a<b>&"c'"#).unwrap(), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert!(matches!(escape_xml("bell\u{7}"), Err(SourceError::Data(_))));
        let s = Subject { surname: "Rossi\u{0}".into(), ..mario() };
        assert!(matches!(request_envelope(Source::AgenziaEntrate, "id", now(), &s), Err(SourceError::Data(_))));
    }

    fn ade_answer(id: &str, payload: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">
  <S:Header/>
  <S:Body>
    <VerifyCodiceFiscaleResponse xmlns="urn:spid-idp:sources:ade:v1">
      <RequestId>{id}</RequestId>
      <Reference>ADE-2025-000123</Reference>
      {payload}
    </VerifyCodiceFiscaleResponse>
  </S:Body>
</S:Envelope>"#
        )
    }

    #[test]
    fn answers_outside_the_protocol_are_refused() {
        let ade = Source::AgenziaEntrate;
        let confirmed = ade_answer("r1", "<Outcome>confirmed</Outcome>");
        let ok = Answer::Verdict { reference: "ADE-2025-000123".into(), verdict: Verdict::Confirmed };
        assert_eq!(parse_response(ade, "r1", &confirmed).unwrap(), ok);
        let cases = [
            (ade_answer("r2", "<Outcome>confirmed</Outcome>"), "not r1"),
            (ade_answer("r1", "<Outcome>refused</Outcome>"), "without a reason"),
            (ade_answer("r1", "<Outcome>confirmed</Outcome><Reason>x</Reason>"), "with reasons"),
            (ade_answer("r1", "<Outcome>perhaps</Outcome>"), "unknown Outcome"),
            (ade_answer("r1", "<Outcome>confirmed</Outcome><Outcome>refused</Outcome>"), "more than one"),
            (ade_answer("r1", "<Outcome>&unknown;</Outcome>"), "entity"),
            (ade_answer("r1", "<Outcome>confirmed</Outcome><x:Extra/>"), "prefix"),
            (ade_answer("r1", "<Outcome>confirmed"), "well-formed"),
            (confirmed.replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "<!DOCTYPE S:Envelope>"), "DOCTYPE"),
            (
                confirmed
                    .replace("http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"),
                "SOAP 1.1",
            ),
            ("<a>".repeat(40) + &"</a>".repeat(40), "too deep"),
        ];
        for (xml, expected) in cases {
            let e = parse_response(ade, "r1", &xml).unwrap_err();
            assert!(e.contains(expected), "{expected}: {e}");
        }
        // The right answer from the wrong source.
        assert!(parse_response(Source::Scipafi, "r1", &confirmed).unwrap_err().contains("VerifyIdentityResponse"));
        // Predefined entities, character references and CDATA are text.
        let refused_xml = ade_answer(
            "r1",
            "<Outcome>refused</Outcome><Reason>a&amp;b&#46;c</Reason><Reason><![CDATA[<d>]]></Reason>",
        );
        assert_eq!(
            parse_response(ade, "r1", &refused_xml).unwrap(),
            Answer::Verdict { reference: "ADE-2025-000123".into(), verdict: refused(&["a&b.c", "<d>"]) }
        );
    }

    /// What the canned server saw: (case, SOAPAction, Content-Type, body).
    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<(String, String, String, String)>>);

    async fn canned(req: HttpRequest, body: String, seen: web::Data<Seen>) -> HttpResponse {
        let case = req.match_info().get("case").unwrap_or_default().to_owned();
        let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        seen.0.lock().unwrap().push((case.clone(), header("soapaction"), header("content-type"), body.clone()));
        let request = parse_xml(&body).unwrap();
        let op = &request.only_child(SOAP_ENVELOPE_NS, "Body").unwrap().children[0];
        let id = op.only_child(&op.ns, "RequestId").unwrap().text.clone();
        let xml = |x: String| HttpResponse::Ok().content_type("text/xml; charset=utf-8").body(x);
        match case.as_str() {
            "confirmed" => xml(ade_answer(&id, "<Outcome>confirmed</Outcome>")),
            "refused" => xml(ade_answer(
                &id,
                "<Outcome>refused</Outcome><Reason>codice_fiscale.replaced</Reason>\
                 <Reason><![CDATA[surname.mismatch]]></Reason>",
            )),
            "fault" => HttpResponse::InternalServerError().content_type("text/xml; charset=utf-8").body(
                r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><S:Fault>
                <faultcode>S:Server</faultcode><faultstring>Servizio non disponibile &amp; riprovare</faultstring>
                </S:Fault></S:Body></S:Envelope>"#,
            ),
            "doctype" => xml(format!(
                "<?xml version=\"1.0\"?>\n<!DOCTYPE S:Envelope [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n{}",
                ade_answer(&id, "<Outcome>confirmed</Outcome><Note>&xxe;</Note>")
                    .trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            )),
            "wrong-id" => xml(ade_answer("someone-else", "<Outcome>confirmed</Outcome>")),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                xml(ade_answer(&id, "<Outcome>confirmed</Outcome>"))
            }
            _ => {
                HttpResponse::InternalServerError().content_type("text/html").body("<html>Internal Server Error</html>")
            }
        }
    }

    async fn canned_server() -> (String, web::Data<Seen>, actix_web::dev::ServerHandle) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = web::Data::new(Seen::default());
        let data = seen.clone();
        let server =
            HttpServer::new(move || App::new().app_data(data.clone()).route("/{case}", web::post().to(canned)))
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .unwrap()
                .run();
        let handle = server.handle();
        tokio::spawn(server);
        (format!("http://{addr}"), seen, handle)
    }

    fn client(url: String, timeout: Duration) -> SoapClient {
        let settings = SoapSettings { timeout, allow_plain_http: true, ..SoapSettings::new(url) };
        SoapClient::new(Source::AgenziaEntrate, settings, clock()).unwrap()
    }

    #[tokio::test]
    async fn soap_client_reads_confirmations_and_refusals() {
        let (base, seen, server) = canned_server().await;
        let check = client(format!("{base}/confirmed"), Duration::from_secs(5)).check(&mario()).await.unwrap();
        assert_eq!(check.verdict, Verdict::Confirmed);
        assert_eq!(check.reference, "ADE-2025-000123");
        assert_eq!(check.at, now());
        {
            let seen = seen.0.lock().unwrap();
            let (case, action, content_type, body) = &seen[0];
            assert_eq!(case, "confirmed");
            assert_eq!(action, "\"urn:spid-idp:sources:ade:v1#VerifyCodiceFiscale\"");
            assert_eq!(content_type, "text/xml; charset=utf-8");
            // Evidence: exactly what was sent and what came back.
            assert_eq!(body, &check.request);
        }
        assert!(check.response.contains("<Reference>ADE-2025-000123</Reference>"));
        assert!(check.request.contains("<ade:CodiceFiscale>RSSMRA80B01H501T</ade:CodiceFiscale>"));
        let check = client(format!("{base}/refused"), Duration::from_secs(5)).check(&mario()).await.unwrap();
        assert_eq!(check.verdict, refused(&["codice_fiscale.replaced", "surname.mismatch"]));
        assert!(check.response.contains("<![CDATA[surname.mismatch]]>"));
        server.stop(false).await;
    }

    #[tokio::test]
    async fn soap_client_maps_faults_and_refuses_answers_outside_the_protocol() {
        let (base, _seen, server) = canned_server().await;
        let ask = |case: &str| client(format!("{base}/{case}"), Duration::from_secs(5));
        let fault = ask("fault").check(&mario()).await.unwrap_err();
        assert!(
            matches!(&fault, SourceError::Protocol(m) if m.contains("S:Server: Servizio non disponibile & riprovare")),
            "{fault:?}"
        );
        assert_eq!(fault.code(), "source.protocol");
        let doctype = ask("doctype").check(&mario()).await.unwrap_err();
        assert!(matches!(&doctype, SourceError::Protocol(m) if m.contains("DOCTYPE")), "{doctype:?}");
        let wrong = ask("wrong-id").check(&mario()).await.unwrap_err();
        assert!(matches!(&wrong, SourceError::Protocol(m) if m.contains("someone-else")), "{wrong:?}");
        server.stop(false).await;
    }

    #[tokio::test]
    async fn soap_client_maps_http_and_transport_failures_to_unavailable() {
        let (base, _seen, server) = canned_server().await;
        let e500 = client(format!("{base}/http500"), Duration::from_secs(5)).check(&mario()).await.unwrap_err();
        assert!(matches!(&e500, SourceError::Unavailable(m) if m.contains("500")), "{e500:?}");
        assert_eq!(e500.code(), "source.unavailable");
        let slow = client(format!("{base}/slow"), Duration::from_millis(300)).check(&mario()).await.unwrap_err();
        assert!(matches!(slow, SourceError::Unavailable(_)), "{slow:?}");
        server.stop(false).await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let down =
            client(format!("http://127.0.0.1:{port}/"), Duration::from_secs(2)).check(&mario()).await.unwrap_err();
        assert!(matches!(down, SourceError::Unavailable(_)), "{down:?}");
    }

    #[test]
    fn soap_settings_are_strict() {
        let plain = SoapClient::new(Source::Scipafi, SoapSettings::new("http://scipafi.example/ws"), clock());
        assert!(matches!(plain, Err(SourceError::Data(m)) if m.contains("https")));
        assert!(matches!(
            SoapClient::new(Source::Scipafi, SoapSettings::new("not a url"), clock()),
            Err(SourceError::Data(_))
        ));
        // A client identity for mutual TLS: certificate and PKCS#8 key.
        let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "idp.example.it").unwrap();
        let name = name.build();
        let mut cert = openssl::x509::X509Builder::new().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
        cert.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap()).unwrap();
        cert.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
        let cert = cert.build().to_pem().unwrap();
        let identity =
            TlsIdentity { certificate_pem: cert.clone(), private_key_pem: key.private_key_to_pem_pkcs8().unwrap() };
        assert!(!format!("{identity:?}").contains("PRIVATE KEY"));
        let settings = SoapSettings {
            identity: Some(identity.clone()),
            ca_certificate_pem: Some(cert.clone()),
            ..SoapSettings::new("https://scipafi.example/ws")
        };
        SoapClient::new(Source::Scipafi, settings, clock()).unwrap();
        let broken = SoapSettings {
            identity: Some(TlsIdentity { private_key_pem: b"not a key".to_vec(), ..identity }),
            ..SoapSettings::new("https://scipafi.example/ws")
        };
        assert!(
            matches!(SoapClient::new(Source::Scipafi, broken, clock()), Err(SourceError::Data(m)) if m.contains("identity"))
        );
    }
}
