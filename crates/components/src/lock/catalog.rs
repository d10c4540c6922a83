//! The lock stores this build provides, created by upstream's component type and version
//! (`lock.redis` `v1`, ...).

use std::sync::Arc;

use super::{LockError, LockStore, in_memory, redis};
use crate::metadata::Properties;
use crate::version::is_initial;

/// Every `type` this build accepts, with the versions each has.
pub const LOCK_TYPES: &[(&str, &[&str])] = &[("lock.in-memory", &["v1"]), ("lock.redis", &["v1"])];

/// Why a lock store could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No lock store of this type and version exists in this build.
    #[error("couldn't find lock store {component_type}/{version}")]
    Unknown {
        /// The component's `spec.type`.
        component_type: String,
        /// The component's `spec.version`.
        version: String,
    },
    /// The store refused its metadata or could not reach its server.
    #[error(transparent)]
    Init(#[from] LockError),
}

/// Creates and initializes the lock store named by `component_type` and `version`.
pub async fn open(
    component_type: &str,
    version: &str,
    properties: &Properties,
) -> Result<Arc<dyn LockStore>, OpenError> {
    let store: Arc<dyn LockStore> = match component_type.to_ascii_lowercase().as_str() {
        "lock.in-memory" if is_initial(version) => Arc::new(in_memory::InMemoryLock::default()),
        "lock.redis" if is_initial(version) => Arc::new(redis::open(properties).await?),
        _ => {
            return Err(OpenError::Unknown {
                component_type: component_type.to_owned(),
                version: version.to_owned(),
            });
        }
    };
    Ok(store)
}
