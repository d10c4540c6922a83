//! The crypto components this build provides, created by upstream's component type and
//! version (`crypto.dapr.localstorage` `v1`, `crypto.dapr.jwks` `v1`).

use std::sync::Arc;

use super::{CryptoError, CryptoProvider, jwks, localstorage};
use crate::metadata::Properties;
use crate::version::is_initial;

/// Every `type` this build accepts, with the versions each has.
pub const CRYPTO_TYPES: &[(&str, &[&str])] = &[
    ("crypto.dapr.jwks", &["v1"]),
    ("crypto.dapr.localstorage", &["v1"]),
];

/// Why a crypto component could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No crypto component of this type and version exists in this build.
    #[error("couldn't find crypto provider {component_type}/{version}")]
    Unknown {
        /// The component's `spec.type`.
        component_type: String,
        /// The component's `spec.version`.
        version: String,
    },
    /// The component refused its metadata or could not load its keys.
    #[error(transparent)]
    Init(#[from] CryptoError),
}

/// Creates and initializes the crypto component named by `component_type` and `version`.
pub async fn open(
    component_type: &str,
    version: &str,
    properties: &Properties,
) -> Result<Arc<dyn CryptoProvider>, OpenError> {
    let provider: Arc<dyn CryptoProvider> = match component_type.to_ascii_lowercase().as_str() {
        "crypto.dapr.localstorage" if is_initial(version) => {
            Arc::new(localstorage::open(properties)?)
        }
        "crypto.dapr.jwks" if is_initial(version) => Arc::new(jwks::open(properties).await?),
        _ => {
            return Err(OpenError::Unknown {
                component_type: component_type.to_owned(),
                version: version.to_owned(),
            });
        }
    };
    Ok(provider)
}
