//! Delivery of subscribed messages to the app. [`Subscriber`] subscribes every
//! subscription of the app to its broker (skipping those the component's
//! `subscriptionScopes` forbid, and those naming an unknown component), each with a
//! [`handler::Delivery`] that prepares, routes and delivers messages over HTTP or gRPC.
//! A bulk subscription (`bulkSubscribe.enabled`) wraps it in a [`bulk::BulkDelivery`]
//! that delivers the messages in batches.
//! A streaming subscription ([`crate::pubsub::streaming`]) is one more target: its
//! client stream, subscribed with [`subscribe`].
//!
//! A component reload that replaces or removes a subscription's component stops that
//! subscription; it is subscribed again on the new component.
//!
//! Subscriptions run while the app is healthy: when app health checks report it
//! unhealthy every subscription stops (its messages stay with the broker) and they start
//! again when it recovers. Stopping is graceful: brokers stop pulling, messages being
//! delivered finish, and nothing in flight is acknowledged after the stop began.

mod bulk;
mod event;
mod expiry;
mod grpc;
mod handler;
mod http;
mod outcome;
#[cfg(test)]
pub(crate) mod test_app;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dapr_components::pubsub::{
    MessageHandler, SubscribeRequest, Subscription as BrokerSubscription,
};
use dapr_kit::shutdown::ShutdownSignal;
use tokio::sync::{Mutex, watch};

use super::routing::Routes;
use super::subscriptions::Subscription;
use crate::channel::AppChannel;
use crate::components::PubSubHandle;
use crate::resiliency::{ComponentKind, Direction};
use crate::runtime::Runtime;
use handler::Delivery;

pub(crate) use event::ReceivedEvent;
pub use event::{PUBSUB_NAME_KEY, RAW_PAYLOAD_KEY};
pub(crate) use grpc::envelope;
pub(crate) use outcome::Outcome;

/// How the app is reached.
#[derive(Clone)]
pub enum AppTarget {
    /// An HTTP app.
    Http(AppChannel),
    /// A gRPC app: its channel (for health) and its transport.
    Grpc {
        /// The app channel.
        channel: AppChannel,
        /// The HTTP/2 transport to the app.
        transport: tonic::transport::Channel,
        /// `APP_API_TOKEN`, sent with every call.
        api_token: Option<String>,
    },
    /// A streaming subscription's client stream.
    Stream(crate::pubsub::streaming::StreamTarget),
}

impl AppTarget {
    /// The target for `channel` (gRPC when the channel speaks gRPC).
    pub fn new(channel: &AppChannel, api_token: Option<String>) -> Self {
        match channel.grpc_transport() {
            Some(transport) => Self::Grpc {
                channel: channel.clone(),
                transport,
                api_token,
            },
            None => Self::Http(channel.clone()),
        }
    }
}

/// One running subscription.
pub(crate) struct Running {
    pubsub: String,
    topic: String,
    /// The component it was subscribed on (a reload may replace it).
    handle: Arc<PubSubHandle>,
    broker: BrokerSubscription,
    stopping: Arc<AtomicBool>,
    stop_signal: watch::Sender<bool>,
}

impl Running {
    /// Starts stopping: retries end and nothing more is acknowledged.
    pub(crate) fn halt(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop_signal.send(true);
    }

    /// Unsubscribes from the broker, waiting for the messages in hand.
    pub(crate) async fn unsubscribe(self) {
        tracing::info!(
            "unsubscribing from topic {} on pubsub {}",
            self.topic,
            self.pubsub
        );
        self.broker.unsubscribe().await;
    }
}

/// The app's running subscriptions.
pub struct Subscriber {
    runtime: Arc<Runtime>,
    app: AppTarget,
    subscriptions: Vec<Subscription>,
    running: Mutex<Vec<Running>>,
}

impl Subscriber {
    /// A subscriber of `subscriptions` delivering to `app`, retrying by the runtime's
    /// resiliency policies.
    pub fn new(runtime: Arc<Runtime>, app: AppTarget, subscriptions: Vec<Subscription>) -> Self {
        Self {
            runtime,
            app,
            subscriptions,
            running: Mutex::new(Vec::new()),
        }
    }

