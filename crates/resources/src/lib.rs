//! Dapr resource manifests: the Rust types of the `dapr.io` kinds
//! (Component, Configuration, Resiliency, HTTPEndpoint, Subscription
//! `v1alpha1`/`v2alpha1`), usable both from YAML files and as Kubernetes
//! custom resources; the loader that reads them from resource directories
//! (standalone mode); and the generated CustomResourceDefinitions.
//!
//! Field names and shapes follow upstream Dapr's API types exactly, and
//! unknown fields are ignored. Decoding requires only identifying fields
//! (names, types, addresses); other fields upstream's CRDs list as required
//! are still required in the generated CRDs but default when a file leaves
//! them out, as upstream's file loader does. Durations stay strings in Go
//! duration syntax: the code that uses a duration parses it.

pub mod common;
pub mod component;
pub mod configuration;
pub mod crd;
pub mod http_endpoint;
pub mod loader;
pub mod resiliency;
mod resource;
mod serde_support;
pub mod subscription;

pub use component::Component;
pub use configuration::Configuration;
pub use http_endpoint::HttpEndpoint;
pub use resiliency::Resiliency;
pub use resource::{DaprResource, GROUP};

#[cfg(test)]
mod tests;
