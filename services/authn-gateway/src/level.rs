//! SPID levels of assurance (LOA-1…5) and how a request's comparison picks
//! the level to authenticate at.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Level {
    L1,
    L2,
    L3,
}

impl Level {
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            "https://www.spid.gov.it/SpidL1" => Some(Level::L1),
            "https://www.spid.gov.it/SpidL2" => Some(Level::L2),
            "https://www.spid.gov.it/SpidL3" => Some(Level::L3),
            _ => None,
        }
    }

    pub fn uri(self) -> &'static str {
        match self {
            Level::L1 => "https://www.spid.gov.it/SpidL1",
            Level::L2 => "https://www.spid.gov.it/SpidL2",
            Level::L3 => "https://www.spid.gov.it/SpidL3",
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Level::L1 => 1,
            Level::L2 => 2,
            Level::L3 => 3,
        }
    }
}

/// The kind of SPID identity a holder logs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IdentityKind {
    /// Of a natural person, for private use.
    Private,
    /// For professional use of a natural person.
    ProfessionalNatural,
    /// For professional use on behalf of a legal person.
    ProfessionalLegal,
}

/// The `spid:Purpose` extension of an AuthnRequest (Avviso SPID 18): the
/// identities the service accepts. Without it a service is for private
/// identities, and a professional identity gets nr30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Purpose {
    /// Professional use, of a natural or a legal person.
    P,
    /// Professional use of a natural person.
    PF,
    /// Professional use on behalf of a legal person.
    PG,
    /// The legal person's identity.
    LP,
    /// Private or professional use of a natural person.
    PX,
}

impl Purpose {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "P" => Purpose::P,
            "PF" => Purpose::PF,
            "PG" => Purpose::PG,
            "LP" => Purpose::LP,
            "PX" => Purpose::PX,
            _ => return None,
        })
    }

    /// Whether an identity of `kind` may answer a request with this purpose
    /// (`None`: no Purpose extension).
    pub fn accepts(purpose: Option<Purpose>, kind: IdentityKind) -> bool {
        use IdentityKind::*;
        match purpose {
            None => kind == Private,
            Some(Purpose::P) => matches!(kind, ProfessionalNatural | ProfessionalLegal),
            Some(Purpose::PF) => kind == ProfessionalNatural,
            Some(Purpose::PG | Purpose::LP) => kind == ProfessionalLegal,
            Some(Purpose::PX) => matches!(kind, Private | ProfessionalNatural),
        }
    }
}

/// `RequestedAuthnContext/@Comparison`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Comparison {
    Exact,
    Minimum,
    Better,
    Maximum,
}

impl Comparison {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exact" => Some(Comparison::Exact),
            "minimum" => Some(Comparison::Minimum),
            "better" => Some(Comparison::Better),
            "maximum" => Some(Comparison::Maximum),
            _ => None,
        }
    }

    /// The level to authenticate at: never below what was asked (LOA-5),
    /// higher only for `better`; `maximum` SpidL3 is met by level 2 (the
    /// strongest offered, level 3 not being offered yet); `None` when no
    /// SPID level satisfies it.
    pub fn target(self, requested: Level) -> Option<Level> {
        match (self, requested) {
            (Comparison::Better, Level::L1) => Some(Level::L2),
            (Comparison::Better, Level::L2) => Some(Level::L3),
            (Comparison::Better, Level::L3) => None,
            (Comparison::Maximum, Level::L3) => Some(Level::L2),
            (_, level) => Some(level),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_pick_the_level() {
        assert_eq!(Comparison::Minimum.target(Level::L1), Some(Level::L1));
        assert_eq!(Comparison::Exact.target(Level::L2), Some(Level::L2));
        assert_eq!(Comparison::Maximum.target(Level::L2), Some(Level::L2));
        assert_eq!(Comparison::Better.target(Level::L1), Some(Level::L2));
        assert_eq!(Comparison::Better.target(Level::L3), None);
        assert_eq!(Comparison::Maximum.target(Level::L3), Some(Level::L2));
        assert_eq!(Level::from_uri("https://www.spid.gov.it/SpidL0"), None);
        assert_eq!(Level::from_uri(Level::L2.uri()), Some(Level::L2));
    }

    #[test]
    fn purposes_accept_their_identities() {
        use IdentityKind::*;
        assert!(Purpose::accepts(None, Private));
        assert!(
            !Purpose::accepts(None, ProfessionalNatural),
            "a professional identity where a private one is required"
        );
        assert!(!Purpose::accepts(Some(Purpose::P), Private));
        assert!(Purpose::accepts(Some(Purpose::P), ProfessionalLegal));
        assert!(
            Purpose::accepts(Some(Purpose::PX), Private) && !Purpose::accepts(Some(Purpose::PX), ProfessionalLegal)
        );
        assert_eq!(Purpose::parse("Q"), None);
    }
}
