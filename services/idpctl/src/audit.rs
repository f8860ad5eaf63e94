//! `idpctl audit …`: the audit log for operators — verify the chain, search
//! the registry, holders' signed extracts, seals, and the jobs on demand.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use spid_proto::audit::v1 as pb;
use spid_proto::audit::v1::audit_integrity_client::AuditIntegrityClient;
use spid_proto::audit::v1::audit_query_client::AuditQueryClient;
use spid_types::ServiceName;

use crate::targets::Targets;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and check it against the signed daily seals;
    /// exits 1 and names the first break if anything was altered.
    Verify(Period),
    /// Find records by identifier (matched through the blind index).
    Search(SearchArgs),
    /// A holder's records for a period: a CSV document and its detached CMS
    /// signature (`<out>` and `<out>.p7s`, with the signer's certificate in
    /// `<out>.signer.pem`).
    Extract {
        #[arg(long)]
        spid_code: String,
        #[command(flatten)]
        period: Period,
        /// Where to write the document.
        #[arg(long)]
        out: PathBuf,
    },
    /// A holder's authentications (what the reserved area shows).
    Authentications {
        #[arg(long)]
        spid_code: String,
        #[command(flatten)]
        period: Period,
    },
    /// The daily seals.
    Seals {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        until: Option<String>,
    },
    /// Seal the finished days now (the service also does it on a schedule).
    Seal,
    /// Apply the retention rules now (the service also does it on a schedule).
    Retention,
}

/// A period: YYYY-MM-DD (whole days, UTC) or RFC 3339 instants.
#[derive(Debug, Args)]
pub struct Period {
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    until: Option<String>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[arg(long)]
    spid_code: Option<String>,
    /// Service provider entityID or client_id.
    #[arg(long)]
    sp: Option<String>,
    #[arg(long)]
    request_id: Option<String>,
    #[arg(long)]
    response_id: Option<String>,
    #[arg(long)]
    assertion_id: Option<String>,
    #[arg(long)]
    aggregate_id: Option<String>,
    /// Event type, e.g. saml.transaction.
    #[arg(long = "type")]
    event_type: Option<String>,
    #[command(flatten)]
    period: Period,
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Records after this sequence (paging).
    #[arg(long, default_value_t = 0)]
    after: u64,
}

fn instant(value: &Option<String>, end_of_day: bool, flag: &str) -> Result<Option<prost_types::Timestamp>, String> {
    let Some(v) = value else { return Ok(None) };
    let t = if let Ok(day) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let day = if end_of_day { day.succ_opt().unwrap_or(day) } else { day };
        let start = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or("bad day")?;
        if end_of_day { start - chrono::Duration::microseconds(1) } else { start }
    } else {
        DateTime::parse_from_rfc3339(v)
            .map_err(|_| format!("--{flag} {v}: expected YYYY-MM-DD or an RFC 3339 instant"))?
            .with_timezone(&Utc)
    };
    Ok(Some(spid_proto::time::to_wire(t)))
}

fn time_text(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().and_then(spid_proto::time::from_wire).map(|t| t.to_rfc3339()).unwrap_or_default()
}

async fn channel(targets: &Targets) -> Result<tonic::transport::Channel, String> {
    let url = targets.url(ServiceName::AuditLog);
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("audit-log at {url}: {e}"))
}

fn status(e: tonic::Status) -> String {
    format!("audit-log: {}", e.message())
}

fn print_json(value: &serde_json::Value) -> Result<(), String> {
    println!("{}", serde_json::to_string_pretty(value).map_err(|e| e.to_string())?);
    Ok(())
}

