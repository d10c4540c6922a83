//! Bindings: the output binding API's core, shared by the HTTP and gRPC edges, and the
//! delivery of input binding events to the app.
//!
//! An output call names a binding and an operation (upstream's order of checks: the
//! operation is given, the binding exists, the binding has the operation), runs it, and
//! records `dapr_component_output_binding_*`; every failure is upstream's
//! `ERR_INVOKE_OUTPUT_BINDING` (see [`errors`]). Which halves of a component the sidecar
//! uses, and where its events go, is decided when it starts ([`BindingHandle`]); reading
//! from input bindings runs while the app is healthy ([`InputBindings`]).

pub mod errors;
mod handle;
mod input;
#[cfg(test)]
mod tests;

pub use handle::BindingHandle;
pub use input::InputBindings;

use std::time::Instant;

use dapr_components::bindings::{InvokeRequest, InvokeResponse};

use crate::components::ComponentSet;
use crate::error::ApiError;
use crate::observability::metrics::OperationKind;
use crate::resiliency::{ComponentKind, Direction, Resiliency};
use crate::runtime::Runtime;
use crate::state::Protocol;

/// Invokes output binding `name` for a caller of `protocol`: the core of HTTP
/// `POST /v1.0/bindings/{name}` and gRPC `InvokeBinding`.
pub async fn invoke(
    runtime: &Runtime,
    protocol: Protocol,
    name: &str,
    request: InvokeRequest,
) -> Result<InvokeResponse, ApiError> {
    let operation = request.operation.clone();
    let started = Instant::now();
    let result = send(
        &runtime.resiliency,
        &runtime.components.snapshot(),
        name,
        request,
    )
    .await;
    runtime.metrics.record_component_operation(
        OperationKind::OutputBinding,
        name,
        &operation,
        result.is_ok(),
        started.elapsed(),
    );
    result.map_err(|reason| {
        let error = errors::invoke_failed(name, &reason, protocol);
        tracing::debug!("{error}");
        error
    })
}

/// Runs `request` on output binding `name` of `components` (upstream's
/// `SendToOutputBinding`) under the binding's outbound policy in `resiliency`; a failure
/// is upstream's reason text.
pub(crate) async fn send(
    resiliency: &Resiliency,
    components: &ComponentSet,
    name: &str,
    request: InvokeRequest,
) -> Result<InvokeResponse, String> {
    if request.operation.is_empty() {
        return Err("operation field is missing from request".to_owned());
    }
    let Some(output) = components
        .binding(name)
        .and_then(|handle| handle.output.as_ref())
    else {
        return Err(format!("couldn't find output binding {name}"));
    };
    let operations = output.operations();
    if !operations.contains(&request.operation) {
        return Err(format!(
            "binding {name} does not support operation {}. supported operations:{}",
            request.operation,
            operations.join(" ")
        ));
    }
    resiliency
        .component_policy(name, ComponentKind::Binding, Direction::Outbound)
        .call(request, |request| output.invoke(request))
        .await
        .map_err(|error| error.to_string())
}
