//! The delivery target of one streaming subscription: its client stream. An event goes
//! out as an `event_message` and its delivery waits for the client's `event_processed`
//! naming the event's id; the answer's status settles it as an app's `OnTopicEvent`
//! answer would (`SUCCESS` acknowledges, `DROP` drops, `RETRY` or an unknown status
//! retries). Once the stream closes, nothing more is sent and deliveries still waiting
//! end with a retriable outcome: their subscription is stopping, so the broker keeps the
//! message.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use dapr_proto::runtime::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType;
use dapr_proto::runtime::topic_event_response::TopicEventResponseStatus;
use dapr_proto::runtime::{
    SubscribeTopicEventsRequestProcessedAlpha1, SubscribeTopicEventsResponseAlpha1,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::observability::metrics::SidecarMetrics;
use crate::pubsub::delivery::{Outcome, ReceivedEvent, envelope};

/// What the sidecar sends on a stream: messages, or the status that ends it.
pub(super) type Outgoing = mpsc::Sender<Result<SubscribeTopicEventsResponseAlpha1, tonic::Status>>;

/// Sends events to one client stream and hands each delivery the client's answer.
#[derive(Clone)]
pub struct StreamTarget {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StreamTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTarget").finish_non_exhaustive()
    }
}

/// The state the session and the deliveries share.
struct Shared {
    /// The stream's sender; the session holds the only lasting strong one, so the
    /// stream ends when the session lets go of it.
    outgoing: mpsc::WeakSender<Result<SubscribeTopicEventsResponseAlpha1, tonic::Status>>,
    /// Deliveries waiting for the client's answer.
    waiting: Mutex<Waiting>,
    /// Turns true when the stream closes, to cut a blocked send short.
    closed: watch::Sender<bool>,
    /// How many deliveries are between sending and settling.
    in_flight: watch::Sender<usize>,
}

/// The deliveries waiting for answers, by event id (oldest first for a repeated id).
#[derive(Default)]
struct Waiting {
    closed: bool,
    next_token: u64,
    answers: HashMap<String, VecDeque<(u64, oneshot::Sender<i32>)>>,
}

/// One delivery's claim on the answer for its id; dropping it withdraws the claim.
struct Registration<'a> {
    shared: &'a Shared,
    id: String,
    token: u64,
    answer: oneshot::Receiver<i32>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut waiting = self.shared.waiting();
        if let Some(queue) = waiting.answers.get_mut(&self.id) {
            queue.retain(|(token, _)| *token != self.token);
            if queue.is_empty() {
                waiting.answers.remove(&self.id);
            }
        }
        drop(waiting);
        self.shared.in_flight.send_modify(|count| *count -= 1);
    }
}

impl Shared {
    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StreamTarget {
    /// The target sending on `outgoing`.
    pub(super) fn new(outgoing: &Outgoing) -> Self {
        Self {
            shared: Arc::new(Shared {
                outgoing: outgoing.downgrade(),
                waiting: Mutex::new(Waiting::default()),
                closed: watch::Sender::new(false),
                in_flight: watch::Sender::new(0),
            }),
        }
    }

    /// Sends `event` (for route `path` of component `pubsub`) to the client, waits for
    /// its answer and classifies it, recording the ingress metric as upstream does.
    pub async fn deliver(
        &self,
        metrics: &SidecarMetrics,
        pubsub: &str,
        event: &ReceivedEvent,
        path: &str,
    ) -> Outcome {
        let started = Instant::now();
        let record = |process: &str| {
            metrics.record_pubsub_ingress(pubsub, &event.topic, process, "", started.elapsed());
        };
        let envelope = match envelope(event, pubsub, path) {
            Ok(envelope) => envelope,
            Err(reason) => {
                record("retry");
                return Outcome::Retry(format!(
                    "error returned from app while processing pub/sub event: {reason}"
                ));
            }
        };
        let id = envelope.id.clone();
        let stream_closed = || {
            Outcome::Retry(format!(
                "error returned from app while processing pub/sub event {id}: stream closed"
            ))
        };
        let Some(mut registration) = self.register(&id) else {
            return stream_closed();
        };
        let message = SubscribeTopicEventsResponseAlpha1 {
            subscribe_topic_events_response_type: Some(
                SubscribeTopicEventsResponseType::EventMessage(envelope),
            ),
        };
        let sent = match self.shared.outgoing.upgrade() {
            Some(sender) => {
                let mut closed = self.shared.closed.subscribe();
                tokio::select! {
                    sent = sender.send(Ok(message)) => sent.is_ok(),
                    _ = closed.wait_for(|closed| *closed) => false,
                }
            }
            None => false,
        };
        if !sent {
            record("retry");
            return stream_closed();
        }
        let Ok(status) = (&mut registration.answer).await else {
            return stream_closed();
        };
        drop(registration);
        match TopicEventResponseStatus::try_from(status) {
            Ok(TopicEventResponseStatus::Success) => {
                record("success");
                Outcome::Success
            }
            Ok(TopicEventResponseStatus::Retry) => {
                record("retry");
                Outcome::Retry(format!(
                    "RETRY status returned from app while processing pub/sub event {id}"
                ))
            }
            Ok(TopicEventResponseStatus::Drop) => {
                tracing::warn!("DROP status returned from app while processing pub/sub event {id}");
                record("drop");
                Outcome::Dropped { dead_letter: true }
            }
            Err(_) => {
                record("retry");
                Outcome::Retry(format!(
                    "unknown status returned from app while processing pub/sub event {id}, status: {status}"
                ))
            }
        }
    }

    /// Claims the next answer for `id`; `None` once the stream closed.
    fn register(&self, id: &str) -> Option<Registration<'_>> {
        let (sender, answer) = oneshot::channel();
        let mut waiting = self.shared.waiting();
        if waiting.closed {
            return None;
        }
        let token = waiting.next_token;
        waiting.next_token += 1;
        waiting
            .answers
            .entry(id.to_owned())
            .or_default()
            .push_back((token, sender));
        drop(waiting);
        self.shared.in_flight.send_modify(|count| *count += 1);
        Some(Registration {
            shared: &self.shared,
            id: id.to_owned(),
            token,
            answer,
        })
    }

    /// Hands the client's answer to the delivery waiting for its id (the oldest, if the
    /// id is being delivered more than once); an answer nobody waits for is logged.
    pub(super) fn answer(&self, processed: SubscribeTopicEventsRequestProcessedAlpha1) {
        // A missing status reads as the default, SUCCESS, as upstream reads it.
        let status = processed.status.map_or(0, |status| status.status);
        let waiter = {
            let mut waiting = self.shared.waiting();
            let waiter = waiting
                .answers
                .get_mut(&processed.id)
                .and_then(VecDeque::pop_front);
            if waiting
                .answers
                .get(&processed.id)
                .is_some_and(VecDeque::is_empty)
            {
                waiting.answers.remove(&processed.id);
            }
            waiter
        };
        match waiter {
            Some((_, sender)) => {
                let _ = sender.send(status);
            }
            None => tracing::error!(
                "no client stream expecting publish response for id {}",
                processed.id
            ),
        }
    }

    /// Resolves once no delivery is waiting for an answer.
    pub(super) async fn drained(&self) {
        let mut in_flight = self.shared.in_flight.subscribe();
        let _ = in_flight.wait_for(|count| *count == 0).await;
    }

    /// Closes the target: nothing more is sent and waiting deliveries end.
    pub(super) fn close(&self) {
        let mut waiting = self.shared.waiting();
        waiting.closed = true;
        waiting.answers.clear();
        drop(waiting);
        self.shared.closed.send_replace(true);
    }
}
