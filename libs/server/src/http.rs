//! The HTTP server of a service (actix-web): `/livez`, `/readyz`,
//! `/metrics`, request tracing with the caller's trace context, request
//! metrics, and the service's own routes.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use spid_telemetry::Metrics;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::health::Health;

/// What the common routes need.
#[derive(Clone)]
pub struct Common {
    pub service: &'static str,
    pub health: Health,
    pub metrics: Metrics,
}

/// Serves the common routes plus `routes` on `listener` until `shutdown`.
pub async fn serve<F>(
    listener: std::net::TcpListener,
    common: Common,
    routes: F,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let data = web::Data::new(common.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(from_fn(observe))
            .route("/livez", web::get().to(livez))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .configure(routes.clone())
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle: ServerHandle = server.handle();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
    server.await
}

async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "alive" }))
}

async fn readyz(common: web::Data<Common>) -> HttpResponse {
    let r = common.health.readiness().await;
    let body = serde_json::json!({ "service": common.service, "ready": r.ready, "checks": r.checks });
    if r.ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

async fn metrics(common: web::Data<Common>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(common.metrics.render())
}

/// A span per request, child of the caller's trace context, and metrics
/// labelled by the matched route pattern (not the raw path).
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let method = req.method().to_string();
    let span = tracing::info_span!("http", %method, path = %req.path(), status = tracing::field::Empty);
    spid_telemetry::set_parent(&span, |k| req.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_owned));
    let metrics = req.app_data::<web::Data<Common>>().map(|c| c.metrics.clone());
    let started = Instant::now();
    let res = next.call(req).instrument(span.clone()).await?;
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    span.record("status", status);
    if let Some(m) = metrics {
        m.http_requests.with_label_values(&[method.as_str(), route.as_str(), &status.to_string()]).inc();
        m.http_duration.with_label_values(&[method.as_str(), route.as_str()]).observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthCheck;

    struct Down;

    #[async_trait::async_trait]
    impl HealthCheck for Down {
        fn name(&self) -> &str {
            "bus"
        }
        async fn check(&self) -> Result<(), String> {
            Err("broker unreachable".into())
        }
    }

    #[tokio::test]
    async fn common_routes_answer() {
        let listener = crate::bind("test.http_listen", "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let common =
            Common { service: "test", health: Health::new().with(Down), metrics: Metrics::new("test").unwrap() };
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            common,
            |cfg: &mut web::ServiceConfig| {
                cfg.route("/hello", web::get().to(|| async { "hi" }));
            },
            shutdown.clone(),
        ));
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        assert_eq!(client.get(format!("{base}/livez")).send().await.unwrap().status(), 200);
        let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(body["checks"]["bus"], "broker unreachable");
        assert_eq!(client.get(format!("{base}/hello")).send().await.unwrap().text().await.unwrap(), "hi");
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("route=\"/hello\""), "{metrics}");
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
