//! One subscription's message handler: it turns each broker message into the app's
//! event, picks the route, delivers it (retrying as the component's inbound resiliency
//! policy allows), and settles it as upstream does:
//! - delivered, dropped by the app, expired, or matching no route: acknowledged (dropped
//!   and expired events, and events matching no route, also go to the dead-letter topic);
//! - not deliverable (a message that is no CloudEvent, a failing route expression, an app
//!   that keeps failing): forwarded to the dead-letter topic and acknowledged when the
//!   subscription has one, else left unacknowledged for the broker to redeliver;
//! - while the subscription stops: left unacknowledged, never dead-lettered.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use dapr_components::pubsub::{Message, MessageHandler, NotAcknowledged, PublishRequest};
use dapr_kit::backoff::Delays;
use tokio::sync::watch;

use super::event::{EventError, ReceivedEvent, receive};
use super::expiry::has_expired;
use super::outcome::Outcome;
use super::{AppTarget, grpc, http};
use crate::components::PubSubHandle;
use crate::observability::metrics::SidecarMetrics;
use crate::pubsub::routing::Routes;
use crate::resiliency::{Failure, Policy, PolicyError};

/// Everything one subscription's deliveries need.
pub struct Delivery {
    /// The component.
    pub handle: Arc<PubSubHandle>,
    /// The app's topic.
    pub topic: String,
    /// The namespace prefix of topics on the broker (empty when not namespaced).
    pub namespace_prefix: String,
    /// The routes.
    pub routes: Routes,
    /// Whether messages are raw payloads (or why the setting is unreadable).
    pub raw_payload: Result<bool, EventError>,
    /// The dead-letter topic (empty for none).
    pub dead_letter_topic: String,
    /// The component's inbound resiliency policy.
    pub policy: Policy,
    /// How the app is reached.
    pub app: AppTarget,
    /// Where ingress metrics go.
    pub metrics: SidecarMetrics,
    /// Set when the subscription stops: retries end and nothing more is acknowledged.
    pub stopping: Arc<AtomicBool>,
    /// Turns true when the subscription stops, to cut retry waits short.
    pub stop_signal: watch::Receiver<bool>,
}

impl Delivery {
    /// The component's name.
    pub(super) fn pubsub(&self) -> &str {
        &self.handle.name
    }

    /// Records an ingress outcome that did not involve the app.
    fn record(&self, process_status: &str, status: &str) {
        self.metrics.record_pubsub_ingress(
            self.pubsub(),
            &self.topic,
            process_status,
            status,
            std::time::Duration::ZERO,
        );
    }

    /// Delivers once to the app.
    async fn attempt(&self, event: &ReceivedEvent, path: &str) -> Outcome {
        match &self.app {
            AppTarget::Http(channel) => {
                if !channel.health().is_healthy() {
                    return Outcome::Retry("app is not healthy".to_owned());
                }
                http::deliver(channel, &self.metrics, self.pubsub(), event, path).await
            }
            AppTarget::Grpc {
                channel,
                transport,
                api_token,
            } => {
                if !channel.health().is_healthy() {
                    return Outcome::Retry("app is not healthy".to_owned());
                }
                grpc::deliver(
                    transport.clone(),
                    api_token.as_deref(),
                    &self.metrics,
                    self.pubsub(),
                    event,
                    path,
                )
                .await
            }
            AppTarget::Stream(stream) => {
                stream
                    .deliver(&self.metrics, self.pubsub(), event, path)
                    .await
            }
        }
    }

