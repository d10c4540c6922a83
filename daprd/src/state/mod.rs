//! The state API's core, shared by the HTTP and gRPC edges: finding the store, checking
//! and prefixing keys (`appid||key` by default, per the store's `keyPrefix`), calling the
//! store, recording upstream's `dapr_component_state_*` metrics, and turning failures into
//! upstream's errors.
//!
//! Requests carry the app's keys and results come back with them: the stored form never
//! leaves this module. [`StateApi::store`] finds a store; the operations are methods of
//! the [`Store`] it returns.

pub mod errors;
pub mod options;
mod query;
mod transaction;

#[cfg(test)]
mod tests;

pub use transaction::OperationKind;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use dapr_components::state::{
    BulkGetItem, DeleteRequest, Feature, GetRequest, GetResponse, SetRequest, StateError,
};

use crate::components::{StateStoreHandle, original_key};
use crate::error::ApiError;
use crate::observability::metrics::{OperationKind as MetricKind, operation};
use crate::resiliency::{ComponentKind, Direction, Policy};
use crate::runtime::Runtime;

/// Which API edge is calling: upstream's edges word a few errors differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The HTTP API.
    Http,
    /// The gRPC API.
    Grpc,
}

/// The state API for one call from one edge.
#[derive(Debug, Clone, Copy)]
pub struct StateApi<'a> {
    runtime: &'a Runtime,
    protocol: Protocol,
}

impl<'a> StateApi<'a> {
    /// The state API of `runtime` as `protocol` reports it.
    pub fn new(runtime: &'a Runtime, protocol: Protocol) -> Self {
        Self { runtime, protocol }
    }

    /// The store called `name`; HTTP callers get the app id in the lookup errors.
    pub fn store(&self, name: &str) -> Result<Store<'a>, ApiError> {
        self.lookup(name, self.protocol == Protocol::Http)
    }

    /// The store called `name`, which must support transactions.
    pub fn transactional_store(&self, name: &str) -> Result<Store<'a>, ApiError> {
        let store = self.store(name)?;
        if !store.has(Feature::Transactional) {
            return Err(errors::transactions_not_supported(name));
        }
        Ok(store)
    }

    /// The store called `name`, which must support the query API (looked up as upstream's
    /// shared query implementation does, without the app id in the errors).
    pub fn query_store(&self, name: &str) -> Result<Store<'a>, ApiError> {
        let store = self.lookup(name, false)?;
        if !store.has(Feature::QueryApi) {
            return Err(errors::query_unsupported(name));
        }
        Ok(store)
    }

    fn lookup(&self, name: &str, report_app_id: bool) -> Result<Store<'a>, ApiError> {
        let components = self.runtime.components.snapshot();
        let app_id = report_app_id.then_some(self.runtime.config.app_id.as_str());
        if components.state_stores.is_empty() {
            return Err(errors::not_configured(name, app_id));
        }
        let handle = components
            .state_store(name)
            .ok_or_else(|| errors::not_found(name, app_id))?;
        Ok(Store {
            runtime: self.runtime,
            protocol: self.protocol,
            handle: Arc::clone(handle),
        })
    }
}

/// One state store, ready for operations.
#[derive(Debug, Clone)]
pub struct Store<'a> {
    runtime: &'a Runtime,
    protocol: Protocol,
    handle: Arc<StateStoreHandle>,
}

