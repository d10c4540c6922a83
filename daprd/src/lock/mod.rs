//! The distributed lock API's core (`TryLockAlpha1`, `UnlockAlpha1`), shared by the HTTP
//! and gRPC edges: the request checks in upstream's order (expiry, stores configured,
//! resource id, owner, store), the resource id prefixed as upstream stores it
//! (`lock||<prefix>||<resource>`, the prefix chosen by the component's `keyPrefix`:
//! `appid` (default), `name`, `none` or a custom text), and upstream's errors.

mod errors;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use dapr_components::lock::{LockStore, TryLockRequest, UnlockRequest, UnlockStatus};

use crate::error::ApiError;
use crate::resiliency::{ComponentKind, Direction, Policy};
use crate::runtime::Runtime;

/// The component metadata choosing the key prefix.
pub const KEY_PREFIX_METADATA: &str = "keyPrefix";
/// What every lock key starts with.
const API_PREFIX: &str = "lock";
/// Between the parts of a lock key; forbidden in resource ids and prefixes.
const SEPARATOR: &str = "||";

/// How resource ids are prefixed in a lock store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockKeyPrefix {
    /// `lock||<app id>||<resource>` (upstream's default).
    AppId,
    /// `lock||<store name>||<resource>`.
    StoreName,
    /// `lock||<resource>`.
    None,
    /// `lock||<text>||<resource>`.
    Custom(String),
}

impl LockKeyPrefix {
    /// Reads `keyPrefix` (any case; unset means `appid`).
    pub fn parse(setting: Option<&str>) -> Result<Self, String> {
        let setting = setting.unwrap_or("appid").to_ascii_lowercase();
        if setting.contains(SEPARATOR) {
            return Err(format!(
                "input key/keyPrefix '{setting}' can't contain '{SEPARATOR}'"
            ));
        }
        Ok(match setting.as_str() {
            "appid" => Self::AppId,
            "name" => Self::StoreName,
            "none" => Self::None,
            _ => Self::Custom(setting),
        })
    }

    /// The key `resource` is stored under in `store` for `app_id`.
    pub fn key(&self, resource: &str, store: &str, app_id: &str) -> Result<String, String> {
        if resource.contains(SEPARATOR) {
            return Err(format!(
                "input key/keyPrefix '{resource}' can't contain '{SEPARATOR}'"
            ));
        }
        Ok(match self {
            Self::AppId if !app_id.is_empty() => {
                format!("{API_PREFIX}{SEPARATOR}{app_id}{SEPARATOR}{resource}")
            }
            Self::AppId | Self::None => format!("{API_PREFIX}{SEPARATOR}{resource}"),
            Self::StoreName => format!("{API_PREFIX}{SEPARATOR}{store}{SEPARATOR}{resource}"),
            Self::Custom(prefix) => format!("{API_PREFIX}{SEPARATOR}{prefix}{SEPARATOR}{resource}"),
        })
    }
}

/// A lock store and how the sidecar uses it.
pub struct LockStoreHandle {
    /// The component's name.
    pub name: String,
    /// Its `spec.type`.
    pub component_type: String,
    /// The store.
    pub store: Arc<dyn LockStore>,
    /// How resource ids are prefixed.
    pub key_prefix: LockKeyPrefix,
}

impl std::fmt::Debug for LockStoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockStoreHandle")
            .field("name", &self.name)
            .field("component_type", &self.component_type)
            .finish_non_exhaustive()
    }
}

/// A lock request as both edges receive it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockRequest {
    /// The store's name.
    pub store_name: String,
    /// The resource to lock.
    pub resource_id: String,
    /// Who holds the lock.
    pub lock_owner: String,
    /// How long the lock is held at most (try-lock only).
    pub expiry_in_seconds: i32,
}

/// Checks the parts both operations share and finds the store.
fn validate(runtime: &Runtime, request: &LockRequest) -> Result<Arc<LockStoreHandle>, ApiError> {
    let components = runtime.components.snapshot();
    if components.locks.is_empty() {
        return Err(errors::not_configured());
    }
    if request.resource_id.is_empty() {
        return Err(errors::resource_id_empty(&request.store_name));
    }
    if request.lock_owner.is_empty() {
        return Err(errors::owner_empty(&request.store_name));
    }
    components
        .locks
        .get(&request.store_name)
        .cloned()
        .ok_or_else(|| errors::store_not_found(&request.store_name))
}

/// Takes the lock if it is free: `Ok(true)` when the caller now holds it.
pub async fn try_lock(runtime: &Runtime, request: LockRequest) -> Result<bool, ApiError> {
    if request.expiry_in_seconds <= 0 {
        return Err(logged(errors::expiry_not_positive(&request.store_name)));
    }
    let handle = validate(runtime, &request).map_err(logged)?;
    let resource_id = handle
        .key_prefix
        .key(&request.resource_id, &handle.name, &runtime.config.app_id)
        .map_err(|reason| logged(errors::try_lock_failed(reason)))?;
    let request = TryLockRequest {
        resource_id,
        lock_owner: request.lock_owner,
        expiry_in_seconds: request.expiry_in_seconds,
    };
    outbound_policy(runtime, &handle)
        .call(request, |request| handle.store.try_lock(request))
        .await
        .map_err(|error| logged(errors::try_lock_failed(error)))
}

/// Releases the lock when the caller holds it. Failures carry upstream's
/// `INTERNAL_ERROR` status alongside the error.
pub async fn unlock(runtime: &Runtime, request: LockRequest) -> Result<UnlockStatus, ApiError> {
    let handle = validate(runtime, &request).map_err(logged)?;
    let resource_id = handle
        .key_prefix
        .key(&request.resource_id, &handle.name, &runtime.config.app_id)
        .map_err(|reason| logged(errors::unlock_failed(reason)))?;
    let request = UnlockRequest {
        resource_id,
        lock_owner: request.lock_owner,
    };
    outbound_policy(runtime, &handle)
        .call(request, |request| handle.store.unlock(request))
        .await
        .map_err(|error| logged(errors::unlock_failed(error)))
}

/// The outbound resiliency policy of the lock store.
fn outbound_policy(runtime: &Runtime, handle: &LockStoreHandle) -> Policy {
    runtime
        .resiliency
        .component_policy(&handle.name, ComponentKind::Lock, Direction::Outbound)
}

fn logged(error: ApiError) -> ApiError {
    tracing::debug!("{error}");
    error
}
