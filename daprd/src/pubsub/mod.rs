//! The publish half of pub/sub, shared by the HTTP and gRPC edges: finding the component,
//! wrapping payloads in CloudEvents (unless `rawPayload` is set), checking the topic
//! against the component's scopes, handing the message to the broker, recording
//! `dapr_component_pubsub_egress_*` metrics, and turning failures into upstream's errors.
//!
//! Checks run in upstream's order: component name, component, topic, `rawPayload`
//! metadata, the CloudEvent, then the scopes (so a refused publish is still counted). A
//! component whose metadata mentions `{namespace}` gets `<namespace><topic>` on the
//! broker. A bulk publish wraps every entry in its own CloudEvent (each with its own
//! span id in the trace fields) and reports the entries the broker refused.
//!
//! What the app subscribes to is found in [`subscriptions`].

mod cloudevent;
mod content_type;
pub mod delivery;
pub mod errors;
pub mod routing;
mod scopes;
pub mod streaming;
pub mod subscriptions;
#[cfg(test)]
mod tests;

pub use content_type::{is_binary, is_cloud_event, is_json, is_string};
pub use scopes::TopicScopes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dapr_components::pubsub::{PubSubError, PublishRequest};

use crate::components::PubSubHandle;
use crate::error::ApiError;
use crate::go_json::{GoValue, encode_go_value};
use crate::observability::trace::TraceContext;
use crate::resiliency::{ComponentKind, Direction};
use crate::runtime::Runtime;
use crate::state::Protocol;
use cloudevent::EventFacts;
use errors::info_metadata;

/// Publish metadata asking for the payload to be published as it is.
const RAW_PAYLOAD_KEY: &str = "rawPayload";
/// Publish metadata the gRPC edge adds to raw payloads: the caller's trace.
const TRACE_ID_KEY: &str = "traceid";
/// See [`TRACE_ID_KEY`].
const TRACE_STATE_KEY: &str = "tracestate";

/// A validated publish target: the component and the topic.
#[derive(Debug, Clone)]
pub struct Target {
    /// The component's name.
    pub pubsub_name: String,
    /// The app's topic (before any namespace prefix).
    pub topic: String,
    handle: Arc<PubSubHandle>,
}

/// One entry of a bulk publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkEntry {
    /// The caller's id for the entry (unique in the request).
    pub entry_id: String,
    /// The payload.
    pub event: Bytes,
    /// The payload's content type.
    pub content_type: String,
    /// The entry's metadata, over the request's; `None` when the entry has none, in
    /// which case (as upstream) the entry gets no metadata at all.
    pub metadata: Option<HashMap<String, String>>,
}

/// An entry the broker did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// The entry's id.
    pub entry_id: String,
    /// The broker's reason.
    pub error: String,
}

/// Why a bulk publish did not publish every entry.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkPublishError {
    /// Nothing was published: the request was refused.
    Refused(ApiError),
    /// The broker refused some entries (`ERR_PUBSUB_PUBLISH_MESSAGE` with the first
    /// failure's reason).
    Partial {
        /// The error for the call.
        error: ApiError,
        /// The refused entries.
        failed_entries: Vec<FailedEntry>,
    },
}

impl From<ApiError> for BulkPublishError {
    fn from(error: ApiError) -> Self {
        Self::Refused(error)
    }
}

/// The publish API for one call from one edge.
#[derive(Debug, Clone)]
pub struct Publisher<'a> {
    runtime: &'a Runtime,
    protocol: Protocol,
    trace: Option<TraceContext>,
}

impl<'a> Publisher<'a> {
    /// The publish API of `runtime` for a call from `protocol` within `trace`.
    pub fn new(runtime: &'a Runtime, protocol: Protocol, trace: Option<TraceContext>) -> Self {
        Self {
            runtime,
            protocol,
            trace,
        }
    }

