//! Tells publishers and subscribers when the broker has accepted their request.
//!
//! rumqttc hands out no completion for a request, so this pairs them with the event loop's
//! events: requests enter the client's queue in order (a waiter is queued under the same
//! lock), the event loop announces each as it writes it (`Outgoing::Publish(pkid)`,
//! `Outgoing::Subscribe(pkid)`), and the broker's `PUBACK`/`PUBCOMP`/`SUBACK` for that packet
//! id completes the waiter. QoS 0 publishes complete once written. Across reconnects the
//! waiters follow what rumqttc does with its pending requests: resent when the broker kept
//! the session, dropped (and failed here) when it did not.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnAck, Event, Incoming, Outgoing, QoS, Request, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::sync::oneshot;

/// The outcome the broker gave a request.
pub type Outcome = Result<(), String>;
type Waiter = oneshot::Sender<Outcome>;

/// The request queue was full; try again shortly.
#[derive(Debug)]
pub struct QueueFull;

/// Pairs requests with the broker's acknowledgements.
#[derive(Debug, Default)]
pub struct AckTracker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Publishes queued in the client, not yet written (no packet id yet), in order.
    publishes: VecDeque<Waiter>,
    /// Subscribes queued in the client, not yet written, in order.
    subscribes: VecDeque<Waiter>,
    /// Written publishes waiting for PUBACK (QoS 1) or PUBCOMP (QoS 2).
    publish_acks: HashMap<u16, Waiter>,
    /// Written subscribes waiting for SUBACK.
    subscribe_acks: HashMap<u16, Waiter>,
    /// Queued publishes and subscribes the event loop set aside when the connection dropped
    /// (they are the oldest entries of the queues above).
    set_aside: (usize, usize),
    /// Whether a connection was ever established.
    connected_before: bool,
}

impl AckTracker {
    /// Queues a publish; the receiver resolves when the broker has accepted it.
    pub fn publish(
        &self,
        client: &AsyncClient,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Bytes,
    ) -> Result<oneshot::Receiver<Outcome>, QueueFull> {
        let (waiter, receiver) = oneshot::channel();
        let mut state = self.lock();
        state.publishes.push_back(waiter);
        if client.try_publish(topic, qos, retain, payload).is_err() {
            state.publishes.pop_back();
            return Err(QueueFull);
        }
        Ok(receiver)
    }

    /// Queues a subscribe; the receiver resolves when the broker has answered it.
    pub fn subscribe(
        &self,
        client: &AsyncClient,
        filter: &str,
        qos: QoS,
    ) -> Result<oneshot::Receiver<Outcome>, QueueFull> {
        let (waiter, receiver) = oneshot::channel();
        let mut state = self.lock();
        state.subscribes.push_back(waiter);
        if client.try_subscribe(filter, qos).is_err() {
            state.subscribes.pop_back();
            return Err(QueueFull);
        }
        Ok(receiver)
    }

    /// Queues one subscribe for all `filters` without anyone waiting (used after a reconnect).
    pub fn resubscribe(&self, client: &AsyncClient, filters: Vec<String>, qos: QoS) -> bool {
        if filters.is_empty() {
            return true;
        }
        let (waiter, _) = oneshot::channel();
        let mut state = self.lock();
        state.subscribes.push_back(waiter);
        let filters = filters
            .into_iter()
            .map(|filter| SubscribeFilter::new(filter, qos));
        if client.try_subscribe_many(filters).is_err() {
            state.subscribes.pop_back();
            return false;
        }
        true
    }

    /// Follows one event from the event loop.
    pub fn on_event(&self, event: &Event) {
        let mut state = self.lock();
        match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                // A packet id already waiting is a resend after a reconnect.
                if *pkid != 0 && state.publish_acks.contains_key(pkid) {
                    return;
                }
                let Some(waiter) = state.publishes.pop_front() else {
                    return;
                };
                state.set_aside.0 = state.set_aside.0.saturating_sub(1);
                if *pkid == 0 {
                    let _ = waiter.send(Ok(()));
                } else {
                    state.publish_acks.insert(*pkid, waiter);
                }
            }
            Event::Outgoing(Outgoing::Subscribe(pkid)) => {
                if let Some(waiter) = state.subscribes.pop_front() {
                    state.set_aside.1 = state.set_aside.1.saturating_sub(1);
                    state.subscribe_acks.insert(*pkid, waiter);
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => complete(&mut state.publish_acks, ack.pkid),
            Event::Incoming(Incoming::PubComp(ack)) => complete(&mut state.publish_acks, ack.pkid),
            Event::Incoming(Incoming::SubAck(ack)) => {
                if let Some(waiter) = state.subscribe_acks.remove(&ack.pkid) {
                    let refused = ack
                        .return_codes
                        .iter()
                        .any(|code| matches!(code, SubscribeReasonCode::Failure));
                    let outcome = if refused {
                        Err("the broker refused the subscription".to_owned())
                    } else {
                        Ok(())
                    };
                    let _ = waiter.send(outcome);
                }
            }
            _ => {}
        }
    }

    /// The connection dropped; `pending` is what the event loop will resend if the broker
    /// kept the session.
    pub fn on_disconnect(&self, pending: &VecDeque<Request>, collided_publish: bool) {
        let mut state = self.lock();
        let unsent_publishes = pending
            .iter()
            .filter(|request| matches!(request, Request::Publish(publish) if publish.pkid == 0))
            .count();
        let unsent_subscribes = pending
            .iter()
            .filter(|request| matches!(request, Request::Subscribe(_)))
            .count();
        state.set_aside = (
            unsent_publishes + usize::from(collided_publish),
            unsent_subscribes,
        );
        // A SUBSCRIBE the broker never answered is not resent; the reconnect resubscribes.
        for (_, waiter) in state.subscribe_acks.drain() {
            let _ = waiter.send(Err("connection to the broker lost".to_owned()));
        }
    }

    /// A connection was established; without a kept session the set-aside requests are gone.
    pub fn on_connected(&self, connack: &ConnAck) {
        let mut state = self.lock();
        if state.connected_before && !connack.session_present {
            let lost = "connection to the broker lost before it acknowledged the request";
            for (_, waiter) in state.publish_acks.drain() {
                let _ = waiter.send(Err(lost.to_owned()));
            }
            let (publishes, subscribes) = state.set_aside;
            for _ in 0..publishes {
                if let Some(waiter) = state.publishes.pop_front() {
                    let _ = waiter.send(Err(lost.to_owned()));
                }
            }
            for _ in 0..subscribes {
                if let Some(waiter) = state.subscribes.pop_front() {
                    let _ = waiter.send(Err(lost.to_owned()));
                }
            }
        }
        state.set_aside = (0, 0);
        state.connected_before = true;
    }

    /// Fails every outstanding request (the component is closing).
    pub fn fail_all(&self, reason: &str) {
        let mut state = self.lock();
        let State {
            publishes,
            subscribes,
            publish_acks,
            subscribe_acks,
            ..
        } = &mut *state;
        let waiters = publishes
            .drain(..)
            .chain(subscribes.drain(..))
            .chain(publish_acks.drain().map(|(_, waiter)| waiter))
            .chain(subscribe_acks.drain().map(|(_, waiter)| waiter));
        for waiter in waiters {
            let _ = waiter.send(Err(reason.to_owned()));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn complete(waiters: &mut HashMap<u16, Waiter>, pkid: u16) {
    if let Some(waiter) = waiters.remove(&pkid) {
        let _ = waiter.send(Ok(()));
    }
}
