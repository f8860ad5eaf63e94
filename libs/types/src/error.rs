use std::fmt;

/// What went wrong, in terms a caller can act on. The transport edge maps a
/// kind to a gRPC status code and an HTTP status (see `spid-server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed or breaks a rule; retrying the same input fails.
    InvalidInput,
    /// The caller could not be authenticated. Messages stay vague on purpose.
    Unauthenticated,
    /// The caller is known but may not do this.
    PermissionDenied,
    NotFound,
    /// The thing already exists (duplicate e-mail, request id seen before).
    AlreadyExists,
    /// The operation is not allowed in the current state (illegal transition).
    FailedPrecondition,
    /// Too many attempts or requests.
    RateLimited,
    /// A dependency is down; retrying later may work.
    Unavailable,
    /// A bug or an unexpected failure; details go to the log, not the caller.
    Internal,
}

impl ErrorKind {
    /// A stable, machine-readable name (`invalid_input`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// The error every service returns from its domain layer: a kind, a stable
/// reason code (e.g. `password.too_short`, `saml.nr19`) and a message safe to
/// show to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
}

impl ServiceError {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind, code: code.into(), message: message.into() }
    }

    pub fn invalid(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, code, message)
    }

    pub fn not_found(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    pub fn unavailable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, code, message)
    }

    /// An internal failure. The detail goes to the log, never to the caller.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(detail = %detail, "internal error");
        Self::new(ErrorKind::Internal, "internal", "internal error")
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.kind.as_str(), self.message)
    }
}

impl std::error::Error for ServiceError {}
