use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::targets::Targets;

#[derive(Debug, serde::Serialize)]
struct Row {
    service: &'static str,
    target: String,
    status: String,
}

/// Checks every service concurrently; returns whether all are serving.
pub async fn run(targets: &Targets, json: bool) -> Result<bool, String> {
    let rows = futures::future::join_all(targets.0.iter().map(|(name, url)| async move {
        Row { service: name.as_str(), target: url.clone(), status: check(url).await }
    }))
    .await;
    let healthy = rows.iter().all(|r| r.status == "SERVING");
    if json {
        let out = serde_json::json!({ "healthy": healthy, "services": rows });
        println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
    } else {
        println!("{:<18} {:<28} STATUS", "SERVICE", "TARGET");
        for r in &rows {
            println!("{:<18} {:<28} {}", r.service, r.target, r.status);
        }
    }
    Ok(healthy)
}

async fn check(url: &str) -> String {
    let endpoint = match tonic::transport::Endpoint::from_shared(url.to_owned()) {
        Ok(e) => e.connect_timeout(Duration::from_secs(3)).timeout(Duration::from_secs(5)),
        Err(e) => return format!("INVALID TARGET ({e})"),
    };
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(_) => return "UNREACHABLE".to_owned(),
    };
    match HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await {
        Ok(resp) => match resp.into_inner().status() {
            ServingStatus::Serving => "SERVING".to_owned(),
            ServingStatus::NotServing => "NOT_SERVING".to_owned(),
            other => format!("{other:?}").to_uppercase(),
        },
        Err(status) => format!("ERROR ({:?})", status.code()),
    }
}
