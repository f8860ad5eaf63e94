//! A holder's extract (AUD-5): their records for a period as a CSV
//! document, signed with a detached CMS signature by the audit key.

use chrono::{DateTime, SecondsFormat, Utc};
use spid_events::envelope::payload_of;
use spid_proto::events::v1::{
    AuditNote, Authentication, Envelope, EvidenceRecorded, IdentityState, IdentityStateChanged, NotificationDelivered,
    OidcTransaction, SamlTransaction, actor,
};

use crate::domain::Record;

const HEADER: [&str; 8] = ["sequence", "occurred_at", "recorded_at", "event", "source", "actor", "reason", "details"];

/// One CSV field (RFC 4180), neutralising spreadsheet formulas.
fn csv_field(value: &str) -> String {
    let value =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn state(s: i32) -> &'static str {
    match IdentityState::try_from(s) {
        Ok(IdentityState::Active) => "active",
        Ok(IdentityState::Suspended) => "suspended",
        Ok(IdentityState::Revoked) => "revoked",
        Ok(IdentityState::Expired) => "expired",
        Ok(IdentityState::CredentialsLocked) => "credentials-locked",
        _ => "unspecified",
    }
}

fn pairs(items: &[(&str, &str)]) -> String {
    items.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
}

/// What a holder reads about one record: the payload's meaningful fields,
/// never whole protocol messages.
pub fn details(e: &Envelope) -> String {
    if let Some(a) = payload_of::<Authentication>(e) {
        return pairs(&[
            ("service_provider", &a.service_provider),
            ("level", &a.level),
            ("outcome", &a.outcome),
            ("protocol", &a.protocol),
            ("client_ip", &a.client_ip),
        ]);
    }
    if let Some(t) = payload_of::<SamlTransaction>(e) {
        return pairs(&[
            ("service_provider", &t.authn_request_issuer),
            ("request_id", &t.authn_request_id),
            ("binding", &t.binding),
            ("response_id", &t.response_id),
            ("assertion_id", &t.assertion_id),
            ("client_ip", &t.client_ip),
        ]);
    }
    if let Some(t) = payload_of::<OidcTransaction>(e) {
        return pairs(&[
            ("client_id", &t.client_id),
            ("endpoint", &t.endpoint),
            ("grant_type", &t.grant_type),
            ("client_ip", &t.client_ip),
        ]);
    }
    if let Some(c) = payload_of::<IdentityStateChanged>(e) {
        return pairs(&[
            ("from", state(c.previous)),
            ("to", state(c.current)),
            ("justification", &c.justification_ref),
        ]);
    }
    if let Some(n) = payload_of::<NotificationDelivered>(e) {
        return pairs(&[
            ("channel", &n.channel),
            ("recipient", &n.recipient),
            ("outcome", &n.outcome),
            ("content_sha256", &n.content_sha256),
        ]);
    }
    if let Some(ev) = payload_of::<EvidenceRecorded>(e) {
        return pairs(&[("kind", &ev.kind), ("evidence_id", &ev.evidence_id), ("content_sha256", &ev.content_sha256)]);
    }
    if let Some(note) = payload_of::<AuditNote>(e) {
        let mut items: Vec<(&str, &str)> = vec![("category", &note.category)];
        let mut fields: Vec<_> = note.fields.iter().collect();
        fields.sort();
        items.extend(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        return pairs(&items);
    }
    String::new()
}

fn actor_of(e: &Envelope) -> String {
    let Some(a) = &e.actor else { return String::new() };
    let kind = match actor::Kind::try_from(a.kind) {
        Ok(actor::Kind::Holder) => "holder",
        Ok(actor::Kind::Operator) => "operator",
        Ok(actor::Kind::Administrator) => "administrator",
        Ok(actor::Kind::Scheduler) => "scheduler",
        Ok(actor::Kind::Service) => "service",
        _ => "",
    };
    if a.id.is_empty() { kind.to_owned() } else { format!("{kind}:{}", a.id) }
}

/// The CSV document of `records` (UTF-8, CRLF line ends, with a header).
pub fn csv(records: &[Record]) -> Vec<u8> {
    let mut out = HEADER.join(",");
    out.push_str("\r\n");
    for r in records {
        let occurred = r.event.occurred_at.as_ref().and_then(spid_proto::time::from_wire).map(time).unwrap_or_default();
        let fields = [
            r.sequence.to_string(),
            occurred,
            time(r.recorded_at),
            r.event.r#type.clone(),
            r.event.source.clone(),
            actor_of(&r.event),
            r.event.reason.clone(),
            details(&r.event),
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }
}
