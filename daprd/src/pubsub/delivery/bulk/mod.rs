//! Bulk subscriptions (`bulkSubscribe.enabled`): a subscription's messages are gathered
//! into batches and handed to the app together (`POST` of a `com.dapr.event.sent.bulk`
//! envelope to HTTP apps, `OnBulkTopicEvent` to gRPC apps), as upstream's default bulk
//! subscriber does for brokers without a native bulk subscribe. A batch is flushed when
//! it holds `maxMessagesCount` messages (default 100) or `maxAwaitDurationMs` (default
//! 1000) after its first message arrived; brokers declaring `BULK_SUBSCRIBE_IMMEDIATE`
//! flush every message as it arrives, together with any already waiting.
//!
//! Every broker delivery ([`BulkDelivery::handle`]) prepares and routes its message,
//! queues it for the [`batcher`] and waits for the message's own verdict, which comes
//! once its batch is settled: the broker acknowledges a message only after the app (or
//! the dead-letter topic) took it, so brokers that redeliver keep their at-least-once
//! guarantee. Hence a batch holds the messages the broker has in hand at once: brokers
//! handing over messages concurrently (Redis streams' `concurrency`, JetStream's
//! parallel mode) fill batches up to that concurrency, while brokers that deliver one
//! message at a time and wait for its acknowledgement (`pubsub.in-memory`) get batches
//! of one, each after `maxAwaitDurationMs`, exactly as upstream's do. Acknowledging on
//! arrival would make larger batches from such brokers but lose every message the app
//! then fails on, so it is not done.
//!
//! A batch is settled by [`batch`]: entries are grouped by route, each group delivered
//! (retrying only its failed entries by the inbound resiliency policy), entries the app
//! dropped go to the dead-letter topic, and entries still failing go there too when the
//! subscription has one, else back to the broker. Stopping flushes the gathered batch at
//! once; nothing that arrives afterwards is delivered, and failures are then neither
//! retried nor dead-lettered.

mod batch;
mod batcher;
mod grpc;
mod http;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dapr_components::pubsub::{Feature, Message, MessageHandler, NotAcknowledged};
use tokio::sync::{mpsc, oneshot};

use super::event::ReceivedEvent;
use super::handler::{Delivery, Prepared};
use super::outcome::Outcome;
use crate::pubsub::subscriptions::BulkSubscribe;

/// Upstream's default largest batch.
const DEFAULT_MAX_MESSAGES: usize = 100;
/// Upstream's default longest wait for a batch.
const DEFAULT_MAX_AWAIT: Duration = Duration::from_millis(1000);
/// The `type` of a bulk envelope.
const BULK_EVENT_TYPE: &str = "com.dapr.event.sent.bulk";

/// When a subscription's batches are flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// The largest batch.
    pub max_messages: usize,
    /// How long a batch waits for more messages after its first.
    pub max_await: Duration,
    /// Flush as soon as a message arrives (the broker declares
    /// `BULK_SUBSCRIBE_IMMEDIATE`).
    pub immediate: bool,
}

impl BatchSettings {
    /// The settings of a bulk subscription to `topic` on a broker with `features`: a
    /// count or wait that is not positive takes upstream's default.
    pub fn new(bulk: &BulkSubscribe, features: &[Feature], topic: &str) -> Self {
        let immediate = features.contains(&Feature::BulkSubscribeImmediate);
        if immediate && bulk.max_await_duration_ms > 0 {
            tracing::warn!(
                "bulk subscribe on topic {topic:?}: maxAwaitDurationMs={}ms is ignored because the pubsub component declares immediate-flush; each message is delivered as soon as it arrives",
                bulk.max_await_duration_ms
            );
        }
        Self {
            max_messages: usize::try_from(bulk.max_messages_count)
                .ok()
                .filter(|count| *count > 0)
                .unwrap_or(DEFAULT_MAX_MESSAGES),
            max_await: u64::try_from(bulk.max_await_duration_ms)
                .ok()
                .filter(|millis| *millis > 0)
                .map_or(DEFAULT_MAX_AWAIT, Duration::from_millis),
            immediate,
        }
    }
}

