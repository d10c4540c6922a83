//! Configuration subscriptions, shared by both edges: starting one on a store (under the
//! store's outbound policy, counted in `dapr_component_configuration_*`), stopping one,
//! and the two ways updates reach the app: an HTTP `POST /configuration/<store>/<key>`
//! per changed key (each under the store's inbound policy), or the messages of a gRPC
//! `SubscribeConfiguration` stream, whose ids are kept here so `UnsubscribeConfiguration`
//! can end them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use dapr_components::configuration::{
    ConfigurationItem, SubscribeRequest, UpdateEvent, UpdateHandler,
};
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::{logged, store};
use crate::channel::AppChannel;
use crate::error::ApiError;
use crate::invoke::InvokeRequest;
use crate::observability::metrics::OperationKind;
use crate::resiliency::{ComponentKind, Direction, Failure, Policy, PolicyError};
use crate::runtime::Runtime;

/// The gRPC subscription streams running, by subscription id, each with the signal that
/// ends it.
#[derive(Debug, Default)]
pub struct StreamSubscriptions {
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
}

impl StreamSubscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<bool>>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers stream `id`; the receiver turns true when it is told to end.
    pub fn register(&self, id: &str) -> watch::Receiver<bool> {
        let (stop, stopped) = watch::channel(false);
        self.lock().insert(id.to_owned(), stop);
        stopped
    }

    /// Forgets stream `id` (it ended).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends stream `id`; false when no such stream runs.
    pub fn stop(&self, id: &str) -> bool {
        match self.lock().remove(id) {
            Some(stop) => {
                let _ = stop.send(true);
                true
            }
            None => false,
        }
    }
}

/// Starts watching `keys` (every key when empty) of store `store_name`; updates go to
/// `handler`. Returns the subscription id.
pub async fn subscribe(
    runtime: &Runtime,
    store_name: &str,
    keys: Vec<String>,
    metadata: HashMap<String, String>,
    handler: Arc<dyn UpdateHandler>,
) -> Result<String, ApiError> {
    let handle = store(runtime, store_name)?;
    let shown_keys = keys.join(" ");
    let request = SubscribeRequest { keys, metadata };
    let started = Instant::now();
    let result = outbound_policy(runtime, store_name)
        .call(request, |request| {
            handle.store.subscribe(request, handler.clone())
        })
        .await;
    runtime.metrics.record_component_operation(
        OperationKind::Configuration,
        store_name,
        "subscribe",
        result.is_ok(),
        started.elapsed(),
    );
    result.map_err(|error| {
        logged(
            ApiError::new(
                "ERR_CONFIGURATION_SUBSCRIBE",
                format!(
                    "failed to subscribe [{shown_keys}] from Configuration store {store_name}: {error}"
                ),
                StatusCode::INTERNAL_SERVER_ERROR,
                tonic::Code::InvalidArgument,
            )
            .with_info("ERR_CONFIGURATION_SUBSCRIBE", BTreeMap::new()),
        )
    })
}

/// Stops subscription `id` of store `store_name`; the error is the store's reason.
pub async fn unsubscribe(runtime: &Runtime, store_name: &str, id: &str) -> Result<(), String> {
    let handle = store(runtime, store_name).map_err(|error| error.message)?;
    let started = Instant::now();
    let result = outbound_policy(runtime, store_name)
        .call((), |()| handle.store.unsubscribe(id))
        .await;
    runtime.metrics.record_component_operation(
        OperationKind::Configuration,
        store_name,
        "unsubscribe",
        result.is_ok(),
        started.elapsed(),
    );
    result.map_err(|error| error.to_string())
}

fn outbound_policy(runtime: &Runtime, store_name: &str) -> Policy {
    runtime.resiliency.component_policy(
        store_name,
        ComponentKind::Configuration,
        Direction::Outbound,
    )
}

/// An item as upstream's JSON writes it: empty fields left out.
pub fn item_json(item: &ConfigurationItem) -> Value {
    let mut fields = Map::new();
    if !item.value.is_empty() {
        fields.insert("value".into(), Value::String(item.value.clone()));
    }
    if !item.version.is_empty() {
        fields.insert("version".into(), Value::String(item.version.clone()));
    }
    if !item.metadata.is_empty() {
        let metadata = item
            .metadata
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        fields.insert("metadata".into(), Value::Object(metadata));
    }
    Value::Object(fields)
}

/// Posts each update to an HTTP app: `POST /configuration/<store>/<key>` for every
/// changed key, the whole event as the JSON body (`{"id": ..., "items": {...}}`).
pub struct AppUpdates {
    app: AppChannel,
    store: String,
    policy: Policy,
}

impl AppUpdates {
    /// Updates of store `store` for `app`, under the store's inbound policy.
    pub fn new(runtime: &Runtime, app: AppChannel, store: &str) -> Self {
        Self {
            app,
            store: store.to_owned(),
            policy: runtime.resiliency.component_policy(
                store,
                ComponentKind::Configuration,
                Direction::Inbound,
            ),
        }
    }

    async fn post(&self, key: &str, body: &bytes::Bytes) -> Result<(), String> {
        let request = InvokeRequest {
            method: format!("configuration/{}/{key}", self.store),
            http_verb: Some(Method::POST),
            query: String::new(),
            headers: HeaderMap::new(),
            content_type: Some("application/json".to_owned()),
            data_type_url: None,
            body: Body::from(body.clone()),
        };
        let response = self
            .app
            .invoke(request)
            .await
            .map_err(|error| error.message)?;
        let status = response.status;
        // Draining returns the connection to the pool; the verdict is the status.
        let _ = response.body.collect().await;
        if status != StatusCode::OK {
            return Err(format!(
                "error sending configuration item to application, status {}",
                status.as_u16()
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl UpdateHandler for AppUpdates {
    async fn update(&self, event: UpdateEvent) {
        let items: Map<String, Value> = event
            .items
            .iter()
            .map(|(key, item)| (key.clone(), item_json(item)))
            .collect();
        let mut document = Map::new();
        document.insert("id".into(), Value::String(event.id.clone()));
        document.insert("items".into(), Value::Object(items));
        let body = bytes::Bytes::from(crate::go_json::encode_value(&Value::Object(document)));
        for key in event.items.keys() {
            let delivered = self
                .policy
                .run(|| async { self.post(key, &body).await.map_err(Failure::transient) })
                .await;
            if let Err(error) = delivered {
                let reason = match error {
                    PolicyError::Failed(reason) => reason,
                    other => other.to_string(),
                };
                tracing::error!("error sending configuration item to the app: {reason}");
            }
        }
    }
}
