//! Service invocation: calling a method of an app by id, through its sidecar.
//!
//! [`Invoker`] is the one implementation both public APIs call. It parses the target
//! ([`target`]), resolves it, and calls the own app through the app channel, another app
//! through its sidecar's internal API with the chunked protocol of [`stream`] over pooled
//! connections ([`peers`]), or an external service directly ([`endpoint`]). [`metadata`]
//! holds upstream's header rules and [`status`] its status mappings.

pub mod app_call;
pub mod body_slot;
pub mod endpoint;
mod invoker;
pub mod message;
pub mod metadata;
pub mod peers;
mod resilient;
pub mod status;
pub mod stream;
pub mod target;
pub mod verb;

#[cfg(test)]
mod tests;

pub use invoker::{HOST_IP_ENV, Invoker, InvokerConfig, Route};
pub use message::{InvokeRequest, InvokeResponse};
