//! The generated gRPC API of Pure Reducer, package `purereducer.v1`.
//!
//! `proto/` is the only definition of the API; this crate compiles it at build time.
//!
//! Layout:
//! - [`v1`]: messages, service clients and servers.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors that server reflection serves.

/// Messages, clients and servers of `purereducer.v1`.
#[allow(missing_docs, missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("purereducer.v1");
}

/// Encoded `FileDescriptorSet` of every `purereducer.v1` file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("purereducer_descriptor");
