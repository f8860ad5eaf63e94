//! Compiles `proto/` with protox (pure Rust, no `protoc` needed) and writes
//! the descriptor set used by gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const FILES: &[&str] = &[
    "spid/events/v1/events.proto",
    "spid/identity/v1/identity.proto",
    "spid/otp/v1/otp.proto",
    "spid/notification/v1/notification.proto",
    "spid/audit/v1/audit.proto",
    "spid/gateway/v1/gateway.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let files: Vec<PathBuf> = FILES.iter().map(|f| root.join(f)).collect();
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("spid_descriptor.bin"), fds.encode_to_vec())?;
    let mut config = prost_build::Config::new();
    // `prost::Name` impls, so payloads pack into `google.protobuf.Any`.
    config.enable_type_names();
    config.type_name_domain(["."], "type.googleapis.com");
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds_with_config(fds, config)?;
    Ok(())
}
