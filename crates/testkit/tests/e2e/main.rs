//! Cross-process tests of the workspace: one test binary, one module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access_control;
mod binaries;
mod bindings;
mod configuration;
mod crypto;
mod invoke;
mod invoke_edges;
mod launchers;
mod lock;
mod middleware;
mod observability;
mod process;
mod proto_contracts;
mod pubsub;
mod pubsub_bad_input;
mod pubsub_streaming;
mod python;
mod resiliency;
mod secrets;
mod servers;
mod sidecar_api;
mod state;
mod subscriptions;
mod support;
mod wire;
