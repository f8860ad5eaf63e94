//! gRPC edge: `Credentials` for the gateway, `Registration` for
//! applicants' front ends. Handlers convert wire types, call the domain,
//! map the result.

use std::sync::Arc;

use spid_proto::identity::v1 as pb;
use spid_server::errors::to_status;
use spid_types::ServiceError;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::application::{Address, Application, HealthCard, IdentityDocument, IdentityType, Organisation};
use crate::backoffice::{Backoffice, QueueItem, Role};
use crate::holder_requests::{Ask, Contact, HolderRequests, Via};
use crate::identification::Identification;
use crate::identity::{Credentials, IdentityView, Outcome, Status as IdStatus};
use crate::registration::{ContactKind, Progress, Registrar, StartError, Upload, problems_error};
use crate::request::{Method, RequestState};

pub fn grpc(
    registrar: Arc<Registrar>,
    credentials: Arc<Credentials>,
    identification: Arc<Identification>,
    backoffice: Arc<Backoffice>,
    holder_requests: Arc<HolderRequests>,
) -> spid_server::grpc::GrpcServer {
    let mut routes = tonic::service::RoutesBuilder::default();
    let api = Api { registrar, credentials, identification, backoffice, holder_requests };
    routes.add_service(pb::credentials_server::CredentialsServer::new(api.clone()));
    routes.add_service(pb::registration_server::RegistrationServer::new(api.clone()));
    routes.add_service(pb::backoffice_server::BackofficeServer::new(api.clone()));
    routes.add_service(pb::lifecycle_admin_server::LifecycleAdminServer::new(api.clone()));
    routes.add_service(pb::holder_requests_server::HolderRequestsServer::new(api));
    spid_server::grpc::GrpcServer::new(
        routes,
        vec![
            pb::credentials_server::CredentialsServer::<Api>::NAME,
            pb::registration_server::RegistrationServer::<Api>::NAME,
            pb::backoffice_server::BackofficeServer::<Api>::NAME,
            pb::lifecycle_admin_server::LifecycleAdminServer::<Api>::NAME,
            pb::holder_requests_server::HolderRequestsServer::<Api>::NAME,
        ],
    )
}

#[derive(Clone)]
pub struct Api {
    registrar: Arc<Registrar>,
    credentials: Arc<Credentials>,
    identification: Arc<Identification>,
    backoffice: Arc<Backoffice>,
    holder_requests: Arc<HolderRequests>,
}

pub fn status_wire(s: IdStatus) -> pb::IdentityStatus {
    match s {
        IdStatus::Active => pb::IdentityStatus::Active,
        IdStatus::Suspended => pb::IdentityStatus::Suspended,
        IdStatus::Revoked => pb::IdentityStatus::Revoked,
        IdStatus::Expired => pb::IdentityStatus::Expired,
        IdStatus::CredentialsLocked => pb::IdentityStatus::CredentialsLocked,
    }
}

pub fn type_wire(t: &str) -> pb::IdentityType {
    match IdentityType::parse(t) {
        Some(IdentityType::Private) => pb::IdentityType::Private,
        Some(IdentityType::ProfessionalNatural) => pb::IdentityType::ProfessionalNaturalPerson,
        Some(IdentityType::ProfessionalLegal) => pb::IdentityType::ProfessionalLegalPerson,
        None => pb::IdentityType::Unspecified,
    }
}

fn check_response(outcome: pb::check_password_response::Outcome, v: Option<IdentityView>) -> pb::CheckPasswordResponse {
    let mut r = pb::CheckPasswordResponse { outcome: outcome as i32, ..Default::default() };
    if let Some(v) = v {
        r.spid_code = v.spid_code;
        r.identity_type = type_wire(&v.identity_type) as i32;
        r.status = status_wire(v.status) as i32;
        r.max_level = match v.max_level {
            1 => pb::Level::SpidL1,
            2 => pb::Level::SpidL2,
            _ => pb::Level::SpidL3,
        } as i32;
        r.second_factors = v.second_factors.into_iter().map(str::to_owned).collect();
    }
    r
}

