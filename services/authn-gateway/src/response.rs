//! The SAML Response (SAML-5): on success a signed Assertion inside a
//! signed Response; on failure a signed Response with the status of the
//! anomaly table and no Assertion. Element order and formats follow the
//! SPID rules: Issuer with the entity Format, transient NameID with
//! NameQualifier, bearer SubjectConfirmation, AudienceRestriction to the SP,
//! the level actually used, SessionIndex only for level 1, attributes with
//! the basic NameFormat and `xs:string`/`xs:date` values.

use chrono::{DateTime, SecondsFormat, Utc};
use spid_xml::Element;
use spid_xml::dsig::{SignError, SigningKey};
use spid_xml::ns::{SAML, SAMLP, XS, XSI};

use crate::anomaly::{Answer, ErrorCode, STATUS};
use crate::level::Level;
use crate::request::{ENTITY_FORMAT, TRANSIENT};

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const BASIC: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic";

/// Where a Response goes.
#[derive(Debug, Clone)]
pub struct Addressee<'a> {
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    pub in_response_to: Option<&'a str>,
}

/// A successful authentication.
#[derive(Debug, Clone)]
pub struct Authenticated<'a> {
    pub level: Level,
    pub authn_instant: DateTime<Utc>,
    /// `(name, value)` in the order of the SP's AttributeConsumingService.
    pub attributes: &'a [(String, String)],
    /// Level 1 only (SAML-7).
    pub session_index: Option<&'a str>,
}

/// The Response built, with the identifiers the transaction registry keeps.
#[derive(Debug, Clone)]
pub struct Built {
    pub xml: String,
    pub response_id: String,
    pub issue_instant: String,
    pub assertion_id: Option<String>,
    pub name_id: Option<String>,
}

/// A random identifier that is an NCName (`_` and 32 hex digits).
pub fn new_id() -> String {
    format!("_{}", uuid::Uuid::new_v4().simple())
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn saml(local: &str) -> Element {
    Element::new(Some("saml"), local, Some(SAML))
}

fn samlp(local: &str) -> Element {
    Element::new(Some("samlp"), local, Some(SAMLP))
}

fn issuer(entity_id: &str) -> Element {
    saml("Issuer").attr("Format", ENTITY_FORMAT).text(entity_id)
}

pub struct ResponseBuilder<'a> {
    pub entity_id: &'a str,
    pub key: &'a SigningKey,
    pub assertion_validity: chrono::Duration,
}

