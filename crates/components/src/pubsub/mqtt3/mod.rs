//! `pubsub.mqtt3`: MQTT 3.1.1 brokers (Mosquitto, EMQX, HiveMQ, ...), as upstream's
//! component behaves.
//!
//! One connection per component, with the client id `consumerID` and a persistent session
//! unless `cleanSession` is set. Publishes use the component's `qos` and `retain` (a
//! request's `retain` metadata overrides it) and return once the broker accepted them.
//! Subscriptions take MQTT filters (`+`, `#`, `$share/GROUP/...`); a message is
//! acknowledged (PUBACK/PUBREC) only after its handler succeeded, and a failed one stays
//! unacknowledged so the broker delivers it again when the session resumes. Stopping a
//! subscription keeps the broker-side subscription (so a persistent session keeps
//! collecting messages) unless `cleanSession` is set or the subscription's metadata has
//! `unsubscribeOnClose`. Received messages carry `retained` metadata.

mod acks;
mod connection;
mod settings;
mod subscription;
mod tls;
mod topics;

#[cfg(test)]
mod tests;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, TlsConfiguration, Transport};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::acks::{Outcome, QueueFull};
use self::connection::Shared;
pub use self::settings::{BrokerAddress, Settings, TlsPem};
pub(crate) use self::settings::{has_pem_block, parse_url};
use self::subscription::Delivery;
pub use self::subscription::RETAINED_METADATA_KEY;
use crate::metadata::Properties;
use crate::pubsub::{
    Feature, MessageHandler, PubSub, PubSubError, PublishRequest, SubscribeRequest, Subscription,
};

/// Publish metadata key overriding the component's `retain` setting.
pub const RETAIN_METADATA_KEY: &str = "retain";
/// Subscription metadata key: send `UNSUBSCRIBE` when the subscription stops.
pub const UNSUBSCRIBE_ON_CLOSE_METADATA_KEY: &str = "unsubscribeOnClose";

/// How long connecting, publishing and subscribing may take (upstream's wait).
const OPERATION_WAIT: Duration = Duration::from_secs(20);
/// How long closing waits for the connection to say goodbye.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Requests the client queues before the connection task takes them.
const REQUEST_QUEUE: usize = 1024;
/// How long to wait before retrying a request when the client's queue is full.
const QUEUE_RETRY: Duration = Duration::from_millis(5);
/// MQTT's largest packet.
const MAX_PACKET_SIZE: usize = 268_435_455;
/// Keep-alive interval (paho's default, which upstream uses).
const KEEP_ALIVE: Duration = Duration::from_secs(30);

const FEATURES: &[Feature] = &[Feature::SubscribeWildcards];

/// An MQTT 3 broker connection.
pub struct Mqtt3PubSub {
    settings: Settings,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Mqtt3PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt3PubSub")
            .field("host", &self.settings.broker.host)
            .field("port", &self.settings.broker.port)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

/// Reads the settings and connects to the broker.
pub async fn open(properties: &Properties) -> Result<Mqtt3PubSub, PubSubError> {
    Mqtt3PubSub::open(properties).await
}

impl Mqtt3PubSub {
    /// Reads the settings and connects to the broker.
    pub async fn open(properties: &Properties) -> Result<Self, PubSubError> {
        Self::connect(Settings::parse(properties)?).await
    }