    /// Checks the component and topic names (request `metadata` goes into the errors).
    pub fn target(
        &self,
        pubsub_name: &str,
        topic: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<Target, ApiError> {
        if pubsub_name.is_empty() {
            return Err(logged(errors::name_empty(info_metadata(metadata))));
        }
        let components = self.runtime.components.snapshot();
        let Some(handle) = components.pubsub(pubsub_name).cloned() else {
            let metadata = match self.protocol {
                Protocol::Http => info_metadata(metadata),
                Protocol::Grpc => errors::InfoMetadata::new(),
            };
            return Err(logged(errors::not_found(pubsub_name, metadata)));
        };
        if topic.is_empty() {
            return Err(logged(errors::topic_empty(
                pubsub_name,
                info_metadata(metadata),
            )));
        }
        Ok(Target {
            pubsub_name: pubsub_name.to_owned(),
            topic: topic.to_owned(),
            handle,
        })
    }

    /// Whether `metadata` asks for raw payloads (`rawPayload`, a Go boolean).
    pub fn raw_payload(
        &self,
        target: &Target,
        metadata: &HashMap<String, String>,
    ) -> Result<bool, ApiError> {
        let value = metadata.get(RAW_PAYLOAD_KEY).map_or("", String::as_str);
        let parsed = match value {
            "" => Ok(false),
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            other => Err(format!(
                "{RAW_PAYLOAD_KEY} value must be a valid boolean: actual is '{other}'"
            )),
        };
        parsed.map_err(|reason| {
            logged(errors::request_metadata(
                &target.pubsub_name,
                &reason,
                info_metadata(metadata),
            ))
        })
    }

    /// Publishes `data` (of `content_type`, empty when unknown) to `target`.
    pub async fn publish(
        &self,
        target: &Target,
        data: Bytes,
        content_type: &str,
        mut metadata: HashMap<String, String>,
    ) -> Result<(), ApiError> {
        let data = if self.raw_payload(target, &metadata)? {
            if self.protocol == Protocol::Grpc {
                let (parent, state) = trace_fields(self.trace.as_ref());
                metadata.insert(TRACE_ID_KEY.to_owned(), parent);
                metadata.insert(TRACE_STATE_KEY.to_owned(), state);
            }
            data
        } else {
            self.envelope(
                target,
                &data,
                content_type,
                Some(&metadata),
                self.trace.as_ref(),
            )?
        };
        let request = PublishRequest {
            topic: self.broker_topic(target),
            data,
            metadata,
            content_type: None,
        };
        let started = Instant::now();
        let result = match self.check_scopes(target) {
            Ok(()) => self
                .outbound_policy(target)
                .call(request, |request| target.handle.broker.publish(request))
                .await
                .map_err(|error| {
                    errors::publish_message(&target.pubsub_name, &target.topic, &error.to_string())
                }),
            Err(error) => Err(error),
        };
        self.runtime.metrics.record_pubsub_egress(
            &target.pubsub_name,
            &target.topic,
            result.is_ok(),
            started.elapsed(),
        );
        result.map_err(logged)
    }

    /// Publishes `entries` to `target`; `raw` is [`Publisher::raw_payload`] of the
    /// request's `metadata`, which every entry's metadata is laid over.
    pub async fn bulk_publish(
        &self,
        target: &Target,
        raw: bool,
        entries: Vec<BulkEntry>,
        metadata: &HashMap<String, String>,
    ) -> Result<(), BulkPublishError> {
        let app_id = &self.runtime.config.app_id;
        let mut seen = std::collections::HashSet::new();
        let mut requests = Vec::with_capacity(entries.len());
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.entry_id.is_empty() || !seen.insert(entry.entry_id.clone()) {
                let error = errors::entry_id_invalid(&target.pubsub_name, &target.topic, app_id);
                return Err(logged(error).into());
            }
            let entry_metadata = entry.metadata.map(|own| {
                let mut merged = metadata.clone();
                merged.extend(own);
                merged
            });
            let data = if raw {
                entry.event
            } else {
                let trace = self.trace.as_ref().and_then(child_context);
                self.envelope(
                    target,
                    &entry.event,
                    &entry.content_type,
                    entry_metadata.as_ref(),
                    trace.as_ref(),
                )?
            };
            ids.push(entry.entry_id);
            requests.push(PublishRequest {
                topic: self.broker_topic(target),
                data,
                metadata: entry_metadata.unwrap_or_default(),
                content_type: Some(entry.content_type),
            });
        }
        let count = requests.len();
        let started = Instant::now();
        let outcome = match self.check_scopes(target) {
            Ok(()) => {
                let broker = &target.handle.broker;
                // Entries carry their own errors: the policy bounds the call as a whole.
                let published = self
                    .outbound_policy(target)
                    .call(requests, |requests| async move {
                        Ok::<_, PubSubError>(broker.bulk_publish(requests).await)
                    })
                    .await;
                published.map_err(|error| {
                    errors::publish_message(&target.pubsub_name, &target.topic, &error.to_string())
                })
            }
            Err(error) => Err(error),
        };
        let failed = outcome.as_ref().map_or(0, Vec::len);
        let succeeded = matches!(&outcome, Ok(failures) if failures.is_empty());
        self.runtime.metrics.record_bulk_pubsub_egress(
            &target.pubsub_name,
            &target.topic,
            succeeded,
            u64::try_from(count - failed).unwrap_or(u64::MAX),
            started.elapsed(),
        );
        let failures = outcome.map_err(|error| BulkPublishError::Refused(logged(error)))?;
        let Some((_, first)) = failures.first() else {
            return Ok(());
        };
        let error = logged(errors::publish_message(
            &target.pubsub_name,
            &target.topic,
            &first.to_string(),
        ));
        let failed_entries = failures
            .iter()
            .filter_map(|(index, error)| {
                ids.get(*index).map(|entry_id| FailedEntry {
                    entry_id: entry_id.clone(),
                    error: error.to_string(),
                })
            })
            .collect();
        Err(BulkPublishError::Partial {
            error,
            failed_entries,
        })
    }

