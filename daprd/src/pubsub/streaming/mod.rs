//! Streaming subscriptions (`Dapr/SubscribeTopicEventsAlpha1`): a client opens a
//! bidirectional stream, names a pub/sub component and topic in its first message, and
//! receives that topic's events on the stream, answering each with `event_processed`.
//!
//! As upstream: the first message must be the initial request; the subscription is the
//! app's (component scopes and the inbound resiliency policy apply), with the default
//! route `/` and the request's metadata and dead-letter topic; the sidecar confirms it
//! with an `initial_response` before any event. Every stream gets its own broker
//! subscription, so several streams may share a topic. While the stream is open the
//! subscription is listed by the metadata API as `STREAMING`. The client ending the
//! stream (cancelling or closing its side) unsubscribes; events it did not answer stay
//! with the broker. A second initial request ends the stream with an error. When the
//! sidecar shuts down, the stream stops taking new events, waits for the answers to the
//! events it already sent, then ends with `stream closed`.

mod target;
#[cfg(test)]
mod tests;

pub use target::StreamTarget;

use std::collections::BTreeMap;
use std::sync::Arc;

use dapr_proto::runtime::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType;
use dapr_proto::runtime::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType;
use dapr_proto::runtime::{
    SubscribeTopicEventsRequestAlpha1, SubscribeTopicEventsRequestInitialAlpha1,
    SubscribeTopicEventsResponseAlpha1, SubscribeTopicEventsResponseInitialAlpha1,
};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::delivery::{self, AppTarget, Running};
use super::errors;
use super::subscriptions::{Rule, Subscription, SubscriptionType};
use crate::error::ApiError;
use crate::runtime::Runtime;
use target::Outgoing;

/// Events queued for a client that has not read them yet.
const OUTGOING_CAPACITY: usize = 64;

/// Why a stream could not be opened; each renders as upstream's status.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The first message is not an initial request.
    #[error("initial request is required")]
    InitialRequestRequired,
    /// The initial request names no component.
    #[error("pubsubName is required")]
    PubSubNameRequired,
    /// The initial request names no topic.
    #[error("topic is required")]
    TopicRequired,
    /// The sidecar began shutting down before the initial request arrived.
    #[error("api server closed")]
    ServerClosed,
    /// The client closed its side before sending anything.
    #[error("EOF")]
    EndedEarly,
    /// Receiving the first message failed.
    #[error("{}", .0.message())]
    Receive(tonic::Status),
    /// No pub/sub component has the requested name.
    #[error("{}", .0.message)]
    NotFound(ApiError),
    /// The subscription could not be started (scopes, resiliency, the broker).
    #[error("failed to create subscription for {pubsub}: {reason}")]
    Subscribe {
        /// The component.
        pubsub: String,
        /// Why.
        reason: String,
    },
}

impl From<StreamError> for tonic::Status {
    fn from(error: StreamError) -> Self {
        match error {
            StreamError::Receive(status) => status,
            StreamError::NotFound(error) => error.to_status(),
            other => tonic::Status::unknown(other.to_string()),
        }
    }
}

/// Opens a streaming subscription from the client's `incoming` messages; returns the
/// messages for the client, the `initial_response` first. The subscription runs until
/// the client or the sidecar ends the stream.
pub async fn open<S>(
    runtime: Arc<Runtime>,
    mut incoming: S,
) -> Result<
    impl Stream<Item = Result<SubscribeTopicEventsResponseAlpha1, tonic::Status>>,
    StreamError,
>
where
    S: Stream<Item = Result<SubscribeTopicEventsRequestAlpha1, tonic::Status>>
        + Send
        + Unpin
        + 'static,
{
    let shutdown = runtime.shutdown.signal();
    let first = tokio::select! {
        biased;
        () = shutdown.wait() => return Err(StreamError::ServerClosed),
        first = incoming.next() => first,
    };
    let initial = match first {
        None => return Err(StreamError::EndedEarly),
        Some(Err(status)) => return Err(StreamError::Receive(status)),
        Some(Ok(request)) => match request.subscribe_topic_events_request_type {
            Some(SubscribeTopicEventsRequestType::InitialRequest(initial)) => initial,
            _ => return Err(StreamError::InitialRequestRequired),
        },
    };
    let subscription = subscription(initial)?;
    if runtime
        .components
        .snapshot()
        .pubsub(&subscription.pubsub_name)
        .is_none()
    {
        return Err(StreamError::NotFound(errors::not_found(
            &subscription.pubsub_name,
            errors::InfoMetadata::new(),
        )));
    }
    let (outgoing, mut responses) = mpsc::channel(OUTGOING_CAPACITY);
    // Queued first, so it leaves before any event.
    let confirmation = SubscribeTopicEventsResponseAlpha1 {
        subscribe_topic_events_response_type: Some(
            SubscribeTopicEventsResponseType::InitialResponse(
                SubscribeTopicEventsResponseInitialAlpha1 {},
            ),
        ),
    };
    outgoing
        .send(Ok(confirmation))
        .await
        .map_err(|_| StreamError::EndedEarly)?;
    let target = StreamTarget::new(&outgoing);
    let running = delivery::subscribe(&runtime, &AppTarget::Stream(target.clone()), &subscription)
        .await
        .map_err(|reason| StreamError::Subscribe {
            pubsub: subscription.pubsub_name.clone(),
            reason,
        })?;
    let id = runtime.metadata.add_stream_subscription(&subscription);
    tracing::info!(
        "Subscribing to pubsub '{}' topic '{}' ConnectionID {id}",
        subscription.pubsub_name,
        subscription.topic
    );
    let session = Session {
        runtime,
        subscription,
        id,
        target,
        running,
        outgoing,
    };
    tokio::spawn(session.run(incoming));
    Ok(futures::stream::poll_fn(move |context| {
        responses.poll_recv(context)
    }))
}

