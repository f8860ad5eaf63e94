//! Wire types of the suite: the gRPC services of every service and the event
//! envelope, generated from `proto/`. Nothing here validates anything:
//! services convert these types into their own domain types at the edge.

#![allow(clippy::all, clippy::pedantic)]

/// Encoded `FileDescriptorSet` of every proto file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/spid_descriptor.bin"));

/// `google.protobuf.Timestamp` ↔ `chrono`, the one conversion at the edge.
pub mod time {
    use chrono::{DateTime, Utc};

    pub fn to_wire(t: DateTime<Utc>) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
    }

    /// `None` when the timestamp is out of range (negative or oversized
    /// nanos, seconds beyond chrono's range): wire input is untrusted.
    pub fn from_wire(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip_and_hostile_values() {
            let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
            assert_eq!(from_wire(&to_wire(t)), Some(t));
            assert_eq!(from_wire(&prost_types::Timestamp { seconds: 0, nanos: -1 }), None);
            assert_eq!(from_wire(&prost_types::Timestamp { seconds: i64::MAX, nanos: 0 }), None);
        }
    }
}

pub mod events {
    pub mod v1 {
        tonic::include_proto!("spid.events.v1");
    }
}

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("spid.identity.v1");
    }
}

pub mod otp {
    pub mod v1 {
        tonic::include_proto!("spid.otp.v1");
    }
}

pub mod notification {
    pub mod v1 {
        tonic::include_proto!("spid.notification.v1");
    }
}

pub mod audit {
    pub mod v1 {
        tonic::include_proto!("spid.audit.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("spid.gateway.v1");
    }
}
