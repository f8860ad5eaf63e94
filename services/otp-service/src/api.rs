//! Transport edge: gRPC `Challenges` and `Authenticators`. Handlers convert
//! wire types, call [`crate::service::Otp`], map the result.

use std::sync::Arc;

use spid_proto::otp::v1 as pb;
use spid_server::errors::to_status;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::challenge::{Method, Verdict};
use crate::service::Otp;

pub fn grpc(otp: Arc<Otp>) -> spid_server::grpc::GrpcServer {
    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(pb::challenges_server::ChallengesServer::new(Api(otp.clone())));
    routes.add_service(pb::authenticators_server::AuthenticatorsServer::new(Api(otp.clone())));
    routes.add_service(pb::devices_server::DevicesServer::new(Api(otp.clone())));
    routes.add_service(pb::device_activation_server::DeviceActivationServer::new(Api(otp)));
    spid_server::grpc::GrpcServer::new(
        routes,
        vec![
            pb::challenges_server::ChallengesServer::<Api>::NAME,
            pb::authenticators_server::AuthenticatorsServer::<Api>::NAME,
            pb::devices_server::DevicesServer::<Api>::NAME,
            pb::device_activation_server::DeviceActivationServer::<Api>::NAME,
        ],
    )
}

pub struct Api(Arc<Otp>);

fn method_of(m: i32) -> Result<Method, Status> {
    match pb::Method::try_from(m) {
        Ok(pb::Method::Sms) => Ok(Method::Sms),
        Ok(pb::Method::Email) => Ok(Method::Email),
        Ok(pb::Method::Totp) => Ok(Method::Totp),
        Ok(pb::Method::Push) => Ok(Method::Push),
        Ok(pb::Method::Qr) => Ok(Method::Qr),
        _ => Err(Status::invalid_argument("method is required")),
    }
}

fn method_wire(m: Method) -> pb::Method {
    match m {
        Method::Sms => pb::Method::Sms,
        Method::Email => pb::Method::Email,
        Method::Totp => pb::Method::Totp,
        Method::Push => pb::Method::Push,
        Method::Qr => pb::Method::Qr,
    }
}

#[tonic::async_trait]
impl pb::challenges_server::Challenges for Api {
    async fn list_methods(
        &self,
        request: Request<pb::ListMethodsRequest>,
    ) -> Result<Response<pb::ListMethodsResponse>, Status> {
        let methods = self.0.methods(&request.into_inner().spid_code).await.map_err(to_status)?;
        Ok(Response::new(pb::ListMethodsResponse {
            methods: methods.into_iter().map(|m| method_wire(m) as i32).collect(),
        }))
    }

    async fn start(&self, request: Request<pb::StartRequest>) -> Result<Response<pb::StartResponse>, Status> {
        let r = request.into_inner();
        let method = method_of(r.method)?;
        let s = self
            .0
            .start(&r.spid_code, &r.transaction_id, method, &r.client_ip, &r.service_provider)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::StartResponse {
            challenge_id: s.challenge_id,
            method: method_wire(s.method) as i32,
            expires_at: Some(spid_proto::time::to_wire(s.expires_at)),
            masked_destination: s.masked_destination,
            qr_payload: s.qr_payload,
        }))
    }

    async fn verify(&self, request: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        use pb::verify_response::Outcome;
        let r = request.into_inner();
        if r.code.len() > 16 || r.challenge_id.len() > 128 || r.transaction_id.len() > 128 {
            return Err(Status::invalid_argument("code, challenge_id or transaction_id too long"));
        }
        if r.client_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Status::invalid_argument("client_ip must be an IP address"));
        }
        let verdict =
            self.0.verify(&r.challenge_id, &r.transaction_id, &r.code, &r.client_ip).await.map_err(to_status)?;
        let (outcome, attempts_left) = match verdict {
            Verdict::Ok => (Outcome::Ok, 0),
            Verdict::Pending => (Outcome::Pending, 0),
            Verdict::Refused => (Outcome::Refused, 0),
            Verdict::Wrong { attempts_left } => (Outcome::WrongCode, attempts_left),
            Verdict::Expired => (Outcome::Expired, 0),
            Verdict::TooManyAttempts => (Outcome::TooManyAttempts, 0),
        };
        Ok(Response::new(pb::VerifyResponse { outcome: outcome as i32, attempts_left }))
    }
}

