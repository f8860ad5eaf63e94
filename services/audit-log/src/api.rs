//! gRPC edge: `AuditIngest.Append`, `AuditQuery.Search`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use spid_proto::audit::v1 as pb;
use spid_server::errors::to_status;
use spid_types::ServiceError;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::domain::{AuditLog, Query};

pub fn grpc(log: Arc<AuditLog>) -> spid_server::grpc::GrpcServer {
    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(pb::audit_ingest_server::AuditIngestServer::new(Api(log.clone())));
    routes.add_service(pb::audit_query_server::AuditQueryServer::new(Api(log)));
    spid_server::grpc::GrpcServer::new(
        routes,
        vec![
            pb::audit_ingest_server::AuditIngestServer::<Api>::NAME,
            pb::audit_query_server::AuditQueryServer::<Api>::NAME,
        ],
    )
}

pub struct Api(Arc<AuditLog>);

fn time_of(t: Option<prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, Status> {
    t.map(|t| {
        spid_proto::time::from_wire(&t)
            .ok_or_else(|| to_status(ServiceError::invalid("query.time_invalid", format!("{field} is out of range"))))
    })
    .transpose()
}

#[tonic::async_trait]
impl pb::audit_ingest_server::AuditIngest for Api {
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        let event = request
            .into_inner()
            .event
            .ok_or_else(|| to_status(ServiceError::invalid("event.missing", "event is required")))?;
        let (sequence, inserted) = self.0.record(&event).await.map_err(to_status)?;
        Ok(Response::new(pb::AppendResponse { sequence, inserted }))
    }
}

#[tonic::async_trait]
impl pb::audit_query_server::AuditQuery for Api {
    async fn search(&self, request: Request<pb::SearchRequest>) -> Result<Response<pb::SearchResponse>, Status> {
        let r = request.into_inner();
        let query = Query {
            aggregate_id: r.aggregate_id,
            event_type: r.r#type,
            from: time_of(r.from, "from")?,
            until: time_of(r.until, "until")?,
            after_sequence: r.after_sequence,
            limit: r.limit,
        };
        let records = self.0.search(&query).await.map_err(to_status)?;
        Ok(Response::new(pb::SearchResponse {
            records: records
                .into_iter()
                .map(|rec| pb::Record {
                    sequence: rec.sequence,
                    event: Some(rec.event),
                    recorded_at: Some(spid_proto::time::to_wire(rec.recorded_at)),
                })
                .collect(),
        }))
    }
}
