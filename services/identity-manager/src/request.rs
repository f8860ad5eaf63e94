//! The identity request and its state machine (REG, IDN, VER, EMI):
//!
//! ```text
//! draft → submitted → awaiting identification → identified → verified
//!       → awaiting acceptance → active
//! any open state → denied (an operator or verifier, with a reason)
//! any open state → lapsed (the scheduler, REG-9 / REG-7 deadlines)
//! ```
//!
//! Every change goes through [`transition`], which knows who may do what:
//! an illegal transition or actor is refused with its own error, and the
//! request is unchanged.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestState {
    Draft,
    Submitted,
    AwaitingIdentification,
    Identified,
    Verified,
    AwaitingAcceptance,
    Active,
    Denied,
    Lapsed,
}

impl RequestState {
    pub const ALL: [RequestState; 9] = [
        Self::Draft,
        Self::Submitted,
        Self::AwaitingIdentification,
        Self::Identified,
        Self::Verified,
        Self::AwaitingAcceptance,
        Self::Active,
        Self::Denied,
        Self::Lapsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::AwaitingIdentification => "awaiting_identification",
            Self::Identified => "identified",
            Self::Verified => "verified",
            Self::AwaitingAcceptance => "awaiting_acceptance",
            Self::Active => "active",
            Self::Denied => "denied",
            Self::Lapsed => "lapsed",
        }
    }

    /// Active, denied and lapsed requests never change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Active | Self::Denied | Self::Lapsed)
    }
}

/// Who acts on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Applicant,
    /// Counter or video-desk operator.
    Operator,
    /// Checks against authoritative sources, and their reviewer.
    Verifier,
    Administrator,
    Scheduler,
    /// The service itself, on evidence it checked: an electronic
    /// identification, a qualified signature, the authoritative sources.
    System,
}

