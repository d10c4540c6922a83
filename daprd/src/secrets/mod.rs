//! The secrets API's core, shared by the HTTP and gRPC edges: reading one secret or every
//! secret of a store, with the Configuration's secret scopes applied and each store call
//! counted in `dapr_component_secret_*`.
//!
//! As upstream: a sidecar without secret stores answers `ERR_SECRET_STORES_NOT_CONFIGURED`,
//! an unknown store `ERR_SECRET_STORE_NOT_FOUND`; a secret the scope denies is refused
//! (`ERR_PERMISSION_DENIED`) before the store is asked, while a bulk read leaves denied
//! secrets out of its answer. Request metadata goes to the store unchanged.

mod errors;
mod scopes;
#[cfg(test)]
mod tests;

pub use scopes::{ScopesError, SecretScopes};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use dapr_components::secretstores::Secret;

use crate::components::SecretStoreHandle;
use crate::error::ApiError;
use crate::observability::metrics::{OperationKind, operation};
use crate::resiliency::{ComponentKind, Direction, Policy};
use crate::runtime::Runtime;

/// The outbound resiliency policy of secret store `store_name`.
fn outbound_policy(runtime: &Runtime, store_name: &str) -> Policy {
    runtime
        .resiliency
        .component_policy(store_name, ComponentKind::SecretStore, Direction::Outbound)
}

/// Reads secret `key` from store `store_name`, passing `metadata` to the store.
pub async fn get_secret(
    runtime: &Runtime,
    store_name: &str,
    key: &str,
    metadata: &HashMap<String, String>,
) -> Result<Secret, ApiError> {
    let handle = secret_store(runtime, store_name)?;
    if !runtime.secret_scopes.is_allowed(store_name, key) {
        return Err(logged(errors::permission_denied(key, store_name)));
    }
    let started = Instant::now();
    let result = outbound_policy(runtime, store_name)
        .call((), |()| handle.store.get_secret(key, metadata))
        .await;
    runtime.metrics.record_component_operation(
        OperationKind::Secret,
        store_name,
        operation::GET,
        result.is_ok(),
        started.elapsed(),
    );
    result.map_err(|error| logged(errors::get_failed(key, store_name, error)))
}

/// Reads every secret of store `store_name` the app may see, by name, passing `metadata`
/// to the store.
pub async fn bulk_get_secret(
    runtime: &Runtime,
    store_name: &str,
    metadata: &HashMap<String, String>,
) -> Result<BTreeMap<String, Secret>, ApiError> {
    let handle = secret_store(runtime, store_name)?;
    let started = Instant::now();
    let result = outbound_policy(runtime, store_name)
        .call((), |()| handle.store.bulk_get_secret(metadata))
        .await;
    runtime.metrics.record_component_operation(
        OperationKind::Secret,
        store_name,
        operation::BULK_GET,
        result.is_ok(),
        started.elapsed(),
    );
    let mut secrets = result.map_err(|error| logged(errors::bulk_get_failed(store_name, error)))?;
    secrets.retain(|key, _| {
        let allowed = runtime.secret_scopes.is_allowed(store_name, key);
        if !allowed {
            tracing::debug!("{}", errors::permission_denied(key, store_name));
        }
        allowed
    });
    Ok(secrets)
}

/// The store called `store_name`, or upstream's error for a missing one.
fn secret_store(runtime: &Runtime, store_name: &str) -> Result<Arc<SecretStoreHandle>, ApiError> {
    let components = runtime.components.snapshot();
    if components.secret_stores.is_empty() {
        return Err(logged(errors::not_configured()));
    }
    components
        .secret_store(store_name)
        .cloned()
        .ok_or_else(|| logged(errors::store_not_found(store_name)))
}

/// Logs `error` at debug level, as upstream does for every secrets API failure.
fn logged(error: ApiError) -> ApiError {
    tracing::debug!("{error}");
    error
}
