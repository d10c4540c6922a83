//! The configuration stores this build provides, created by upstream's component type and
//! version (`configuration.redis`, `configuration.postgresql` and its alias
//! `configuration.postgres`, each `v1`).

use std::sync::Arc;

use super::{ConfigurationError, ConfigurationStore, postgresql, redis};
use crate::metadata::Properties;
use crate::version::is_initial;

/// Every `type` this build accepts, with the versions each has.
pub const CONFIGURATION_TYPES: &[(&str, &[&str])] = &[
    ("configuration.redis", &["v1"]),
    ("configuration.postgresql", &["v1"]),
    ("configuration.postgres", &["v1"]),
];

/// Why a configuration store could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No configuration store of this type and version exists in this build.
    #[error("couldn't find configuration store {component_type}/{version}")]
    Unknown {
        /// The component's `spec.type`.
        component_type: String,
        /// The component's `spec.version`.
        version: String,
    },
    /// The store refused its metadata or could not reach its server.
    #[error(transparent)]
    Init(#[from] ConfigurationError),
}

/// Creates and initializes the configuration store named by `component_type` and
/// `version`.
pub async fn open(
    component_type: &str,
    version: &str,
    properties: &Properties,
) -> Result<Arc<dyn ConfigurationStore>, OpenError> {
    match component_type.to_ascii_lowercase().as_str() {
        "configuration.redis" if is_initial(version) => {
            Ok(Arc::new(redis::open(properties).await?))
        }
        "configuration.postgresql" | "configuration.postgres" if is_initial(version) => {
            Ok(Arc::new(postgresql::open(properties).await?))
        }
        _ => Err(OpenError::Unknown {
            component_type: component_type.to_owned(),
            version: version.to_owned(),
        }),
    }
}
