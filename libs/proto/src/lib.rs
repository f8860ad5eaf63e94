//! Wire types of the suite: the gRPC services of every service and the event
//! envelope, generated from `proto/`. Nothing here validates anything:
//! services convert these types into their own domain types at the edge.

#![allow(clippy::all, clippy::pedantic)]

/// Encoded `FileDescriptorSet` of every proto file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/spid_descriptor.bin"));

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
