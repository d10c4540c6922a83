//! Settling one batch, as upstream's bulk handler does: messages that were skipped
//! (expired, or matching no route) are acknowledged and dead-lettered; the others are
//! grouped by route and each group is delivered in one request, retrying the entries
//! the app did not accept as the inbound resiliency policy allows. Entries the app
//! dropped go to the dead-letter topic; entries that could not be delivered go there
//! too when the subscription has one (and are acknowledged once forwarded), else they
//! stay with the broker. The batch is counted in `dapr_component_pubsub_ingress_bulk_*`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dapr_components::pubsub::{Message, NotAcknowledged};
use tokio::sync::oneshot;

use super::super::AppTarget;
use super::super::outcome::Outcome;
use super::{Delivery, Entry, Pending, Prepared, Request, grpc, http};

/// Upstream's names of entry outcomes in the bulk metrics.
const SUCCESS: &str = "SUCCESS";
const DROP: &str = "DROP";
const RETRY: &str = "RETRY";

/// What a verdict is sent on.
type Verdict = oneshot::Sender<Result<(), NotAcknowledged>>;

/// A message that could not be delivered.
struct Failure {
    original: Message,
    metadata: HashMap<String, String>,
    reason: String,
    verdict: Verdict,
}

/// How many entries of the batch ended which way.
#[derive(Debug, Default)]
struct Tally {
    success: u64,
    dropped: u64,
    retried: u64,
}

/// Settles `batch` and sends every message its verdict.
pub(super) async fn settle(delivery: &Delivery, batch: Vec<Pending>) {
    let mut tally = Tally::default();
    let mut routes: Vec<(String, Vec<(Entry, Verdict)>)> = Vec::new();
    let mut failures = Vec::new();
    for pending in batch {
        match pending.prepared {
            Prepared::Deliver { event, path } => {
                let entry = Entry {
                    id: uuid::Uuid::new_v4().to_string(),
                    original: pending.message,
                    event,
                };
                match routes.iter_mut().find(|(route, _)| *route == path) {
                    Some((_, entries)) => entries.push((entry, pending.verdict)),
                    None => routes.push((path, vec![(entry, pending.verdict)])),
                }
            }
            Prepared::Skipped { metadata, .. } => {
                delivery
                    .dead_letter_skipped(&pending.message, &metadata)
                    .await;
                tally.dropped += 1;
                let _ = pending.verdict.send(Ok(()));
            }
            Prepared::Undeliverable { metadata, reason } => failures.push(Failure {
                original: pending.message,
                metadata,
                reason,
                verdict: pending.verdict,
            }),
        }
    }
    let mut elapsed = Duration::ZERO;
    for (path, entries) in routes {
        let (entries, verdicts): (Vec<Entry>, Vec<Verdict>) = entries.into_iter().unzip();
        let (outcomes, took) = deliver(delivery, &path, &entries).await;
        elapsed += took;
        for ((entry, verdict), outcome) in entries.into_iter().zip(verdicts).zip(outcomes) {
            match outcome {
                Outcome::Success => {
                    tally.success += 1;
                    let _ = verdict.send(Ok(()));
                }
                Outcome::Dropped { dead_letter } => {
                    tally.dropped += 1;
                    let settled = if dead_letter {
                        delivery
                            .dead_letter_dropped(&entry.original, &entry.event.metadata)
                            .await
                    } else {
                        Ok(())
                    };
                    let _ = verdict.send(settled);
                }
                Outcome::Retry(reason) => failures.push(Failure {
                    original: entry.original,
                    metadata: entry.event.metadata,
                    reason,
                    verdict,
                }),
            }
        }
    }
    for failure in failures {
        let settled = undeliverable(delivery, &failure).await;
        match settled {
            Ok(()) => tally.dropped += 1,
            Err(_) => tally.retried += 1,
        }
        let _ = failure.verdict.send(settled);
    }
    let metrics = &delivery.metrics;
    metrics.record_bulk_pubsub_ingress(delivery.pubsub(), &delivery.topic, elapsed);
    for (status, count) in [
        (SUCCESS, tally.success),
        (DROP, tally.dropped),
        (RETRY, tally.retried),
    ] {
        metrics.record_bulk_pubsub_ingress_entries(
            delivery.pubsub(),
            &delivery.topic,
            status,
            count,
        );
    }
}

/// A failed entry goes to the dead-letter topic (and is acknowledged) when the
/// subscription has one and is not stopping; else it stays with the broker.
async fn undeliverable(delivery: &Delivery, failure: &Failure) -> Result<(), NotAcknowledged> {
    if !delivery.stopping.load(Ordering::SeqCst)
        && !delivery.dead_letter_topic.is_empty()
        && delivery
            .dead_letter(
                failure.original.data.clone(),
                &failure.metadata,
                failure.original.content_type.clone(),
            )
            .await
            .is_ok()
    {
        return Ok(());
    }
    Err(NotAcknowledged(failure.reason.clone()))
}

/// Delivers `entries` on `path`, retrying the ones the app did not accept; returns each
/// entry's last outcome and the time spent with the app.
async fn deliver(delivery: &Delivery, path: &str, entries: &[Entry]) -> (Vec<Outcome>, Duration) {
    let mut outcomes: Vec<Outcome> =
        vec![Outcome::Retry("not delivered".to_owned()); entries.len()];
    let mut pending: Vec<usize> = (0..entries.len()).collect();
    let mut delays = delivery.retry_delays();
    let mut elapsed = Duration::ZERO;
    loop {
        let attempt: Vec<&Entry> = pending.iter().map(|index| &entries[*index]).collect();
        let (answers, took) = attempt_once(delivery, path, &attempt).await;
        elapsed += took;
        let mut retry = Vec::new();
        for (index, outcome) in pending.into_iter().zip(answers) {
            if matches!(outcome, Outcome::Retry(_)) {
                retry.push(index);
            }
            outcomes[index] = outcome;
        }
        if retry.is_empty() {
            return (outcomes, elapsed);
        }
        tracing::warn!(
            "encountered a retriable error while publishing {} subscribed message(s) in bulk to topic {}",
            retry.len(),
            delivery.topic
        );
        if !delivery.wait_to_retry(&mut delays).await {
            return (outcomes, elapsed);
        }
        pending = retry;
    }
}

/// Delivers `entries` to the app once.
async fn attempt_once(
    delivery: &Delivery,
    path: &str,
    entries: &[&Entry],
) -> (Vec<Outcome>, Duration) {
    let request = Request {
        pubsub: delivery.pubsub(),
        topic: &delivery.topic,
        path,
        raw: matches!(delivery.raw_payload, Ok(true)),
        entries,
    };
    let unhealthy = || {
        (
            vec![Outcome::Retry("app is not healthy".to_owned()); entries.len()],
            Duration::ZERO,
        )
    };
    match &delivery.app {
        AppTarget::Http(channel) => {
            if !channel.health().is_healthy() {
                return unhealthy();
            }
            http::deliver(channel, &request).await
        }
        AppTarget::Grpc {
            channel,
            transport,
            api_token,
        } => {
            if !channel.health().is_healthy() {
                return unhealthy();
            }
            grpc::deliver(transport.clone(), api_token.as_deref(), &request).await
        }
        // As upstream, streaming subscriptions have no bulk delivery.
        AppTarget::Stream(_) => (
            vec![Outcome::Retry("not implemented".to_owned()); entries.len()],
            Duration::ZERO,
        ),
    }
}
