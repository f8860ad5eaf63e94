//! E-mail and PEC over SMTP (lettre): STARTTLS or implicit TLS with
//! authentication in production, plain SMTP only to a server on this host.
//! Each message carries a Message-ID made of its id, so a copy sent again
//! after a crash is recognisable as the same message.

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use spid_config::delivery::{SmtpConfig, SmtpTls};

use crate::delivery::{Failure, Outgoing, Transport};

pub struct Smtp {
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The right-hand side of our Message-IDs (the sender's domain).
    domain: String,
}

impl Smtp {
    pub fn new(c: &SmtpConfig) -> Result<Self, String> {
        let tls = match c.tls {
            SmtpTls::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(c.host.clone());
                if let Some(path) = &c.ca_file {
                    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                    let ca = Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
                    params = params.add_root_certificate(ca);
                }
                let params = params.build_native().map_err(|e| format!("TLS to {}: {e}", c.host))?;
                // STARTTLS is required, never opportunistic: no plain fallback.
                if mode == SmtpTls::Implicit { Tls::Wrapper(params) } else { Tls::Required(params) }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
            .tls(tls)
            .port(c.port)
            .timeout(Some(c.timeout));
        if let Some((user, password)) = &c.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let from: Mailbox = c.from.parse().map_err(|e| format!("sender {:?}: {e}", c.from))?;
        let domain = from.email.domain().to_owned();
        Ok(Self { mailer: builder.build(), from, domain })
    }

    fn message(&self, m: &Outgoing) -> Result<Message, Failure> {
        let to: Mailbox =
            m.recipient.parse().map_err(|e| Failure::Permanent(format!("recipient {:?}: {e}", m.recipient)))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .message_id(Some(format!("<{}@{}>", m.id, self.domain)))
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone())
            .map_err(|e| Failure::Permanent(format!("message: {e}")))
    }
}

#[async_trait]
impl Transport for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn deliver(&self, m: &Outgoing) -> Result<String, Failure> {
        let message = self.message(m)?;
        match self.mailer.send(message).await {
            Ok(response) => Ok(format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" "))),
            // 5xx: the server will never take it (unknown mailbox, refused).
            Err(e) if e.is_permanent() => Err(Failure::Permanent(e.to_string())),
            // 4xx, timeouts, connection and TLS failures: later.
            Err(e) => Err(Failure::Transient(e.to_string())),
        }
    }
}
