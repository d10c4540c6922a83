//! Input bindings and a gRPC app: which bindings the app listens to
//! (`AppCallback/ListInputBindings`; `Unimplemented` is none)
//! and the delivery of an event (`AppCallback/OnBindingEvent` with the binding's name,
//! the data and the metadata; an OK answer accepts the event, an error status rejects
//! it).
//!
//! An answer naming output bindings in `to` has its `data` sent to each of them with
//! the `create` operation, as upstream still does for gRPC apps: `data` is read as JSON
//! and written again (anything else is sent as `null`); `SEQUENTIAL` calls them in order
//! and stops at the first failure, `PARALLEL` calls them all at once; failures are
//! logged, the event stays accepted. The answer's `store_name`/`states` are ignored, as
//! upstream ignores them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dapr_components::bindings::{InputEvent, InvokeRequest, operations};
use dapr_proto::runtime::app_callback_client::AppCallbackClient;
use dapr_proto::runtime::binding_event_response::BindingEventConcurrency;
use dapr_proto::runtime::{BindingEventRequest, BindingEventResponse};
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;

use crate::api::middleware::API_TOKEN_HEADER;
use crate::observability::trace::{TRACEPARENT, TRACESTATE, TraceContext};
use crate::runtime::Runtime;

/// How the sidecar reaches a gRPC app.
#[derive(Debug, Clone)]
pub(super) struct GrpcApp {
    /// The app channel's HTTP/2 transport.
    pub(super) transport: Channel,
    /// `dapr-api-token` for every call (`APP_API_TOKEN`).
    pub(super) token: Option<AsciiMetadataValue>,
    /// Largest message sent or accepted (`--max-body-size`).
    pub(super) max_message_size: usize,
}

impl GrpcApp {
    fn client(&self) -> AppCallbackClient<Channel> {
        AppCallbackClient::new(self.transport.clone())
            .max_decoding_message_size(self.max_message_size)
            .max_encoding_message_size(self.max_message_size)
    }

    fn request<T>(&self, message: T, metadata: MetadataMap) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = metadata;
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert(API_TOKEN_HEADER, token.clone());
        }
        request
    }

    /// The bindings the app listens to (none when it does not implement the call);
    /// `timeout` bounds the call.
    pub(super) async fn listed_bindings(&self, timeout: Duration) -> Result<Vec<String>, String> {
        let mut client = self.client();
        let call = client.list_input_bindings(self.request((), MetadataMap::new()));
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner().bindings),
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => Ok(Vec::new()),
            Ok(Err(status)) => Err(format!(
                "rpc error: code = {:?} desc = {}",
                status.code(),
                status.message()
            )),
            Err(_) => Err("context deadline exceeded".to_owned()),
        }
    }

    /// Delivers `event` of binding `name`; `Ok` carries the answer's data.
    pub(super) async fn deliver(
        &self,
        runtime: &Arc<Runtime>,
        name: &str,
        event: InputEvent,
    ) -> Result<Bytes, String> {
        let metadata = trace_metadata(&event);
        let message = BindingEventRequest {
            name: name.to_owned(),
            data: event.data.to_vec(),
            metadata: event.metadata.into_iter().collect(),
        };
        let mut answer = self
            .client()
            .on_binding_event(self.request(message, metadata))
            .await
            .map_err(|status| {
                format!(
                    "error invoking app: rpc error: code = {:?} desc = {}",
                    status.code(),
                    status.message()
                )
            })?
            .into_inner();
        let data = Bytes::from(std::mem::take(&mut answer.data));
        if !answer.to.is_empty() {
            send_onwards(runtime, answer, &data).await;
        }
        Ok(data)
    }
}

/// The event's trace (a valid `traceparent`, with its `tracestate`) as gRPC metadata.
fn trace_metadata(event: &InputEvent) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    let Some(parent) = event.metadata.get(TRACEPARENT) else {
        return metadata;
    };
    if TraceContext::from_traceparent(parent).is_none() {
        return metadata;
    }
    for (key, value) in [
        (TRACEPARENT, Some(parent)),
        (TRACESTATE, event.metadata.get(TRACESTATE)),
    ] {
        if let Some(value) =
            value.and_then(|value| AsciiMetadataValue::try_from(value.as_str()).ok())
        {
            metadata.insert(key, value);
        }
    }
    metadata
}

/// Sends the answer's `data` to the output bindings it names in `to`.
async fn send_onwards(runtime: &Arc<Runtime>, answer: BindingEventResponse, data: &[u8]) {
    let payload = Bytes::from(crate::go_json::normalize(data).unwrap_or_else(|_| b"null".to_vec()));
    let request = || InvokeRequest {
        operation: operations::CREATE.to_owned(),
        data: payload.clone(),
        metadata: Default::default(),
    };
    if answer.concurrency() == BindingEventConcurrency::Parallel {
        for target in answer.to {
            let runtime = Arc::clone(runtime);
            let request = request();
            tokio::spawn(async move {
                let components = runtime.components.snapshot();
                if let Err(reason) =
                    crate::bindings::send(&runtime.resiliency, &components, &target, request).await
                {
                    tracing::error!("{reason}");
                }
            });
        }
        return;
    }
    let components = runtime.components.snapshot();
    for target in &answer.to {
        if let Err(reason) =
            crate::bindings::send(&runtime.resiliency, &components, target, request()).await
        {
            tracing::error!("error executing app response: {reason}");
            return;
        }
    }
}
