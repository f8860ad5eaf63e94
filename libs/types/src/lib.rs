//! The small vocabulary every crate of the suite shares. No I/O, no
//! transport types: this crate is safe to use from domain code.

mod clock;
pub mod contact;
mod error;
mod level;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorKind, ServiceError};
pub use level::{Level, ParseLevelError};

/// Names of the five services, as used in configuration sections, metrics
/// labels, log fields and the `idp` sub-commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceName {
    IdentityManager,
    AuthnGateway,
    OtpService,
    AuditLog,
    Notification,
}

impl ServiceName {
    pub const ALL: [ServiceName; 5] = [
        ServiceName::IdentityManager,
        ServiceName::AuthnGateway,
        ServiceName::OtpService,
        ServiceName::AuditLog,
        ServiceName::Notification,
    ];

    /// The kebab-case name (`identity-manager`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::IdentityManager => "identity-manager",
            ServiceName::AuthnGateway => "authn-gateway",
            ServiceName::OtpService => "otp-service",
            ServiceName::AuditLog => "audit-log",
            ServiceName::Notification => "notification",
        }
    }

    /// The snake_case name used for configuration sections and databases.
    pub fn key(self) -> &'static str {
        match self {
            ServiceName::IdentityManager => "identity_manager",
            ServiceName::AuthnGateway => "authn_gateway",
            ServiceName::OtpService => "otp_service",
            ServiceName::AuditLog => "audit_log",
            ServiceName::Notification => "notification",
        }
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ServiceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceName::ALL
            .into_iter()
            .find(|n| n.as_str() == s || n.key() == s)
            .ok_or_else(|| format!("unknown service '{s}'"))
    }
}

/// Bus topics of the suite.
pub mod topics {
    /// Identity lifecycle events, keyed by identity (spidCode).
    pub const LIFECYCLE: &str = "spid.lifecycle.v1";
    /// Audit events every service writes through its outbox.
    pub const AUDIT: &str = "spid.audit.v1";
    /// Asynchronous notification requests.
    pub const NOTIFICATION: &str = "spid.notification.v1";
    pub const ALL: [&str; 3] = [LIFECYCLE, AUDIT, NOTIFICATION];
    /// Where a consumer sets aside messages it can never handle.
    pub const DEAD_LETTER_SUFFIX: &str = ".dead-letter";

    /// Every topic the suite uses, dead-letter topics included.
    pub fn with_dead_letters() -> Vec<String> {
        ALL.iter().flat_map(|t| [(*t).to_owned(), format!("{t}{DEAD_LETTER_SUFFIX}")]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_round_trip() {
        for name in ServiceName::ALL {
            assert_eq!(name.as_str().parse::<ServiceName>(), Ok(name));
            assert_eq!(name.key().parse::<ServiceName>(), Ok(name));
        }
        assert!("gateway".parse::<ServiceName>().is_err());
    }
}
