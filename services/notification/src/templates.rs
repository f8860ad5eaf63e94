//! Message templates, Italian (default) and English. Each file holds the
//! subject, a line `---`, then the body; both are minijinja templates.

use minijinja::{Environment, UndefinedBehavior};
use spid_types::ServiceError;

use crate::domain::Locale;

const SOURCES: &[(&str, &str)] = &[
    ("otp-code.it", include_str!("../templates/otp-code.it.txt")),
    ("otp-code.en", include_str!("../templates/otp-code.en.txt")),
    ("contact-verification.it", include_str!("../templates/contact-verification.it.txt")),
    ("contact-verification.en", include_str!("../templates/contact-verification.en.txt")),
    ("identity-activated.it", include_str!("../templates/identity-activated.it.txt")),
    ("identity-activated.en", include_str!("../templates/identity-activated.en.txt")),
    ("credentials-locked.it", include_str!("../templates/credentials-locked.it.txt")),
    ("credentials-locked.en", include_str!("../templates/credentials-locked.en.txt")),
    ("request-denied.it", include_str!("../templates/request-denied.it.txt")),
    ("request-denied.en", include_str!("../templates/request-denied.en.txt")),
    ("documents-requested.it", include_str!("../templates/documents-requested.it.txt")),
    ("documents-requested.en", include_str!("../templates/documents-requested.en.txt")),
    ("final-documents.it", include_str!("../templates/final-documents.it.txt")),
    ("final-documents.en", include_str!("../templates/final-documents.en.txt")),
    ("appointment-confirmed.it", include_str!("../templates/appointment-confirmed.it.txt")),
    ("appointment-confirmed.en", include_str!("../templates/appointment-confirmed.en.txt")),
    ("request-lapsed.it", include_str!("../templates/request-lapsed.it.txt")),
    ("request-lapsed.en", include_str!("../templates/request-lapsed.en.txt")),
    ("identity-suspended.it", include_str!("../templates/identity-suspended.it.txt")),
    ("identity-suspended.en", include_str!("../templates/identity-suspended.en.txt")),
    ("identity-restored.it", include_str!("../templates/identity-restored.it.txt")),
    ("identity-restored.en", include_str!("../templates/identity-restored.en.txt")),
    ("revocation-warning.it", include_str!("../templates/revocation-warning.it.txt")),
    ("revocation-warning.en", include_str!("../templates/revocation-warning.en.txt")),
    ("identity-revoked.it", include_str!("../templates/identity-revoked.it.txt")),
    ("identity-revoked.en", include_str!("../templates/identity-revoked.en.txt")),
    ("document-expiry-reminder.it", include_str!("../templates/document-expiry-reminder.it.txt")),
    ("document-expiry-reminder.en", include_str!("../templates/document-expiry-reminder.en.txt")),
    ("document-expired.it", include_str!("../templates/document-expired.it.txt")),
    ("document-expired.en", include_str!("../templates/document-expired.en.txt")),
    ("password-expiry-reminder.it", include_str!("../templates/password-expiry-reminder.it.txt")),
    ("password-expiry-reminder.en", include_str!("../templates/password-expiry-reminder.en.txt")),
    ("attribute-change-requested.it", include_str!("../templates/attribute-change-requested.it.txt")),
    ("attribute-change-requested.en", include_str!("../templates/attribute-change-requested.en.txt")),
    ("attribute-changed.it", include_str!("../templates/attribute-changed.it.txt")),
    ("attribute-changed.en", include_str!("../templates/attribute-changed.en.txt")),
    ("credentials-used.it", include_str!("../templates/credentials-used.it.txt")),
    ("credentials-used.en", include_str!("../templates/credentials-used.en.txt")),
    ("minor-verification-code.it", include_str!("../templates/minor-verification-code.it.txt")),
    ("minor-verification-code.en", include_str!("../templates/minor-verification-code.en.txt")),
    ("minor-turns-14.it", include_str!("../templates/minor-turns-14.it.txt")),
    ("minor-turns-14.en", include_str!("../templates/minor-turns-14.en.txt")),
    ("minor-turns-18.it", include_str!("../templates/minor-turns-18.it.txt")),
    ("minor-turns-18.en", include_str!("../templates/minor-turns-18.en.txt")),
    ("parental-authorisation-request.it", include_str!("../templates/parental-authorisation-request.it.txt")),
    ("parental-authorisation-request.en", include_str!("../templates/parental-authorisation-request.en.txt")),
    ("minor-suspended.it", include_str!("../templates/minor-suspended.it.txt")),
    ("minor-suspended.en", include_str!("../templates/minor-suspended.en.txt")),
    ("lifecycle-request-code.it", include_str!("../templates/lifecycle-request-code.it.txt")),
    ("lifecycle-request-code.en", include_str!("../templates/lifecycle-request-code.en.txt")),
    ("lifecycle-request-received.it", include_str!("../templates/lifecycle-request-received.it.txt")),
    ("lifecycle-request-received.en", include_str!("../templates/lifecycle-request-received.en.txt")),
    ("idp-cessation.it", include_str!("../templates/idp-cessation.it.txt")),
    ("idp-cessation.en", include_str!("../templates/idp-cessation.en.txt")),
];

