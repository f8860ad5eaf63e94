//! `idpctl identity …`: the operators' lifecycle tools (LC-1…3) — look at
//! an identity and its history, suspend and restore it (the 30-minute
//! suspension duty), revoke it (administrators, with the cause), and take
//! a holder's request by phone (`request`, then `confirm` with the code
//! the holder reads back). Every command names the operator acting
//! (`--operator` or `SPID_OPERATOR`).

use std::time::Duration;

use clap::Subcommand;
use spid_proto::identity::v1 as pb;
use spid_proto::identity::v1::holder_requests_client::HolderRequestsClient;
use spid_proto::identity::v1::lifecycle_admin_client::LifecycleAdminClient;
use spid_types::ServiceName;

use crate::targets::Targets;

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// The identity's type and state.
    Show {
        #[arg(long, env = "SPID_OPERATOR")]
        operator: String,
        spid_code: String,
    },
    /// Suspend (holder's request by phone or PEC, suspected fraud, ...).
    Suspend(Change),
    /// Restore a suspended identity (or unlock locked credentials).
    Restore(Change),
    /// Revoke for good (administrators), naming the cause: death,
    /// legal_person_extinct, illicit_use, holder_request, police_report,
    /// contract_expired, contacts_lost, idp_cessation.
    Revoke(Change),
    /// A holder's request by phone (LC-2): sends a code to the holder's
    /// verified e-mail or mobile; the holder reads it back for `confirm`.
    Request {
        #[arg(long, env = "SPID_OPERATOR")]
        operator: String,
        /// The holder's username (e-mail) or spidCode.
        holder: String,
        /// suspend, or restore (the holder's own code-confirmed
        /// suspension, on the contact that confirmed it; locked
        /// credentials). Revocations: PEC or a signed form, then `revoke`.
        #[arg(long)]
        action: String,
        /// Why, in the holder's words.
        #[arg(long)]
        reason: String,
        /// Where the code goes: email or mobile (not a stolen phone).
        #[arg(long, default_value = "email")]
        contact: String,
    },
    /// Confirms a holder's request with the code they read back; prints
    /// the receipt (also sent to the holder).
    Confirm {
        #[arg(long, env = "SPID_OPERATOR")]
        operator: String,
        request_id: String,
        #[arg(long)]
        code: String,
    },
    /// Records a new identity document the holder showed (LC-4); then a
    /// suspension for an expired document can be restored.
    Document {
        #[arg(long, env = "SPID_OPERATOR")]
        operator: String,
        spid_code: String,
        /// carta_identita, carta_identita_elettronica, passaporto, patente...
        #[arg(long)]
        kind: String,
        #[arg(long)]
        number: String,
        #[arg(long)]
        issuer: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        issued_on: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        expires_on: String,
    },
    /// Every state change: when, from, to, who, why, the document.
    History {
        #[arg(long, env = "SPID_OPERATOR")]
        operator: String,
        spid_code: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct Change {
    #[arg(long, env = "SPID_OPERATOR")]
    operator: String,
    spid_code: String,
    /// Why (told to the holder).
    #[arg(long)]
    reason: String,
    /// The cause from the closed list (required to revoke): holder_request,
    /// police_report, death, legal_person_extinct, illicit_use,
    /// contract_expired, contacts_lost, idp_cessation, misuse, other.
    #[arg(long, default_value = "")]
    cause: String,
    /// How a holder's request arrived: pec or signed (name the message or
    /// document with --justification). By phone: `idpctl identity request`.
    #[arg(long, default_value = "")]
    channel: String,
    /// The justifying document (PEC id, police report, form...).
    #[arg(long, default_value = "")]
    justification: String,
    /// Suspend: the holder asked for it (restored automatically after 30
    /// days unless revoked meanwhile, LC-2); the same as
    /// `--cause holder_request`, with --channel pec or signed.
    #[arg(long)]
    holder_request: bool,
}

fn state(s: i32) -> &'static str {
    match pb::IdentityStatus::try_from(s) {
        Ok(pb::IdentityStatus::Active) => "active",
        Ok(pb::IdentityStatus::Suspended) => "suspended",
        Ok(pb::IdentityStatus::Revoked) => "revoked",
        Ok(pb::IdentityStatus::Expired) => "expired",
        Ok(pb::IdentityStatus::CredentialsLocked) => "credentials_locked",
        _ => "?",
    }
}

fn when(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().and_then(spid_proto::time::from_wire).map(|t| t.to_rfc3339()).unwrap_or_default()
}

