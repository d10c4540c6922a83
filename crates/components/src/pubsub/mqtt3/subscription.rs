//! One subscription's task: hands each routed message to the handler (concurrently, as
//! upstream does), acknowledges it only when the handler succeeded, and on stop leaves the
//! routing table, sends `UNSUBSCRIBE` when asked to and waits for the handlers in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rumqttc::Publish;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::connection::Shared;
use crate::pubsub::{Message, MessageHandler, StopSignal};

/// Message metadata key telling whether the broker delivered a retained message.
pub const RETAINED_METADATA_KEY: &str = "retained";

/// What a subscription task works with.
pub struct Delivery {
    /// The connection's shared state.
    pub shared: Arc<Shared>,
    /// The routing-table entry of this subscription.
    pub route_id: u64,
    /// The subscribed filter.
    pub filter: String,
    /// Whether stopping sends `UNSUBSCRIBE` (clean sessions, or `unsubscribeOnClose`).
    pub unsubscribe_on_stop: bool,
    /// The messages routed here.
    pub deliveries: mpsc::UnboundedReceiver<Publish>,
    /// The app's handler.
    pub handler: Arc<dyn MessageHandler>,
}

/// Runs the subscription until it is stopped or the component closes.
pub async fn run(mut delivery: Delivery, mut stop: StopSignal) {
    let mut handlers = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stop.stopped() => break,
            received = delivery.deliveries.recv() => match received {
                Some(publish) => {
                    handlers.spawn(handle(
                        delivery.shared.clone(),
                        delivery.handler.clone(),
                        publish,
                    ));
                }
                None => break,
            },
            Some(finished) = handlers.join_next(), if !handlers.is_empty() => log_panic(finished),
        }
    }
    // Stop routing here first; messages not yet handled stay unacknowledged for redelivery.
    let filter_still_used = delivery.shared.remove_route(delivery.route_id);
    delivery.deliveries.close();
    if delivery.unsubscribe_on_stop
        && !filter_still_used
        && !delivery.shared.closed.load(Ordering::SeqCst)
        && let Err(error) = delivery.shared.client.unsubscribe(&delivery.filter).await
    {
        tracing::warn!(
            "mqtt3: failed to unsubscribe from topic {}: {error}",
            delivery.filter
        );
    }
    while let Some(finished) = handlers.join_next().await {
        log_panic(finished);
    }
    tracing::debug!("mqtt3: subscription to topic {} stopped", delivery.filter);
}

/// Handles one message; acknowledges it only when the handler accepted it.
async fn handle(shared: Arc<Shared>, handler: Arc<dyn MessageHandler>, publish: Publish) {
    let message = Message {
        topic: publish.topic.clone(),
        data: publish.payload.clone(),
        metadata: HashMap::from([(RETAINED_METADATA_KEY.to_owned(), publish.retain.to_string())]),
        content_type: None,
    };
    tracing::debug!(
        "mqtt3: processing message {}#{} (retained={})",
        publish.topic,
        publish.pkid,
        publish.retain
    );
    match handler.handle(message).await {
        Ok(()) => {
            if let Err(error) = shared.client.ack(&publish).await {
                tracing::warn!(
                    "mqtt3: could not acknowledge message {}#{}: {error}",
                    publish.topic,
                    publish.pkid
                );
            }
        }
        Err(error) => tracing::error!(
            "mqtt3: failed processing message {}#{}: {error}",
            publish.topic,
            publish.pkid
        ),
    }
}

fn log_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        tracing::error!("mqtt3: a message handler panicked: {error}");
    }
}