/// Template names and the data keys each one requires.
pub const TEMPLATES: &[(&str, &[&str])] = &[
    ("otp-code", &["code", "minutes"]),
    ("contact-verification", &["code"]),
    // Messages identity-manager asks for through the notification topic.
    ("identity-activated", &["spid_code"]),
    ("credentials-locked", &["spid_code"]),
    ("request-denied", &["reason"]),
    ("documents-requested", &["documents"]),
    ("final-documents", &[]),
    ("appointment-confirmed", &["when"]),
    ("request-lapsed", &[]),
    // Lifecycle (LC-2..LC-6, LC-9) and use notices (UA-1).
    ("identity-suspended", &["cause", "date"]),
    ("identity-restored", &["date"]),
    ("revocation-warning", &["days", "date"]),
    ("identity-revoked", &["cause", "date"]),
    ("document-expiry-reminder", &["expiry_date", "suspension_date"]),
    ("document-expired", &["date"]),
    ("password-expiry-reminder", &["expiry_date"]),
    ("attribute-change-requested", &["attribute"]),
    ("attribute-changed", &["attribute", "date"]),
    ("credentials-used", &["sp", "level", "when"]),
    // A holder's own lifecycle request (LC-2): its code, its receipt.
    ("lifecycle-request-code", &["code", "minutes", "action"]),
    ("lifecycle-request-received", &["receipt", "action", "date"]),
    // Minors (MIN-1, MIN-4, MIN-5, MIN-7).
    ("minor-verification-code", &["code", "minor_name"]),
    ("minor-turns-14", &["minor_name"]),
    ("minor-turns-18", &[]),
    ("parental-authorisation-request", &["minor_name", "sp", "when"]),
    ("minor-suspended", &["minor_name", "date"]),
    // `successor` is optional: named only when another provider takes over.
    ("idp-cessation", &["date"]),
];

/// Data keys holding one-time secrets (codes): never traced, removed from
/// the stored message once it is delivered (production).
pub const SECRET_KEYS: &[&str] = &["code"];

pub struct Templates {
    env: Environment<'static>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

impl Templates {
    pub fn load() -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in SOURCES {
            let (subject, body) = source
                .split_once("\n---\n")
                .ok_or_else(|| format!("template {name}: no '---' line after the subject"))?;
            env.add_template_owned(format!("{name}.subject"), subject.to_owned())
                .map_err(|e| format!("template {name}: {e}"))?;
            env.add_template_owned(format!("{name}.body"), body.to_owned())
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Self { env })
    }

    /// Whether `name`'s messages carry a one-time secret.
    pub fn carries_secret(name: &str) -> bool {
        Self::required_keys(name).is_some_and(|keys| keys.iter().any(|k| SECRET_KEYS.contains(k)))
    }