impl ResponseBuilder<'_> {
    fn response(&self, to: &Addressee<'_>, id: &str, now: &str) -> Element {
        let mut r = samlp("Response")
            .declare(Some("samlp"), SAMLP)
            .declare(Some("saml"), SAML)
            .attr("ID", id)
            .attr("Version", "2.0")
            .attr("IssueInstant", now)
            .attr("Destination", to.acs_url);
        if let Some(irt) = to.in_response_to {
            r = r.attr("InResponseTo", irt);
        }
        r.child(issuer(self.entity_id))
    }

    /// A failure: status, sub-status and `ErrorCode nrNN`; no Assertion.
    pub fn failure(&self, to: &Addressee<'_>, code: ErrorCode, now: DateTime<Utc>) -> Result<Built, SignError> {
        let (top, sub) = match code.answer() {
            Answer::Status(top, sub) => (top, sub),
            // Page-only codes never reach an SP; answer the generic way.
            Answer::Page(_) => ("Responder", None),
        };
        let mut status_code = samlp("StatusCode").attr("Value", format!("{STATUS}{top}"));
        if let Some(sub) = sub {
            status_code = status_code.child(samlp("StatusCode").attr("Value", format!("{STATUS}{sub}")));
        }
        let id = new_id();
        let issue_instant = instant(now);
        let mut response = self
            .response(to, &id, &issue_instant)
            .child(samlp("Status").child(status_code).child(samlp("StatusMessage").text(code.message())));
        self.key.sign_enveloped(&mut response, &[], 1)?;
        Ok(Built { xml: response.to_xml(), response_id: id, issue_instant, assertion_id: None, name_id: None })
    }

    /// The answer to a LogoutRequest (SAML-8): Success, or Requester when
    /// the request was not acceptable.
    pub fn logout_response(
        &self,
        destination: &str,
        in_response_to: Option<&str>,
        success: bool,
        now: DateTime<Utc>,
    ) -> Result<Built, SignError> {
        let id = new_id();
        let issue_instant = instant(now);
        let mut r = samlp("LogoutResponse")
            .declare(Some("samlp"), SAMLP)
            .declare(Some("saml"), SAML)
            .attr("ID", &id)
            .attr("Version", "2.0")
            .attr("IssueInstant", &issue_instant)
            .attr("Destination", destination);
        if let Some(irt) = in_response_to {
            r = r.attr("InResponseTo", irt);
        }
        let value = if success { "Success" } else { "Requester" };
        let mut response = r
            .child(issuer(self.entity_id))
            .child(samlp("Status").child(samlp("StatusCode").attr("Value", format!("{STATUS}{value}"))));
        self.key.sign_enveloped(&mut response, &[], 1)?;
        Ok(Built { xml: response.to_xml(), response_id: id, issue_instant, assertion_id: None, name_id: None })
    }

    /// A success: the signed Assertion inside the signed Response.
    pub fn success(
        &self,
        to: &Addressee<'_>,
        auth: &Authenticated<'_>,
        now: DateTime<Utc>,
    ) -> Result<Built, SignError> {
        let id = new_id();
        let assertion_id = new_id();
        let name_id = new_id();
        let issue_instant = instant(now);
        let not_on_or_after = instant(now + self.assertion_validity);

        let mut confirmation_data =
            saml("SubjectConfirmationData").attr("NotOnOrAfter", &not_on_or_after).attr("Recipient", to.acs_url);
        if let Some(irt) = to.in_response_to {
            confirmation_data = confirmation_data.attr("InResponseTo", irt);
        }
        let subject = saml("Subject")
            .child(
                saml("NameID").attr("Format", TRANSIENT).attr("NameQualifier", self.entity_id).text(name_id.as_str()),
            )
            .child(saml("SubjectConfirmation").attr("Method", BEARER).child(confirmation_data));
        let conditions = saml("Conditions")
            .attr("NotBefore", &issue_instant)
            .attr("NotOnOrAfter", &not_on_or_after)
            .child(saml("AudienceRestriction").child(saml("Audience").text(to.sp_entity_id)));
        let mut authn_statement = saml("AuthnStatement").attr("AuthnInstant", instant(auth.authn_instant));
        if let (Level::L1, Some(index)) = (auth.level, auth.session_index) {
            authn_statement = authn_statement.attr("SessionIndex", index);
        }
        let authn_statement =
            authn_statement.child(saml("AuthnContext").child(saml("AuthnContextClassRef").text(auth.level.uri())));

        let mut assertion = saml("Assertion")
            .declare(Some("saml"), SAML)
            .declare(Some("xs"), XS)
            .declare(Some("xsi"), XSI)
            .attr("ID", &assertion_id)
            .attr("Version", "2.0")
            .attr("IssueInstant", &issue_instant)
            .child(issuer(self.entity_id))
            .child(subject)
            .child(conditions)
            .child(authn_statement);
        if !auth.attributes.is_empty() {
            let mut statement = saml("AttributeStatement");
            for (name, value) in auth.attributes {
                statement = statement.child(
                    saml("Attribute").attr("Name", name).attr("NameFormat", BASIC).child(
                        saml("AttributeValue")
                            .ns_attr("xsi", "type", XSI, crate::attributes::xsi_type(name))
                            .text(value.as_str()),
                    ),
                );
            }
            assertion = assertion.child(statement);
        }
        // The Assertion is signed as it will sit in the Response: its own
        // declarations cover every prefix it uses.
        let inherited = [(Some("samlp".to_owned()), SAMLP.to_owned()), (Some("saml".to_owned()), SAML.to_owned())];
        self.key.sign_enveloped(&mut assertion, &inherited, 1)?;

        let mut response = self
            .response(to, &id, &issue_instant)
            .child(samlp("Status").child(samlp("StatusCode").attr("Value", format!("{STATUS}Success"))))
            .child(assertion);
        self.key.sign_enveloped(&mut response, &[], 1)?;
        Ok(Built {
            xml: response.to_xml(),
            response_id: id,
            issue_instant,
            assertion_id: Some(assertion_id),
            name_id: Some(name_id),
        })
    }
}