    /// The CloudEvent JSON for one payload.
    fn envelope(
        &self,
        target: &Target,
        data: &[u8],
        content_type: &str,
        metadata: Option<&HashMap<String, String>>,
        trace: Option<&TraceContext>,
    ) -> Result<Bytes, ApiError> {
        let (trace_parent, trace_state) = trace_fields(trace);
        let facts = EventFacts {
            source: &self.runtime.config.app_id,
            topic: &target.topic,
            pubsub: &target.pubsub_name,
            content_type,
            data,
            trace_parent: &trace_parent,
            trace_state: &trace_state,
        };
        let mut envelope = cloudevent::new_cloud_event(&facts, metadata).map_err(|error| {
            logged(errors::cloud_event_creation(
                &target.pubsub_name,
                &self.runtime.config.app_id,
                &error.to_string(),
            ))
        })?;
        cloudevent::apply_metadata(&mut envelope, target.handle.broker.features(), metadata);
        Ok(Bytes::from(encode_go_value(&GoValue::Object(envelope))))
    }

    /// The outbound resiliency policy of the target's component.
    fn outbound_policy(&self, target: &Target) -> crate::resiliency::Policy {
        self.runtime.resiliency.component_policy(
            &target.pubsub_name,
            ComponentKind::PubSub,
            Direction::Outbound,
        )
    }

    /// `ERR_PUBSUB_FORBIDDEN` unless the app may publish to the target's topic.
    fn check_scopes(&self, target: &Target) -> Result<(), ApiError> {
        if target.handle.scopes.may_publish(&target.topic) {
            return Ok(());
        }
        Err(errors::forbidden(
            &target.pubsub_name,
            &target.topic,
            &self.runtime.config.app_id,
        ))
    }

    /// The topic as the broker knows it.
    fn broker_topic(&self, target: &Target) -> String {
        if target.handle.namespace_scoped {
            format!("{}{}", self.runtime.config.namespace, target.topic)
        } else {
            target.topic.clone()
        }
    }
}

/// The `traceparent` and `tracestate` an envelope carries (empty without a trace).
fn trace_fields(trace: Option<&TraceContext>) -> (String, String) {
    trace.map_or_else(Default::default, |context| {
        (
            context.traceparent(),
            context.trace_state().as_str().to_owned(),
        )
    })
}

/// A new span id under `parent`, as upstream starts a producer span per bulk entry.
fn child_context(parent: &TraceContext) -> Option<TraceContext> {
    let random = uuid::Uuid::new_v4().into_bytes();
    let mut span_id = [0; 8];
    span_id.copy_from_slice(&random[..8]);
    TraceContext::new(parent.trace_id(), span_id, parent.flags())
        .map(|context| context.with_trace_state(parent.trace_state().clone()))
}

/// Logs `error` at debug level, as upstream does for every publish failure.
fn logged(error: ApiError) -> ApiError {
    tracing::debug!("{error}");
    error
}
