//! `pubsub.in-memory`: a broker inside the sidecar's memory, for development and tests.
//!
//! As upstream's: no settings and no persistence; every subscription gets each message
//! published to its topic after it subscribed, one at a time and in publish order; a
//! subscription topic ending in `*` also matches every longer topic starting with what
//! precedes the `*` (`SUBSCRIBE_WILDCARDS`); a handler error is logged and the message
//! dropped (no redelivery: daprd's resiliency retries are the only retries); after
//! `close`, publishing and subscribing fail. Unlike upstream's, a slow subscriber does not
//! hold up publishers: each subscription queues its messages (unbounded, as befits a
//! development broker), and a delivered message keeps its content type.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, watch};

use super::{
    Feature, Message, MessageHandler, PubSub, PubSubError, PublishRequest, StopSignal,
    SubscribeRequest, Subscription,
};
use crate::metadata::Properties;

/// The component type in resources.
pub const COMPONENT: &str = "pubsub.in-memory";

const FEATURES: &[Feature] = &[Feature::SubscribeWildcards];

/// The `pubsub.in-memory` broker.
pub struct InMemoryPubSub {
    subscribers: Mutex<Vec<Subscriber>>,
    /// Flipped to `true` by `close`.
    closed: watch::Sender<bool>,
}

/// One subscription's queue.
struct Subscriber {
    /// The subscription's topic, possibly ending in `*`.
    pattern: String,
    sender: mpsc::UnboundedSender<Message>,
}

impl InMemoryPubSub {
    /// Creates an empty broker; upstream's component has no settings, so any are ignored.
    pub fn open(_properties: &Properties) -> Result<Self, PubSubError> {
        Ok(Self {
            subscribers: Mutex::new(Vec::new()),
            closed: watch::Sender::new(false),
        })
    }