    /// Delivers under the inbound policy (timeout, circuit breaker, retries); the last
    /// outcome when retries are exhausted or the subscription stops.
    async fn deliver(&self, event: &ReceivedEvent, path: &str) -> Outcome {
        let stop = (!self.stopping.load(Ordering::SeqCst)).then(|| self.stop_signal.clone());
        let Some(stop) = stop else {
            return self.attempt(event, path).await;
        };
        let delivered = self
            .policy
            .run_until(Some(stop), || async {
                match self.attempt(event, path).await {
                    Outcome::Retry(reason) => {
                        tracing::warn!(
                            "encountered a retriable error while publishing a subscribed message to topic {}, err: {reason}",
                            self.topic
                        );
                        Err(Failure::transient(reason))
                    }
                    settled => Ok(settled),
                }
            })
            .await;
        match delivered {
            Ok(outcome) => outcome,
            Err(PolicyError::Failed(reason)) => Outcome::Retry(reason),
            Err(other) => Outcome::Retry(other.to_string()),
        }
    }

    /// The waits of the inbound retry policy (`None`: no policy, no retries).
    pub(super) fn retry_delays(&self) -> Option<Delays> {
        self.policy.retry_delays()
    }

    /// Waits for the next retry; false when `delays` are exhausted or the subscription
    /// stops (before or during the wait).
    pub(super) async fn wait_to_retry(&self, delays: &mut Option<Delays>) -> bool {
        let Some(delay) = delays.as_mut().and_then(Iterator::next) else {
            return false;
        };
        if self.stopping.load(Ordering::SeqCst) {
            return false;
        }
        let mut stop = self.stop_signal.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            _ = stop.wait_for(|stopped| *stopped) => false,
        }
    }

    /// Publishes the original message to the dead-letter topic.
    pub(super) async fn dead_letter(
        &self,
        data: bytes::Bytes,
        event_metadata: &HashMap<String, String>,
        content_type: Option<String>,
    ) -> Result<(), String> {
        if !self.handle.scopes.may_publish(&self.dead_letter_topic) {
            return Err(format!(
                "topic {} is not allowed for app id",
                self.dead_letter_topic
            ));
        }
        let request = PublishRequest {
            topic: format!("{}{}", self.namespace_prefix, self.dead_letter_topic),
            data,
            metadata: event_metadata.clone(),
            content_type,
        };
        self.handle.broker.publish(request).await.map_err(|error| {
            tracing::error!(
                "error sending message to dead letter, origin topic: {} dead letter topic {}: {error}",
                self.topic,
                self.dead_letter_topic
            );
            error.to_string()
        })
    }

    /// Settles a message that could not be delivered: dead-lettered and acknowledged when
    /// possible, else left for redelivery.
    async fn undeliverable(
        &self,
        original: &Message,
        metadata: &HashMap<String, String>,
        reason: String,
    ) -> Result<(), NotAcknowledged> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(NotAcknowledged(reason));
        }
        if !self.dead_letter_topic.is_empty()
            && self
                .dead_letter(
                    original.data.clone(),
                    metadata,
                    original.content_type.clone(),
                )
                .await
                .is_ok()
        {
            self.record("drop", "");
            return Ok(());
        }
        self.record("retry", "");
        Err(NotAcknowledged(reason))
    }
}

/// Why a message is acknowledged without reaching the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skip {
    /// Its `expiration` has passed.
    Expired,
    /// No routing rule matches it.
    NoRoute,
}

/// A message made ready for the app, or why it is not.
pub(super) enum Prepared {
    /// Deliver `event` on `path`.
    Deliver {
        /// The event.
        event: ReceivedEvent,
        /// The route's path.
        path: String,
    },
    /// Acknowledge without delivering; the message goes to the dead-letter topic (if
    /// any) with `metadata`.
    Skipped {
        /// Why.
        skip: Skip,
        /// The metadata to dead-letter it with.
        metadata: HashMap<String, String>,
    },
    /// The message cannot be delivered: it goes to the dead-letter topic, else back to
    /// the broker.
    Undeliverable {
        /// The metadata to dead-letter it with.
        metadata: HashMap<String, String>,
        /// Why.
        reason: String,
    },
}

