//! Service invocation: calling a method of an app by id, through its sidecar.

pub mod message;

pub use message::{InvokeRequest, InvokeResponse};