    pub fn required_keys(name: &str) -> Option<&'static [&'static str]> {
        TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, keys)| *keys)
    }

    pub fn render(
        &self,
        name: &str,
        locale: Locale,
        data: &std::collections::BTreeMap<String, String>,
    ) -> Result<Rendered, ServiceError> {
        let part = |which: &str| -> Result<String, ServiceError> {
            let template = self
                .env
                .get_template(&format!("{name}.{}.{which}", locale.as_str()))
                .map_err(|_| ServiceError::invalid("template.unknown", format!("unknown template \"{name}\"")))?;
            template.render(data).map(|s| s.trim().to_owned()).map_err(ServiceError::internal)
        };
        Ok(Rendered { subject: part("subject")?, body: part("body")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_in_both_languages() {
        let t = Templates::load().unwrap();
        for (name, keys) in TEMPLATES {
            let data = keys.iter().map(|k| ((*k).to_owned(), format!("<{k}>"))).collect();
            for locale in [Locale::It, Locale::En] {
                let r = t.render(name, locale, &data).unwrap();
                assert!(!r.subject.is_empty() && !r.body.is_empty(), "{name}.{locale:?}");
                for k in *keys {
                    // `action` chooses the wording instead of being printed.
                    if *k == "action" {
                        let source = SOURCES.iter().find(|(n, _)| *n == format!("{name}.{}", locale.as_str()));
                        assert!(source.is_some_and(|(_, s)| s.contains("action ==")), "{name}.{locale:?} lacks {k}");
                    } else {
                        assert!(r.body.contains(&format!("<{k}>")), "{name}.{locale:?} lacks {k}");
                    }
                }
            }
        }
        let data = [("code".to_owned(), "123456".to_owned()), ("minutes".to_owned(), "5".to_owned())].into();
        let it = t.render("otp-code", Locale::It, &data).unwrap();
        assert_eq!(it.subject, "Codice di verifica");
        assert!(it.body.starts_with("Il tuo codice di verifica è 123456."));
    }

    #[test]
    fn a_holders_request_is_named_by_its_action() {
        let t = Templates::load().unwrap();
        let code = data(&[("code", "123456"), ("minutes", "15"), ("action", "suspend")]);
        let it = t.render("lifecycle-request-code", Locale::It, &code).unwrap();
        assert!(it.body.contains("una richiesta di sospensione della tua identità SPID"), "{}", it.body);
        assert!(it.body.contains("il codice 123456 entro 15 minuti"), "{}", it.body);
        assert!(it.body.contains("solo se sei tu ad aver chiamato"), "{}", it.body);
        let receipt = data(&[("receipt", "RIC-20261202-AB12"), ("action", "revoke"), ("date", "02/12/2026 08:00 UTC")]);
        let en = t.render("lifecycle-request-received", Locale::En, &receipt).unwrap();
        assert!(en.body.contains("your request to revoke your SPID identity, received on 02/12/2026"), "{}", en.body);
        assert!(en.body.contains("Receipt number: RIC-20261202-AB12."), "{}", en.body);
        let restore = data(&[("receipt", "R"), ("action", "restore"), ("date", "d")]);
        let it = t.render("lifecycle-request-received", Locale::It, &restore).unwrap();
        assert!(it.body.contains("richiesta di riattivazione"), "{}", it.body);
    }

    fn data(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn lifecycle_and_use_notices_read_right_in_both_languages() {
        let t = Templates::load().unwrap();

        let suspended = data(&[("cause", "richiesta del titolare"), ("date", "12/03/2025")]);
        let it = t.render("identity-suspended", Locale::It, &suspended).unwrap();
        assert_eq!(it.subject, "Identità SPID sospesa");
        assert!(it.body.starts_with("Gentile utente,"), "{}", it.body);
        assert!(
            it.body.contains("è stata sospesa il 12/03/2025 per questo motivo: richiesta del titolare."),
            "{}",
            it.body
        );
        assert!(it.body.contains("dopo 30 giorni"), "{}", it.body);
        let suspended = data(&[("cause", "holder's request"), ("date", "12/03/2025")]);
        let en = t.render("identity-suspended", Locale::En, &suspended).unwrap();
        assert_eq!(en.subject, "SPID identity suspended");
        assert!(en.body.contains("was suspended on 12/03/2025 for this reason: holder's request."), "{}", en.body);

        let used = data(&[("sp", "INPS"), ("level", "2"), ("when", "12/03/2025 10:15")]);
        let it = t.render("credentials-used", Locale::It, &used).unwrap();
        assert!(
            it.body.contains("il 12/03/2025 10:15 per accedere al servizio INPS (livello di sicurezza SPID: 2)"),
            "{}",
            it.body
        );
        assert!(it.body.contains("chiedi subito la sospensione"), "{}", it.body);
        let en = t.render("credentials-used", Locale::En, &used).unwrap();
        assert!(en.body.contains("to sign in to the service INPS (SPID security level: 2)"), "{}", en.body);

        // One day left reads in the singular.
        let tomorrow = data(&[("days", "1"), ("date", "13/03/2025")]);
        let it = t.render("revocation-warning", Locale::It, &tomorrow).unwrap();
        assert!(it.body.contains("tra 1 giorno, il 13/03/2025."), "{}", it.body);
        let en = t.render("revocation-warning", Locale::En, &tomorrow).unwrap();
        assert!(en.body.contains("in 1 day, on 13/03/2025."), "{}", en.body);

        // The successor is optional.
        let alone = t.render("idp-cessation", Locale::It, &data(&[("date", "30/06/2025")])).unwrap();
        assert!(alone.body.contains("a un altro gestore"), "{}", alone.body);
        let taken_over = data(&[("date", "30/06/2025"), ("successor", "Gestore Esempio S.p.A.")]);
        let en = t.render("idp-cessation", Locale::En, &taken_over).unwrap();
        assert!(en.body.contains("taken over by Gestore Esempio S.p.A."), "{}", en.body);
    }
}
