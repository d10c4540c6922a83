//! The state stores this build provides, created by upstream's component type and version
//! (`state.redis` `v1`, `state.postgresql` `v2`, ...).

use std::sync::Arc;

use super::{StateError, StateStore, in_memory, postgresql, redis, sqlite};
use crate::metadata::Properties;
use crate::version::is_initial;

/// Every `type` this build accepts, with the versions each has.
pub const STATE_STORE_TYPES: &[(&str, &[&str])] = &[
    ("state.in-memory", &["v1"]),
    ("state.sqlite", &["v1"]),
    ("state.sqlite3", &["v1"]),
    ("state.redis", &["v1"]),
    ("state.postgresql", &["v1", "v2"]),
    ("state.postgres", &["v1", "v2"]),
];

/// Why a state store could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No store of this type and version exists in this build.
    #[error("couldn't find state store {component_type}/{version}")]
    Unknown {
        /// The component's `spec.type`.
        component_type: String,
        /// The component's `spec.version`.
        version: String,
    },
    /// The store refused its metadata or could not reach its backend.
    #[error(transparent)]
    Init(#[from] StateError),
}

/// Creates and initializes the state store named by `component_type` and `version` from
/// its `properties`.
pub async fn open(
    component_type: &str,
    version: &str,
    properties: &Properties,
) -> Result<Arc<dyn StateStore>, OpenError> {
    let unknown = || OpenError::Unknown {
        component_type: component_type.to_owned(),
        version: version.to_owned(),
    };
    let kind = component_type.to_ascii_lowercase();
    let store: Arc<dyn StateStore> = match kind.as_str() {
        "state.in-memory" if is_initial(version) => {
            Arc::new(in_memory::InMemoryStateStore::open(properties)?)
        }
        "state.sqlite" | "state.sqlite3" if is_initial(version) => {
            Arc::new(sqlite::SqliteStateStore::open(properties).await?)
        }
        "state.redis" if is_initial(version) => Arc::new(redis::open(properties).await?),
        "state.postgresql" | "state.postgres" => {
            let version =
                postgresql::PostgresVersion::from_component_version(&version.to_ascii_lowercase())
                    .map_err(|_| unknown())?;
            Arc::new(postgresql::open(properties, version).await?)
        }
        _ => return Err(unknown()),
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn types_and_versions_are_matched_like_upstream() {
        let properties = Properties::default();
        assert!(open("state.in-memory", "", &properties).await.is_ok());
        assert!(open("State.In-Memory", "V1", &properties).await.is_ok());
        let error = open("state.in-memory", "v2", &properties)
            .await
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "couldn't find state store state.in-memory/v2"
        );
        let error = open("state.nope", "v1", &properties).await.err().unwrap();
        assert_eq!(error.to_string(), "couldn't find state store state.nope/v1");
    }
}
