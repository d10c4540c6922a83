//! Pub/sub brokers: the contract every `pubsub.*` component implements (upstream's
//! `pubsub.PubSub`), the shapes daprd hands them, and the built-in brokers.
//!
//! A broker only moves bytes: daprd builds CloudEvents, applies routing rules, retries and
//! dead-lettering. A broker delivers each message to the subscription's
//! [`MessageHandler`]; `Ok` acknowledges it, `Err` leaves it unacknowledged so the broker
//! redelivers it by its own rules (a pending-entries claim, a requeue, a NAK), exactly as
//! upstream's components treat a handler error. daprd puts `consumerID` (defaulting to the
//! app id) into every broker's settings before it opens it.

use std::collections::HashMap;
use std::future::Future;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod catalog;
#[cfg(test)]
pub(crate) mod conformance;
pub mod in_memory;
pub mod jetstream;
pub mod mqtt3;
pub mod rabbitmq;
pub mod redis;

pub use catalog::{OpenError, PUBSUB_TYPES, open};

/// The metadata key a publish uses to ask for a time to live, in seconds.
pub const TTL_METADATA_KEY: &str = "ttlInSeconds";
/// The settings key holding the consumer group / durable name (daprd defaults it to the
/// app id).
pub const CONSUMER_ID_METADATA_KEY: &str = "consumerID";

/// An optional capability a broker advertises (upstream's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Per-message time to live (`MESSAGE_TTL`).
    MessageTtl,
    /// Topic wildcards in subscriptions (`SUBSCRIBE_WILDCARDS`).
    SubscribeWildcards,
    /// Native bulk publish (`BULK_PUBSUB`).
    BulkPublish,
    /// Bulk subscriptions delivered as soon as messages arrive (`BULK_SUBSCRIBE_IMMEDIATE`).
    BulkSubscribeImmediate,
}

impl Feature {
    /// Upstream's name for the feature.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageTtl => "MESSAGE_TTL",
            Self::SubscribeWildcards => "SUBSCRIBE_WILDCARDS",
            Self::BulkPublish => "BULK_PUBSUB",
            Self::BulkSubscribeImmediate => "BULK_SUBSCRIBE_IMMEDIATE",
        }
    }
}

/// A failed broker operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PubSubError {
    /// The component's metadata is wrong; the component cannot start.
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),
    /// The request is malformed (bad TTL, empty topic, ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// The broker failed or could not be reached.
    #[error("{0}")]
    Backend(String),
    /// The broker is shutting down.
    #[error("pubsub shutdown")]
    Closed,
}

impl PubSubError {
    /// A backend failure from any displayable error.
    pub fn backend(error: impl std::fmt::Display) -> Self {
        Self::Backend(error.to_string())
    }
}

/// Publish one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishRequest {
    /// The topic.
    pub topic: String,
    /// The payload (a CloudEvent's JSON, or the raw payload).
    pub data: Bytes,
    /// Request metadata (`ttlInSeconds`, broker-specific keys, ...).
    pub metadata: HashMap<String, String>,
    /// The payload's content type, when known.
    pub content_type: Option<String>,
}

/// Subscribe to a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// The topic.
    pub topic: String,
    /// Subscription metadata (broker-specific keys).
    pub metadata: HashMap<String, String>,
}

/// A message delivered to a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The topic it was published to.
    pub topic: String,
    /// The payload.
    pub data: Bytes,
    /// Broker metadata about the message.
    pub metadata: HashMap<String, String>,
    /// The payload's content type, when the broker carries one.
    pub content_type: Option<String>,
}

/// The app did not accept a message; the broker must not acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAcknowledged(pub String);

/// Receives the messages of a subscription.
#[async_trait::async_trait]
pub trait MessageHandler: Send + Sync {
    /// Handles one message: `Ok` acknowledges it, `Err` leaves it for redelivery.
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged>;
}

/// Tells a subscription's tasks to stop pulling messages.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Whether stopping was asked for.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once stopping is asked for (or the subscription handle is gone).
    pub async fn stopped(&mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// A running subscription; [`Subscription::unsubscribe`] stops it gracefully.
#[derive(Debug)]
pub struct Subscription {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Subscription {
    /// A subscription whose work is `tasks`, each spawned with a [`StopSignal`].
    pub fn spawn<F, Fut>(task_count: usize, task: F) -> Self
    where
        F: Fn(StopSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, signal) = watch::channel(false);
        let tasks = (0..task_count.max(1))
            .map(|_| tokio::spawn(task(StopSignal(signal.clone()))))
            .collect();
        Self { stop, tasks }
    }

    /// Stops pulling new messages and waits until the messages being handled are done.
    pub async fn unsubscribe(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(error) = task.await
                && error.is_panic()
            {
                tracing::error!("a subscription task panicked: {error}");
            }
        }
    }
}

/// A pub/sub broker component.
#[async_trait::async_trait]
pub trait PubSub: Send + Sync {
    /// The optional capabilities this broker has.
    fn features(&self) -> &[Feature];

    /// Publishes one message; returns once the broker has accepted it.
    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError>;

    /// Publishes several messages to one topic; returns the entries that failed (by index
    /// into `requests`) with their errors. Brokers without [`Feature::BulkPublish`]
    /// publish one by one.
    async fn bulk_publish(&self, requests: Vec<PublishRequest>) -> Vec<(usize, PubSubError)> {
        let mut failed = Vec::new();
        for (index, request) in requests.into_iter().enumerate() {
            if let Err(error) = self.publish(request).await {
                failed.push((index, error));
            }
        }
        failed
    }

    /// Starts delivering the topic's messages to `handler`.
    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: std::sync::Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError>;

    /// Checks the connection to the broker.
    async fn ping(&self) -> Result<(), PubSubError> {
        Ok(())
    }

    /// Releases connections; running subscriptions should be unsubscribed first.
    async fn close(&self) -> Result<(), PubSubError> {
        Ok(())
    }
}

/// Reads `ttlInSeconds` from publish metadata: unset is `None`; it must be a whole number.
pub fn ttl_seconds(metadata: &HashMap<String, String>) -> Result<Option<i64>, PubSubError> {
    let Some(text) = metadata.get(TTL_METADATA_KEY) else {
        return Ok(None);
    };
    text.trim().parse::<i64>().map(Some).map_err(|_| {
        PubSubError::InvalidRequest(format!(
            "incorrect value for metadata '{TTL_METADATA_KEY}': {text}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn unsubscribing_waits_for_the_work_in_hand() {
        let finished = Arc::new(AtomicUsize::new(0));
        let counter = finished.clone();
        let subscription = Subscription::spawn(2, move |mut stop| {
            let counter = counter.clone();
            async move {
                stop.stopped().await;
                // Work still in hand when stopping is asked for completes.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        subscription.unsubscribe().await;
        assert_eq!(finished.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn ttl_must_be_a_whole_number() {
        let mut metadata = HashMap::new();
        assert_eq!(ttl_seconds(&metadata).unwrap(), None);
        metadata.insert(TTL_METADATA_KEY.into(), "30".into());
        assert_eq!(ttl_seconds(&metadata).unwrap(), Some(30));
        metadata.insert(TTL_METADATA_KEY.into(), "soon".into());
        assert!(ttl_seconds(&metadata).is_err());
    }
}
