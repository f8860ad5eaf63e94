//! gRPC administration of the gateway: `spid.gateway.v1.ServiceProviders`
//! (`idpctl sp`). Thin: [`SpAdmin`] does the work.

use std::sync::Arc;

use spid_proto::gateway::v1 as pb;
use spid_server::errors::to_status;
use spid_types::ServiceError;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::registry::ServiceProvider;
use crate::sp_admin::{AdminError, SpAdmin};

pub fn grpc(admin: Arc<SpAdmin>) -> spid_server::grpc::GrpcServer {
    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(pb::service_providers_server::ServiceProvidersServer::new(Api(admin)));
    spid_server::grpc::GrpcServer::new(routes, vec![pb::service_providers_server::ServiceProvidersServer::<Api>::NAME])
}

pub struct Api(Arc<SpAdmin>);

fn status(e: AdminError) -> Status {
    to_status(match e {
        AdminError::Invalid(m) => ServiceError::invalid("metadata.invalid", m),
        AdminError::NotFound(m) => ServiceError::not_found("sp.not_found", format!("no service provider {m}")),
        AdminError::Storage(m) => ServiceError::internal(m),
    })
}

fn wire(sp: &ServiceProvider) -> pb::ServiceProvider {
    pb::ServiceProvider {
        entity_id: sp.entity_id.clone(),
        source: sp.source.clone(),
        acs_urls: sp.acs.iter().map(|a| a.location.clone()).collect(),
        attribute_services: sp
            .attribute_services
            .iter()
            .map(|s| (u32::from(s.index), s.attributes.join(" ")))
            .collect(),
        certificates_not_after: sp
            .signing_certs
            .iter()
            .filter_map(|c| {
                let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
                let diff = epoch.diff(c.not_after()).ok()?;
                let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
                Some(prost_types::Timestamp { seconds: secs, nanos: 0 })
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl pb::service_providers_server::ServiceProviders for Api {
    async fn list(
        &self,
        _: Request<pb::ListServiceProvidersRequest>,
    ) -> Result<Response<pb::ListServiceProvidersResponse>, Status> {
        let service_providers = self.0.registry.list().iter().map(|sp| wire(sp)).collect();
        Ok(Response::new(pb::ListServiceProvidersResponse { service_providers }))
    }

    async fn add(
        &self,
        request: Request<pb::AddServiceProviderRequest>,
    ) -> Result<Response<pb::ServiceProvider>, Status> {
        let r = request.into_inner();
        let sp = self.0.add(&r.operator, &r.metadata).await.map_err(status)?;
        Ok(Response::new(wire(&sp)))
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveServiceProviderRequest>,
    ) -> Result<Response<pb::RemoveServiceProviderResponse>, Status> {
        let r = request.into_inner();
        self.0.remove(&r.operator, &r.entity_id).await.map_err(status)?;
        Ok(Response::new(pb::RemoveServiceProviderResponse {}))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::RefreshResponse>, Status> {
        let report = self.0.refresh(&request.into_inner().operator).await.map_err(status)?;
        Ok(Response::new(pb::RefreshResponse {
            loaded: u32::try_from(report.loaded).unwrap_or(u32::MAX),
            errors: report.errors,
        }))
    }
}
