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

pub struct Pages {
    env: Environment<'static>,
    idp_name: String,
}

/// A rendered page with its HTTP status.
pub struct Page {
    pub status: u16,
    pub html: String,
}

impl Pages {
    pub fn new(idp_name: &str) -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
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
            View::Code { tx, sp, challenge, notice } => (
                "code.html",
                200,
                context! { lang => l, idp_name, tx, sp, method => challenge.method, destination => challenge.destination, notice },
            ),
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
