//! What a record is found by, and the checks on the payloads the audit log
//! understands (registry transactions, authentications, evidence).

use spid_events::envelope::payload_of;
use spid_events::registry::inflate_base64;
use spid_proto::events::v1::{
    Authentication, Envelope, EvidenceRecorded, IdentityState, IdentityStateChanged, OidcTransaction, SamlTransaction,
};
use spid_types::ServiceError;

/// The searchable fields. Each is stored only as a keyed hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKey {
    Aggregate,
    SpidCode,
    ServiceProvider,
    RequestId,
    ResponseId,
    AssertionId,
    /// A holder's authentications (the reserved area's list).
    AuthenticationOf,
}

impl SearchKey {
    /// The namespace of the blind value. Aggregate ids and spidCodes share
    /// one ("subject"): most events are about a holder and have the
    /// holder's code as aggregate id, so one index entry serves both.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Aggregate | Self::SpidCode => "subject",
            Self::ServiceProvider => "sp",
            Self::RequestId => "request",
            Self::ResponseId => "response",
            Self::AssertionId => "assertion",
            Self::AuthenticationOf => "authentication",
        }
    }
}

/// What the audit log derives from an event besides storing it.
#[derive(Debug, Default)]
pub struct Indexed {
    pub keys: Vec<(SearchKey, String)>,
    pub evidence: Option<EvidenceRecorded>,
    /// The holder whose identity ended (revoked or expired): the 20-year
    /// clock of their evidence starts.
    pub identity_ended: Option<String>,
}

/// Largest inflated SAML message kept in the registry.
pub const MAX_MESSAGE: usize = 1 << 20;
const MAX_FIELD: usize = 1024;

fn field(name: &str, value: &str, required: bool) -> Result<(), ServiceError> {
    if required && value.is_empty() {
        return Err(ServiceError::invalid("event.payload_invalid", format!("{name} is required")));
    }
    if value.len() > MAX_FIELD || value.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "event.payload_invalid",
            format!("{name} must be at most {MAX_FIELD} characters without control characters"),
        ));
    }
    Ok(())
}

fn message(name: &str, value: &str) -> Result<(), ServiceError> {
    if value.is_empty() {
        return Ok(());
    }
    inflate_base64(value, MAX_MESSAGE).map(|_| ()).map_err(|e| {
        ServiceError::invalid("event.payload_invalid", format!("{name} must be deflated and base64-encoded: {e}"))
    })
}

fn decode<M: prost::Message + prost::Name + Default>(e: &Envelope) -> Result<Option<M>, ServiceError> {
    let is_it = e.payload.as_ref().is_some_and(|p| p.type_url == M::type_url());
    if !is_it {
        return Ok(None);
    }
    payload_of::<M>(e)
        .map(Some)
        .ok_or_else(|| ServiceError::invalid("event.payload_invalid", format!("payload is not a valid {}", M::NAME)))
}

