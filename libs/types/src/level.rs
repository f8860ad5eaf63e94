use serde::{Deserialize, Serialize};

/// SPID level of assurance (LOA-1..4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    L1 = 1,
    L2 = 2,
    L3 = 3,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown level of assurance '{0}'")]
pub struct ParseLevelError(pub String);

impl Level {
    /// The SAML AuthnContextClassRef / OIDC acr value (LOA-4).
    pub fn class_ref(self) -> &'static str {
        match self {
            Level::L1 => "https://www.spid.gov.it/SpidL1",
            Level::L2 => "https://www.spid.gov.it/SpidL2",
            Level::L3 => "https://www.spid.gov.it/SpidL3",
        }
    }

    /// The eIDAS level this SPID level corresponds to (LOA-1..3).
    pub fn eidas_uri(self) -> &'static str {
        match self {
            Level::L1 => "http://eidas.europa.eu/LoA/low",
            Level::L2 => "http://eidas.europa.eu/LoA/substantial",
            Level::L3 => "http://eidas.europa.eu/LoA/high",
        }
    }

    /// Parses a SPID class ref or an eIDAS LoA URI.
    pub fn from_uri(uri: &str) -> Result<Self, ParseLevelError> {
        [Level::L1, Level::L2, Level::L3]
            .into_iter()
            .find(|l| l.class_ref() == uri || l.eidas_uri() == uri)
            .ok_or_else(|| ParseLevelError(uri.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_map_both_ways() {
        assert_eq!(Level::from_uri("https://www.spid.gov.it/SpidL2"), Ok(Level::L2));
        assert_eq!(Level::from_uri("http://eidas.europa.eu/LoA/high"), Ok(Level::L3));
        assert!(Level::from_uri("https://www.spid.gov.it/SpidL4").is_err());
        assert!(Level::L1 < Level::L2 && Level::L2 < Level::L3);
    }
}
