//! The secret stores this build provides, created by upstream's component type and version.

use std::sync::Arc;

use super::{SecretError, SecretStore, local_env, local_file};
use crate::metadata::Properties;
use crate::version::is_initial;

/// Every `type` this build accepts (each has only `v1`).
pub const SECRET_STORE_TYPES: &[&str] = &["secretstores.local.file", "secretstores.local.env"];

/// Why a secret store could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No store of this type and version exists in this build.
    #[error("couldn't find secret store {component_type}/{version}")]
    Unknown {
        /// The component's `spec.type`.
        component_type: String,
        /// The component's `spec.version`.
        version: String,
    },
    /// The store refused its metadata.
    #[error(transparent)]
    Init(#[from] SecretError),
}

/// Creates the secret store named by `component_type` and `version` from its `properties`.
pub fn open(
    component_type: &str,
    version: &str,
    properties: &Properties,
) -> Result<Arc<dyn SecretStore>, OpenError> {
    let store: Arc<dyn SecretStore> = match component_type.to_ascii_lowercase().as_str() {
        "secretstores.local.file" if is_initial(version) => {
            Arc::new(local_file::LocalFileSecretStore::open(properties)?)
        }
        "secretstores.local.env" if is_initial(version) => {
            Arc::new(local_env::LocalEnvSecretStore::open(properties)?)
        }
        _ => {
            return Err(OpenError::Unknown {
                component_type: component_type.to_owned(),
                version: version.to_owned(),
            });
        }
    };
    Ok(store)
}