impl Delivery {
    /// Turns `message` into the app's event and picks its route.
    pub(super) fn prepare(&self, message: &Message) -> Prepared {
        let undeliverable = |reason: String| {
            tracing::error!("{reason}");
            Prepared::Undeliverable {
                metadata: message.metadata.clone(),
                reason,
            }
        };
        let raw = match &self.raw_payload {
            Ok(raw) => *raw,
            Err(error) => return undeliverable(error.to_string()),
        };
        let event = match receive(message.clone(), &self.topic, self.pubsub(), raw) {
            Ok(event) => event,
            Err(error) => return undeliverable(error.to_string()),
        };
        if let Some(expiration) = event
            .cloud_event
            .get("expiration")
            .and_then(|value| value.as_str())
            && has_expired(expiration, SystemTime::now())
        {
            tracing::warn!(
                "dropping expired pub/sub event {} as of {expiration}",
                event.id()
            );
            return Prepared::Skipped {
                skip: Skip::Expired,
                metadata: event.metadata,
            };
        }
        match self.routes.route(&event.cloud_event) {
            Ok(Some(path)) => Prepared::Deliver {
                path: path.to_owned(),
                event,
            },
            Ok(None) => {
                tracing::debug!(
                    "no matching route for event {} in pubsub {} and topic {}; skipping",
                    event.id(),
                    self.pubsub(),
                    self.topic
                );
                Prepared::Skipped {
                    skip: Skip::NoRoute,
                    metadata: event.metadata,
                }
            }
            Err(error) => {
                let reason = format!(
                    "error finding matching route for event {} in pubsub {} and topic {}: {error}",
                    event.id(),
                    self.pubsub(),
                    self.topic
                );
                tracing::error!("{reason}");
                Prepared::Undeliverable {
                    metadata: event.metadata,
                    reason,
                }
            }
        }
    }

    /// Forwards a message the app dropped to the dead-letter topic, if there is one; a
    /// failed forward leaves the message unacknowledged.
    pub(super) async fn dead_letter_dropped(
        &self,
        original: &Message,
        metadata: &HashMap<String, String>,
    ) -> Result<(), NotAcknowledged> {
        if self.dead_letter_topic.is_empty() {
            return Ok(());
        }
        self.dead_letter(
            original.data.clone(),
            metadata,
            original.content_type.clone(),
        )
        .await
        .map_err(|error| {
            tracing::warn!(
                "failed to send dropped message to dead letter queue for topic {}: {error}",
                self.topic
            );
            NotAcknowledged(error)
        })
    }

    /// Forwards a skipped message to the dead-letter topic, if there is one; failures are
    /// logged only.
    pub(super) async fn dead_letter_skipped(
        &self,
        original: &Message,
        metadata: &HashMap<String, String>,
    ) {
        if !self.dead_letter_topic.is_empty() {
            let _ = self
                .dead_letter(
                    original.data.clone(),
                    metadata,
                    original.content_type.clone(),
                )
                .await;
        }
    }
}

#[async_trait::async_trait]
impl MessageHandler for Delivery {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(NotAcknowledged("the subscription is stopping".to_owned()));
        }
        let (event, path) = match self.prepare(&message) {
            Prepared::Deliver { event, path } => (event, path),
            Prepared::Skipped { skip, metadata } => {
                match skip {
                    Skip::Expired => self.record("drop", ""),
                    Skip::NoRoute => self.record("drop", "success"),
                }
                self.dead_letter_skipped(&message, &metadata).await;
                return Ok(());
            }
            Prepared::Undeliverable { metadata, reason } => {
                return self.undeliverable(&message, &metadata, reason).await;
            }
        };
        let original = message;
        match self.deliver(&event, &path).await {
            Outcome::Success => Ok(()),
            Outcome::Dropped { dead_letter: true } => {
                self.dead_letter_dropped(&original, &event.metadata).await
            }
            Outcome::Dropped { dead_letter: false } => Ok(()),
            Outcome::Retry(reason) => self.undeliverable(&original, &event.metadata, reason).await,
        }
    }
}