impl Store<'_> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.handle.name
    }

    fn has(&self, feature: Feature) -> bool {
        self.handle.store.features().contains(&feature)
    }

    /// The prefix this app's keys have in the store (`myapp||`, or empty).
    fn prefix(&self) -> String {
        let config = &self.runtime.config;
        self.handle
            .key_prefix
            .prefix(&self.handle.name, &config.app_id, &config.namespace)
    }

    /// The stored form of the app's `key`.
    fn stored_key(&self, key: &str) -> Result<String, ApiError> {
        let config = &self.runtime.config;
        self.handle
            .key_prefix
            .apply(key, &self.handle.name, &config.app_id, &config.namespace)
            .map_err(|error| errors::illegal_key(&self.handle.name, key, &error, self.protocol))
    }

    /// The store's outbound resiliency policy.
    pub(crate) fn policy(&self) -> Policy {
        self.runtime.resiliency.component_policy(
            &self.handle.name,
            ComponentKind::StateStore,
            Direction::Outbound,
        )
    }

    /// Counts a store call that started at `started` in the component metrics.
    fn record(&self, operation: &str, succeeded: bool, started: Instant) {
        self.runtime.metrics.record_component_operation(
            MetricKind::State,
            &self.handle.name,
            operation,
            succeeded,
            started.elapsed(),
        );
    }

    /// Reads one key; a missing key is an empty response (see [`GetResponse::is_missing`]).
    pub async fn get(&self, mut request: GetRequest) -> Result<GetResponse, ApiError> {
        let key = std::mem::take(&mut request.key);
        request.key = self.stored_key(&key)?;
        let started = Instant::now();
        let store = &self.handle.store;
        let result = self
            .policy()
            .call(request, |request| store.get(request))
            .await;
        self.record(operation::GET, result.is_ok(), started);
        result.map_err(|error| errors::get_failed(self.name(), &key, &error, self.protocol))
    }

    /// Reads many keys, at most `parallelism` at a time (0: no limit). Each item carries
    /// its value or its own error.
    pub async fn bulk_get(
        &self,
        keys: Vec<String>,
        metadata: HashMap<String, String>,
        parallelism: usize,
    ) -> Result<Vec<BulkGetItem>, ApiError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let requests = keys
            .iter()
            .map(|key| {
                Ok(GetRequest {
                    key: self.stored_key(key)?,
                    metadata: metadata.clone(),
                    ..GetRequest::default()
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let started = Instant::now();
        let store = &self.handle.store;
        // Items carry their own errors: the policy bounds the call (timeout, breaker).
        let mut items = self
            .policy()
            .call(requests, |requests| async move {
                Ok::<_, StateError>(store.bulk_get(requests, parallelism).await)
            })
            .await
            .unwrap_or_else(|error| {
                keys.iter()
                    .map(|key| BulkGetItem {
                        key: self.stored_key(key).unwrap_or_else(|_| key.clone()),
                        error: Some(error.to_string()),
                        ..BulkGetItem::default()
                    })
                    .collect()
            });
        self.record(operation::BULK_GET, true, started);
        for item in &mut items {
            item.key = original_key(&item.key).to_owned();
        }
        Ok(items)
    }

    /// Writes items (one `set`, or a `bulk_set` for several); every key must be non-empty.
    pub async fn save(&self, mut items: Vec<SetRequest>) -> Result<(), ApiError> {
        if items.is_empty() {
            return Ok(());
        }
        for item in &mut items {
            if item.key.is_empty() {
                return Err(errors::empty_key(self.protocol));
            }
            item.key = self.stored_key(&item.key)?;
        }
        let started = Instant::now();
        let store = &self.handle.store;
        let result = self
            .policy()
            .call(items, |items| async move {
                match <[SetRequest; 1]>::try_from(items) {
                    Ok([item]) => store.set(item).await,
                    Err(items) => store.bulk_set(items).await,
                }
            })
            .await;
        self.record(operation::SET, result.is_ok(), started);
        result.map_err(|error| errors::save_failed(self.name(), &error, self.protocol))
    }

    /// Deletes one key, honouring its ETag.
    pub async fn delete(&self, mut request: DeleteRequest) -> Result<(), ApiError> {
        let key = std::mem::take(&mut request.key);
        request.key = self.stored_key(&key)?;
        let started = Instant::now();
        let store = &self.handle.store;
        let result = self
            .policy()
            .call(request, |request| store.delete(request))
            .await;
        self.record(operation::DELETE, result.is_ok(), started);
        result.map_err(|error| errors::delete_failed(&key, &error, self.protocol))
    }

    /// Deletes several keys (one `delete`, or a `bulk_delete` otherwise).
    pub async fn bulk_delete(&self, mut requests: Vec<DeleteRequest>) -> Result<(), ApiError> {
        for request in &mut requests {
            request.key = self.stored_key(&request.key)?;
        }
        let started = Instant::now();
        let store = &self.handle.store;
        let result = self
            .policy()
            .call(requests, |requests| async move {
                match <[DeleteRequest; 1]>::try_from(requests) {
                    Ok([request]) => store.delete(request).await,
                    Err(requests) => store.bulk_delete(requests).await,
                }
            })
            .await;
        self.record(operation::BULK_DELETE, result.is_ok(), started);
        result.map_err(|error| errors::bulk_delete_failed(self.name(), &error, self.protocol))
    }
}
