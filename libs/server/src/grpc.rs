//! The gRPC server of a service (standard health service kept in step with
//! readiness, server reflection, the caller's trace context) and traced
//! client channels to the other services.

use std::time::Duration;

use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Server};

use crate::health::Health;

/// Deadline of every call between services.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A service's gRPC services, served with health and reflection. Build
/// `routes` with `RoutesBuilder::add_service` and list the services' names
/// (`FooServer::<T>::NAME`) so the health service reports each of them.
pub struct GrpcServer {
    routes: tonic::service::RoutesBuilder,
    names: Vec<&'static str>,
}

impl GrpcServer {
    pub fn new(routes: tonic::service::RoutesBuilder, names: Vec<&'static str>) -> Self {
        Self { routes, names }
    }

    /// Serves until `shutdown`. The health service reports SERVING while
    /// every readiness check passes (re-evaluated every few seconds).
    pub async fn serve(
        self,
        listener: std::net::TcpListener,
        health: Health,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let names = self.names.clone();
        let watch_shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let ready = health.readiness().await.ready;
                let status =
                    if ready { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
                reporter.set_service_status("", status).await;
                for name in &names {
                    reporter.set_service_status(*name, status).await;
                }
                tokio::select! {
                    _ = watch_shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(3)) => {}
                }
            }
        });
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(spid_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1();
        let mut routes = self.routes;
        routes.add_service(health_service);
        match reflection {
            Ok(r) => {
                routes.add_service(r);
            }
            // The descriptor sets are compiled in; this is a build defect.
            Err(e) => tracing::error!(error = %e, "gRPC reflection unavailable"),
        }
        let listener = tokio::net::TcpListener::from_std(listener)?;
        Server::builder()
            .timeout(Duration::from_secs(30))
            .trace_fn(|req| {
                let span = tracing::info_span!("grpc", path = %req.uri().path());
                spid_telemetry::set_parent(&span, |k| {
                    req.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_owned)
                });
                span
            })
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
            .await
            .map_err(std::io::Error::other)
    }
}

/// Adds the current trace context to every outgoing call.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceInterceptor;

impl tonic::service::Interceptor for TraceInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        for (k, v) in spid_telemetry::current_trace_headers().pairs() {
            if let Ok(v) = v.parse() {
                req.metadata_mut().insert(k, v);
            }
        }
        Ok(req)
    }
}

/// A channel to another service: connects lazily (a peer may start later),
/// every call has a deadline, and the trace context travels with it.
pub type Peer = InterceptedService<Channel, TraceInterceptor>;

pub fn channel(setting: &str, url: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| format!("{setting}: \"{url}\": {e}"))?;
    Ok(endpoint.connect_timeout(Duration::from_secs(3)).timeout(CALL_TIMEOUT).tcp_nodelay(true).connect_lazy())
}

pub fn peer(channel: Channel) -> Peer {
    InterceptedService::new(channel, TraceInterceptor)
}