/// Validates the payload (when it is one the audit log understands) and
/// lists the record's search keys.
pub fn index(e: &Envelope) -> Result<Indexed, ServiceError> {
    let mut out = Indexed { keys: vec![(SearchKey::Aggregate, e.aggregate_id.clone())], ..Indexed::default() };
    let spid = |out: &mut Indexed, code: &str| {
        let known = out.keys.iter().any(|(k, v)| k.tag() == SearchKey::SpidCode.tag() && v == code);
        if !code.is_empty() && !known {
            out.keys.push((SearchKey::SpidCode, code.to_owned()));
        }
    };
    if let Some(actor) = &e.actor
        && actor.kind == spid_proto::events::v1::actor::Kind::Holder as i32
    {
        field("actor.id", &actor.id, false)?;
        spid(&mut out, &actor.id);
    }
    if let Some(t) = decode::<SamlTransaction>(e)? {
        field("spid_code", &t.spid_code, false)?;
        field("authn_request_id", &t.authn_request_id, true)?;
        field("authn_request_issuer", &t.authn_request_issuer, true)?;
        field("response_id", &t.response_id, false)?;
        field("assertion_id", &t.assertion_id, false)?;
        field("client_ip", &t.client_ip, false)?;
        field("subject_name_id", &t.subject_name_id, false)?;
        field("subject_name_qualifier", &t.subject_name_qualifier, false)?;
        if !matches!(t.binding.as_str(), "HTTP-REDIRECT" | "HTTP-POST") {
            return Err(ServiceError::invalid("event.payload_invalid", "binding must be HTTP-REDIRECT or HTTP-POST"));
        }
        message("authn_request", &t.authn_request)?;
        message("response", &t.response)?;
        spid(&mut out, &t.spid_code);
        out.keys.push((SearchKey::ServiceProvider, t.authn_request_issuer.clone()));
        out.keys.push((SearchKey::RequestId, t.authn_request_id.clone()));
        for (key, value) in [(SearchKey::ResponseId, &t.response_id), (SearchKey::AssertionId, &t.assertion_id)] {
            if !value.is_empty() {
                out.keys.push((key, value.clone()));
            }
        }
    }
    if let Some(t) = decode::<OidcTransaction>(e)? {
        for (name, value, required) in [
            ("endpoint", &t.endpoint, true),
            ("client_id", &t.client_id, true),
            ("spid_code", &t.spid_code, false),
            ("grant_type", &t.grant_type, false),
            ("client_ip", &t.client_ip, false),
        ] {
            field(name, value, required)?;
        }
        if t.request.len() > MAX_MESSAGE || t.response.len() > MAX_MESSAGE {
            return Err(ServiceError::invalid("event.payload_invalid", "request and response are at most 1 MiB"));
        }
        spid(&mut out, &t.spid_code);
        out.keys.push((SearchKey::ServiceProvider, t.client_id.clone()));
        for id in &t.token_ids {
            field("token_ids", id, true)?;
            out.keys.push((SearchKey::ResponseId, id.clone()));
        }
    }
    if let Some(a) = decode::<Authentication>(e)? {
        field("spid_code", &a.spid_code, true)?;
        field("service_provider", &a.service_provider, true)?;
        field("level", &a.level, false)?;
        field("outcome", &a.outcome, true)?;
        field("protocol", &a.protocol, false)?;
        field("client_ip", &a.client_ip, false)?;
        spid(&mut out, &a.spid_code);
        out.keys.push((SearchKey::ServiceProvider, a.service_provider.clone()));
        out.keys.push((SearchKey::AuthenticationOf, a.spid_code.clone()));
    }
    if let Some(ev) = decode::<EvidenceRecorded>(e)? {
        // Evidence uploaded during registration comes before any spidCode:
        // it is kept (and its retention clock waits) all the same.
        field("spid_code", &ev.spid_code, false)?;
        field("evidence_id", &ev.evidence_id, true)?;
        field("kind", &ev.kind, true)?;
        field("storage_ref", &ev.storage_ref, true)?;
        let digest_ok = ev.content_sha256.len() == 64 && ev.content_sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !digest_ok {
            return Err(ServiceError::invalid("event.payload_invalid", "content_sha256 must be 64 hex digits"));
        }
        spid(&mut out, &ev.spid_code);
        out.evidence = Some(ev);
    }
    if let Some(change) = decode::<IdentityStateChanged>(e)? {
        field("spid_code", &change.spid_code, true)?;
        spid(&mut out, &change.spid_code);
        for minor in &change.cascaded_spid_codes {
            field("cascaded_spid_codes", minor, true)?;
            spid(&mut out, minor);
        }
        let ended = [IdentityState::Revoked as i32, IdentityState::Expired as i32].contains(&change.current);
        if ended {
            out.identity_ended = Some(change.spid_code.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spid_events::EventBuilder;
    use spid_events::registry::deflate_base64;

    fn saml() -> SamlTransaction {
        SamlTransaction {
            authn_request: deflate_base64(b"<samlp:AuthnRequest/>"),
            authn_request_id: "_req1".into(),
            authn_request_issuer: "https://sp.example.it".into(),
            binding: "HTTP-POST".into(),
            response: deflate_base64(b"<samlp:Response/>"),
            response_id: "_resp1".into(),
            spid_code: "SPID0000000001".into(),
            assertion_id: "_as1".into(),
            ..SamlTransaction::default()
        }
    }

    fn event(payload: &SamlTransaction) -> Envelope {
        EventBuilder::new("authn-gateway", "saml.transaction", "_req1", &spid_types::SystemClock)
            .payload(payload)
            .build()
    }

    #[test]
    fn registry_transactions_are_found_by_every_identifier() {
        let indexed = index(&event(&saml())).unwrap();
        let keys: Vec<_> = indexed.keys.iter().map(|(k, v)| (k.tag(), v.as_str())).collect();
        assert_eq!(
            keys,
            vec![
                ("subject", "_req1"),
                ("subject", "SPID0000000001"),
                ("sp", "https://sp.example.it"),
                ("request", "_req1"),
                ("response", "_resp1"),
                ("assertion", "_as1"),
            ]
        );
    }

    #[test]
    fn malformed_registry_payloads_are_refused() {
        let cases = [
            SamlTransaction { binding: "SOAP".into(), ..saml() },
            SamlTransaction { authn_request: "not base64!".into(), ..saml() },
            SamlTransaction { authn_request_id: String::new(), ..saml() },
            SamlTransaction { spid_code: "x\u{0}y".into(), ..saml() },
            SamlTransaction { response: deflate_base64(&vec![b'a'; MAX_MESSAGE + 1]), ..saml() },
        ];
        for case in cases {
            let err = index(&event(&case)).unwrap_err();
            assert_eq!(err.code, "event.payload_invalid", "{case:?}");
        }
        let mut garbled = event(&saml());
        if let Some(p) = garbled.payload.as_mut() {
            p.value = vec![0xff, 0xff];
        }
        assert_eq!(index(&garbled).unwrap_err().code, "event.payload_invalid");
    }

    #[test]
    fn revocation_starts_the_evidence_clock() {
        let change = IdentityStateChanged {
            spid_code: "SPID0000000001".into(),
            current: IdentityState::Revoked as i32,
            cascaded_spid_codes: vec!["SPID0000000002".into()],
            ..Default::default()
        };
        let e = EventBuilder::new("identity-manager", "identity.revoked", "SPID0000000001", &spid_types::SystemClock)
            .payload(&change)
            .build();
        let indexed = index(&e).unwrap();
        assert_eq!(indexed.identity_ended.as_deref(), Some("SPID0000000001"));
        assert!(indexed.keys.contains(&(SearchKey::SpidCode, "SPID0000000002".into())));
        // The holder's code is the aggregate id: one entry serves both.
        assert_eq!(indexed.keys.iter().filter(|(_, v)| v == "SPID0000000001").count(), 1);
    }
}