/// How the applicant is identified (IDN-1 a–f).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// (a) In person at a counter.
    Counter,
    /// (b) Remote video session with an operator.
    Video,
    /// (f) Self-recorded video confirmed by a bank transfer (lapses after
    /// 10 days without the transfer, REG-9).
    VideoWithTransfer,
    /// (c) CNS/TS-CNS client certificate or CIE authentication.
    ElectronicDocument,
    /// (d) The request form signed with a qualified signature.
    SignedForm,
    /// (e) Another active level-2 identity of this IdP (professional
    /// identities of natural persons only).
    ExistingIdentity,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Self::Counter,
        Self::Video,
        Self::VideoWithTransfer,
        Self::ElectronicDocument,
        Self::SignedForm,
        Self::ExistingIdentity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Video => "video",
            Self::VideoWithTransfer => "video_transfer",
            Self::ElectronicDocument => "electronic_document",
            Self::SignedForm => "signed_form",
            Self::ExistingIdentity => "existing_identity",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether an operator identifies the applicant (the others are
    /// checked by the service on their evidence).
    pub fn operator_driven(self) -> bool {
        matches!(self, Self::Counter | Self::Video | Self::VideoWithTransfer)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Submit,
    StartIdentification {
        method: Method,
    },
    Identify,
    /// The authoritative-source checks passed.
    Verify,
    /// The final documents are offered to the applicant.
    OfferDocuments,
    Accept,
    Deny {
        reason: String,
    },
    Lapse,
}

impl Action {
    fn target(&self) -> RequestState {
        match self {
            Self::Submit => RequestState::Submitted,
            Self::StartIdentification { .. } => RequestState::AwaitingIdentification,
            Self::Identify => RequestState::Identified,
            Self::Verify => RequestState::Verified,
            Self::OfferDocuments => RequestState::AwaitingAcceptance,
            Self::Accept => RequestState::Active,
            Self::Deny { .. } => RequestState::Denied,
            Self::Lapse => RequestState::Lapsed,
        }
    }

    fn allowed(&self, actor: Actor) -> bool {
        use Actor::*;
        match self {
            Self::Submit | Self::Accept => actor == Applicant,
            Self::StartIdentification { .. } => matches!(actor, Applicant | Operator),
            Self::Identify => matches!(actor, Operator | System),
            Self::Verify => matches!(actor, Verifier | System),
            Self::OfferDocuments => matches!(actor, Verifier | Operator | System),
            Self::Deny { .. } => matches!(actor, Operator | Verifier | Administrator),
            Self::Lapse => actor == Scheduler,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a request that is {from} cannot become {to}")]
    Illegal { from: &'static str, to: &'static str },
    #[error("{actor:?} may not make a request {to}")]
    Actor { actor: Actor, to: &'static str },
    #[error("a denial needs a reason")]
    ReasonMissing,
}

impl TransitionError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Illegal { .. } => "request.illegal_transition",
            Self::Actor { .. } => "request.actor_not_allowed",
            Self::ReasonMissing => "request.reason_missing",
        }
    }
}

/// The state `action` by `actor` leads to from `from`, or why not.
pub fn transition(from: RequestState, action: &Action, actor: Actor) -> Result<RequestState, TransitionError> {
    use RequestState::*;
    let to = action.target();
    let legal = match action {
        Action::Deny { .. } => !from.is_final() && from != Draft,
        Action::Lapse => !from.is_final(),
        _ => matches!(
            (from, to),
            (Draft, Submitted)
                | (Submitted, AwaitingIdentification)
                | (AwaitingIdentification, Identified)
                | (Identified, Verified)
                | (Verified, AwaitingAcceptance)
                | (AwaitingAcceptance, Active)
        ),
    };
    if !legal {
        return Err(TransitionError::Illegal { from: from.as_str(), to: to.as_str() });
    }
    if !action.allowed(actor) {
        return Err(TransitionError::Actor { actor, to: to.as_str() });
    }
    if let Action::Deny { reason } = action
        && reason.trim().is_empty()
    {
        return Err(TransitionError::ReasonMissing);
    }
    Ok(to)
}

/// What the lapse deadline of an open request depends on.
#[derive(Debug, Clone)]
pub struct Pending {
    pub state: RequestState,
    /// When the request entered its current state.
    pub since: DateTime<Utc>,
    pub method: Option<Method>,
    /// When more documents were last asked for, if they were.
    pub documents_requested_at: Option<DateTime<Utc>>,
    /// Assisted at a counter (REG-7).
    pub assisted: bool,
}

/// When an open request lapses (REG-9, REG-7); `None` if it cannot.
pub fn lapse_deadline(p: &Pending) -> Option<DateTime<Utc>> {
    use RequestState::*;
    match p.state {
        Submitted | AwaitingIdentification => {
            if let Some(asked) = p.documents_requested_at {
                return Some(asked + Duration::days(30));
            }
            let days = if p.method == Some(Method::VideoWithTransfer) { 10 } else { 30 };
            Some(p.since + Duration::days(days))
        }
        Draft => Some(p.since + Duration::days(30)),
        // Assisted registrations end within 15 minutes of the operator's checks.
        Verified | AwaitingAcceptance if p.assisted => Some(p.since + Duration::minutes(15)),
        Identified | Verified | AwaitingAcceptance => Some(p.since + Duration::days(30)),
        Active | Denied | Lapsed => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestState::*;

    fn actions() -> Vec<Action> {
        vec![
            Action::Submit,
            Action::StartIdentification { method: Method::Video },
            Action::Identify,
            Action::Verify,
            Action::OfferDocuments,
            Action::Accept,
            Action::Deny { reason: "document not genuine".into() },
            Action::Lapse,
        ]
    }

    /// The whole table: every state × action, with the one allowed actor.
    #[test]
    fn exactly_the_transitions_of_the_state_machine() {
        let happy = [
            (Draft, Submitted),
            (Submitted, AwaitingIdentification),
            (AwaitingIdentification, Identified),
            (Identified, Verified),
            (Verified, AwaitingAcceptance),
            (AwaitingAcceptance, Active),
        ];
        let actors =
            [Actor::Applicant, Actor::Operator, Actor::Verifier, Actor::Administrator, Actor::Scheduler, Actor::System];
        let mut legal = 0;
        for from in RequestState::ALL {
            for action in actions() {
                let by_anyone = actors.iter().find_map(|a| transition(from, &action, *a).ok());
                let to = action.target();
                let expected = match action {
                    Action::Deny { .. } => !from.is_final() && from != Draft,
                    Action::Lapse => !from.is_final(),
                    _ => happy.contains(&(from, to)),
                };
                assert_eq!(by_anyone.is_some(), expected, "{from:?} --{action:?}-->");
                if expected {
                    legal += 1;
                    assert_eq!(by_anyone, Some(to));
                } else {
                    let err = transition(from, &action, Actor::Administrator).unwrap_err();
                    assert_eq!(err.code(), "request.illegal_transition", "{from:?} {action:?}");
                }
            }
        }
        assert_eq!(legal, 6 + 5 + 6, "happy path, denials (not of drafts), lapses");
    }

    #[test]
    fn only_the_right_actor_and_a_reason() {
        let err = transition(Draft, &Action::Submit, Actor::Operator).unwrap_err();
        assert_eq!(err.code(), "request.actor_not_allowed");
        assert_eq!(
            transition(AwaitingIdentification, &Action::Identify, Actor::Applicant).unwrap_err().code(),
            "request.actor_not_allowed"
        );
        assert_eq!(
            transition(Identified, &Action::Verify, Actor::Operator).unwrap_err().code(),
            "request.actor_not_allowed"
        );
        assert_eq!(
            transition(Submitted, &Action::Lapse, Actor::Operator).unwrap_err().code(),
            "request.actor_not_allowed"
        );
        let err = transition(Verified, &Action::Deny { reason: "  ".into() }, Actor::Verifier).unwrap_err();
        assert_eq!(err, TransitionError::ReasonMissing);
        assert!(transition(Active, &Action::Deny { reason: "x".into() }, Actor::Administrator).is_err(), "final");
    }

    #[test]
    fn lapse_deadlines_of_reg_9_and_reg_7() {
        let t = Utc::now();
        let p = |state, method, asked, assisted| Pending {
            state,
            since: t,
            method,
            documents_requested_at: asked,
            assisted,
        };
        assert_eq!(
            lapse_deadline(&p(AwaitingIdentification, Some(Method::Video), None, false)),
            Some(t + Duration::days(30))
        );
        assert_eq!(
            lapse_deadline(&p(AwaitingIdentification, Some(Method::VideoWithTransfer), None, false)),
            Some(t + Duration::days(10))
        );
        let asked = t + Duration::days(20);
        assert_eq!(lapse_deadline(&p(Submitted, None, Some(asked), false)), Some(asked + Duration::days(30)));
        assert_eq!(lapse_deadline(&p(AwaitingAcceptance, None, None, true)), Some(t + Duration::minutes(15)));
        assert_eq!(lapse_deadline(&p(Active, None, None, false)), None);
    }
}
