//! The bindings this build provides, created by upstream's component type and version
//! (`bindings.cron` `v1`, ...).

use std::sync::Arc;

use super::{Binding, BindingError, cron, http, localstorage, mqtt3, postgresql, rabbitmq, redis};
use crate::metadata::Properties;
use crate::version::is_initial;

/// Every `type` this build accepts, with the versions each has.
pub const BINDING_TYPES: &[(&str, &[&str])] = &[
    ("bindings.cron", &["v1"]),
    ("bindings.localstorage", &["v1"]),
    ("bindings.http", &["v1"]),
    ("bindings.redis", &["v1"]),
    ("bindings.postgresql", &["v1"]),
    ("bindings.mqtt3", &["v1"]),
    ("bindings.rabbitmq", &["v1"]),
];

/// Why a binding could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No binding of this type and version exists in this build.
    #[error("couldn't find binding {component_type}/{version}")]
    Unknown {
        /// The component's `spec.type`.
        component_type: String,
        /// The component's `spec.version`.
        version: String,
    },
    /// The binding refused its metadata or could not reach its server.
    #[error(transparent)]
    Init(#[from] BindingError),
}

/// Creates and initializes the binding named by `component_type` and `version` from its
/// `properties`, with the halves (input, output) the type implements.
pub async fn open(
    component_type: &str,
    version: &str,
    properties: &Properties,
) -> Result<Binding, OpenError> {
    let kind = component_type.to_ascii_lowercase();
    let binding = match kind.as_str() {
        "bindings.cron" if is_initial(version) => Binding {
            input: Some(Arc::new(cron::open(properties)?)),
            output: None,
        },
        "bindings.localstorage" if is_initial(version) => Binding {
            output: Some(Arc::new(localstorage::open(properties)?)),
            input: None,
        },
        "bindings.http" if is_initial(version) => Binding {
            output: Some(Arc::new(http::open(properties)?)),
            input: None,
        },
        "bindings.redis" if is_initial(version) => Binding {
            output: Some(Arc::new(redis::open(properties).await?)),
            input: None,
        },
        "bindings.postgresql" if is_initial(version) => Binding {
            output: Some(Arc::new(postgresql::open(properties).await?)),
            input: None,
        },
        // One object serves both halves; daprd closes it once.
        "bindings.mqtt3" if is_initial(version) => {
            let binding = Arc::new(mqtt3::open(properties)?);
            Binding {
                output: Some(binding.clone()),
                input: Some(binding),
            }
        }
        "bindings.rabbitmq" if is_initial(version) => {
            let binding = Arc::new(rabbitmq::open(properties).await?);
            Binding {
                output: Some(binding.clone()),
                input: Some(binding),
            }
        }
        _ => {
            return Err(OpenError::Unknown {
                component_type: component_type.to_owned(),
                version: version.to_owned(),
            });
        }
    };
    Ok(binding)
}
