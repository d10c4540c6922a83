//! The sidecar's API edges: wire formats in, core operations, wire formats out.

pub mod api_access;
pub mod grpc;
pub mod http;
pub mod internal;
pub mod middleware;