#[tonic::async_trait]
impl pb::authenticators_server::Authenticators for Api {
    async fn enrol(&self, request: Request<pb::EnrolRequest>) -> Result<Response<pb::EnrolResponse>, Status> {
        let r = request.into_inner();
        let e = self.0.enrol(&r.spid_code, &r.account).await.map_err(to_status)?;
        let qr_svg = qrcode::QrCode::new(e.provisioning_uri.as_bytes())
            .map(|code| code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build())
            .map_err(|_| Status::internal("the provisioning URI does not fit a QR code"))?;
        Ok(Response::new(pb::EnrolResponse { token_id: e.token_id, provisioning_uri: e.provisioning_uri, qr_svg }))
    }

    async fn confirm(&self, request: Request<pb::ConfirmRequest>) -> Result<Response<pb::ConfirmResponse>, Status> {
        let r = request.into_inner();
        let confirmed = self.0.confirm(&r.spid_code, &r.token_id, &r.code).await.map_err(to_status)?;
        Ok(Response::new(pb::ConfirmResponse { confirmed }))
    }
}

#[tonic::async_trait]
impl pb::device_activation_server::DeviceActivation for Api {
    async fn activate(&self, request: Request<pb::ActivateRequest>) -> Result<Response<pb::ActivateResponse>, Status> {
        let activation_code = self.0.activation_code(&request.into_inner().spid_code).await.map_err(to_status)?;
        Ok(Response::new(pb::ActivateResponse { activation_code }))
    }
}

#[tonic::async_trait]
impl pb::devices_server::Devices for Api {
    async fn bind(&self, request: Request<pb::BindRequest>) -> Result<Response<pb::BindResponse>, Status> {
        let r = request.into_inner();
        if r.public_key.len() > 4096 || r.pin.len() > 64 {
            return Err(Status::invalid_argument("public_key or pin too long"));
        }
        let d = self.0.bind(&r.activation_code, &r.public_key, &r.device_name, &r.pin).await.map_err(to_status)?;
        Ok(Response::new(pb::BindResponse { device_id: d.id }))
    }

    async fn pending(&self, request: Request<pb::PendingRequest>) -> Result<Response<pb::PendingResponse>, Status> {
        let r = request.into_inner();
        if r.device_id.len() > 128 || r.signature.len() > 256 {
            return Err(Status::invalid_argument("device_id or signature too long"));
        }
        let approvals = self.0.pending(&r.device_id, r.unix_seconds, &r.signature).await.map_err(to_status)?;
        Ok(Response::new(pb::PendingResponse {
            approvals: approvals
                .into_iter()
                .map(|a| pb::PendingApproval {
                    challenge_id: a.challenge_id,
                    nonce: a.nonce,
                    service_provider: a.context,
                    expires_at: chrono::DateTime::from_timestamp(a.expires_at, 0).map(spid_proto::time::to_wire),
                })
                .collect(),
        }))
    }

    async fn decide(&self, request: Request<pb::DecideRequest>) -> Result<Response<pb::DecideResponse>, Status> {
        let r = request.into_inner();
        if r.device_id.len() > 128 || r.signature.len() > 256 {
            return Err(Status::invalid_argument("device_id or signature too long"));
        }
        self.0.decide(&r.device_id, &r.challenge_id, r.approve, &r.signature).await.map_err(to_status)?;
        Ok(Response::new(pb::DecideResponse {}))
    }
}
