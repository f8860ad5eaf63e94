//! Server-rendered pages (Italian by default, English on request), usable
//! without JavaScript: the only script submits the Response form, which
//! also has a button.

use minijinja::{Environment, context};

use crate::anomaly::ErrorCode;
use crate::login::View;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    It,
    En,
}

impl Lang {
    /// `?lang=` first, then the browser's first preference; Italian by
    /// default.
    pub fn pick(query: Option<&str>, accept_language: Option<&str>) -> Lang {
        match query {
            Some("en") => return Lang::En,
            Some("it") => return Lang::It,
            _ => {}
        }
        match accept_language.map(|a| a.trim_start().to_ascii_lowercase()) {
            Some(a) if a.starts_with("en") => Lang::En,
            _ => Lang::It,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
        }
    }
}

/// A QR code as inline SVG (no image request; the CSP stays strict).
fn qr_svg(payload: &str) -> String {
    match qrcode::QrCode::new(payload.as_bytes()) {
        Ok(code) => code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build(),
        Err(_) => String::new(),
    }
}

pub struct Pages {
    env: Environment<'static>,
    idp_name: String,
}

/// Whether the pages link Bootstrap Italia's stylesheet (`saml.assets_dir`).
fn with_bootstrap_italia(env: &mut Environment<'static>, on: bool) {
    env.add_global("bootstrap_italia", on);
}

/// A rendered page with its HTTP status.
pub struct Page {
    pub status: u16,
    pub html: String,
}

