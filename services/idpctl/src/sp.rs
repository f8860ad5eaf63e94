//! `idpctl sp …`: the service-provider registry of the SAML gateway.

use std::time::Duration;

use clap::Subcommand;
use spid_proto::gateway::v1 as pb;
use spid_proto::gateway::v1::service_providers_client::ServiceProvidersClient;
use spid_types::ServiceName;

use crate::targets::Targets;

#[derive(Debug, Subcommand)]
pub enum SpCommand {
    /// Every registered service provider, with its ACS and certificates.
    List,
    /// Register a service provider from its metadata file (trusted as
    /// given: check its origin first).
    Add {
        /// The operator acting (audited).
        #[arg(long, env = "SPID_OPERATOR")]
        operator: String,
        /// An md:EntityDescriptor file.
        metadata: std::path::PathBuf,
    },
    /// Remove a service provider, also one a metadata source lists, until
    /// it is added again.
    Remove {
        #[arg(long, env = "SPID_OPERATOR")]
        operator: String,
        entity_id: String,
    },
    /// Reload every metadata source now, on every gateway replica.
    Refresh {
        #[arg(long, env = "SPID_OPERATOR")]
        operator: String,
    },
}

fn sp_json(sp: &pb::ServiceProvider) -> serde_json::Value {
    serde_json::json!({
        "entity_id": sp.entity_id,
        "source": sp.source,
        "acs_urls": sp.acs_urls,
        "attribute_services": sp.attribute_services,
        "certificates_not_after": sp.certificates_not_after.iter().filter_map(spid_proto::time::from_wire).map(|t| t.to_rfc3339()).collect::<Vec<_>>(),
    })
}

pub async fn run(targets: &Targets, json: bool, command: SpCommand) -> Result<bool, String> {
    let url = targets.url(ServiceName::AuthnGateway);
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("authn-gateway at {url}: {e}"))?;
    let mut client = ServiceProvidersClient::new(channel);
    let status = |e: tonic::Status| format!("authn-gateway: {}", e.message());
    match command {
        SpCommand::List => {
            let list = client.list(pb::ListServiceProvidersRequest {}).await.map_err(status)?.into_inner();
            if json {
                let all: Vec<_> = list.service_providers.iter().map(sp_json).collect();
                println!("{}", serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?);
            } else if list.service_providers.is_empty() {
                println!("no service providers");
            } else {
                for sp in &list.service_providers {
                    let expiry: Vec<String> = sp
                        .certificates_not_after
                        .iter()
                        .filter_map(spid_proto::time::from_wire)
                        .map(|t| t.format("%Y-%m-%d").to_string())
                        .collect();
                    println!(
                        "{}\n  source {}\n  ACS {}\n  certificates until {}",
                        sp.entity_id,
                        sp.source,
                        sp.acs_urls.join(", "),
                        expiry.join(", ")
                    );
                }
            }
            Ok(true)
        }
        SpCommand::Add { operator, metadata } => {
            let xml = std::fs::read_to_string(&metadata).map_err(|e| format!("{}: {e}", metadata.display()))?;
            let sp = client
                .add(pb::AddServiceProviderRequest { operator, metadata: xml })
                .await
                .map_err(status)?
                .into_inner();
            if json {
                println!("{}", sp_json(&sp));
            } else {
                println!("{}: registered", sp.entity_id);
            }
            Ok(true)
        }
        SpCommand::Remove { operator, entity_id } => {
            client
                .remove(pb::RemoveServiceProviderRequest { operator, entity_id: entity_id.clone() })
                .await
                .map_err(status)?;
            if json {
                println!("{}", serde_json::json!({ "entity_id": entity_id, "removed": true }));
            } else {
                println!("{entity_id}: removed");
            }
            Ok(true)
        }
        SpCommand::Refresh { operator } => {
            let r = client.refresh(pb::RefreshRequest { operator }).await.map_err(status)?.into_inner();
            if json {
                println!("{}", serde_json::json!({ "loaded": r.loaded, "errors": r.errors }));
            } else {
                println!("{} service providers loaded", r.loaded);
                for e in &r.errors {
                    println!("  failed: {e}");
                }
            }
            Ok(r.errors.is_empty())
        }
    }
}