/// The subscription an initial request asks for.
fn subscription(
    initial: SubscribeTopicEventsRequestInitialAlpha1,
) -> Result<Subscription, StreamError> {
    if initial.pubsub_name.is_empty() {
        return Err(StreamError::PubSubNameRequired);
    }
    if initial.topic.is_empty() {
        return Err(StreamError::TopicRequired);
    }
    Ok(Subscription {
        pubsub_name: initial.pubsub_name,
        topic: initial.topic,
        metadata: initial.metadata.into_iter().collect::<BTreeMap<_, _>>(),
        rules: vec![Rule {
            match_expression: String::new(),
            path: "/".to_owned(),
        }],
        dead_letter_topic: initial.dead_letter_topic.unwrap_or_default(),
        bulk_subscribe: None,
        scopes: Vec::new(),
        kind: SubscriptionType::Streaming,
    })
}

/// How a stream ended.
enum Ending {
    /// The client ended it (or went away).
    Client,
    /// The client broke the protocol: the stream ends with this status.
    Refused(tonic::Status),
    /// The sidecar is shutting down.
    Shutdown,
}

/// One open stream: its subscription and the client's answers.
struct Session {
    runtime: Arc<Runtime>,
    subscription: Subscription,
    id: u64,
    target: StreamTarget,
    running: Running,
    outgoing: Outgoing,
}

impl Session {
    /// Hands the client's answers to the deliveries until the stream ends, then
    /// unsubscribes.
    async fn run<S>(self, mut incoming: S)
    where
        S: Stream<Item = Result<SubscribeTopicEventsRequestAlpha1, tonic::Status>> + Unpin,
    {
        let shutdown = self.runtime.shutdown.signal();
        let ending = loop {
            tokio::select! {
                received = incoming.next() => match self.receive(received) {
                    Some(ending) => break ending,
                    None => continue,
                },
                () = self.outgoing.closed() => break Ending::Client,
                () = shutdown.wait() => break Ending::Shutdown,
            }
        };
        if matches!(ending, Ending::Client) {
            tracing::info!(
                "Unsubscribed from pubsub '{}' topic '{}'",
                self.subscription.pubsub_name,
                self.subscription.topic
            );
        }
        self.running.halt();
        if matches!(ending, Ending::Shutdown) {
            // Events already sent still get their answers, while the client stays.
            loop {
                tokio::select! {
                    () = self.target.drained() => break,
                    received = incoming.next() => if self.receive(received).is_some() {
                        break;
                    },
                    () = self.outgoing.closed() => break,
                }
            }
        }
        self.target.close();
        let Session {
            runtime,
            id,
            running,
            outgoing,
            ..
        } = self;
        running.unsubscribe().await;
        runtime.metadata.remove_stream_subscription(id);
        let status = match ending {
            Ending::Client => None,
            Ending::Refused(status) => Some(status),
            Ending::Shutdown => Some(tonic::Status::unknown("stream closed")),
        };
        if let Some(status) = status {
            let _ = outgoing.send(Err(status)).await;
        }
    }

    /// Takes one message from the client; `Some` when the stream ends with it.
    fn receive(
        &self,
        received: Option<Result<SubscribeTopicEventsRequestAlpha1, tonic::Status>>,
    ) -> Option<Ending> {
        match received {
            Some(Ok(request)) => match request.subscribe_topic_events_request_type {
                Some(SubscribeTopicEventsRequestType::EventProcessed(processed)) => {
                    self.target.answer(processed);
                    None
                }
                _ => Some(Ending::Refused(tonic::Status::unknown(
                    "duplicate initial request received",
                ))),
            },
            Some(Err(status)) => {
                if status.code() != tonic::Code::Cancelled {
                    tracing::debug!("Error receiving message from client stream: {status}");
                }
                Some(Ending::Client)
            }
            None => Some(Ending::Client),
        }
    }
}
