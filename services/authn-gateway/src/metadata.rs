//! The IdP's metadata (SAML-2), signed: entityID, both SSO bindings,
//! single logout, the signing certificates (two during a key rollover),
//! the transient NameID format and the SPID attributes it can release.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use spid_xml::Element;
use spid_xml::dsig::{SignError, SigningKey};
use spid_xml::ns::{DSIG, MD, SAML, XML};

use crate::attributes::SPID_ATTRIBUTES;
use crate::registry::{HTTP_POST, HTTP_REDIRECT};
use crate::request::TRANSIENT;

/// The public paths of the SAML endpoints.
pub const SSO_REDIRECT: &str = "/saml/sso/redirect";
pub const SSO_POST: &str = "/saml/sso/post";
pub const SLO: &str = "/saml/slo";

pub struct IdpDescription<'a> {
    pub entity_id: &'a str,
    /// The public origin, without a trailing slash.
    pub origin: &'a str,
    pub organization_name: &'a str,
    pub organization_url: &'a str,
}

impl IdpDescription<'_> {
    /// The SingleSignOnService locations (a request's Destination).
    pub fn sso_locations(&self) -> Vec<String> {
        vec![format!("{}{SSO_REDIRECT}", self.origin), format!("{}{SSO_POST}", self.origin)]
    }

    /// The signed metadata document.
    pub fn metadata(&self, signer: &SigningKey, published: &[&openssl::x509::X509]) -> Result<String, SignError> {
        let md = |local: &str| Element::new(Some("md"), local, Some(MD));
        let ds = |local: &str| Element::new(Some("ds"), local, Some(DSIG));
        let mut idp = md("IDPSSODescriptor")
            .attr("protocolSupportEnumeration", "urn:oasis:names:tc:SAML:2.0:protocol")
            .attr("WantAuthnRequestsSigned", "true");
        for cert in published {
            let der = cert.to_der().map_err(|e| SignError::from_openssl(&e))?;
            idp = idp.child(
                md("KeyDescriptor")
                    .attr("use", "signing")
                    .child(ds("KeyInfo").child(ds("X509Data").child(ds("X509Certificate").text(B64.encode(der))))),
            );
        }
        for binding in [HTTP_REDIRECT, HTTP_POST] {
            idp = idp.child(
                md("SingleLogoutService")
                    .attr("Binding", binding)
                    .attr("Location", format!("{}{SLO}", self.origin))
                    .attr("ResponseLocation", format!("{}{SLO}", self.origin)),
            );
        }
        idp = idp.child(md("NameIDFormat").text(TRANSIENT));
        let [redirect, post] = [SSO_REDIRECT, SSO_POST].map(|p| format!("{}{p}", self.origin));
        idp = idp
            .child(md("SingleSignOnService").attr("Binding", HTTP_REDIRECT).attr("Location", redirect))
            .child(md("SingleSignOnService").attr("Binding", HTTP_POST).attr("Location", post));
        for name in SPID_ATTRIBUTES {
            idp = idp.child(Element::new(Some("saml"), "Attribute", Some(SAML)).attr("Name", name));
        }
        let lang = |e: Element, text: &str| e.ns_attr("xml", "lang", XML, "it").text(text);
        let organization = md("Organization")
            .child(lang(md("OrganizationName"), self.organization_name))
            .child(lang(md("OrganizationDisplayName"), self.organization_name))
            .child(lang(md("OrganizationURL"), self.organization_url));
        let mut root = md("EntityDescriptor")
            .declare(Some("md"), MD)
            .declare(Some("ds"), DSIG)
            .declare(Some("saml"), SAML)
            .attr("ID", crate::response::new_id())
            .attr("entityID", self.entity_id)
            .child(idp)
            .child(organization);
        signer.sign_enveloped(&mut root, &[], 0)?;
        Ok(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}", root.to_xml()))
    }
}
