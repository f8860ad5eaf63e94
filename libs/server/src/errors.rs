//! Domain errors at the transport edge: one mapping to gRPC status codes
//! and one to HTTP problem responses (RFC 9457), both carrying the stable
//! reason code.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use spid_types::{ErrorKind, ServiceError};

/// gRPC metadata key carrying the machine-readable reason code.
pub const REASON_METADATA: &str = "x-spid-reason";

pub fn grpc_code(kind: ErrorKind) -> tonic::Code {
    match kind {
        ErrorKind::InvalidInput => tonic::Code::InvalidArgument,
        ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
        ErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
        ErrorKind::NotFound => tonic::Code::NotFound,
        ErrorKind::AlreadyExists => tonic::Code::AlreadyExists,
        ErrorKind::FailedPrecondition => tonic::Code::FailedPrecondition,
        ErrorKind::RateLimited => tonic::Code::ResourceExhausted,
        ErrorKind::Unavailable => tonic::Code::Unavailable,
        ErrorKind::Internal => tonic::Code::Internal,
    }
}

pub fn http_status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        ErrorKind::FailedPrecondition => StatusCode::CONFLICT,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The gRPC status of a domain error, with the reason code in metadata.
pub fn to_status(err: ServiceError) -> tonic::Status {
    let mut status = tonic::Status::new(grpc_code(err.kind), err.message);
    if let Ok(v) = err.code.parse() {
        status.metadata_mut().insert(REASON_METADATA, v);
    }
    status
}

/// The reason code of a status received from another service.
pub fn reason_of(status: &tonic::Status) -> Option<&str> {
    status.metadata().get(REASON_METADATA).and_then(|v| v.to_str().ok())
}

/// A domain error answered as `application/problem+json`.
#[derive(Debug)]
pub struct HttpProblem(pub ServiceError);

impl From<ServiceError> for HttpProblem {
    fn from(e: ServiceError) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for HttpProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl actix_web::ResponseError for HttpProblem {
    fn status_code(&self) -> StatusCode {
        http_status(self.0.kind)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        HttpResponse::build(status).content_type("application/problem+json").json(serde_json::json!({
            "type": format!("urn:spid-idp:error:{}", self.0.code),
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": self.0.message,
            "code": self.0.code,
        }))
    }
}

/// Extractor settings for JSON bodies of at most `limit` bytes: a body
/// that is too large, malformed or missing fields is a problem document
/// with code `body.invalid` and what was wrong, like every other refusal.
pub fn json_config(limit: usize) -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default().limit(limit).error_handler(|err, _req| {
        let message = match &err {
            actix_web::error::JsonPayloadError::Deserialize(e) => format!("the JSON body does not fit: {e}"),
            other => format!("the body is not acceptable JSON: {other}"),
        };
        HttpProblem(ServiceError::invalid("body.invalid", message)).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    #[test]
    fn errors_map_to_both_transports() {
        let e = ServiceError::invalid("password.too_short", "at least 8 characters");
        let status = to_status(e.clone());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(reason_of(&status), Some("password.too_short"));
        assert_eq!(status.message(), "at least 8 characters");

        let problem = HttpProblem(e);
        assert_eq!(problem.status_code(), StatusCode::BAD_REQUEST);
        let resp = problem.error_response();
        assert_eq!(resp.headers().get("content-type").unwrap(), "application/problem+json");

        let internal = ServiceError::internal("disk on fire at /secret/path");
        assert_eq!(to_status(internal).message(), "internal error");
    }
}
