//! Transport edge: gRPC `Notifications` and `DevOutbox`, HTTP `/dev/outbox`.
//! Handlers convert wire types, call the domain, map the result.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use spid_proto::notification::v1 as pb;
use spid_server::errors::{HttpProblem, to_status};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::domain::{Channel, Notifier, SendMessage};

pub fn grpc(notifier: Arc<Notifier>) -> spid_server::grpc::GrpcServer {
    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(pb::notifications_server::NotificationsServer::new(Api(notifier.clone())));
    routes.add_service(pb::deliveries_server::DeliveriesServer::new(Api(notifier.clone())));
    routes.add_service(pb::preferences_server::PreferencesServer::new(Api(notifier.clone())));
    routes.add_service(pb::dev_outbox_server::DevOutboxServer::new(Api(notifier)));
    spid_server::grpc::GrpcServer::new(
        routes,
        vec![
            pb::notifications_server::NotificationsServer::<Api>::NAME,
            pb::deliveries_server::DeliveriesServer::<Api>::NAME,
            pb::preferences_server::PreferencesServer::<Api>::NAME,
            pb::dev_outbox_server::DevOutboxServer::<Api>::NAME,
        ],
    )
}

pub fn http_routes(notifier: Arc<Notifier>) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    let data = web::Data::from(notifier);
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone()).route("/dev/outbox", web::get().to(dev_outbox));
    }
}

async fn dev_outbox(notifier: web::Data<Notifier>) -> Result<HttpResponse, HttpProblem> {
    let entries = notifier.dev_outbox(1000).await?;
    Ok(HttpResponse::Ok().json(entries))
}

pub struct Api(Arc<Notifier>);

fn channel_of(c: i32) -> Option<Channel> {
    match pb::Channel::try_from(c).ok()? {
        pb::Channel::Email => Some(Channel::Email),
        pb::Channel::Sms => Some(Channel::Sms),
        pb::Channel::Pec => Some(Channel::Pec),
        pb::Channel::Unspecified => None,
    }
}

fn channel_to_pb(c: &str) -> pb::Channel {
    match Channel::parse(c) {
        Some(Channel::Email) => pb::Channel::Email,
        Some(Channel::Sms) => pb::Channel::Sms,
        Some(Channel::Pec) => pb::Channel::Pec,
        None => pb::Channel::Unspecified,
    }
}

#[tonic::async_trait]
impl pb::notifications_server::Notifications for Api {
    async fn send(&self, request: Request<pb::SendRequest>) -> Result<Response<pb::SendResponse>, Status> {
        let r = request.into_inner();
        let accepted = self
            .0
            .send(SendMessage {
                channel: channel_of(r.channel),
                recipient: r.recipient,
                template: r.template,
                locale: r.locale,
                data: r.data.into_iter().collect(),
                idempotency_key: r.idempotency_key,
                subject_id: r.subject_id,
                trace: None,
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::SendResponse {
            message_id: accepted.message_id,
            accepted_at: Some(spid_proto::time::to_wire(accepted.accepted_at)),
        }))
    }
}

#[tonic::async_trait]
impl pb::dev_outbox_server::DevOutbox for Api {
    async fn list(&self, request: Request<pb::ListOutboxRequest>) -> Result<Response<pb::ListOutboxResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => 100,
            n => n,
        };
        let entries = self.0.dev_outbox(limit).await.map_err(to_status)?;
        Ok(Response::new(pb::ListOutboxResponse {
            entries: entries
                .into_iter()
                .map(|e| pb::OutboxEntry {
                    channel: channel_to_pb(&e.channel) as i32,
                    id: e.id,
                    recipient: e.recipient,
                    subject: e.subject,
                    body: e.body,
                    created_at: Some(spid_proto::time::to_wire(e.created_at)),
                    status: e.status,
                })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl pb::deliveries_server::Deliveries for Api {
    async fn list_failed(
        &self,
        request: Request<pb::ListFailedRequest>,
    ) -> Result<Response<pb::ListFailedResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => 100,
            n => n,
        };
        let failed = self.0.failed(limit).await.map_err(to_status)?;
        Ok(Response::new(pb::ListFailedResponse {
            messages: failed
                .into_iter()
                .map(|m| pb::FailedMessage {
                    channel: channel_to_pb(&m.channel) as i32,
                    id: m.id,
                    recipient: m.recipient,
                    template: m.template,
                    subject_id: m.subject_id,
                    attempts: m.attempts,
                    last_error: m.last_error,
                    created_at: Some(spid_proto::time::to_wire(m.created_at)),
                })
                .collect(),
        }))
    }

    async fn retry(&self, request: Request<pb::RetryRequest>) -> Result<Response<pb::RetryResponse>, Status> {
        let r = request.into_inner();
        self.0.retry(&r.message_id, &r.operator).await.map_err(to_status)?;
        Ok(Response::new(pb::RetryResponse {}))
    }
}

#[tonic::async_trait]
impl pb::preferences_server::Preferences for Api {
    async fn get(
        &self,
        request: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::NotificationPreferences>, Status> {
        let subject_id = request.into_inner().subject_id;
        let on = self.0.use_notices(&subject_id).await.map_err(to_status)?;
        Ok(Response::new(pb::NotificationPreferences { subject_id, credential_use_email: on }))
    }

    async fn set(
        &self,
        request: Request<pb::SetPreferencesRequest>,
    ) -> Result<Response<pb::NotificationPreferences>, Status> {
        let p = request.into_inner().preferences.unwrap_or_default();
        self.0.set_use_notices(&p.subject_id, p.credential_use_email).await.map_err(to_status)?;
        Ok(Response::new(p))
    }
}
