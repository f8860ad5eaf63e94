//! `idpctl operators …` and `idpctl requests …`: the identity-manager back
//! office (IDN-2) for operators. Every command names the operator acting
//! (`--operator`, or `SPID_OPERATOR`); identity-manager audits each one.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use spid_proto::identity::v1 as pb;
use spid_proto::identity::v1::backoffice_client::BackofficeClient;
use spid_types::ServiceName;

use crate::targets::Targets;

#[derive(Debug, Args)]
pub struct Who {
    /// The operator acting.
    #[arg(long, env = "SPID_OPERATOR")]
    operator: String,
}

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Operators and their roles.
    List(Who),
    /// Add an operator (an administrator acting; `--first` for the
    /// installation's first administrator).
    Add {
        #[arg(long, env = "SPID_OPERATOR", required_unless_present = "first")]
        operator: Option<String>,
        /// The installation's first administrator: no operator exists yet.
        #[arg(long, conflicts_with = "operator")]
        first: bool,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// counter, video_desk, verifier or administrator
        #[arg(long)]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// The queue: requests by state and identification method.
    List {
        #[command(flatten)]
        who: Who,
        /// draft, submitted, awaiting_identification, identified, verified,
        /// awaiting_acceptance, active, denied, lapsed
        #[arg(long)]
        state: Option<String>,
        /// counter, video, video_transfer, electronic_document, signed_form,
        /// existing_identity
        #[arg(long)]
        method: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// A request with its holder's data, evidence, source checks, history.
    Show {
        #[command(flatten)]
        who: Who,
        request: String,
    },
    /// Write a piece of evidence to a file.
    Evidence {
        #[command(flatten)]
        who: Who,
        evidence: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Confirm an appointment (counter or video); the applicant is told.
    ConfirmAppointment {
        #[command(flatten)]
        who: Who,
        request: String,
        /// RFC 3339, e.g. 2026-12-03T10:30:00Z
        #[arg(long)]
        at: String,
    },
    /// The operator identified the applicant (counter, video, video +
    /// transfer); the authoritative-source checks follow.
    Identify {
        #[command(flatten)]
        who: Who,
        request: String,
        #[arg(long)]
        note: String,
    },
    /// Record the bank transfer of the video + transfer method.
    Transfer {
        #[command(flatten)]
        who: Who,
        request: String,
        #[arg(long)]
        reference: String,
        #[arg(long)]
        amount_cents: i64,
        /// RFC 3339; default now.
        #[arg(long)]
        received_at: Option<String>,
    },
    /// A verifier approves a request whose source checks need a decision.
    Approve {
        #[command(flatten)]
        who: Who,
        request: String,
        #[arg(long)]
        reason: String,
    },
    /// Deny a request; the applicant is told the reason.
    Deny {
        #[command(flatten)]
        who: Who,
        request: String,
        #[arg(long)]
        reason: String,
    },
    /// Ask the applicant for more documents.
    AskDocuments {
        #[command(flatten)]
        who: Who,
        request: String,
        #[arg(long)]
        documents: String,
    },
}

async fn client(targets: &Targets) -> Result<BackofficeClient<tonic::transport::Channel>, String> {
    let url = targets.url(ServiceName::IdentityManager);
    let ch = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("identity-manager at {url}: {e}"))?;
    Ok(BackofficeClient::new(ch).max_decoding_message_size(64 * 1024 * 1024))
}

fn status(e: tonic::Status) -> String {
    format!("identity-manager: {}", e.message())
}

fn time_text(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().and_then(spid_proto::time::from_wire).map(|t| t.to_rfc3339()).unwrap_or_default()
}

fn instant(v: &str, flag: &str) -> Result<prost_types::Timestamp, String> {
    let t = DateTime::parse_from_rfc3339(v).map_err(|_| format!("--{flag} {v}: expected an RFC 3339 instant"))?;
    Ok(spid_proto::time::to_wire(t.with_timezone(&Utc)))
}

fn print(value: &serde_json::Value) -> Result<(), String> {
    println!("{}", serde_json::to_string_pretty(value).map_err(|e| e.to_string())?);
    Ok(())
}

fn operator_json(o: &pb::Operator) -> serde_json::Value {
    serde_json::json!({ "id": o.id, "name": o.display_name, "role": o.role, "disabled": o.disabled })
}

fn item_json(i: &pb::QueueItem) -> serde_json::Value {
    serde_json::json!({
        "request_id": i.request_id, "state": i.state, "method": i.method, "identity_type": i.identity_type,
        "channel": i.channel, "since": time_text(&i.since), "appointment": time_text(&i.appointment),
        "appointment_confirmed": i.appointment_confirmed,
    })
}

pub async fn operators(targets: &Targets, json: bool, command: OperatorsCommand) -> Result<bool, String> {
    let mut c = client(targets).await?;
    match command {
        OperatorsCommand::List(who) => {
            let r = c
                .list_operators(pb::ListOperatorsRequest { operator_id: who.operator })
                .await
                .map_err(status)?
                .into_inner();
            if json {
                print(&r.operators.iter().map(operator_json).collect())?;
            } else {
                for o in &r.operators {
                    let off = if o.disabled { " (disabled)" } else { "" };
                    println!("{:<24} {:<14} {}{off}", o.id, o.role, o.display_name);
                }
            }
        }
        OperatorsCommand::Add { operator, first: _, id, name, role } => {
            let o = c
                .add_operator(pb::AddOperatorRequest {
                    by_operator_id: operator.unwrap_or_default(),
                    operator: Some(pb::Operator { id, display_name: name, role, disabled: false }),
                })
                .await
                .map_err(status)?
                .into_inner();
            if json {
                print(&operator_json(&o))?;
            } else {
                println!("added {} ({})", o.id, o.role);
            }
        }
    }
    Ok(true)
}

fn decided(json: bool, r: pb::DecisionResponse) -> Result<bool, String> {
    if json {
        print(&serde_json::json!({ "state": r.state }))?;
    } else {
        println!("request is now {}", r.state);
    }
    Ok(true)
}

pub async fn requests(targets: &Targets, json: bool, command: RequestsCommand) -> Result<bool, String> {
    let mut c = client(targets).await?;
    let decision = |who: Who, request: String, text: String| pb::DecisionRequest {
        operator_id: who.operator,
        request_id: request,
        text,
    };
    match command {
        RequestsCommand::List { who, state, method, limit } => {
            let r = c
                .queue(pb::QueueRequest {
                    operator_id: who.operator,
                    state: state.unwrap_or_default(),
                    method: method.unwrap_or_default(),
                    limit,
                })
                .await
                .map_err(status)?
                .into_inner();
            if json {
                print(&r.items.iter().map(item_json).collect())?;
            } else {
                for i in &r.items {
                    println!(
                        "{}  {:<24} {:<20} {:<21} {}",
                        i.request_id,
                        i.state,
                        i.method,
                        i.identity_type,
                        time_text(&i.since)
                    );
                }
            }
        }
        RequestsCommand::Show { who, request } => {
            let v = c
                .view_request(pb::OperatorRequest { operator_id: who.operator, request_id: request })
                .await
                .map_err(status)?
                .into_inner();
            let holder: serde_json::Value = serde_json::from_str(&v.holder_json).unwrap_or_default();
            print(&serde_json::json!({
                "request": v.item.as_ref().map(item_json),
                "holder": holder,
                "contacts": v.contacts.iter().map(|c| serde_json::json!({"kind": c.kind, "value": c.value, "verified": c.verified})).collect::<Vec<_>>(),
                "evidence": v.evidence.iter().map(|e| serde_json::json!({"id": e.id, "kind": e.kind, "sha256": e.content_sha256, "at": time_text(&e.at)})).collect::<Vec<_>>(),
                "source_checks": v.source_checks.iter().map(|s| serde_json::json!({"source": s.source, "verdict": s.verdict, "reasons": s.reasons, "reference": s.reference})).collect::<Vec<_>>(),
                "history": v.history.iter().map(|t| serde_json::json!({"from": t.from, "to": t.to, "actor": t.actor, "actor_id": t.actor_id, "reason": t.reason})).collect::<Vec<_>>(),
                "documents_requested_at": time_text(&v.documents_requested_at),
                "bank_transfer": v.bank_transfer_reference,
            }))?;
        }
        RequestsCommand::Evidence { who, evidence, out } => {
            let e = c
                .open_evidence(pb::OpenEvidenceRequest { operator_id: who.operator, evidence_id: evidence })
                .await
                .map_err(status)?
                .into_inner();
            std::fs::write(&out, &e.content).map_err(|err| format!("{}: {err}", out.display()))?;
            println!("{} ({} bytes) written to {}", e.kind, e.content.len(), out.display());
        }
        RequestsCommand::ConfirmAppointment { who, request, at } => {
            c.confirm_appointment(pb::AppointmentRequest {
                operator_id: who.operator,
                request_id: request,
                at: Some(instant(&at, "at")?),
            })
            .await
            .map_err(status)?;
            println!("appointment confirmed; the applicant is told by e-mail and SMS");
        }
        RequestsCommand::Identify { who, request, note } => {
            return decided(json, c.identify(decision(who, request, note)).await.map_err(status)?.into_inner());
        }
        RequestsCommand::Transfer { who, request, reference, amount_cents, received_at } => {
            let received_at = match received_at {
                Some(t) => instant(&t, "received-at")?,
                None => spid_proto::time::to_wire(Utc::now()),
            };
            c.record_transfer(pb::TransferRequest {
                operator_id: who.operator,
                request_id: request,
                reference,
                amount_cents,
                received_at: Some(received_at),
            })
            .await
            .map_err(status)?;
            println!("bank transfer recorded");
        }
        RequestsCommand::Approve { who, request, reason } => {
            return decided(json, c.approve(decision(who, request, reason)).await.map_err(status)?.into_inner());
        }
        RequestsCommand::Deny { who, request, reason } => {
            return decided(json, c.deny(decision(who, request, reason)).await.map_err(status)?.into_inner());
        }
        RequestsCommand::AskDocuments { who, request, documents } => {
            return decided(
                json,
                c.ask_documents(decision(who, request, documents)).await.map_err(status)?.into_inner(),
            );
        }
    }
    Ok(true)
}
