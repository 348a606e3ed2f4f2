//! Generates the purereducer.v1 messages, clients and servers from `proto/`, plus the
//! descriptor set that server reflection serves.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "types.proto",
    "canonical_store.proto",
    "action_dedup.proto",
    "reducer.proto",
    "reducer_function.proto",
    "events.proto",
    "event_bus.proto",
    "projection.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let files: Vec<PathBuf> = PROTOS
        .iter()
        .map(|name| proto_root.join("purereducer/v1").join(name))
        .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    // A vendored protoc keeps the build free of system packages.
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("purereducer_descriptor.bin"))
        .compile_with_config(config, &files, &[proto_root])?;
    Ok(())
}
