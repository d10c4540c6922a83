//! `state.postgresql`, both of upstream's versions, sharing one implementation and
//! keeping upstream's on-store layout so a database set up by upstream daprd works here
//! and the reverse:
//!
//! - **v1** (`version: v1`, the default): table `tableName` (default `state`) with a
//!   `jsonb` value, `isbinary` flag (binary values as base64 JSON strings), `xmin` as the
//!   ETag, and the alpha1 query API translated to SQL (modules `v1`, `query`).
//! - **v2** (`version: v2`): table `<tablePrefix>state` with a `bytea` value and a random
//!   UUID ETag column; no query API (module `v2`).
//!
//! Build a store with [`open`] and the component's `version` ([`PostgresVersion`]).
//!
//! Both record their migration level and last TTL cleanup in the metadata table
//! (`metadataTableName`, default `dapr_metadata`) under upstream's keys (modules `migrations`,
//! `cleanup`), honour `ttlInSeconds` through an expiry column (reporting
//! `ttlExpireTime` on reads) and run transactions as one SQL transaction.
//!
//! Connections use TLS as libpq's `sslmode` and its `sslrootcert`, `sslcert` and `sslkey`
//! files say (module `tls`; the default `prefer` tries TLS first).
//!
//! Not supported: Azure AD / AWS IAM sign-in (refused with an invalid-metadata error),
//! encrypted client keys (`sslpassword`), and upstream's `KEYS_LIKE` feature, which the
//! [`StateStore`] contract lacks.
//!
//! [`StateStore`]: crate::state::StateStore

mod cleanup;
mod connection;
mod layout;
pub(crate) mod metadata;
mod migrations;
pub(crate) mod pool;
mod query;
mod store;
mod tls;
mod v1;
mod v2;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

pub use store::PostgresStateStore;

use std::sync::Arc;

use crate::metadata::Properties;
use crate::state::StateError;

/// Which of upstream's two layouts a component uses (its `version` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostgresVersion {
    /// `v1`: `jsonb` values, `xmin` ETags, query API.
    V1,
    /// `v2`: `bytea` values, UUID ETags.
    V2,
}

impl PostgresVersion {
    /// Reads a component's `version` field; an empty version means `v1`, as upstream's
    /// registry defaults to it.
    pub fn from_component_version(version: &str) -> Result<Self, StateError> {
        match version {
            "" | "v1" => Ok(Self::V1),
            "v2" => Ok(Self::V2),
            other => Err(StateError::InvalidMetadata(format!(
                "state.postgresql has no version {other:?} (use v1 or v2)"
            ))),
        }
    }
}

/// Opens a `state.postgresql` store: reads the settings, connects and pings within
/// `timeout`, applies the schema migrations, and starts the expired-row cleanup.
pub async fn open(
    properties: &Properties,
    version: PostgresVersion,
) -> Result<PostgresStateStore, StateError> {
    let settings = metadata::Settings::parse(properties, version)?;
    let pool = Arc::new(pool::Pool::new(settings.pool.clone()));
    tokio::time::timeout(settings.timeout, async {
        pool.get().await?.batch("SELECT 1").await
    })
    .await
    .map_err(|_| {
        StateError::Backend(format!(
            "failed to connect to the database within {:?}",
            settings.timeout
        ))
    })??;
    let layout = layout::Layout::new(version, &settings.state_table);
    migrations::perform(
        &pool,
        &settings.state_table,
        &settings.metadata_table,
        &settings.migrations_key,
        &layout::Layout::migrations(version, &settings.state_table),
    )
    .await?;
    let cleanup = settings.cleanup_interval.map(|interval| {
        Arc::new(cleanup::Cleanup::new(
            Arc::clone(&pool),
            &settings.metadata_table,
            layout.statements.delete_expired.clone(),
            settings.last_cleanup_key.clone(),
            interval,
        ))
    });
    Ok(PostgresStateStore::new(store::Parts {
        version,
        pool,
        layout,
        state_table: settings.state_table,
        timeout: settings.timeout,
        cleanup,
    }))
}
