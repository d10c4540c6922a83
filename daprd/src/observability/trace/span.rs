//! The server span of one API call: the handle handlers see ([`ServerSpan`]) and the span
//! the layer ends when the response is complete.

use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Status};

use super::TraceContext;

/// Attribute keys with this prefix are internal and never recorded.
const INTERNAL_PREFIX: &str = "__dapr.";

/// The server span of the call being handled, found in the request's extensions (with
/// its [`TraceContext`] beside it). Use [`ServerSpan::context`] to propagate the trace
/// to outgoing calls; name the span after the API (`CallLocal/{app}/{method}`, ...) and
/// describe it with attributes as upstream's endpoints do. Changes are recorded only
/// when the span is sampled.
#[derive(Debug, Clone)]
pub struct ServerSpan {
    context: TraceContext,
    updates: Arc<Mutex<SpanUpdates>>,
}

#[derive(Debug, Default)]
struct SpanUpdates {
    name: Option<String>,
    attributes: Vec<KeyValue>,
}

impl ServerSpan {
    fn new(context: TraceContext) -> Self {
        ServerSpan {
            context,
            updates: Arc::default(),
        }
    }

    /// The context of this span: what outgoing calls carry as their parent.
    pub fn context(&self) -> &TraceContext {
        &self.context
    }

    /// Renames the span (it starts as the request path or gRPC method).
    pub fn set_name(&self, name: impl Into<String>) {
        self.lock().name = Some(name.into());
    }

    /// Adds a string attribute; empty values and internal (`__dapr.`) keys are ignored.
    pub fn set_attribute(&self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        if !value.is_empty() && !key.starts_with(INTERNAL_PREFIX) {
            self.lock().attributes.push(KeyValue::new(key, value));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpanUpdates> {
        self.updates.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A started span and the handle given to the handler.
#[derive(Debug)]
pub(crate) struct ActiveSpan {
    span: opentelemetry_sdk::trace::Span,
    handle: ServerSpan,
}

impl ActiveSpan {
    /// Wraps a started SDK span; the handle's context keeps the parent's trace state.
    pub(crate) fn new(
        span: opentelemetry_sdk::trace::Span,
        parent: Option<&TraceContext>,
    ) -> Option<Self> {
        let started = span.span_context();
        let context = TraceContext::new(
            started.trace_id().to_bytes(),
            started.span_id().to_bytes(),
            started.trace_flags().to_u8(),
        )?
        .with_trace_state(
            parent
                .map(|parent| parent.trace_state().clone())
                .unwrap_or_default(),
        );
        Some(ActiveSpan {
            span,
            handle: ServerSpan::new(context),
        })
    }

    /// The handler's handle.
    pub(crate) fn handle(&self) -> &ServerSpan {
        &self.handle
    }

    /// Whether the span is recorded and exported.
    pub(crate) fn is_sampled(&self) -> bool {
        self.handle.context.is_sampled()
    }

    /// Ends the span with `attributes` (the layer's own, recorded before the handler's),
    /// the handler's name and attributes, and `status`.
    pub(crate) fn finish(mut self, attributes: Vec<KeyValue>, status: Status) {
        if self.is_sampled() {
            let updates = std::mem::take(&mut *self.handle.lock());
            let recorded = attributes
                .into_iter()
                .filter(|attribute| {
                    !attribute.key.as_str().starts_with(INTERNAL_PREFIX)
                        && !attribute.value.as_str().is_empty()
                })
                .chain(updates.attributes);
            self.span.set_attributes(recorded);
            if let Some(name) = updates.name {
                self.span.update_name(name);
            }
        }
        self.span.set_status(status);
        self.span.end();
    }
}
