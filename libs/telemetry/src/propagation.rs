//! W3C trace context (`traceparent`, `tracestate`) in and out of carriers:
//! HTTP headers, gRPC metadata and bus message headers all reduce to a list
//! of (name, value) pairs.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The trace headers of one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: String,
    pub tracestate: String,
}

impl TraceHeaders {
    /// Pairs to add to an outgoing carrier (empty values skipped).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(2);
        if !self.traceparent.is_empty() {
            out.push((TRACEPARENT, self.traceparent.clone()));
        }
        if !self.tracestate.is_empty() {
            out.push((TRACESTATE, self.tracestate.clone()));
        }
        out
    }
}

struct MapCarrier(HashMap<String, String>);

impl Injector for MapCarrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

impl Extractor for MapCarrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The trace context of the current span, to carry to another process.
pub fn current_trace_headers() -> TraceHeaders {
    let cx = tracing::Span::current().context();
    let mut carrier = MapCarrier(HashMap::new());
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    TraceHeaders {
        traceparent: carrier.0.remove(TRACEPARENT).unwrap_or_default(),
        tracestate: carrier.0.remove(TRACESTATE).unwrap_or_default(),
    }
}

/// Makes `span` a child of the remote context found in `lookup` (a header
/// getter); a missing or malformed `traceparent` leaves the span a root.
pub fn set_parent(span: &tracing::Span, lookup: impl Fn(&str) -> Option<String>) {
    let mut map = HashMap::new();
    for key in [TRACEPARENT, TRACESTATE] {
        if let Some(v) = lookup(key) {
            map.insert(key.to_owned(), v);
        }
    }
    if map.is_empty() {
        return;
    }
    let carrier = MapCarrier(map);
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    let _ = span.set_parent(cx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_survives_a_round_trip() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        use opentelemetry::trace::TracerProvider as _;
        let tracer = provider.tracer("test");
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        tracing::subscriber::with_default(subscriber, || {
            let remote = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let span = tracing::info_span!("incoming");
            set_parent(&span, |k| (k == TRACEPARENT).then(|| remote.to_owned()));
            let _entered = span.enter();
            let headers = current_trace_headers();
            // Same trace id, new span id, sampled.
            assert!(headers.traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{headers:?}");
            assert!(!headers.traceparent.contains("00f067aa0ba902b7"));
            assert!(headers.traceparent.ends_with("-01"));
        });
    }

    #[test]
    fn malformed_traceparent_starts_a_new_trace() {
        let span = tracing::Span::none();
        set_parent(&span, |_| Some("garbage".to_owned()));
        assert_eq!(TraceHeaders::default().pairs().len(), 0);
    }
}