    fn subscribers(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

/// Whether a subscription on `pattern` receives messages published to `topic`.
fn matches(pattern: &str, topic: &str) -> bool {
    pattern == topic
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| topic != prefix && topic.starts_with(prefix))
}

#[async_trait::async_trait]
impl PubSub for InMemoryPubSub {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        if self.is_closed() {
            return Err(PubSubError::Closed);
        }
        let mut subscribers = self.subscribers();
        // Subscriptions that ended dropped their receivers.
        subscribers.retain(|subscriber| !subscriber.sender.is_closed());
        for subscriber in subscribers
            .iter()
            .filter(|subscriber| matches(&subscriber.pattern, &request.topic))
        {
            // A subscription ending right now no longer wants the message.
            let _ = subscriber.sender.send(Message {
                topic: request.topic.clone(),
                data: request.data.clone(),
                metadata: request.metadata.clone(),
                content_type: request.content_type.clone(),
            });
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError> {
        if self.is_closed() {
            return Err(PubSubError::Closed);
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        self.subscribers().push(Subscriber {
            pattern: request.topic.clone(),
            sender,
        });
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let closed = self.closed.subscribe();
        Ok(Subscription::spawn(1, move |stop| {
            deliver(
                request.topic.clone(),
                receiver.clone(),
                handler.clone(),
                stop,
                closed.clone(),
            )
        }))
    }

    async fn close(&self) -> Result<(), PubSubError> {
        self.closed.send_replace(true);
        self.subscribers().clear();
        Ok(())
    }
}

/// Hands a subscription's queued messages to its handler, one at a time, until the
/// subscription stops or the broker closes.
async fn deliver(
    topic: String,
    receiver: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>,
    handler: Arc<dyn MessageHandler>,
    mut stop: StopSignal,
    mut closed: watch::Receiver<bool>,
) {
    let mut receiver = receiver.lock().await;
    loop {
        let message = tokio::select! {
            biased;
            () = stop.stopped() => break,
            _ = closed.wait_for(|closed| *closed) => break,
            message = receiver.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        if let Err(error) = handler.handle(message).await {
            tracing::error!(%topic, "in-memory pubsub handler failed, message dropped: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use bytes::Bytes;

    use super::super::NotAcknowledged;
    use super::super::conformance::{self, Expectations};
    use super::*;

    fn broker() -> InMemoryPubSub {
        InMemoryPubSub::open(&Properties::default()).unwrap()
    }

    #[tokio::test]
    async fn conformance() {
        conformance::run_all(
            &|_consumer_id| Box::pin(async { Arc::new(broker()) as Arc<dyn PubSub> }),
            Expectations {
                ordered: true,
                carries_content_type: true,
                redelivery: None,
                delivers_earlier_messages: false,
                consumer_groups: false,
            },
        )
        .await;
    }

    /// Forwards every message to a channel.
    struct Forward(mpsc::UnboundedSender<Message>);

    #[async_trait::async_trait]
    impl MessageHandler for Forward {
        async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
            let _ = self.0.send(message);
            Ok(())
        }
    }

    async fn subscribe_forwarding(
        broker: &InMemoryPubSub,
        topic: &str,
    ) -> (Subscription, mpsc::UnboundedReceiver<Message>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let subscription = broker
            .subscribe(
                SubscribeRequest {
                    topic: topic.to_owned(),
                    metadata: HashMap::new(),
                },
                Arc::new(Forward(sender)),
            )
            .await
            .unwrap();
        (subscription, receiver)
    }

    async fn publish(broker: &InMemoryPubSub, topic: &str, data: &'static str) {
        broker
            .publish(PublishRequest {
                topic: topic.to_owned(),
                data: Bytes::from_static(data.as_bytes()),
                metadata: HashMap::from([("k".to_owned(), "v".to_owned())]),
                content_type: None,
            })
            .await
            .unwrap();
    }

    async fn next(receiver: &mut mpsc::UnboundedReceiver<Message>) -> Message {
        tokio::time::timeout(Duration::from_secs(5), receiver.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[test]
    fn wildcards_match_longer_topics_with_the_prefix() {
        assert!(matches("orders", "orders"));
        assert!(!matches("orders", "orders2"));
        assert!(matches("topic*", "topic1"));
        assert!(matches("topic*", "topicX/deeper"));
        assert!(matches("topic*", "topic*"));
        assert!(!matches("topic*", "topic"));
        assert!(!matches("topic*", "mytopic1"));
    }

    #[tokio::test]
    async fn every_subscription_gets_every_message_with_its_metadata() {
        let broker = broker();
        let (first, mut first_messages) = subscribe_forwarding(&broker, "demo").await;
        let (second, mut second_messages) = subscribe_forwarding(&broker, "demo").await;
        let (wildcard, mut wildcard_messages) = subscribe_forwarding(&broker, "de*").await;
        publish(&broker, "demo", "ABCD").await;
        for receiver in [
            &mut first_messages,
            &mut second_messages,
            &mut wildcard_messages,
        ] {
            let message = next(receiver).await;
            assert_eq!(message.data, "ABCD");
            // A wildcard subscription sees the topic the message was published to.
            assert_eq!(message.topic, "demo");
            assert_eq!(message.metadata.get("k").map(String::as_str), Some("v"));
        }
        for subscription in [first, second, wildcard] {
            subscription.unsubscribe().await;
        }
    }

    #[tokio::test]
    async fn a_closed_broker_refuses_work_and_stops_delivering() {
        let broker = broker();
        let (subscription, mut messages) = subscribe_forwarding(&broker, "demo").await;
        broker.close().await.unwrap();
        let refused = broker
            .publish(PublishRequest {
                topic: "demo".to_owned(),
                ..PublishRequest::default()
            })
            .await;
        assert_eq!(refused, Err(PubSubError::Closed));
        let refused = broker
            .subscribe(
                SubscribeRequest {
                    topic: "demo".to_owned(),
                    metadata: HashMap::new(),
                },
                Arc::new(Forward(mpsc::unbounded_channel().0)),
            )
            .await;
        assert!(matches!(refused, Err(PubSubError::Closed)));
        // The subscription's task ended with the broker.
        assert!(
            tokio::time::timeout(Duration::from_secs(5), messages.recv())
                .await
                .unwrap()
                .is_none()
        );
        subscription.unsubscribe().await;
    }

    #[tokio::test]
    async fn instances_are_separate_buses() {
        let first = broker();
        let second = broker();
        let (subscription, mut messages) = subscribe_forwarding(&first, "demo").await;
        publish(&second, "demo", "elsewhere").await;
        publish(&first, "demo", "here").await;
        assert_eq!(next(&mut messages).await.data, "here");
        subscription.unsubscribe().await;
    }
}
