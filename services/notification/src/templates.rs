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
];

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
                    assert!(r.body.contains(&format!("<{k}>")), "{name}.{locale:?} lacks {k}");
                }
            }
        }
        let data = [("code".to_owned(), "123456".to_owned()), ("minutes".to_owned(), "5".to_owned())].into();
        let it = t.render("otp-code", Locale::It, &data).unwrap();
        assert_eq!(it.subject, "Codice di verifica");
        assert!(it.body.starts_with("Il tuo codice di verifica è 123456."));
    }
}
