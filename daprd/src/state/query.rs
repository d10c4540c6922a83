//! The alpha1 state query: the caller's JSON query, confined to the caller's keys (the
//! store's key prefix for this app always replaces any `queryKeyPrefix` the caller sent),
//! with the prefix stripped from the keys of the results.

use std::collections::HashMap;
use std::time::Instant;

use dapr_components::state::query::Query;
use dapr_components::state::{QUERY_KEY_PREFIX_METADATA, QueryResponse, StateError};

use super::{Store, errors};
use crate::components::original_key;
use crate::error::ApiError;
use crate::observability::metrics::operation;

impl Store<'_> {
    /// Runs `document` (the query's JSON text); a document that does not parse, or a store
    /// failure, is `ERR_STATE_QUERY`.
    pub async fn query(
        &self,
        document: &[u8],
        mut metadata: HashMap<String, String>,
    ) -> Result<QueryResponse, ApiError> {
        let query = parse(document).map_err(|detail| {
            errors::query_failed(
                self.name(),
                format!("failed to parse JSON query body: {detail}"),
            )
        })?;
        metadata.insert(QUERY_KEY_PREFIX_METADATA.to_owned(), self.prefix());
        let started = Instant::now();
        let store = &self.handle.store;
        let result = self
            .policy()
            .call((query, metadata), |(query, metadata)| {
                store.query(query, metadata)
            })
            .await;
        self.record(operation::QUERY, result.is_ok(), started);
        let mut response = result.map_err(|error| match error {
            StateError::NotSupported(_) => errors::query_unsupported(self.name()),
            other => errors::query_failed(self.name(), other),
        })?;
        for item in &mut response.results {
            item.key = original_key(&item.key).to_owned();
        }
        Ok(response)
    }
}

fn parse(document: &[u8]) -> Result<Query, String> {
    let value: serde_json::Value =
        serde_json::from_slice(document).map_err(|error| error.to_string())?;
    Query::from_value(&value).map_err(|error| error.to_string())
}
