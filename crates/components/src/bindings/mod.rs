//! Bindings: the contracts `bindings.*` components implement (upstream's
//! `bindings.OutputBinding` and `bindings.InputBinding`), the shapes daprd hands them, and
//! the built-in bindings.
//!
//! An output binding performs an operation the app names (`create`, `get`, `exec`, ...)
//! with the request's data and metadata and answers with data and metadata. An input
//! binding reads events from its source and hands each to daprd's [`EventHandler`], which
//! calls the app: `Ok` means the app accepted the event (the binding acknowledges it to
//! its source where the source has acknowledgements), `Err` means it did not (the
//! binding leaves the event for redelivery where the source redelivers). One component
//! can be both; daprd decides which halves it uses (the `direction` metadata).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

mod catalog;
pub mod cron;
pub mod http;
pub mod localstorage;
pub mod mqtt3;
pub mod postgresql;
pub mod rabbitmq;
pub mod redis;
mod settings;

pub use catalog::{BINDING_TYPES, OpenError, open};

pub use crate::pubsub::{StopSignal, Subscription as Reading};

/// An operation name (upstream's `OperationKind`).
pub type Operation = String;

/// Upstream's operation names shared by many bindings.
pub mod operations {
    /// Create or write something.
    pub const CREATE: &str = "create";
    /// Read one thing.
    pub const GET: &str = "get";
    /// List things.
    pub const LIST: &str = "list";
    /// Delete one thing.
    pub const DELETE: &str = "delete";
}

/// A failed binding operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// The component's metadata is wrong; the component cannot start.
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),
    /// The binding does not support the requested operation.
    #[error("binding does not support operation {0}")]
    UnsupportedOperation(String),
    /// The request is malformed (missing metadata key, bad path, ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// The backing service failed or could not be reached.
    #[error("{0}")]
    Backend(String),
    /// The binding is shutting down.
    #[error("binding closed")]
    Closed,
}

impl BindingError {
    /// A backend failure from any displayable error.
    pub fn backend(error: impl std::fmt::Display) -> Self {
        Self::Backend(error.to_string())
    }
}

/// A call to an output binding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeRequest {
    /// The operation.
    pub operation: Operation,
    /// The payload, as the app sent it.
    pub data: Bytes,
    /// Request metadata (operation parameters such as `key`, `sql`, `path`).
    pub metadata: HashMap<String, String>,
}

/// An output binding's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeResponse {
    /// The payload returned to the app (may be empty).
    pub data: Bytes,
    /// Response metadata.
    pub metadata: HashMap<String, String>,
    /// The payload's content type, when the binding knows it.
    pub content_type: Option<String>,
}

/// An event read by an input binding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputEvent {
    /// The payload.
    pub data: Bytes,
    /// Metadata about the event (sent to the app as headers / gRPC metadata).
    pub metadata: HashMap<String, String>,
    /// The payload's content type, when the source carries one.
    pub content_type: Option<String>,
}

/// The app did not accept an input event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventRejected(pub String);

/// Receives an input binding's events.
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync {
    /// Delivers one event to the app; `Ok` carries the app's reply body.
    async fn handle(&self, event: InputEvent) -> Result<Bytes, EventRejected>;
}

/// An output binding component.
#[async_trait::async_trait]
pub trait OutputBinding: Send + Sync {
    /// The operations this binding performs (reported by the metadata API).
    fn operations(&self) -> Vec<Operation>;

    /// Performs one operation.
    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, BindingError>;

    /// Releases connections.
    async fn close(&self) -> Result<(), BindingError> {
        Ok(())
    }
}

/// An input binding component.
#[async_trait::async_trait]
pub trait InputBinding: Send + Sync {
    /// Starts reading events and delivering them to `handler`; the returned [`Reading`]
    /// stops the reading gracefully (events being handled complete first).
    async fn read(&self, handler: Arc<dyn EventHandler>) -> Result<Reading, BindingError>;

    /// Releases connections; a running reading should be stopped first.
    async fn close(&self) -> Result<(), BindingError> {
        Ok(())
    }
}

/// A started binding component: the halves it implements.
#[derive(Clone, Default)]
pub struct Binding {
    /// The output half, when the component has one.
    pub output: Option<Arc<dyn OutputBinding>>,
    /// The input half, when the component has one.
    pub input: Option<Arc<dyn InputBinding>>,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("output", &self.output.is_some())
            .field("input", &self.input.is_some())
            .finish()
    }
}
