//! The one MQTT connection: the task that drives rumqttc's event loop, reconnects with a
//! growing delay (resubscribing every filter, as upstream does on each connect), feeds the
//! [`AckTracker`] and routes each received message to the subscription whose filter matches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, Outgoing, Publish, QoS};
use tokio::sync::mpsc;

use super::acks::AckTracker;
use super::topics::TopicFilter;

/// First delay before reconnecting.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(250);
/// Longest delay between reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(20);

/// How many messages without a subscription are held for one to appear.
const MAX_UNROUTED: usize = 1024;

/// One subscription's entry in the routing table.
#[derive(Debug)]
struct Route {
    id: u64,
    filter: TopicFilter,
    deliveries: mpsc::UnboundedSender<Publish>,
}

/// The subscriptions, and messages that arrived before any subscription wanted them.
#[derive(Debug, Default)]
struct Table {
    routes: Vec<Route>,
    /// A resumed session delivers right after connecting, before daprd subscribes; these
    /// wait (unacknowledged) for their subscription instead of blocking the broker's window.
    unrouted: Vec<Publish>,
}

/// State shared by the component, its connection task and its subscriptions.
#[derive(Debug)]
pub struct Shared {
    /// The client half of the connection.
    pub client: AsyncClient,
    /// Completion of publishes and subscribes.
    pub acks: AckTracker,
    /// QoS of every subscription.
    pub qos: QoS,
    /// Set once the component is closing.
    pub closed: AtomicBool,
    table: Mutex<Table>,
    next_route: AtomicU64,
}

impl Shared {
    /// State around a connected client.
    pub fn new(client: AsyncClient, qos: QoS) -> Self {
        Self {
            client,
            acks: AckTracker::default(),
            qos,
            closed: AtomicBool::new(false),
            table: Mutex::new(Table::default()),
            next_route: AtomicU64::new(1),
        }
    }

    /// Adds a route for `filter`; returns its id and the messages it receives (starting
    /// with held messages it matches).
    pub fn add_route(&self, filter: &str) -> (u64, mpsc::UnboundedReceiver<Publish>) {
        let (deliveries, receiver) = mpsc::unbounded_channel();
        let id = self.next_route.fetch_add(1, Ordering::Relaxed);
        let filter = TopicFilter::new(filter);
        let mut table = self.table();
        let (matching, others): (Vec<_>, Vec<_>) = std::mem::take(&mut table.unrouted)
            .into_iter()
            .partition(|publish| filter.matches(&publish.topic));
        table.unrouted = others;
        for publish in matching {
            // The receiver is alive: it is returned below.
            let _ = deliveries.send(publish);
        }
        table.routes.push(Route {
            id,
            filter,
            deliveries,
        });
        (id, receiver)
    }

    /// Removes a route; returns whether another route still uses the same filter.
    pub fn remove_route(&self, id: u64) -> bool {
        let mut table = self.table();
        let Some(index) = table.routes.iter().position(|route| route.id == id) else {
            return false;
        };
        let removed = table.routes.remove(index);
        table
            .routes
            .iter()
            .any(|route| route.filter.subscribed() == removed.filter.subscribed())
    }

    /// Drops every route (their subscriptions see the end of their deliveries).
    pub fn clear_routes(&self) {
        let mut table = self.table();
        table.routes.clear();
        table.unrouted.clear();
    }

    /// Every distinct subscribed filter.
    fn filters(&self) -> Vec<String> {
        let mut filters: Vec<String> = self
            .table()
            .routes
            .iter()
            .map(|route| route.filter.subscribed().to_owned())
            .collect();
        filters.sort();
        filters.dedup();
        filters
    }

    /// Hands a message to the subscription for its topic: an exact filter first, then any
    /// matching wildcard filter. Unrouted messages stay unacknowledged, as upstream leaves
    /// them, and are held for a subscription that may come.
    fn route(&self, publish: Publish) {
        let mut table = self.table();
        let route = table
            .routes
            .iter()
            .find(|route| route.filter.is_exactly(&publish.topic))
            .or_else(|| {
                table
                    .routes
                    .iter()
                    .find(|route| route.filter.matches(&publish.topic))
            });
        let undelivered = match route {
            Some(route) => match route.deliveries.send(publish) {
                Ok(()) => return,
                Err(undelivered) => undelivered.0,
            },
            None => publish,
        };
        if table.unrouted.len() < MAX_UNROUTED {
            tracing::debug!(
                "mqtt3: holding a message on topic {} until a subscription wants it",
                undelivered.topic
            );
            table.unrouted.push(undelivered);
        } else {
            tracing::warn!(
                "mqtt3: no handler for a message received on topic {}; left unacknowledged",
                undelivered.topic
            );
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Drives an already connected event loop until the component closes.
pub async fn drive(mut event_loop: EventLoop, shared: Arc<Shared>) {
    let mut delay = FIRST_RECONNECT_DELAY;
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(connack))) => {
                delay = FIRST_RECONNECT_DELAY;
                if !connack.session_present {
                    // rumqttc dropped what it meant to resend; a publish stuck behind a
                    // packet-id collision would otherwise wait forever.
                    event_loop.state.collision = None;
                }
                shared.acks.on_connected(&connack);
                tracing::info!(
                    "mqtt3: reconnected to the broker (session present: {})",
                    connack.session_present
                );
                if !shared
                    .acks
                    .resubscribe(&shared.client, shared.filters(), shared.qos)
                {
                    tracing::error!("mqtt3: could not queue the resubscription after reconnecting");
                }
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => shared.route(publish),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(event) => shared.acks.on_event(&event),
            Err(error) => {
                if shared.closed.load(Ordering::SeqCst) {
                    break;
                }
                tracing::error!("mqtt3: connection with the broker lost: {error}");
                shared
                    .acks
                    .on_disconnect(&event_loop.pending, event_loop.state.collision.is_some());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                tracing::info!("mqtt3: attempting to reconnect to the broker");
            }
        }
    }
    shared.acks.fail_all("mqtt client closed");
}
