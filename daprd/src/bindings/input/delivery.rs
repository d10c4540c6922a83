//! The [`EventHandler`] an input binding reads into: each event goes to the app (over
//! the app's protocol) under the binding's inbound resiliency policy, is counted in
//! `dapr_component_input_binding_*`, and the app's verdict goes back to the binding.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dapr_components::bindings::{EventHandler, EventRejected, InputEvent};

use super::grpc::GrpcApp;
use crate::channel::AppChannel;
use crate::resiliency::{ComponentKind, Direction, Failure, PolicyError};
use crate::runtime::Runtime;

/// How events reach the app.
#[derive(Debug, Clone)]
pub(super) enum AppTarget {
    /// An HTTP app, through the app channel.
    Http(AppChannel),
    /// A gRPC app's `AppCallback` service.
    Grpc(GrpcApp),
}

/// Delivers the events of one binding.
pub(super) struct Delivery {
    /// The binding's name.
    pub(super) binding: String,
    /// The HTTP path of its events.
    pub(super) route: String,
    /// The app.
    pub(super) target: AppTarget,
    /// The sidecar (metrics; output bindings a gRPC app's answer names).
    pub(super) runtime: Arc<Runtime>,
}

#[async_trait::async_trait]
impl EventHandler for Delivery {
    async fn handle(&self, event: InputEvent) -> Result<Bytes, EventRejected> {
        let started = Instant::now();
        let policy = self.runtime.resiliency.component_policy(
            &self.binding,
            ComponentKind::Binding,
            Direction::Inbound,
        );
        let delivered = policy
            .run(|| {
                let event = event.clone();
                async move {
                    match &self.target {
                        AppTarget::Http(app) => super::http::deliver(app, &self.route, event).await,
                        AppTarget::Grpc(app) => {
                            app.deliver(&self.runtime, &self.binding, event).await
                        }
                    }
                    .map_err(Failure::transient)
                }
            })
            .await;
        let result = delivered.map_err(|error| match error {
            PolicyError::Failed(reason) => reason,
            refused => refused.to_string(),
        });
        self.runtime
            .metrics
            .record_input_binding(&self.binding, result.is_ok(), started.elapsed());
        result.map_err(|reason| {
            tracing::debug!(
                "error from app consumer for binding [{}]: {reason}",
                self.binding
            );
            EventRejected(reason)
        })
    }
}
