//! Where the services are: a host with the default ports (`--target`), or
//! one URL per service.

use clap::Args;
use spid_types::ServiceName;

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Host (or `scheme://host`) of the deployment; each service on its
    /// default gRPC port. Default: 127.0.0.1 (the development mode).
    #[arg(long, global = true, env = "IDPCTL_TARGET", default_value = "127.0.0.1")]
    target: String,
    #[arg(long, global = true, value_name = "URL", env = "IDPCTL_IDENTITY_MANAGER")]
    identity_manager: Option<String>,
    #[arg(long, global = true, value_name = "URL", env = "IDPCTL_AUTHN_GATEWAY")]
    authn_gateway: Option<String>,
    #[arg(long, global = true, value_name = "URL", env = "IDPCTL_OTP_SERVICE")]
    otp_service: Option<String>,
    #[arg(long, global = true, value_name = "URL", env = "IDPCTL_AUDIT_LOG")]
    audit_log: Option<String>,
    #[arg(long, global = true, value_name = "URL", env = "IDPCTL_NOTIFICATION")]
    notification: Option<String>,
}

/// Default gRPC ports, as in the default configuration.
pub fn default_port(name: ServiceName) -> u16 {
    match name {
        ServiceName::IdentityManager => 50051,
        ServiceName::AuthnGateway => 50052,
        ServiceName::OtpService => 50053,
        ServiceName::AuditLog => 50054,
        ServiceName::Notification => 50055,
    }
}

#[derive(Debug, Clone)]
pub struct Targets(pub Vec<(ServiceName, String)>);

impl Targets {
    /// The gRPC URL of one service.
    pub fn url(&self, name: ServiceName) -> &str {
        self.0.iter().find(|(n, _)| *n == name).map_or("", |(_, u)| u.as_str())
    }
}

impl TargetArgs {
    pub fn resolve(&self) -> Result<Targets, String> {
        let (scheme, host) = match self.target.split_once("://") {
            Some((s, h)) => (s.to_owned(), h.trim_end_matches('/').to_owned()),
            None => ("http".to_owned(), self.target.trim_end_matches('/').to_owned()),
        };
        if !matches!(scheme.as_str(), "http" | "https") || host.is_empty() || host.contains('/') {
            return Err(format!("--target {}: expected a host name or http(s)://host", self.target));
        }
        let explicit = [
            (ServiceName::IdentityManager, &self.identity_manager),
            (ServiceName::AuthnGateway, &self.authn_gateway),
            (ServiceName::OtpService, &self.otp_service),
            (ServiceName::AuditLog, &self.audit_log),
            (ServiceName::Notification, &self.notification),
        ];
        let mut out = Vec::new();
        for (name, url) in explicit {
            let url = match url {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => u.clone(),
                Some(u) => return Err(format!("--{}: \"{u}\" is not an http(s):// URL", name.as_str())),
                None => format!("{scheme}://{host}:{}", default_port(name)),
            };
            out.push((name, url));
        }
        Ok(Targets(out))
    }
}