/// Runs one audit command; returns whether it succeeded (verify: intact).
pub async fn run(targets: &Targets, json: bool, command: AuditCommand) -> Result<bool, String> {
    let ch = channel(targets).await?;
    let mut query = AuditQueryClient::new(ch.clone());
    let mut integrity = AuditIntegrityClient::new(ch);
    match command {
        AuditCommand::Verify(p) => {
            let req =
                pb::VerifyRequest { from: instant(&p.from, false, "from")?, until: instant(&p.until, true, "until")? };
            let v = integrity.verify(req).await.map_err(status)?.into_inner();
            if json {
                print_json(&serde_json::json!({
                    "intact": v.intact, "records_checked": v.records_checked, "seals_checked": v.seals_checked,
                    "first_bad_sequence": v.first_bad_sequence, "bad_day": v.bad_day, "problem": v.problem,
                }))?;
            } else if v.intact {
                println!("intact: {} records and {} seals checked", v.records_checked, v.seals_checked);
            } else {
                println!(
                    "BROKEN at record {} (day {}): {}\n({} records and {} seals checked before the break)",
                    v.first_bad_sequence, v.bad_day, v.problem, v.records_checked, v.seals_checked
                );
            }
            Ok(v.intact)
        }
        AuditCommand::Search(a) => {
            let req = pb::SearchRequest {
                aggregate_id: a.aggregate_id.unwrap_or_default(),
                r#type: a.event_type.unwrap_or_default(),
                from: instant(&a.period.from, false, "from")?,
                until: instant(&a.period.until, true, "until")?,
                limit: a.limit,
                after_sequence: a.after,
                spid_code: a.spid_code.unwrap_or_default(),
                service_provider: a.sp.unwrap_or_default(),
                request_id: a.request_id.unwrap_or_default(),
                response_id: a.response_id.unwrap_or_default(),
                assertion_id: a.assertion_id.unwrap_or_default(),
            };
            let records = query.search(req).await.map_err(status)?.into_inner().records;
            if json {
                let rows: Vec<_> = records
                    .iter()
                    .map(|r| {
                        let e = r.event.clone().unwrap_or_default();
                        serde_json::json!({
                            "sequence": r.sequence, "recorded_at": time_text(&r.recorded_at),
                            "occurred_at": time_text(&e.occurred_at), "type": e.r#type, "source": e.source,
                            "aggregate_id": e.aggregate_id, "event_id": e.event_id, "reason": e.reason,
                            "payload_type": e.payload.map(|p| p.type_url).unwrap_or_default(),
                        })
                    })
                    .collect();
                print_json(&serde_json::Value::Array(rows))?;
            } else {
                println!("{:<8} {:<32} {:<28} {:<16} AGGREGATE", "SEQ", "OCCURRED", "TYPE", "SOURCE");
                for r in &records {
                    let e = r.event.clone().unwrap_or_default();
                    println!(
                        "{:<8} {:<32} {:<28} {:<16} {}",
                        r.sequence,
                        time_text(&e.occurred_at),
                        e.r#type,
                        e.source,
                        e.aggregate_id
                    );
                }
            }
            Ok(true)
        }
        AuditCommand::Extract { spid_code, period, out } => {
            let req = pb::ExtractRequest {
                spid_code,
                from: instant(&period.from, false, "from")?,
                until: instant(&period.until, true, "until")?,
            };
            let e = query.extract(req).await.map_err(status)?.into_inner();
            let with = |suffix: &str| {
                let mut p = out.clone().into_os_string();
                p.push(suffix);
                PathBuf::from(p)
            };
            let write = |path: &PathBuf, bytes: &[u8]| {
                std::fs::write(path, bytes).map_err(|err| format!("{}: {err}", path.display()))
            };
            write(&out, &e.document)?;
            write(&with(".p7s"), &e.signature)?;
            write(&with(".signer.pem"), e.signer_certificate.as_bytes())?;
            if json {
                print_json(&serde_json::json!({
                    "records": e.records, "document": out, "signature": with(".p7s"), "signer": with(".signer.pem"),
                }))?;
            } else {
                println!("{} records written to {}", e.records, out.display());
                println!(
                    "verify: openssl cms -verify -binary -inform DER -in {} -content {} -CAfile {} -purpose any -out /dev/null",
                    with(".p7s").display(),
                    out.display(),
                    with(".signer.pem").display()
                );
            }
            Ok(true)
        }
        AuditCommand::Authentications { spid_code, period } => {
            let req = pb::ListAuthenticationsRequest {
                spid_code,
                from: instant(&period.from, false, "from")?,
                until: instant(&period.until, true, "until")?,
                limit: 1000,
            };
            let list = query.list_authentications(req).await.map_err(status)?.into_inner().authentications;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "at": time_text(&a.at), "service_provider": a.service_provider, "level": a.level,
                            "outcome": a.outcome, "protocol": a.protocol,
                        })
                    })
                    .collect();
                print_json(&serde_json::Value::Array(rows))?;
            } else {
                println!("{:<32} {:<40} {:<34} OUTCOME", "AT", "SERVICE PROVIDER", "LEVEL");
                for a in &list {
                    println!("{:<32} {:<40} {:<34} {}", time_text(&a.at), a.service_provider, a.level, a.outcome);
                }
            }
            Ok(true)
        }
        AuditCommand::Seals { from, until } => {
            let req = pb::ListSealsRequest { from_day: from.unwrap_or_default(), until_day: until.unwrap_or_default() };
            let seals = query.list_seals(req).await.map_err(status)?.into_inner().seals;
            print_seals(&seals, json)?;
            Ok(true)
        }
        AuditCommand::Seal => {
            let sealed = integrity.seal_days(pb::SealDaysRequest {}).await.map_err(status)?.into_inner().sealed;
            print_seals(&sealed, json)?;
            Ok(true)
        }
        AuditCommand::Retention => {
            let r = integrity.apply_retention(pb::ApplyRetentionRequest {}).await.map_err(status)?.into_inner();
            if json {
                print_json(&serde_json::json!({
                    "records_removed": r.records_removed, "evidence_references_removed": r.evidence_references_removed,
                    "days": r.days,
                }))?;
            } else {
                println!(
                    "{} records of {} days removed; {} evidence references removed",
                    r.records_removed,
                    r.days.len(),
                    r.evidence_references_removed
                );
            }
            Ok(true)
        }
    }
}

fn print_seals(seals: &[pb::Seal], json: bool) -> Result<(), String> {
    if json {
        let rows: Vec<_> = seals
            .iter()
            .map(|s| serde_json::json!({
                "day": s.day, "first_sequence": s.first_sequence, "last_sequence": s.last_sequence,
                "records": s.records, "chain_head": s.chain_head, "digest": s.digest, "signature": s.signature,
                "timestamp_authority": s.timestamp_authority, "sealed_at": time_text(&s.sealed_at), "purged": s.purged,
            }))
            .collect();
        return print_json(&serde_json::Value::Array(rows));
    }
    println!("{:<12} {:>10} {:>10} {:>9} {:<18} {:<12} PURGED", "DAY", "FIRST", "LAST", "RECORDS", "DIGEST", "TSA");
    for s in seals {
        let digest = s.digest.get(..16).unwrap_or(&s.digest);
        println!(
            "{:<12} {:>10} {:>10} {:>9} {:<18} {:<12} {}",
            s.day,
            s.first_sequence,
            s.last_sequence,
            s.records,
            digest,
            s.timestamp_authority,
            if s.purged { "yes" } else { "" }
        );
    }
    Ok(())
}
