//! Telemetry for every process of the suite: structured logs, OpenTelemetry
//! traces exported over OTLP when an endpoint is configured, W3C trace
//! context carried across HTTP, gRPC metadata and bus headers, and a
//! Prometheus registry per service.

mod metrics;
mod propagation;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use spid_config::{LogFormat, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use metrics::Metrics;
pub use propagation::{TRACEPARENT, TRACESTATE, TraceHeaders, current_trace_headers, set_parent};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("configuration error: telemetry.log_level: {0}")]
    Filter(String),
    #[error("configuration error: telemetry.otlp_endpoint: {0}")]
    Exporter(String),
    #[error("telemetry already initialised: {0}")]
    AlreadySet(String),
}

/// Keeps the tracer provider alive; flushes pending spans when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the process-wide subscriber: logs to stderr (JSON or text),
/// spans to OpenTelemetry (exported over OTLP/gRPC when configured), and the
/// W3C trace-context propagator.
pub fn init(config: &TelemetryConfig, process_name: &str) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&config.log_level).map_err(|e| TelemetryError::Filter(e.to_string()))?;

    let mut builder = SdkTracerProvider::builder()
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(process_name.to_owned()).build());
    if let Some(endpoint) = &config.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.as_str())
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer("spid-idp");
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());

    let fmt_layer = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()
        .map_err(|e| TelemetryError::AlreadySet(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}