#[tonic::async_trait]
impl pb::credentials_server::Credentials for Api {
    async fn check_password(
        &self,
        request: Request<pb::CheckPasswordRequest>,
    ) -> Result<Response<pb::CheckPasswordResponse>, Status> {
        use pb::check_password_response::Outcome as O;
        let r = request.into_inner();
        if r.username.len() > 254 || r.password.len() > 128 {
            return Ok(Response::new(check_response(O::WrongCredentials, None)));
        }
        let client_ip = r.client_ip.parse::<std::net::IpAddr>().ok();
        let answer = match self.credentials.check_from(&r.username, &r.password, client_ip).await.map_err(to_status)? {
            Outcome::Ok(v) => check_response(O::Ok, Some(v)),
            Outcome::WrongCredentials => check_response(O::WrongCredentials, None),
            Outcome::NotActive(v) => check_response(O::IdentityNotActive, Some(v)),
            Outcome::PasswordExpired(v) => check_response(O::PasswordExpired, Some(v)),
        };
        Ok(Response::new(answer))
    }

    async fn get_attributes(
        &self,
        request: Request<pb::GetAttributesRequest>,
    ) -> Result<Response<pb::GetAttributesResponse>, Status> {
        let r = request.into_inner();
        let attributes = self.credentials.attributes(&r.spid_code, &r.names).await.map_err(to_status)?;
        Ok(Response::new(pb::GetAttributesResponse { attributes }))
    }

