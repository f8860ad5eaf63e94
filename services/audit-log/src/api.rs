//! gRPC edge: `AuditIngest`, `AuditQuery`, `AuditIntegrity`. Thin: parse,
//! call the domain, map the answer.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use spid_proto::audit::v1 as pb;
use spid_server::errors::to_status;
use spid_types::ServiceError;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::domain::{AuditLog, Query};
use crate::metrics::AuditMetrics;
use crate::store::SealRow;

pub fn grpc(log: Arc<AuditLog>, metrics: AuditMetrics) -> spid_server::grpc::GrpcServer {
    let api = Api { log, metrics };
    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(pb::audit_ingest_server::AuditIngestServer::new(api.clone()));
    routes.add_service(pb::audit_query_server::AuditQueryServer::new(api.clone()));
    routes.add_service(pb::audit_integrity_server::AuditIntegrityServer::new(api));
    spid_server::grpc::GrpcServer::new(
        routes,
        vec![
            pb::audit_ingest_server::AuditIngestServer::<Api>::NAME,
            pb::audit_query_server::AuditQueryServer::<Api>::NAME,
            pb::audit_integrity_server::AuditIntegrityServer::<Api>::NAME,
        ],
    )
}

#[derive(Clone)]
pub struct Api {
    log: Arc<AuditLog>,
    metrics: AuditMetrics,
}

fn time_of(t: Option<prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, Status> {
    t.map(|t| {
        spid_proto::time::from_wire(&t)
            .ok_or_else(|| to_status(ServiceError::invalid("query.time_invalid", format!("{field} is out of range"))))
    })
    .transpose()
}

fn seal_of(s: &SealRow) -> pb::Seal {
    use base64::Engine;
    pb::Seal {
        day: s.day.clone(),
        first_sequence: s.first_seq,
        last_sequence: s.last_seq,
        records: s.records,
        chain_head: hex::encode(&s.chain),
        digest: hex::encode(&s.digest),
        signature: base64::engine::general_purpose::STANDARD.encode(&s.signature),
        timestamp_authority: s.tsa.clone(),
        sealed_at: DateTime::from_timestamp_micros(s.sealed_at).map(spid_proto::time::to_wire),
        purged: s.purged_at.is_some(),
    }
}

fn day_filter(value: &str, field: &str) -> Result<Option<NaiveDate>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| to_status(ServiceError::invalid("query.day_invalid", format!("{field} must be YYYY-MM-DD"))))
}

#[tonic::async_trait]
impl pb::audit_ingest_server::AuditIngest for Api {
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        let event = request
            .into_inner()
            .event
            .ok_or_else(|| to_status(ServiceError::invalid("event.missing", "event is required")))?;
        let (sequence, inserted) = self.log.record(&event).await.map_err(to_status)?;
        self.metrics.appended(&[(sequence, inserted)]);
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
            spid_code: r.spid_code,
            service_provider: r.service_provider,
            request_id: r.request_id,
            response_id: r.response_id,
            assertion_id: r.assertion_id,
        };
        let records = self.log.search(&query).await.map_err(to_status)?;
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

    async fn list_authentications(
        &self,
        request: Request<pb::ListAuthenticationsRequest>,
    ) -> Result<Response<pb::ListAuthenticationsResponse>, Status> {
        let r = request.into_inner();
        let found = self
            .log
            .authentications(&r.spid_code, time_of(r.from, "from")?, time_of(r.until, "until")?, r.limit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListAuthenticationsResponse {
            authentications: found
                .into_iter()
                .map(|(at, a)| pb::AuthenticationEntry {
                    at: Some(spid_proto::time::to_wire(at)),
                    service_provider: a.service_provider,
                    level: a.level,
                    outcome: a.outcome,
                    protocol: a.protocol,
                })
                .collect(),
        }))
    }

    async fn extract(&self, request: Request<pb::ExtractRequest>) -> Result<Response<pb::ExtractResponse>, Status> {
        let r = request.into_inner();
        let e = self
            .log
            .extract(&r.spid_code, time_of(r.from, "from")?, time_of(r.until, "until")?)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ExtractResponse {
            document: e.document,
            signature: e.signature,
            signer_certificate: e.signer_certificate,
            records: e.records,
        }))
    }

    async fn list_seals(
        &self,
        request: Request<pb::ListSealsRequest>,
    ) -> Result<Response<pb::ListSealsResponse>, Status> {
        let r = request.into_inner();
        let from = day_filter(&r.from_day, "from_day")?;
        let until = day_filter(&r.until_day, "until_day")?;
        let seals = self.log.seals().await.map_err(to_status)?;
        let in_range = |s: &&SealRow| {
            let day = s.day();
            from.is_none_or(|f| day.is_some_and(|d| d >= f)) && until.is_none_or(|u| day.is_some_and(|d| d <= u))
        };
        Ok(Response::new(pb::ListSealsResponse { seals: seals.iter().filter(in_range).map(seal_of).collect() }))
    }
}

#[tonic::async_trait]
impl pb::audit_integrity_server::AuditIntegrity for Api {
    async fn verify(&self, request: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        let r = request.into_inner();
        let from = time_of(r.from, "from")?;
        let until = time_of(r.until, "until")?;
        let v = self.log.verify(from, until).await.map_err(to_status)?;
        let (first_bad_sequence, bad_day, problem) = match &v.broken {
            Some(b) => (b.sequence, b.day.map(|d| d.to_string()).unwrap_or_default(), b.problem.clone()),
            None => (0, String::new(), String::new()),
        };
        Ok(Response::new(pb::VerifyResponse {
            intact: v.broken.is_none(),
            records_checked: v.records_checked,
            first_bad_sequence,
            problem,
            seals_checked: v.seals_checked,
            bad_day,
        }))
    }

    async fn seal_days(&self, _: Request<pb::SealDaysRequest>) -> Result<Response<pb::SealDaysResponse>, Status> {
        let sealed = self.log.seal_days().await;
        let broken = sealed.as_ref().is_err_and(|e| e.code == crate::integrity::CHAIN_BROKEN);
        self.metrics.sealed(&self.log.seals().await, broken);
        let sealed = sealed.map_err(to_status)?;
        Ok(Response::new(pb::SealDaysResponse { sealed: sealed.iter().map(seal_of).collect() }))
    }

    async fn apply_retention(
        &self,
        _: Request<pb::ApplyRetentionRequest>,
    ) -> Result<Response<pb::ApplyRetentionResponse>, Status> {
        let r = self.log.apply_retention().await.map_err(to_status)?;
        self.metrics.retained(&r);
        Ok(Response::new(pb::ApplyRetentionResponse {
            records_removed: r.records_removed,
            evidence_references_removed: r.evidence_references_removed,
            days: r.days,
        }))
    }
}
