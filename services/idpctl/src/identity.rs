//! `idpctl identity …`: the operators' lifecycle tools (LC-1…3) — look at
//! an identity and its history, suspend and restore it (the 30-minute
//! suspension duty), revoke it (administrators). Every command names the
//! operator acting (`--operator` or `SPID_OPERATOR`).

use std::time::Duration;

use clap::Subcommand;
use spid_proto::identity::v1 as pb;
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
    /// Revoke for good (administrators): death, illicit use, request...
    Revoke(Change),
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
    #[arg(long, alias = "cause")]
    reason: String,
    /// The justifying document (PEC id, police report, form...).
    #[arg(long, default_value = "")]
    justification: String,
    /// Suspend: the holder asked for it (restored automatically after 30
    /// days unless revoked meanwhile, LC-2).
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
    let mut client = LifecycleAdminClient::new(channel);
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
                            "reason": e.reason, "justification_ref": e.justification_ref,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?);
            } else {
                for e in &h.entries {
                    println!(
                        "{}  {} -> {}  by {}  {}  [{}]",
                        when(&e.at),
                        state(e.from),
                        state(e.to),
                        e.actor,
                        e.reason,
                        e.justification_ref
                    );
                }
            }
        }
    }
    Ok(true)
}
