//! Development-only routes of the public origin.

use actix_web::{HttpResponse, web};
use spid_proto::notification::v1 as pb;
use spid_server::grpc::Peer;

type OutboxClient = pb::dev_outbox_client::DevOutboxClient<Peer>;

/// One message of the development outbox (the contract of `make run`).
#[derive(Debug, serde::Serialize)]
struct OutboxMessage {
    channel: &'static str,
    recipient: String,
    subject: String,
    body: String,
    created_at: String,
}

/// `GET /dev/outbox` exists only when `notification` is `Some` (development).
pub fn routes(notification: Option<Peer>) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    let client = notification.map(|p| web::Data::new(OutboxClient::new(p)));
    move |cfg: &mut web::ServiceConfig| {
        if let Some(client) = &client {
            cfg.app_data(client.clone()).route("/dev/outbox", web::get().to(outbox));
        }
    }
}

async fn outbox(client: web::Data<OutboxClient>) -> HttpResponse {
    let mut client = client.get_ref().clone();
    match client.list(pb::ListOutboxRequest { limit: 1000 }).await {
        Ok(resp) => {
            let messages: Vec<OutboxMessage> = resp
                .into_inner()
                .entries
                .into_iter()
                .map(|e| OutboxMessage {
                    channel: match pb::Channel::try_from(e.channel) {
                        Ok(pb::Channel::Email) => "email",
                        Ok(pb::Channel::Sms) => "sms",
                        Ok(pb::Channel::Pec) => "pec",
                        _ => "unknown",
                    },
                    recipient: e.recipient,
                    subject: e.subject,
                    body: e.body,
                    created_at: e
                        .created_at
                        .as_ref()
                        .and_then(spid_proto::time::from_wire)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default(),
                })
                .collect();
            HttpResponse::Ok().json(messages)
        }
        Err(status) => {
            tracing::warn!(code = ?status.code(), message = status.message(), "dev outbox unavailable");
            HttpResponse::ServiceUnavailable().content_type("application/problem+json").json(serde_json::json!({
                "type": "urn:spid-idp:error:dev_outbox.unavailable",
                "title": "Service Unavailable",
                "status": 503,
                "detail": "the notification service did not answer",
                "code": "dev_outbox.unavailable",
            }))
        }
    }
}
