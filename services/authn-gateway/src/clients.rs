//! identity-manager and otp-service over gRPC, as [`Directory`] and
//! [`SecondFactor`].

use std::collections::HashMap;

use async_trait::async_trait;
use spid_proto::identity::v1 as idpb;
use spid_proto::otp::v1 as otppb;
use spid_server::grpc::Peer;

use crate::level::{IdentityKind, Level};
use crate::login::{Challenge, CodeCheck, Directory, PasswordCheck, SecondFactor, Unavailable};

fn unavailable(service: &str, status: &tonic::Status) -> Unavailable {
    tracing::warn!(service, code = ?status.code(), message = status.message(), "call failed");
    Unavailable(format!("{service} did not answer ({:?})", status.code()))
}

pub struct IdentityManager {
    client: idpb::credentials_client::CredentialsClient<Peer>,
}

impl IdentityManager {
    pub fn new(peer: Peer) -> Self {
        Self { client: idpb::credentials_client::CredentialsClient::new(peer) }
    }
}

#[async_trait]
impl Directory for IdentityManager {
    async fn check_password(
        &self,
        username: &str,
        password: &str,
        client_ip: &str,
        transaction_id: &str,
    ) -> Result<PasswordCheck, Unavailable> {
        use idpb::check_password_response::Outcome;
        let request = idpb::CheckPasswordRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            client_ip: client_ip.to_owned(),
            transaction_id: transaction_id.to_owned(),
        };
        let r = self
            .client
            .clone()
            .check_password(request)
            .await
            .map_err(|s| unavailable("identity-manager", &s))?
            .into_inner();
        Ok(match r.outcome() {
            Outcome::Ok => {
                let max_level = match r.max_level() {
                    idpb::Level::SpidL3 => Level::L3,
                    idpb::Level::SpidL2 => Level::L2,
                    _ => Level::L1,
                };
                let kind = match r.identity_type() {
                    idpb::IdentityType::ProfessionalNaturalPerson => IdentityKind::ProfessionalNatural,
                    idpb::IdentityType::ProfessionalLegalPerson => IdentityKind::ProfessionalLegal,
                    _ => IdentityKind::Private,
                };
                PasswordCheck::Ok { spid_code: r.spid_code, max_level, kind }
            }
            Outcome::IdentityNotActive => PasswordCheck::NotActive,
            Outcome::PasswordExpired => PasswordCheck::Expired,
            Outcome::WrongCredentials | Outcome::Unspecified => PasswordCheck::Wrong,
        })
    }

    async fn attributes(&self, spid_code: &str, names: &[String]) -> Result<HashMap<String, String>, Unavailable> {
        let request = idpb::GetAttributesRequest { spid_code: spid_code.to_owned(), names: names.to_vec() };
        let r = self
            .client
            .clone()
            .get_attributes(request)
            .await
            .map_err(|s| unavailable("identity-manager", &s))?
            .into_inner();
        Ok(r.attributes)
    }

    async fn is_active(&self, spid_code: &str) -> Result<bool, Unavailable> {
        let request = idpb::GetSecondFactorContactsRequest { spid_code: spid_code.to_owned() };
        match self.client.clone().get_second_factor_contacts(request).await {
            Ok(r) => Ok(r.into_inner().status() == idpb::IdentityStatus::Active),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(unavailable("identity-manager", &s)),
        }
    }
}

pub struct OtpService {
    client: otppb::challenges_client::ChallengesClient<Peer>,
}

impl OtpService {
    pub fn new(peer: Peer) -> Self {
        Self { client: otppb::challenges_client::ChallengesClient::new(peer) }
    }
}

fn method_name(m: otppb::Method) -> &'static str {
    match m {
        otppb::Method::Sms => "sms",
        otppb::Method::Email => "email",
        otppb::Method::Totp => "totp",
        otppb::Method::Push => "push",
        otppb::Method::Qr => "qr",
        otppb::Method::Unspecified => "unknown",
    }
}

fn method_of(name: &str) -> Option<otppb::Method> {
    Some(match name {
        "sms" => otppb::Method::Sms,
        "email" => otppb::Method::Email,
        "totp" => otppb::Method::Totp,
        "push" => otppb::Method::Push,
        "qr" => otppb::Method::Qr,
        _ => return None,
    })
}

#[async_trait]
impl SecondFactor for OtpService {
    async fn methods(&self, spid_code: &str) -> Result<Vec<String>, Unavailable> {
        let listed = self
            .client
            .clone()
            .list_methods(otppb::ListMethodsRequest { spid_code: spid_code.to_owned() })
            .await
            .map_err(|s| unavailable("otp-service", &s))?
            .into_inner();
        Ok(listed.methods().map(method_name).filter(|m| *m != "unknown").map(str::to_owned).collect())
    }

    async fn start(
        &self,
        spid_code: &str,
        transaction_id: &str,
        client_ip: &str,
        service: &str,
        method: &str,
    ) -> Result<Option<Challenge>, Unavailable> {
        let Some(m) = method_of(method) else { return Ok(None) };
        let request = otppb::StartRequest {
            spid_code: spid_code.to_owned(),
            transaction_id: transaction_id.to_owned(),
            method: m as i32,
            client_ip: client_ip.to_owned(),
            service_provider: service.to_owned(),
        };
        match self.client.clone().start(request).await {
            Ok(r) => {
                let r = r.into_inner();
                Ok(Some(Challenge {
                    id: r.challenge_id,
                    method: method_name(m).to_owned(),
                    destination: r.masked_destination,
                    qr_payload: Some(r.qr_payload).filter(|p| !p.is_empty()),
                }))
            }
            Err(s) if s.code() == tonic::Code::FailedPrecondition => Ok(None),
            Err(s) => Err(unavailable("otp-service", &s)),
        }
    }

    async fn verify(
        &self,
        challenge_id: &str,
        transaction_id: &str,
        code: &str,
        client_ip: &str,
    ) -> Result<CodeCheck, Unavailable> {
        use otppb::verify_response::Outcome;
        let request = otppb::VerifyRequest {
            challenge_id: challenge_id.to_owned(),
            transaction_id: transaction_id.to_owned(),
            code: code.to_owned(),
            client_ip: client_ip.to_owned(),
        };
        let r = self.client.clone().verify(request).await.map_err(|s| unavailable("otp-service", &s))?.into_inner();
        Ok(match r.outcome() {
            Outcome::Ok => CodeCheck::Ok,
            Outcome::Expired => CodeCheck::Expired,
            Outcome::TooManyAttempts => CodeCheck::Exhausted,
            Outcome::Pending => CodeCheck::Pending,
            Outcome::Refused => CodeCheck::Refused,
            Outcome::WrongCode | Outcome::Unspecified => CodeCheck::Wrong,
        })
    }
}