    /// Connects to the broker with settings read elsewhere (`bindings.mqtt3` reads its own).
    pub(crate) async fn connect(settings: Settings) -> Result<Self, PubSubError> {
        let options = client_options(&settings)?;
        let (client, mut event_loop) = AsyncClient::new(options, REQUEST_QUEUE);
        let connack = match tokio::time::timeout(OPERATION_WAIT, event_loop.poll()).await {
            Ok(Ok(Event::Incoming(Incoming::ConnAck(connack)))) => connack,
            Ok(Ok(other)) => {
                return Err(PubSubError::Backend(format!(
                    "failed to establish connection to broker: unexpected {other:?}"
                )));
            }
            Ok(Err(error)) => {
                return Err(PubSubError::Backend(format!(
                    "failed to establish connection to broker: {error}"
                )));
            }
            Err(_) => {
                return Err(PubSubError::Backend(
                    "failed to establish connection to broker: timed out".into(),
                ));
            }
        };
        let shared = Arc::new(Shared::new(client, settings.qos));
        shared.acks.on_connected(&connack);
        tracing::debug!(
            "mqtt3: connected to {}:{} as {} (session present: {})",
            settings.broker.host,
            settings.broker.port,
            settings.client_id,
            connack.session_present
        );
        let task = tokio::spawn(connection::drive(event_loop, shared.clone()));
        Ok(Self {
            settings,
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Queues a request with `enqueue` (retrying while the client's queue is full) and
    /// waits for the broker's answer until `deadline`.
    async fn request(
        &self,
        deadline: Instant,
        enqueue: impl Fn() -> Result<oneshot::Receiver<Outcome>, QueueFull>,
    ) -> Result<(), String> {
        let answer = loop {
            if self.is_closed() {
                return Err("mqtt client closed".into());
            }
            match enqueue() {
                Ok(answer) => break answer,
                Err(QueueFull) if Instant::now() < deadline => {
                    tokio::time::sleep(QUEUE_RETRY).await;
                }
                Err(QueueFull) => return Err("timed out waiting for the client's queue".into()),
            }
        };
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err("mqtt client closed".into()),
            Err(_) => Err("timed out waiting for the broker".into()),
        }
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    fn take_task(&self) -> Option<JoinHandle<()>> {
        self.task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl Drop for Mqtt3PubSub {
    fn drop(&mut self) {
        if let Some(task) = self.take_task() {
            task.abort();
        }
    }
}

/// The rumqttc options for the settings: manual acks, the session flag and TLS.
fn client_options(settings: &Settings) -> Result<MqttOptions, PubSubError> {
    let broker = &settings.broker;
    let mut options = MqttOptions::new(&settings.client_id, &broker.host, broker.port);
    options
        .set_clean_session(settings.clean_session)
        .set_manual_acks(true)
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE)
        .set_request_channel_capacity(REQUEST_QUEUE);
    if let Some(username) = &broker.username {
        options.set_credentials(username, broker.password.clone().unwrap_or_default());
    }
    if broker.tls {
        let config = tls::client_config(&settings.tls)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    }
    Ok(options)
}

/// Go's `strconv.ParseBool`, which upstream uses for the per-request `retain`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[async_trait::async_trait]
impl PubSub for Mqtt3PubSub {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        if self.is_closed() {
            return Err(PubSubError::Closed);
        }
        if request.topic.is_empty() {
            return Err(PubSubError::InvalidRequest("topic name is empty".into()));
        }
        if !rumqttc::valid_topic(&request.topic) {
            return Err(PubSubError::InvalidRequest(format!(
                "invalid topic name {:?}: it must not contain wildcards",
                request.topic
            )));
        }
        let retain = match request.metadata.get(RETAIN_METADATA_KEY) {
            Some(text) if !text.is_empty() => parse_go_bool(text).ok_or_else(|| {
                PubSubError::InvalidRequest(format!("mqtt invalid retain {text}"))
            })?,
            _ => self.settings.retain,
        };
        tracing::debug!("mqtt3: publishing to topic {}", request.topic);
        let deadline = Instant::now() + OPERATION_WAIT;
        let topic = request.topic.as_str();
        let payload: Bytes = request.data;
        self.request(deadline, || {
            self.shared.acks.publish(
                &self.shared.client,
                topic,
                self.settings.qos,
                retain,
                payload.clone(),
            )
        })
        .await
        .map_err(|error| PubSubError::Backend(format!("failed to publish: {error}")))
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError> {
        if self.is_closed() {
            return Err(PubSubError::Closed);
        }
        let filter = request.topic;
        if filter.is_empty() {
            return Err(PubSubError::InvalidRequest("topic name is empty".into()));
        }
        if !rumqttc::valid_filter(&filter) {
            return Err(PubSubError::InvalidRequest(format!(
                "invalid topic filter {filter:?}"
            )));
        }
        let unsubscribe_on_close = request
            .metadata
            .get(UNSUBSCRIBE_ON_CLOSE_METADATA_KEY)
            .is_some_and(|text| crate::metadata::is_truthy(text));
        let (route_id, deliveries) = self.shared.add_route(&filter);
        let deadline = Instant::now() + OPERATION_WAIT;
        let subscribed = self
            .request(deadline, || {
                self.shared
                    .acks
                    .subscribe(&self.shared.client, &filter, self.settings.qos)
            })
            .await;
        if let Err(error) = subscribed {
            self.shared.remove_route(route_id);
            return Err(PubSubError::Backend(format!(
                "mqtt error from subscribe: {error}"
            )));
        }
        tracing::info!(
            "mqtt3: subscribed to topic {filter} (qos: {})",
            self.settings.qos as u8
        );
        let delivery = Mutex::new(Some(Delivery {
            shared: self.shared.clone(),
            route_id,
            filter,
            unsubscribe_on_stop: self.settings.clean_session || unsubscribe_on_close,
            deliveries,
            handler,
        }));
        Ok(Subscription::spawn(1, move |stop| {
            let delivery = delivery
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            async move {
                if let Some(delivery) = delivery {
                    subscription::run(delivery, stop).await;
                }
            }
        }))
    }

    async fn close(&self) -> Result<(), PubSubError> {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        tracing::debug!("mqtt3: closing");
        self.shared.clear_routes();
        if let Err(error) = self.shared.client.try_disconnect() {
            tracing::debug!("mqtt3: could not queue the disconnect: {error}");
        }
        if let Some(mut task) = self.take_task()
            && tokio::time::timeout(CLOSE_WAIT, &mut task).await.is_err()
        {
            task.abort();
        }
        self.shared.acks.fail_all("mqtt client closed");
        Ok(())
    }
}