    async fn get_second_factor_contacts(
        &self,
        request: Request<pb::GetSecondFactorContactsRequest>,
    ) -> Result<Response<pb::SecondFactorContacts>, Status> {
        let c = self.credentials.second_factor_contacts(&request.into_inner().spid_code).await.map_err(to_status)?;
        Ok(Response::new(pb::SecondFactorContacts {
            mobile: c.mobile.unwrap_or_default(),
            email: c.email.unwrap_or_default(),
            identity_type: type_wire(&c.identity_type) as i32,
            date_of_birth: c.date_of_birth.unwrap_or_default(),
            status: status_wire(c.status) as i32,
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let r = request.into_inner();
        if r.new_password.len() > 128 || r.current_password.len() > 128 {
            return Err(Status::invalid_argument("password too long"));
        }
        match self.credentials.change_password(&r.username, &r.current_password, &r.new_password).await {
            Ok(expires) => {
                Ok(Response::new(pb::ChangePasswordResponse { expires_at: Some(spid_proto::time::to_wire(expires)) }))
            }
            Err(crate::identity::ChangeError::Invalid(violations)) => {
                let problems: Vec<crate::application::Problem> = violations
                    .iter()
                    .map(|v| crate::application::Problem::new("new_password", v.code(), v.message_it(), v.message_en()))
                    .collect();
                Err(to_status(problems_error(&problems)))
            }
            Err(crate::identity::ChangeError::Refused(e)) => Err(to_status(e)),
        }
    }
}

fn address(a: Option<pb::Address>) -> Address {
    let a = a.unwrap_or_default();
    Address {
        street: a.street,
        postal_code: a.postal_code,
        municipality: a.municipality,
        province: a.province,
        country: a.country,
    }
}

fn application(a: pb::Application) -> Result<Application, Status> {
    let identity_type = match pb::IdentityType::try_from(a.identity_type) {
        Ok(pb::IdentityType::Private) => IdentityType::Private,
        Ok(pb::IdentityType::ProfessionalNaturalPerson) => IdentityType::ProfessionalNatural,
        Ok(pb::IdentityType::ProfessionalLegalPerson) => IdentityType::ProfessionalLegal,
        _ => return Err(Status::invalid_argument("identity_type: choose one of the three identity types")),
    };
    Ok(Application {
        identity_type,
        email: a.email,
        password: a.password,
        surname: a.surname,
        given_name: a.given_name,
        sex: a.sex,
        birth_date: a.birth_date,
        birthplace: a.birthplace,
        codice_fiscale: a.codice_fiscale,
        document: IdentityDocument {
            kind: a.document_kind,
            number: a.document_number,
            issuer: a.document_issuer,
            issued_on: a.document_issued_on,
            expires_on: a.document_expires_on,
        },
        health_card: HealthCard { number: a.health_card_number, expires_on: a.health_card_expires_on },
        domicile: address(a.domicile),
        mobile: a.mobile,
        pec: Some(a.pec).filter(|p| !p.is_empty()),
        organisation: a.organisation.map(|o| Organisation {
            company_name: o.company_name,
            legal_seat: address(o.legal_seat),
            vat_number: o.vat_number,
            codice_fiscale: o.codice_fiscale,
            representation_proof: o.representation_proof,
        }),
    })
}

fn progress_wire(p: Progress) -> pb::RegistrationProgress {
    pb::RegistrationProgress {
        request_id: p.request_id,
        state: p.state.to_owned(),
        contacts: p
            .contacts
            .into_iter()
            .map(|c| pb::ContactState { kind: c.kind, value: c.value, verified: c.verified })
            .collect(),
        documents_to_accept: p
            .documents_to_accept
            .into_iter()
            .map(|(document, version)| pb::AcceptedDocument { document, version })
            .collect(),
        uploads_missing: p.uploads_missing.into_iter().map(str::to_owned).collect(),
    }
}

fn contact(s: &str) -> Result<ContactKind, Status> {
    ContactKind::parse(s).ok_or_else(|| Status::invalid_argument("contact: one of email, mobile, pec"))
}

impl Api {
    async fn progress(&self, id: &str, token: &str) -> Result<Response<pb::RegistrationProgress>, Status> {
        let p = self.registrar.progress(id, token).await.map_err(to_status)?;
        Ok(Response::new(progress_wire(p)))
    }
}

#[tonic::async_trait]
impl pb::registration_server::Registration for Api {
    async fn check_email(
        &self,
        request: Request<pb::CheckEmailRequest>,
    ) -> Result<Response<pb::CheckEmailResponse>, Status> {
        let available = self.registrar.email_available(&request.into_inner().email).await.map_err(to_status)?;
        Ok(Response::new(pb::CheckEmailResponse { available }))
    }

    async fn start(&self, request: Request<pb::StartRequest>) -> Result<Response<pb::StartResponse>, Status> {
        let r = request.into_inner();
        let a = application(r.application.unwrap_or_default())?;
        match self.registrar.start(&a, r.assisted).await {
            Ok(s) => {
                Ok(Response::new(pb::StartResponse { request_id: s.request_id, applicant_token: s.applicant_token }))
            }
            Err(StartError::Invalid(problems)) => Err(to_status(problems_error(&problems))),
            Err(StartError::Failed(e)) => Err(to_status(e)),
        }
    }

    async fn send_contact_code(
        &self,
        request: Request<pb::ContactCodeRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        self.registrar.send_code(&r.request_id, &r.applicant_token, contact(&r.contact)?).await.map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn verify_contact(
        &self,
        request: Request<pb::ContactCodeRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        self.registrar
            .verify_contact(&r.request_id, &r.applicant_token, contact(&r.contact)?, &r.code)
            .await
            .map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn accept_documents(
        &self,
        request: Request<pb::AcceptDocumentsRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        let accepted: Vec<(String, String)> = r.accepted.into_iter().map(|d| (d.document, d.version)).collect();
        self.registrar.accept_documents(&r.request_id, &r.applicant_token, &accepted).await.map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn upload(&self, request: Request<pb::UploadRequest>) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        let kind = Upload::parse(&r.kind).ok_or_else(|| Status::invalid_argument("kind: not an upload kind"))?;
        self.registrar.upload(&r.request_id, &r.applicant_token, kind, &r.content).await.map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn submit(
        &self,
        request: Request<pb::ApplicantRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        self.registrar.submit(&r.request_id, &r.applicant_token).await.map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn get_progress(
        &self,
        request: Request<pb::ApplicantRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn activate(&self, request: Request<pb::ApplicantRequest>) -> Result<Response<pb::Identity>, Status> {
        let r = request.into_inner();
        let e = self.registrar.activate(&r.request_id, &r.applicant_token).await.map_err(to_status)?;
        let now = Some(spid_proto::time::to_wire(self.registrar.clock().now()));
        Ok(Response::new(pb::Identity {
            spid_code: e.spid_code,
            r#type: type_wire(&e.identity_type) as i32,
            status: pb::IdentityStatus::Active as i32,
            created_at: now,
            status_changed_at: now,
        }))
    }

    async fn choose_method(
        &self,
        request: Request<pb::ChooseMethodRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        let method = Method::parse(&r.method).ok_or_else(|| Status::invalid_argument("method: not a method"))?;
        let at = r
            .appointment
            .map(|t| spid_proto::time::from_wire(&t).ok_or_else(|| Status::invalid_argument("appointment: not a time")))
            .transpose()?;
        self.identification.choose_method(&r.request_id, &r.applicant_token, method, at).await.map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn get_form(&self, request: Request<pb::ApplicantRequest>) -> Result<Response<pb::FormResponse>, Status> {
        let r = request.into_inner();
        let form = self.identification.form(&r.request_id, &r.applicant_token).await.map_err(to_status)?;
        Ok(Response::new(pb::FormResponse { form: form.into_bytes() }))
    }

    async fn identify_with_signed_form(
        &self,
        request: Request<pb::EvidenceRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        self.identification
            .identify_with_signed_form(&r.request_id, &r.applicant_token, &r.content)
            .await
            .map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn identify_with_cns(
        &self,
        request: Request<pb::EvidenceRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        self.identification
            .identify_with_cns(&r.request_id, &r.applicant_token, &r.content)
            .await
            .map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn get_cie_nonce(
        &self,
        request: Request<pb::ApplicantRequest>,
    ) -> Result<Response<pb::CieNonceResponse>, Status> {
        let r = request.into_inner();
        let nonce = self.identification.cie_nonce(&r.request_id, &r.applicant_token).await.map_err(to_status)?;
        Ok(Response::new(pb::CieNonceResponse { nonce }))
    }

    async fn identify_with_cie(
        &self,
        request: Request<pb::EvidenceRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        let id_token = String::from_utf8(r.content).map_err(|_| Status::invalid_argument("content: the ID token"))?;
        self.identification.identify_with_cie(&r.request_id, &r.applicant_token, &id_token).await.map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn identify_with_existing_identity(
        &self,
        request: Request<pb::ExistingIdentityRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        self.identification
            .identify_with_existing_identity(&r.request_id, &r.applicant_token, &r.spid_code)
            .await
            .map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }

    async fn upload_self_video(
        &self,
        request: Request<pb::EvidenceRequest>,
    ) -> Result<Response<pb::RegistrationProgress>, Status> {
        let r = request.into_inner();
        self.identification
            .upload_self_video(&r.request_id, &r.applicant_token, &r.content)
            .await
            .map_err(to_status)?;
        self.progress(&r.request_id, &r.applicant_token).await
    }
}

fn operator_wire(o: crate::backoffice::Operator) -> pb::Operator {
    pb::Operator { id: o.id, display_name: o.display_name, role: o.role.as_str().to_owned(), disabled: o.disabled }
}

fn item_wire(i: QueueItem) -> pb::QueueItem {
    pb::QueueItem {
        request_id: i.request_id,
        state: i.state,
        method: i.method.unwrap_or_default(),
        identity_type: i.identity_type,
        channel: i.channel,
        since: Some(spid_proto::time::to_wire(i.since)),
        appointment: i.appointment.map(spid_proto::time::to_wire),
        appointment_confirmed: i.appointment_confirmed,
    }
}

fn decision(state: RequestState) -> Response<pb::DecisionResponse> {
    Response::new(pb::DecisionResponse { state: state.as_str().to_owned() })
}

fn time_arg(t: Option<prost_types::Timestamp>, field: &str) -> Result<chrono::DateTime<chrono::Utc>, Status> {
    let t = t.ok_or_else(|| Status::invalid_argument(format!("{field}: required")))?;
    spid_proto::time::from_wire(&t).ok_or_else(|| Status::invalid_argument(format!("{field}: not a time")))
}

#[tonic::async_trait]
impl pb::backoffice_server::Backoffice for Api {
    async fn add_operator(&self, request: Request<pb::AddOperatorRequest>) -> Result<Response<pb::Operator>, Status> {
        let r = request.into_inner();
        let o = r.operator.unwrap_or_default();
        let role = Role::parse(&o.role)
            .ok_or_else(|| Status::invalid_argument("role: counter, video_desk, verifier or administrator"))?;
        let by = Some(r.by_operator_id.as_str()).filter(|b| !b.is_empty());
        let op = self.backoffice.add_operator(by, &o.id, &o.display_name, role).await.map_err(to_status)?;
        Ok(Response::new(operator_wire(op)))
    }

    async fn list_operators(
        &self,
        request: Request<pb::ListOperatorsRequest>,
    ) -> Result<Response<pb::ListOperatorsResponse>, Status> {
        self.backoffice.operator(&request.into_inner().operator_id).await.map_err(to_status)?;
        let ops = self.backoffice.operators().await.map_err(to_status)?;
        Ok(Response::new(pb::ListOperatorsResponse { operators: ops.into_iter().map(operator_wire).collect() }))
    }

    async fn queue(&self, request: Request<pb::QueueRequest>) -> Result<Response<pb::QueueResponse>, Status> {
        let r = request.into_inner();
        let state = match r.state.as_str() {
            "" => None,
            s => Some(
                RequestState::ALL
                    .into_iter()
                    .find(|x| x.as_str() == s)
                    .ok_or_else(|| Status::invalid_argument("state: not a request state"))?,
            ),
        };
        let method = match r.method.as_str() {
            "" => None,
            m => Some(Method::parse(m).ok_or_else(|| Status::invalid_argument("method: not a method"))?),
        };
        let limit = if r.limit == 0 { 100 } else { i64::from(r.limit) };
        let items = self.backoffice.queue(&r.operator_id, state, method, limit).await.map_err(to_status)?;
        Ok(Response::new(pb::QueueResponse { items: items.into_iter().map(item_wire).collect() }))
    }

    async fn view_request(&self, request: Request<pb::OperatorRequest>) -> Result<Response<pb::RequestView>, Status> {
        let r = request.into_inner();
        let v = self.backoffice.view(&r.operator_id, &r.request_id).await.map_err(to_status)?;
        Ok(Response::new(pb::RequestView {
            item: Some(item_wire(v.item)),
            holder_json: v.holder.to_string(),
            contacts: v
                .contacts
                .into_iter()
                .map(|c| pb::ContactState { kind: c.kind, value: c.value, verified: c.verified })
                .collect(),
            evidence: v
                .evidence
                .into_iter()
                .map(|e| pb::EvidenceItem {
                    id: e.id,
                    kind: e.kind,
                    content_sha256: e.content_sha256,
                    at: Some(spid_proto::time::to_wire(e.at)),
                })
                .collect(),
            source_checks: v
                .source_checks
                .into_iter()
                .map(|c| pb::SourceCheckResult {
                    source: c.source,
                    verdict: c.verdict,
                    reasons: c.reasons,
                    reference: c.reference,
                })
                .collect(),
            history: v
                .history
                .into_iter()
                .map(|t| pb::RequestTransition {
                    from: t.from,
                    to: t.to,
                    actor: t.actor,
                    actor_id: t.actor_id,
                    reason: t.reason.unwrap_or_default(),
                })
                .collect(),
            documents_requested_at: v.documents_requested_at.map(spid_proto::time::to_wire),
            bank_transfer_reference: v.bank_transfer.unwrap_or_default(),
        }))
    }

    async fn open_evidence(
        &self,
        request: Request<pb::OpenEvidenceRequest>,
    ) -> Result<Response<pb::EvidenceContent>, Status> {
        let r = request.into_inner();
        let (kind, content) = self.backoffice.open_evidence(&r.operator_id, &r.evidence_id).await.map_err(to_status)?;
        Ok(Response::new(pb::EvidenceContent { kind, content }))
    }

    async fn confirm_appointment(&self, request: Request<pb::AppointmentRequest>) -> Result<Response<pb::Ack>, Status> {
        let r = request.into_inner();
        let at = time_arg(r.at, "at")?;
        self.backoffice.confirm_appointment(&r.operator_id, &r.request_id, at).await.map_err(to_status)?;
        Ok(Response::new(pb::Ack {}))
    }

    async fn video_challenge(&self, request: Request<pb::OperatorRequest>) -> Result<Response<pb::Ack>, Status> {
        let r = request.into_inner();
        self.backoffice.video_challenge(&r.operator_id, &r.request_id).await.map_err(to_status)?;
        Ok(Response::new(pb::Ack {}))
    }

    async fn video_session(&self, request: Request<pb::VideoSessionRequest>) -> Result<Response<pb::Ack>, Status> {
        let r = request.into_inner();
        self.backoffice
            .video_session(&r.operator_id, &r.request_id, &r.sms_code, &r.email_code, &r.recording)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::Ack {}))
    }

    async fn record_transfer(&self, request: Request<pb::TransferRequest>) -> Result<Response<pb::Ack>, Status> {
        let r = request.into_inner();
        let at = time_arg(r.received_at, "received_at")?;
        self.backoffice
            .record_transfer(&r.operator_id, &r.request_id, &r.reference, r.amount_cents, at)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::Ack {}))
    }

    async fn identify(&self, request: Request<pb::DecisionRequest>) -> Result<Response<pb::DecisionResponse>, Status> {
        let r = request.into_inner();
        Ok(decision(self.backoffice.identify(&r.operator_id, &r.request_id, &r.text).await.map_err(to_status)?))
    }

    async fn approve(&self, request: Request<pb::DecisionRequest>) -> Result<Response<pb::DecisionResponse>, Status> {
        let r = request.into_inner();
        Ok(decision(self.backoffice.approve(&r.operator_id, &r.request_id, &r.text).await.map_err(to_status)?))
    }

    async fn deny(&self, request: Request<pb::DecisionRequest>) -> Result<Response<pb::DecisionResponse>, Status> {
        let r = request.into_inner();
        self.backoffice.deny(&r.operator_id, &r.request_id, &r.text).await.map_err(to_status)?;
        Ok(decision(RequestState::Denied))
    }

    async fn ask_documents(
        &self,
        request: Request<pb::DecisionRequest>,
    ) -> Result<Response<pb::DecisionResponse>, Status> {
        let r = request.into_inner();
        self.backoffice.ask_documents(&r.operator_id, &r.request_id, &r.text).await.map_err(to_status)?;
        let state = self.registrar.request(&r.request_id).await.map_err(to_status)?.state;
        Ok(decision(state))
    }
}

fn identity_wire(r: crate::lifecycle::IdentityRecord) -> pb::Identity {
    pb::Identity {
        spid_code: r.spid_code,
        r#type: type_wire(&r.identity_type) as i32,
        status: status_wire(r.status) as i32,
        created_at: Some(spid_proto::time::to_wire(r.created_at)),
        status_changed_at: Some(spid_proto::time::to_wire(r.status_changed_at)),
    }
}

impl Api {
    async fn change(
        &self,
        request: Request<pb::LifecycleRequest>,
        action: crate::lifecycle::Action,
    ) -> Result<Response<pb::Identity>, Status> {
        let r = request.into_inner();
        let cause = if r.holder_request && r.cause.is_empty() { "holder_request".to_owned() } else { r.cause };
        let asked = crate::backoffice::StaffChange {
            action,
            cause,
            reason: r.reason,
            justification_ref: r.justification_ref,
            channel: r.channel,
        };
        let record = self.backoffice.change_identity(&r.actor_id, &r.spid_code, asked).await.map_err(to_status)?;
        Ok(Response::new(identity_wire(record)))
    }
}

#[tonic::async_trait]
impl pb::lifecycle_admin_server::LifecycleAdmin for Api {
    async fn get_identity(&self, request: Request<pb::GetIdentityRequest>) -> Result<Response<pb::Identity>, Status> {
        let r = request.into_inner();
        let (record, _) = self.backoffice.identity(&r.actor_id, &r.spid_code).await.map_err(to_status)?;
        Ok(Response::new(identity_wire(record)))
    }

    async fn suspend(&self, request: Request<pb::LifecycleRequest>) -> Result<Response<pb::Identity>, Status> {
        self.change(request, crate::lifecycle::Action::Suspend).await
    }

    async fn restore(&self, request: Request<pb::LifecycleRequest>) -> Result<Response<pb::Identity>, Status> {
        self.change(request, crate::lifecycle::Action::Restore).await
    }

    async fn revoke(&self, request: Request<pb::LifecycleRequest>) -> Result<Response<pb::Identity>, Status> {
        self.change(request, crate::lifecycle::Action::Revoke).await
    }

    async fn record_document(
        &self,
        request: Request<pb::RecordDocumentRequest>,
    ) -> Result<Response<pb::Identity>, Status> {
        let r = request.into_inner();
        let document = IdentityDocument {
            kind: r.kind,
            number: r.number,
            issuer: r.issuer,
            issued_on: r.issued_on,
            expires_on: r.expires_on,
        };
        let record = self.backoffice.record_document(&r.actor_id, &r.spid_code, &document).await.map_err(to_status)?;
        Ok(Response::new(identity_wire(record)))
    }

    async fn history(&self, request: Request<pb::GetIdentityRequest>) -> Result<Response<pb::HistoryResponse>, Status> {
        let r = request.into_inner();
        let (_, history) = self.backoffice.identity(&r.actor_id, &r.spid_code).await.map_err(to_status)?;
        Ok(Response::new(pb::HistoryResponse {
            entries: history
                .into_iter()
                .map(|t| pb::HistoryEntry {
                    from: status_wire(t.from) as i32,
                    to: status_wire(t.to) as i32,
                    actor: t.actor,
                    cause: t.cause,
                    channel: t.channel,
                    reason: t.reason,
                    justification_ref: t.justification_ref,
                    at: Some(spid_proto::time::to_wire(t.at)),
                })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl pb::holder_requests_server::HolderRequests for Api {
    async fn start(
        &self,
        request: Request<pb::HolderRequestStart>,
    ) -> Result<Response<pb::HolderRequestStarted>, Status> {
        let r = request.into_inner();
        let action = crate::lifecycle::Action::parse(&r.action)
            .ok_or_else(|| to_status(ServiceError::invalid("action.invalid", "action: suspend, restore or revoke")))?;
        let contact = Contact::parse(&r.contact)
            .ok_or_else(|| to_status(ServiceError::invalid("contact.invalid", "contact: email or mobile")))?;
        let ask = Ask { who: r.holder, action, reason: r.reason, contact };
        let started =
            self.holder_requests.start(&ask, &Via::Phone { operator_id: r.operator_id }).await.map_err(to_status)?;
        Ok(Response::new(pb::HolderRequestStarted {
            request_id: started.request_id,
            sent_to: started.sent_to,
            expires_at: Some(spid_proto::time::to_wire(started.expires_at)),
        }))
    }

    async fn confirm(
        &self,
        request: Request<pb::HolderRequestConfirm>,
    ) -> Result<Response<pb::HolderRequestReceipt>, Status> {
        let r = request.into_inner();
        let via = Via::Phone { operator_id: r.operator_id };
        let receipt = self.holder_requests.confirm(&r.request_id, &r.code, &via).await.map_err(to_status)?;
        Ok(Response::new(pb::HolderRequestReceipt {
            receipt_id: receipt.receipt_id,
            request_id: receipt.request_id,
            spid_code: receipt.spid_code,
            action: receipt.action.to_owned(),
            received_at: Some(spid_proto::time::to_wire(receipt.received_at)),
            acted_at: Some(spid_proto::time::to_wire(receipt.acted_at)),
            status: status_wire(receipt.status) as i32,
        }))
    }
}