    /// Subscribes every subscription that is not running yet, after stopping those whose
    /// component a reload replaced or removed; failures are logged.
    pub async fn start(&self) {
        let mut running = self.running.lock().await;
        let components = self.runtime.components.snapshot();
        let (current, stale): (Vec<Running>, Vec<Running>) = std::mem::take(&mut *running)
            .into_iter()
            .partition(|entry| {
                components
                    .pubsub(&entry.pubsub)
                    .is_some_and(|handle| Arc::ptr_eq(handle, &entry.handle))
            });
        *running = current;
        for entry in &stale {
            entry.halt();
        }
        futures::future::join_all(stale.into_iter().map(Running::unsubscribe)).await;
        for subscription in &self.subscriptions {
            let active = running.iter().any(|entry| {
                entry.pubsub == subscription.pubsub_name && entry.topic == subscription.topic
            });
            if active {
                continue;
            }
            match subscribe(&self.runtime, &self.app, subscription).await {
                Ok(entry) => running.push(entry),
                Err(error) => tracing::error!(
                    "failed to subscribe to topic {} on pubsub {}: {error}",
                    subscription.topic,
                    subscription.pubsub_name
                ),
            }
        }
    }

    /// Stops every running subscription gracefully.
    pub async fn stop(&self) {
        let running: Vec<Running> = std::mem::take(&mut *self.running.lock().await);
        for entry in &running {
            entry.halt();
        }
        futures::future::join_all(running.into_iter().map(Running::unsubscribe)).await;
    }

    /// Runs the subscriptions while the app is healthy until `shutdown`, then stops them;
    /// a component reload re-subscribes the subscriptions of replaced components.
    pub async fn run(&self, health: watch::Receiver<bool>, shutdown: ShutdownSignal) {
        let mut health = health;
        let mut reloads = self.runtime.components.changes();
        loop {
            reloads.borrow_and_update();
            let healthy = *health.borrow_and_update();
            if healthy {
                self.start().await;
            } else {
                self.stop().await;
            }
            tokio::select! {
                () = shutdown.wait() => break,
                changed = health.changed() => if changed.is_err() { break },
                changed = reloads.changed() => if changed.is_err() { break },
            }
        }
        self.stop().await;
    }
}

/// Subscribes `subscription` to its broker, delivering to `app` and retrying by the
/// component's inbound policy in the runtime's resiliency resources.
pub(crate) async fn subscribe(
    runtime: &Runtime,
    app: &AppTarget,
    subscription: &Subscription,
) -> Result<Running, String> {
    let components = runtime.components.snapshot();
    let handle = components
        .pubsub(&subscription.pubsub_name)
        .cloned()
        .ok_or_else(|| format!("pubsub {} not found", subscription.pubsub_name))?;
    if !handle.scopes.may_subscribe(&subscription.topic) {
        return Err(format!(
            "subscription to topic '{}' on pubsub '{}' is not allowed",
            subscription.topic, subscription.pubsub_name
        ));
    }
    let routes = Routes::compile(&subscription.rules).map_err(|error| error.to_string())?;
    let policy = runtime.resiliency.component_policy(
        &subscription.pubsub_name,
        ComponentKind::PubSub,
        Direction::Inbound,
    );
    let namespace_prefix = if handle.namespace_scoped {
        runtime.config.namespace.clone()
    } else {
        String::new()
    };
    let stopping = Arc::new(AtomicBool::new(false));
    let (stop_signal, stop_receiver) = watch::channel(false);
    let delivery = Delivery {
        handle: handle.clone(),
        topic: subscription.topic.clone(),
        namespace_prefix: namespace_prefix.clone(),
        routes,
        raw_payload: event::raw_payload(&subscription.metadata),
        dead_letter_topic: subscription.dead_letter_topic.clone(),
        policy,
        app: app.clone(),
        metrics: runtime.metrics.clone(),
        stopping: stopping.clone(),
        stop_signal: stop_receiver,
    };
    let request = SubscribeRequest {
        topic: format!("{namespace_prefix}{}", subscription.topic),
        metadata: subscription
            .metadata
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    };
    let handler: Arc<dyn MessageHandler> = match &subscription.bulk_subscribe {
        Some(bulk) if bulk.enabled => {
            let settings =
                bulk::BatchSettings::new(bulk, handle.broker.features(), &subscription.topic);
            Arc::new(bulk::BulkDelivery::start(delivery, settings))
        }
        _ => Arc::new(delivery),
    };
    let broker = handle
        .broker
        .subscribe(request, handler)
        .await
        .map_err(|error| error.to_string())?;
    tracing::info!(
        "subscribed to topic {} on pubsub {}",
        subscription.topic,
        subscription.pubsub_name
    );
    Ok(Running {
        pubsub: subscription.pubsub_name.clone(),
        topic: subscription.topic.clone(),
        handle,
        broker,
        stopping,
        stop_signal,
    })
}
