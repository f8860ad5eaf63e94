//! SMS through an HTTP gateway. Gateways differ in field names, body
//! encoding and credential header; the common shapes are configuration
//! (`[delivery.sms]`): a POST of JSON or a form with the recipient, the
//! text, the sender and our message id as the gateway's client reference
//! (for its own de-duplication), authenticated by a header.

use async_trait::async_trait;
use spid_config::delivery::{SmsConfig, SmsFormat};

use crate::delivery::{Failure, Outgoing, Transport};

pub struct SmsGateway {
    client: reqwest::Client,
    config: SmsConfig,
}

/// How much of the gateway's answer is kept with the attempt.
const ANSWER: usize = 200;

impl SmsGateway {
    pub fn new(config: &SmsConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("SMS gateway client: {e}"))?;
        Ok(Self { client, config: config.clone() })
    }

    fn fields<'a>(&'a self, m: &'a Outgoing) -> Vec<(&'a str, &'a str)> {
        let c = &self.config;
        let mut fields = vec![(c.to_field.as_str(), m.recipient.as_str()), (c.text_field.as_str(), m.body.as_str())];
        if !c.sender.is_empty() && !c.sender_field.is_empty() {
            fields.push((c.sender_field.as_str(), c.sender.as_str()));
        }
        if !c.reference_field.is_empty() {
            fields.push((c.reference_field.as_str(), m.id.as_str()));
        }
        fields
    }
}

/// The gateway's answer as kept with the attempt: short, and with every run
/// of four or more digits masked (gateways often echo the text, which may
/// carry a code).
fn masked(answer: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in answer.chars().take(ANSWER) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        out.push_str(&if digits.len() >= 4 { "#".repeat(digits.len()) } else { std::mem::take(&mut digits) });
        digits.clear();
        out.push(c);
    }
    out.push_str(&if digits.len() >= 4 { "#".repeat(digits.len()) } else { digits });
    out
}

#[async_trait]
impl Transport for SmsGateway {
    fn name(&self) -> &'static str {
        "sms-gateway"
    }

    async fn deliver(&self, m: &Outgoing) -> Result<String, Failure> {
        let fields = self.fields(m);
        let mut request = self.client.post(self.config.url.clone());
        request = match self.config.format {
            SmsFormat::Json => {
                let body: serde_json::Map<String, serde_json::Value> =
                    fields.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
                request.json(&body)
            }
            SmsFormat::Form => request.form(&fields),
        };
        if let Some((header, value)) = &self.config.auth {
            request = request.header(header.as_str(), value.as_str());
        }
        let response =
            request.send().await.map_err(|e| Failure::Transient(format!("SMS gateway: {}", e.without_url())))?;
        let status = response.status();
        let answer = masked(&response.text().await.unwrap_or_default());
        if status.is_success() {
            Ok(format!("HTTP {} {answer}", status.as_u16()))
        } else if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(Failure::Transient(format!("SMS gateway answered HTTP {}: {answer}", status.as_u16())))
        } else {
            Err(Failure::Permanent(format!("SMS gateway refused with HTTP {}: {answer}", status.as_u16())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

    /// A gateway on loopback that records (content type, auth, body) and
    /// answers with the status of the recipient's last digit: 0 → 503,
    /// 1 → 400, else 200.
    async fn gateway() -> (String, Seen, actix_web::dev::ServerHandle) {
        let seen: Seen = Arc::default();
        let data = web::Data::new(seen.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route(
                "/send",
                web::post().to(|req: HttpRequest, body: String, seen: web::Data<Seen>| async move {
                    let header =
                        |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    let status = if body.contains("3330%22") || body.contains("3330&") || body.contains("3330\"") {
                        503
                    } else if body.contains("3331\"") || body.contains("3331&") {
                        400
                    } else {
                        200
                    };
                    seen.lock().unwrap().push((header("content-type"), header("x-api-key"), body));
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .body("{\"id\":\"gw-1\"}")
                }),
            )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        (format!("http://{addr}/send"), seen, handle)
    }

    fn config(url: &str, format: SmsFormat) -> SmsConfig {
        SmsConfig {
            url: url.parse().unwrap(),
            format,
            to_field: "destination".into(),
            text_field: "message".into(),
            sender_field: "sender".into(),
            reference_field: "client_ref".into(),
            sender: "SPIDXIDP".into(),
            auth: Some(("X-Api-Key".into(), "k-123".into())),
            timeout: std::time::Duration::from_secs(5),
        }
    }

    fn sms(to: &str) -> Outgoing {
        Outgoing {
            id: "m-1".into(),
            channel: crate::domain::Channel::Sms,
            recipient: to.into(),
            subject: "Codice".into(),
            body: "Il tuo codice è 123456".into(),
        }
    }

    #[tokio::test]
    async fn json_and_form_requests_carry_the_configured_fields_and_credential() {
        let (url, seen, handle) = gateway().await;
        let json = SmsGateway::new(&config(&url, SmsFormat::Json)).unwrap();
        assert!(json.deliver(&sms("+393331234567")).await.unwrap().starts_with("HTTP 200"));
        let form = SmsGateway::new(&config(&url, SmsFormat::Form)).unwrap();
        form.deliver(&sms("+393331234567")).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let (ctype, key, body) = &seen[0];
        assert_eq!((ctype.as_str(), key.as_str()), ("application/json", "k-123"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["destination"], "+393331234567");
        assert_eq!(v["message"], "Il tuo codice è 123456");
        assert_eq!(v["sender"], "SPIDXIDP");
        assert_eq!(v["client_ref"], "m-1");
        let (ctype, _, body) = &seen[1];
        assert_eq!(ctype, "application/x-www-form-urlencoded");
        assert!(body.contains("destination=%2B393331234567") && body.contains("client_ref=m-1"), "{body}");
        handle.stop(true).await;
    }

    #[test]
    fn codes_echoed_by_the_gateway_are_not_kept() {
        assert_eq!(
            masked("{\"text\":\"Il tuo codice è 482913\",\"id\":12}"),
            "{\"text\":\"Il tuo codice è ######\",\"id\":12}"
        );
        assert_eq!(masked("queued 1234"), "queued ####");
    }

    #[tokio::test]
    async fn gateway_answers_map_to_retry_or_give_up() {
        let (url, _, handle) = gateway().await;
        let g = SmsGateway::new(&config(&url, SmsFormat::Json)).unwrap();
        assert!(matches!(g.deliver(&sms("+393333333330")).await, Err(Failure::Transient(_))), "503 retried");
        assert!(matches!(g.deliver(&sms("+393333333331")).await, Err(Failure::Permanent(_))), "400 given up");
        handle.stop(true).await;
        let down = SmsGateway::new(&config("http://127.0.0.1:9/send", SmsFormat::Json)).unwrap();
        assert!(matches!(down.deliver(&sms("+393331234567")).await, Err(Failure::Transient(_))), "unreachable");
    }
}