impl Pages {
    pub fn new(idp_name: &str, bootstrap_italia: bool) -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        with_bootstrap_italia(&mut env, bootstrap_italia);
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("error.html", include_str!("../templates/error.html")),
            ("password.html", include_str!("../templates/password.html")),
            ("code.html", include_str!("../templates/code.html")),
            ("consent.html", include_str!("../templates/consent.html")),
            ("post.html", include_str!("../templates/post.html")),
        ] {
            env.add_template(name, source)?;
        }
        Ok(Pages { env, idp_name: idp_name.to_owned() })
    }

    pub fn render(&self, view: &View, lang: Lang) -> Result<Page, minijinja::Error> {
        let l = lang.code();
        let idp_name = &self.idp_name;
        let (template, status, ctx) = match view {
            View::Error(code) => return self.error(*code, lang),
            View::Password { tx, sp, level, notice, attempts_left } => (
                "password.html",
                200,
                context! { lang => l, idp_name, tx, sp, level => level.number(), notice, attempts_left },
            ),
            View::Code { tx, sp, challenge, notice, others } => {
                let qr_svg = challenge.qr_payload.as_deref().map(qr_svg).unwrap_or_default();
                (
                    "code.html",
                    200,
                    context! {
                        lang => l, idp_name, tx, sp, notice, others,
                        method => challenge.method, destination => challenge.destination,
                        qr_payload => challenge.qr_payload, qr_svg,
                    },
                )
            }
            View::Consent { tx, sp, attributes } => {
                let rows: Vec<_> = attributes
                    .iter()
                    .map(|(name, value)| {
                        let (it, en) = crate::attributes::label(name);
                        context! { label => if lang == Lang::En { en } else { it }, value }
                    })
                    .collect();
                ("consent.html", 200, context! { lang => l, idp_name, tx, sp, attributes => rows })
            }
            View::Post { acs_url, saml_response, relay_state } => {
                ("post.html", 200, context! { lang => l, acs_url, saml_response, relay_state })
            }
        };
        let html = self.env.get_template(template)?.render(ctx)?;
        Ok(Page { status, html })
    }

    /// The page of an anomaly the SP cannot be told about.
    pub fn error(&self, code: ErrorCode, lang: Lang) -> Result<Page, minijinja::Error> {
        let (it, en) = code.user_text();
        let (help_it, help_en) = code.troubleshooting();
        let (message, help) = if lang == Lang::En { (en, help_en) } else { (it, help_it) };
        let status = match code.answer() {
            crate::anomaly::Answer::Page(s) => s,
            crate::anomaly::Answer::Status(..) => 400,
        };
        let html = self.env.get_template("error.html")?.render(context! {
            lang => lang.code(), idp_name => self.idp_name, message, help, code => code.message(),
        })?;
        Ok(Page { status, html })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::Level;
    use crate::login::{Challenge, Notice};

    /// Every page renders in both languages, escapes what it shows and
    /// says what it must.
    #[test]
    fn every_page_renders_in_both_languages() {
        let pages = Pages::new("IdP <prova>", false).unwrap();
        let views = [
            View::Error(ErrorCode::Nr05),
            View::Password {
                tx: "t1".into(),
                sp: "https://sp".into(),
                level: Level::L2,
                notice: Some(Notice::WrongCredentials),
                attempts_left: 2,
            },
            View::Code {
                tx: "t1".into(),
                sp: "https://sp".into(),
                challenge: Challenge {
                    id: "c".into(),
                    method: "sms".into(),
                    destination: "+39 3** *** **12".into(),
                    qr_payload: None,
                },
                notice: Some(Notice::WrongCode),
                others: vec!["totp".into(), "qr".into()],
            },
            View::Code {
                tx: "t1".into(),
                sp: "https://sp".into(),
                challenge: Challenge {
                    id: "c".into(),
                    method: "qr".into(),
                    destination: String::new(),
                    qr_payload: Some("spid-idp-qr:v1:c:n".into()),
                },
                notice: Some(Notice::Pending),
                others: vec!["sms".into()],
            },
            View::Consent {
                tx: "t1".into(),
                sp: "https://sp".into(),
                attributes: vec![("fiscalNumber".into(), "TINIT-<x>".into())],
            },
            View::Post {
                acs_url: "https://sp/acs".into(),
                saml_response: "PHg+".into(),
                relay_state: Some("r\"1".into()),
            },
        ];
        for lang in [Lang::It, Lang::En] {
            for view in &views {
                let page = pages.render(view, lang).unwrap();
                assert!(!page.html.contains("<prova>") && !page.html.contains("TINIT-<x>"), "escaped: {}", page.html);
                assert!(!page.html.contains("r\"1"), "escaped relay state");
            }
        }
        let en = pages.render(&views[1], Lang::En).unwrap().html;
        assert!(en.contains("Attempts left: 2") && en.contains(r#"name="tx" value="t1""#), "{en}");
        let code = pages.render(&views[2], Lang::En).unwrap().html;
        assert!(code.contains(r#"value="method:totp""#) && code.contains("Authenticator app"), "{code}");
        let qr = pages.render(&views[3], Lang::It).unwrap().html;
        assert!(
            qr.contains("<svg") && qr.contains("spid-idp-qr:v1:c:n") && qr.contains("non ha ancora risposto"),
            "{qr}"
        );
        assert!(!qr.contains(r#"name="code""#), "no code field for QR");
        assert!(qr.contains(r#"action="/login/show?lang=en""#), "the language switch keeps the transaction");
        let it = pages.render(&views[4], Lang::It).unwrap().html;
        assert!(it.contains("Codice fiscale") && it.contains("TINIT-&lt;x&gt;"), "{it}");
        let error = pages.render(&views[0], Lang::It).unwrap();
        assert_eq!(error.status, 403);
        assert!(error.html.contains("ErrorCode nr05"));
        let post = pages.render(&views[5], Lang::En).unwrap().html;
        // Attribute values are HTML-escaped ('/' too); browsers decode them.
        assert!(post.contains(r#"action="https:&#x2f;&#x2f;sp&#x2f;acs""#), "{post}");
        assert!(post.contains(r#"name="SAMLResponse" value="PHg+""#), "{post}");
    }

    #[test]
    fn bootstrap_italia_is_linked_when_served() {
        let view = View::Error(ErrorCode::Nr04);
        let with = Pages::new("IdP", true).unwrap().render(&view, Lang::It).unwrap().html;
        assert!(with.contains("/static/bi/css/bootstrap-italia.min.css"), "{with}");
        let without = Pages::new("IdP", false).unwrap().render(&view, Lang::It).unwrap().html;
        assert!(!without.contains("bootstrap-italia"));
    }

    #[test]
    fn language_from_query_then_browser() {
        assert_eq!(Lang::pick(Some("en"), Some("it-IT")), Lang::En);
        assert_eq!(Lang::pick(None, Some("en-GB,en;q=0.9")), Lang::En);
        assert_eq!(Lang::pick(Some("fr"), None), Lang::It);
    }
}
