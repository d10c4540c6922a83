//! The delivery loop of one subscription: hands each message of the push consumer to the
//! app and acknowledges or NAKs it, one at a time or each as it arrives.
//!
//! A handler error NAKs the message, delayed by `ackWait` when that is set, so the server
//! redelivers it until `maxDeliver` deliveries; with `ackPolicy: none` nothing is
//! acknowledged. Stopping unsubscribes from the deliver subject (the consumer itself
//! stays, so a durable consumer resumes where it left off) and waits for the messages
//! being handled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::push;
use futures::StreamExt;
use tokio::task::JoinSet;

use super::settings::Concurrency;
use crate::pubsub::{Message, MessageHandler, StopSignal};

/// The message metadata key carrying the NATS subject a message was published to.
const TOPIC_METADATA_KEY: &str = "Topic";

/// What the delivery loop needs besides the message stream.
pub(super) struct Delivery {
    /// The subscribed topic, reported on every message.
    pub topic: String,
    /// The app's handler.
    pub handler: Arc<dyn MessageHandler>,
    /// Whether messages are acknowledged at all.
    pub acknowledges: bool,
    /// The delay asked for when NAKing (`ackWait`), if any.
    pub nak_delay: Option<Duration>,
    /// One message at a time, or each as it arrives.
    pub concurrency: Concurrency,
}

impl Delivery {
    /// Delivers messages until `stop` fires or the connection closes, then unsubscribes
    /// and waits for the messages being handled.
    pub(super) async fn run(self, mut messages: push::Messages, mut stop: StopSignal) {
        let delivery = Arc::new(self);
        let mut in_flight = JoinSet::new();
        loop {
            let next = tokio::select! {
                biased;
                () = stop.stopped() => break,
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::warn!(topic = %delivery.topic, "jetstream delivery: {error}");
                    continue;
                }
                None => {
                    tracing::debug!(topic = %delivery.topic, "jetstream subscription closed");
                    break;
                }
            };
            match delivery.concurrency {
                Concurrency::Single => delivery.handle(message).await,
                Concurrency::Parallel => {
                    let delivery = delivery.clone();
                    in_flight.spawn(async move { delivery.handle(message).await });
                    while in_flight.try_join_next().is_some() {}
                }
            }
        }
        drop(messages);
        while in_flight.join_next().await.is_some() {}
    }

    /// Hands one message to the app, then acknowledges or NAKs it.
    async fn handle(&self, message: jetstream::Message) {
        let sequence = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(error) => {
                tracing::error!(topic = %self.topic, "not a JetStream message: {error}");
                return;
            }
        };
        let subject = message.subject.to_string();
        tracing::debug!("processing JetStream message {subject}/{sequence}");
        let delivered = Message {
            topic: self.topic.clone(),
            data: message.payload.clone(),
            metadata: HashMap::from([(TOPIC_METADATA_KEY.to_owned(), subject.clone())]),
            content_type: None,
        };
        let outcome = self.handler.handle(delivered).await;
        if let Err(error) = &outcome {
            tracing::error!("error processing JetStream message {subject}/{sequence}: {error}");
        }
        if !self.acknowledges {
            return;
        }
        let (kind, name) = match outcome {
            Ok(()) => (AckKind::Ack, "ACK"),
            Err(_) => (AckKind::Nak(self.nak_delay), "NAK"),
        };
        if let Err(error) = message.ack_with(kind).await {
            tracing::error!(
                "error while sending {name} for JetStream message {subject}/{sequence}: {error}"
            );
        }
    }
}