fn identity_json(i: &pb::Identity) -> serde_json::Value {
    serde_json::json!({
        "spid_code": i.spid_code,
        "status": state(i.status),
        "created_at": when(&i.created_at),
        "status_changed_at": when(&i.status_changed_at),
    })
}

pub async fn run(targets: &Targets, json: bool, command: IdentityCommand) -> Result<bool, String> {
    let url = targets.url(ServiceName::IdentityManager);
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("identity-manager at {url}: {e}"))?;
    let mut client = LifecycleAdminClient::new(channel.clone());
    let status = |e: tonic::Status| format!("identity-manager: {}", e.message());
    let print = |i: &pb::Identity| {
        if json {
            println!("{}", identity_json(i));
        } else {
            println!("{}  {}  since {}", i.spid_code, state(i.status), when(&i.status_changed_at));
        }
    };
    let change = |c: Change| pb::LifecycleRequest {
        spid_code: c.spid_code,
        reason: c.reason,
        actor_id: c.operator,
        justification_ref: c.justification,
        holder_request: c.holder_request,
        cause: c.cause,
        channel: c.channel,
    };
    match command {
        IdentityCommand::Show { operator, spid_code } => {
            let i = client
                .get_identity(pb::GetIdentityRequest { spid_code, actor_id: operator })
                .await
                .map_err(status)?
                .into_inner();
            print(&i);
        }
        IdentityCommand::Suspend(c) => print(&client.suspend(change(c)).await.map_err(status)?.into_inner()),
        IdentityCommand::Restore(c) => print(&client.restore(change(c)).await.map_err(status)?.into_inner()),
        IdentityCommand::Revoke(c) => print(&client.revoke(change(c)).await.map_err(status)?.into_inner()),
        IdentityCommand::Document { operator, spid_code, kind, number, issuer, issued_on, expires_on } => {
            let request = pb::RecordDocumentRequest {
                spid_code,
                actor_id: operator,
                kind,
                number,
                issuer,
                issued_on,
                expires_on,
            };
            print(&client.record_document(request).await.map_err(status)?.into_inner());
        }
        IdentityCommand::Request { operator, holder, action, reason, contact } => {
            let mut requests = HolderRequestsClient::new(channel.clone());
            let started = requests
                .start(pb::HolderRequestStart { holder, action, reason, contact, operator_id: operator })
                .await
                .map_err(status)?
                .into_inner();
            if json {
                let out = serde_json::json!({
                    "request_id": started.request_id, "sent_to": started.sent_to,
                    "expires_at": when(&started.expires_at),
                });
                println!("{out}");
            } else {
                println!(
                    "request {}: code sent to {}; valid until {}",
                    started.request_id,
                    started.sent_to,
                    when(&started.expires_at)
                );
            }
        }
        IdentityCommand::Confirm { operator, request_id, code } => {
            let mut requests = HolderRequestsClient::new(channel.clone());
            let r = requests
                .confirm(pb::HolderRequestConfirm { request_id, code, operator_id: operator })
                .await
                .map_err(status)?
                .into_inner();
            if json {
                let out = serde_json::json!({
                    "receipt_id": r.receipt_id, "request_id": r.request_id, "spid_code": r.spid_code,
                    "action": r.action, "received_at": when(&r.received_at), "acted_at": when(&r.acted_at),
                    "status": state(r.status),
                });
                println!("{out}");
            } else {
                println!(
                    "receipt {}: {} of {} received {}, done {}; now {}",
                    r.receipt_id,
                    r.action,
                    r.spid_code,
                    when(&r.received_at),
                    when(&r.acted_at),
                    state(r.status)
                );
            }
        }
        IdentityCommand::History { operator, spid_code } => {
            let h = client
                .history(pb::GetIdentityRequest { spid_code, actor_id: operator })
                .await
                .map_err(status)?
                .into_inner();
            if json {
                let list: Vec<serde_json::Value> = h
                    .entries
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "at": when(&e.at), "from": state(e.from), "to": state(e.to), "actor": e.actor,
                            "cause": e.cause, "channel": e.channel,
                            "reason": e.reason, "justification_ref": e.justification_ref,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?);
            } else {
                for e in &h.entries {
                    let via = if e.channel.is_empty() { String::new() } else { format!(" via {}", e.channel) };
                    println!(
                        "{}  {} -> {}  by {}{via}  ({}) {}  [{}]",
                        when(&e.at),
                        state(e.from),
                        state(e.to),
                        e.actor,
                        e.cause,
                        e.reason,
                        e.justification_ref
                    );
                }
            }
        }
    }
    Ok(true)
}
