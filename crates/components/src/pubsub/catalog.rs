//! The pub/sub brokers this build provides, created by upstream's component type and
//! version (`pubsub.in-memory` `v1`, ...).

use std::sync::Arc;

use super::{PubSub, PubSubError, in_memory, jetstream, mqtt3, rabbitmq, redis};
use crate::metadata::Properties;
use crate::version::is_initial;

/// Every `type` this build accepts, with the versions each has.
pub const PUBSUB_TYPES: &[(&str, &[&str])] = &[
    ("pubsub.in-memory", &["v1"]),
    ("pubsub.redis", &["v1"]),
    ("pubsub.mqtt3", &["v1"]),
    ("pubsub.rabbitmq", &["v1"]),
    ("pubsub.jetstream", &["v1"]),
];

/// Why a broker could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No broker of this type and version exists in this build.
    #[error("couldn't find message bus {component_type}/{version}")]
    Unknown {
        /// The component's `spec.type`.
        component_type: String,
        /// The component's `spec.version`.
        version: String,
    },
    /// The broker refused its metadata or could not reach its server.
    #[error(transparent)]
    Init(#[from] PubSubError),
}

/// Creates and initializes the broker named by `component_type` and `version` from its
/// `properties`.
pub async fn open(
    component_type: &str,
    version: &str,
    properties: &Properties,
) -> Result<Arc<dyn PubSub>, OpenError> {
    let kind = component_type.to_ascii_lowercase();
    let broker: Arc<dyn PubSub> = match kind.as_str() {
        "pubsub.in-memory" if is_initial(version) => {
            Arc::new(in_memory::InMemoryPubSub::open(properties)?)
        }
        "pubsub.redis" if is_initial(version) => Arc::new(redis::open(properties).await?),
        "pubsub.mqtt3" if is_initial(version) => Arc::new(mqtt3::open(properties).await?),
        "pubsub.rabbitmq" if is_initial(version) => Arc::new(rabbitmq::open(properties).await?),
        "pubsub.jetstream" if is_initial(version) => Arc::new(jetstream::open(properties).await?),
        _ => {
            return Err(OpenError::Unknown {
                component_type: component_type.to_owned(),
                version: version.to_owned(),
            });
        }
    };
    Ok(broker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn types_and_versions_are_matched_like_upstream() {
        let properties = Properties::default();
        assert!(open("pubsub.in-memory", "", &properties).await.is_ok());
        assert!(open("PubSub.In-Memory", "V1", &properties).await.is_ok());
        for (component_type, versions) in PUBSUB_TYPES {
            assert_eq!(*versions, ["v1"], "{component_type}");
        }
        let error = open("pubsub.redis", "v2", &properties).await.err().unwrap();
        assert_eq!(
            error.to_string(),
            "couldn't find message bus pubsub.redis/v2"
        );
        let error = open("pubsub.in-memory", "v2", &properties)
            .await
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "couldn't find message bus pubsub.in-memory/v2"
        );
        let error = open("pubsub.nope", "v1", &properties).await.err().unwrap();
        assert_eq!(
            error.to_string(),
            "couldn't find message bus pubsub.nope/v1"
        );
    }
}
