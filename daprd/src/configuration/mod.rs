//! The configuration API's core, shared by the HTTP and gRPC edges: finding the store,
//! reading the items (`GetConfiguration` and its alpha1 alias), recording
//! `dapr_component_configuration_*`, and upstream's errors; subscriptions are in
//! [`subscribe`].

pub mod subscribe;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use dapr_components::configuration::{ConfigurationItem, ConfigurationStore};

use crate::error::ApiError;
use crate::observability::metrics::OperationKind;
use crate::resiliency::{ComponentKind, Direction};
use crate::runtime::Runtime;

/// A configuration store and its name.
pub struct ConfigurationStoreHandle {
    /// The component's name.
    pub name: String,
    /// Its `spec.type`.
    pub component_type: String,
    /// The store.
    pub store: Arc<dyn ConfigurationStore>,
}

impl std::fmt::Debug for ConfigurationStoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigurationStoreHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Store `store_name`, or upstream's error when there is none or no such store.
pub(crate) fn store(
    runtime: &Runtime,
    store_name: &str,
) -> Result<Arc<ConfigurationStoreHandle>, ApiError> {
    let components = runtime.components.snapshot();
    if components.configurations.is_empty() {
        return Err(logged(
            ApiError::new(
                "ERR_CONFIGURATION_STORE_NOT_CONFIGURED",
                "configuration stores not configured",
                StatusCode::INTERNAL_SERVER_ERROR,
                tonic::Code::FailedPrecondition,
            )
            .with_info("ERR_CONFIGURATION_STORE_NOT_CONFIGURED", BTreeMap::new()),
        ));
    }
    let Some(handle) = components.configurations.get(store_name).cloned() else {
        return Err(logged(
            ApiError::new(
                "ERR_CONFIGURATION_STORE_NOT_FOUND",
                format!("configuration store {store_name} not found"),
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
            )
            .with_info("ERR_CONFIGURATION_STORE_NOT_FOUND", BTreeMap::new()),
        ));
    };
    Ok(handle)
}

/// Reads `keys` (every item when empty) from store `store_name`.
pub async fn get(
    runtime: &Runtime,
    store_name: &str,
    keys: &[String],
    metadata: &HashMap<String, String>,
) -> Result<BTreeMap<String, ConfigurationItem>, ApiError> {
    let handle = store(runtime, store_name)?;
    let started = Instant::now();
    let result = runtime
        .resiliency
        .component_policy(
            store_name,
            ComponentKind::Configuration,
            Direction::Outbound,
        )
        .call((), |()| handle.store.get(keys, metadata))
        .await;
    runtime.metrics.record_component_operation(
        OperationKind::Configuration,
        store_name,
        "get",
        result.is_ok(),
        started.elapsed(),
    );
    result.map_err(|error| {
        logged(
            ApiError::new(
                "ERR_CONFIGURATION_GET",
                format!(
                    "failed to get [{}] from Configuration store {store_name}: {error}",
                    keys.join(" ")
                ),
                StatusCode::INTERNAL_SERVER_ERROR,
                tonic::Code::Internal,
            )
            .with_info("ERR_CONFIGURATION_GET", BTreeMap::new()),
        )
    })
}

pub(crate) fn logged(error: ApiError) -> ApiError {
    tracing::debug!("{error}");
    error
}