/// A message waiting in the batch queue for its verdict.
struct Pending {
    /// The message as the broker gave it.
    message: Message,
    /// The message prepared and routed.
    prepared: Prepared,
    /// Where the verdict goes: `Ok` acknowledges the message.
    verdict: oneshot::Sender<Result<(), NotAcknowledged>>,
}

/// One message of a batch handed to the app.
struct Entry {
    /// The `entryId` the app answers for.
    id: String,
    /// The message as the broker gave it.
    original: Message,
    /// The event.
    event: ReceivedEvent,
}

/// One bulk delivery: the entries of a batch routed to one path.
struct Request<'a> {
    /// The component's name.
    pubsub: &'a str,
    /// The app's topic.
    topic: &'a str,
    /// The route's path.
    path: &'a str,
    /// Whether the entries are raw payloads.
    raw: bool,
    /// The entries.
    entries: &'a [&'a Entry],
}

/// What the app answered for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// `SUCCESS`.
    Success,
    /// `RETRY` (or, from HTTP apps, no status).
    Retry,
    /// `DROP`.
    Drop,
    /// A status upstream does not know.
    Unknown(String),
}

/// The outcome of each of `entries` from the app's `answers` by entry id, as upstream
/// reads them: the last answer for an entry counts, answers for unknown ids are
/// ignored, and an entry without an answer is retried.
fn outcomes(
    entries: &[&Entry],
    answers: impl IntoIterator<Item = (String, Answer)>,
) -> Vec<Outcome> {
    let positions: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| (entry.id.as_str(), index))
        .collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; entries.len()];
    for (id, answer) in answers {
        let Some(&index) = positions.get(id.as_str()) else {
            tracing::warn!(
                "Invalid entry id received from app while processing pub/sub event {id}"
            );
            continue;
        };
        outcomes[index] = Some(match answer {
            Answer::Success => Outcome::Success,
            Answer::Drop => {
                tracing::warn!("DROP status returned from app while processing pub/sub event {id}");
                Outcome::Dropped { dead_letter: true }
            }
            Answer::Retry => Outcome::Retry(format!(
                "RETRY required while processing bulk subscribe event for entry id: {id}"
            )),
            Answer::Unknown(status) => Outcome::Retry(format!(
                "unknown status returned from app while processing bulk subscribe event {id}: {status}"
            )),
        });
    }
    outcomes
        .into_iter()
        .zip(entries)
        .map(|(outcome, entry)| {
            outcome.unwrap_or_else(|| {
                Outcome::Retry(format!(
                    "response not received, RETRY required while processing bulk subscribe event for entry id: {}",
                    entry.id
                ))
            })
        })
        .collect()
}

/// A bulk subscription's message handler: it feeds the batcher and waits for verdicts.
pub struct BulkDelivery {
    delivery: Arc<Delivery>,
    queue: mpsc::UnboundedSender<Pending>,
}

impl BulkDelivery {
    /// Starts the batcher of `delivery`'s subscription; it ends when the handler is
    /// dropped (the broker's subscription ended), after settling what it gathered.
    pub fn start(delivery: Delivery, settings: BatchSettings) -> Self {
        let delivery = Arc::new(delivery);
        let (queue, queued) = mpsc::unbounded_channel();
        tokio::spawn(batcher::run(delivery.clone(), settings, queued));
        Self { delivery, queue }
    }
}

/// The refusal of a message that arrives once the subscription stops.
fn stopping() -> NotAcknowledged {
    NotAcknowledged("the subscription is stopping".to_owned())
}

#[async_trait::async_trait]
impl MessageHandler for BulkDelivery {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        if self.delivery.stopping.load(Ordering::SeqCst) {
            return Err(stopping());
        }
        let prepared = self.delivery.prepare(&message);
        let (verdict, settled) = oneshot::channel();
        let ended = || NotAcknowledged("the bulk subscription has ended".to_owned());
        self.queue
            .send(Pending {
                message,
                prepared,
                verdict,
            })
            .map_err(|_| ended())?;
        settled.await.unwrap_or_else(|_| Err(ended()))
    }
}
