//! Runs the pieces of one service together until shutdown: its HTTP server,
//! its gRPC server and its background tasks (outbox relay, consumers,
//! schedulers). If a server fails, the others are stopped and the error
//! returned.

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::deps::{Listeners, RunError};
use crate::grpc::GrpcServer;
use crate::http::Common;

pub struct ServiceParts<F>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
{
    pub common: Common,
    pub listeners: Listeners,
    pub http_routes: F,
    pub grpc: GrpcServer,
    /// Futures that run until the shutdown token they were given fires.
    pub background: Vec<BoxFuture<'static, ()>>,
}

pub async fn serve<F>(parts: ServiceParts<F>, shutdown: CancellationToken) -> Result<(), RunError>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
{
    let ServiceParts { common, listeners, http_routes, grpc, background } = parts;
    let service = common.service;
    let health = common.health.clone();
    let mut tasks = tokio::task::JoinSet::new();
    for task in background {
        tasks.spawn(task);
    }
    let stop_all = shutdown.clone();
    let http = async {
        let r = crate::http::serve(listeners.http, common, http_routes, shutdown.clone()).await;
        if r.is_err() {
            stop_all.cancel();
        }
        r.map_err(|e| RunError::new(format!("{service}: HTTP server: {e}")))
    };
    let grpc = async {
        let r = grpc.serve(listeners.grpc, health, shutdown.clone()).await;
        if r.is_err() {
            stop_all.cancel();
        }
        r.map_err(|e| RunError::new(format!("{service}: gRPC server: {e}")))
    };
    let result = tokio::try_join!(http, grpc).map(|_| ());
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    tracing::info!(%service, "stopped");
    result
}
