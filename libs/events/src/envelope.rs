//! Building and reading `spid.events.v1.Envelope`.

use prost::{Message, Name};
use spid_proto::events::v1::{Actor, Envelope, TraceContext, actor};
use spid_types::Clock;

/// Builds an event envelope: a fresh time-ordered id (UUIDv7), the time from
/// the injected clock, and the trace context of the current span.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    envelope: Envelope,
}

impl EventBuilder {
    pub fn new(source: &str, event_type: &str, aggregate_id: &str, clock: &dyn Clock) -> Self {
        let now = clock.now();
        let trace = spid_telemetry::current_trace_headers();
        Self {
            envelope: Envelope {
                event_id: uuid::Uuid::now_v7().to_string(),
                aggregate_id: aggregate_id.to_owned(),
                r#type: event_type.to_owned(),
                occurred_at: Some(spid_proto::time::to_wire(now)),
                actor: Some(Actor { kind: actor::Kind::Service as i32, id: source.to_owned() }),
                reason: String::new(),
                trace: Some(TraceContext { traceparent: trace.traceparent, tracestate: trace.tracestate }),
                payload: None,
                source: source.to_owned(),
            },
        }
    }

    pub fn actor(mut self, kind: actor::Kind, id: &str) -> Self {
        self.envelope.actor = Some(Actor { kind: kind as i32, id: id.to_owned() });
        self
    }

    /// The trace context of an operation that started earlier (work picked
    /// up later from storage); empty values keep the current span's.
    pub fn trace(mut self, traceparent: &str, tracestate: &str) -> Self {
        if !traceparent.is_empty() {
            self.envelope.trace =
                Some(TraceContext { traceparent: traceparent.to_owned(), tracestate: tracestate.to_owned() });
        }
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.envelope.reason = reason.to_owned();
        self
    }

    pub fn payload<M: Message + Name>(mut self, payload: &M) -> Self {
        self.envelope.payload = Some(prost_types::Any { type_url: M::type_url(), value: payload.encode_to_vec() });
        self
    }

    pub fn build(self) -> Envelope {
        self.envelope
    }
}

/// Decodes the payload of an envelope as `M`, if it is one.
pub fn payload_of<M: Message + Name + Default>(envelope: &Envelope) -> Option<M> {
    let any = envelope.payload.as_ref()?;
    if any.type_url != M::type_url() {
        return None;
    }
    M::decode(any.value.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use spid_proto::events::v1::NotificationDelivered;

    #[test]
    fn payload_round_trip_and_type_check() {
        let clock = spid_types::SystemClock;
        let delivered =
            NotificationDelivered { message_id: "m1".into(), outcome: "delivered".into(), ..Default::default() };
        let env = EventBuilder::new("notification", "notification.delivered", "m1", &clock)
            .reason("test")
            .payload(&delivered)
            .build();
        assert_eq!(env.payload.as_ref().unwrap().type_url, "type.googleapis.com/spid.events.v1.NotificationDelivered");
        assert_eq!(payload_of::<NotificationDelivered>(&env), Some(delivered));
        assert_eq!(payload_of::<spid_proto::events::v1::AuditNote>(&env), None);
        let other = EventBuilder::new("x", "t", "a", &clock).build();
        assert_ne!(env.event_id, other.event_id);
    }
}
