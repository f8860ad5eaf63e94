//! `idpctl notifications …`: messages the notification service could not
//! deliver (NOT-3), and putting them back for delivery.

use std::time::Duration;

use clap::Subcommand;
use spid_proto::notification::v1 as pb;
use spid_proto::notification::v1::deliveries_client::DeliveriesClient;
use spid_types::ServiceName;

use crate::targets::Targets;

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// Dead-lettered messages, newest first: out of attempts or refused
    /// for good by the mail server or the SMS gateway.
    Failed {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Put a dead-lettered message back for delivery with fresh attempts
    /// (for instance after fixing the SMTP credentials).
    Retry {
        /// The operator acting (audited).
        #[arg(long, env = "SPID_OPERATOR")]
        operator: String,
        message_id: String,
    },
}

pub async fn run(targets: &Targets, json: bool, command: NotificationsCommand) -> Result<bool, String> {
    let url = targets.url(ServiceName::Notification);
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("notification at {url}: {e}"))?;
    let mut client = DeliveriesClient::new(channel);
    let status = |e: tonic::Status| format!("notification: {}", e.message());
    match command {
        NotificationsCommand::Failed { limit } => {
            let r = client.list_failed(pb::ListFailedRequest { limit }).await.map_err(status)?.into_inner();
            if json {
                let list: Vec<serde_json::Value> = r.messages.iter().map(failed_json).collect();
                println!("{}", serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?);
            } else if r.messages.is_empty() {
                println!("no failed messages");
            } else {
                println!(
                    "{:<36}  {:<5}  {:<28}  {:<24}  {:>8}  last error",
                    "id", "chan", "recipient", "template", "attempts"
                );
                for m in &r.messages {
                    println!(
                        "{:<36}  {:<5}  {:<28}  {:<24}  {:>8}  {}",
                        m.id,
                        channel_name(m.channel),
                        m.recipient,
                        m.template,
                        m.attempts,
                        m.last_error
                    );
                }
            }
            Ok(true)
        }
        NotificationsCommand::Retry { operator, message_id } => {
            client.retry(pb::RetryRequest { message_id: message_id.clone(), operator }).await.map_err(status)?;
            if json {
                println!("{}", serde_json::json!({ "message_id": message_id, "requeued": true }));
            } else {
                println!("{message_id}: back in the delivery queue");
            }
            Ok(true)
        }
    }
}

fn channel_name(c: i32) -> &'static str {
    match pb::Channel::try_from(c) {
        Ok(pb::Channel::Email) => "email",
        Ok(pb::Channel::Sms) => "sms",
        Ok(pb::Channel::Pec) => "pec",
        _ => "?",
    }
}

fn failed_json(m: &pb::FailedMessage) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "channel": channel_name(m.channel),
        "recipient": m.recipient,
        "template": m.template,
        "subject_id": m.subject_id,
        "attempts": m.attempts,
        "last_error": m.last_error,
        "created_at": m.created_at.as_ref().and_then(spid_proto::time::from_wire).map(|t| t.to_rfc3339()),
    })
}
