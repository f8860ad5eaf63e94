use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// The Prometheus registry of one service and the metrics every service
/// shares. Each service owns one (no global registry): two services in one
/// process expose their own `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub bus_published: IntCounterVec,
    pub bus_consumed: IntCounterVec,
    pub outbox_pending: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A registry whose metrics carry `service="<service>"`.
    pub fn new(service: &str) -> Result<Self, prometheus::Error> {
        let labels = std::iter::once(("service".to_owned(), service.to_owned())).collect();
        let registry = Registry::new_custom(Some("idp".into()), Some(labels))?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency"),
            &["method", "route"],
        )?;
        let bus_published = IntCounterVec::new(Opts::new("bus_published_total", "Messages published"), &["topic"])?;
        let bus_consumed = IntCounterVec::new(
            Opts::new("bus_consumed_total", "Messages consumed and committed"),
            &["topic", "group"],
        )?;
        let outbox_pending =
            IntGaugeVec::new(Opts::new("outbox_pending", "Outbox events not yet published"), &["store"])?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(bus_published.clone()))?;
        registry.register(Box::new(bus_consumed.clone()))?;
        registry.register(Box::new(outbox_pending.clone()))?;
        Ok(Self { registry, http_requests, http_duration, bus_published, bus_consumed, outbox_pending })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format served at `/metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new().encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_metrics() {
        let m = Metrics::new("audit-log").unwrap();
        m.bus_published.with_label_values(&["spid.audit.v1"]).inc_by(3);
        let text = m.render();
        assert!(text.contains("idp_bus_published_total{topic=\"spid.audit.v1\",service=\"audit-log\"} 3"), "{text}");
    }
}
