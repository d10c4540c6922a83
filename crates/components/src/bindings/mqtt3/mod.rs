//! `bindings.mqtt3`: publishes to and reads from one MQTT 3.1.1 topic, as upstream's binding
//! does, over the `pubsub.mqtt3` connection machinery.
//!
//! Opening only reads the settings. The output half (`create`) connects on first use as
//! `<consumerID>-producer` and publishes with QoS 1 to `topic` (a request's `topic`
//! metadata overrides it) with the component's `retain`. A reading connects as
//! `<consumerID>-consumer`, subscribes to `topic` (resubscribing on every reconnect) and
//! hands each message to the handler, concurrently, with the `topic` it came from as
//! metadata. A message is acknowledged only once the handler accepted it; a refused one is
//! tried again every 5 s up to `backOffMaxRetries` times (default 0, negative for no
//! limit) and then left unacknowledged, so the broker delivers it again when a persistent
//! session resumes. Stopping a reading disconnects without unsubscribing, so a persistent
//! session keeps collecting messages. One reading runs at a time.

mod events;
mod settings;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use self::events::Events;
pub use self::settings::{Retries, Settings};
use crate::bindings::{
    BindingError, EventHandler, InputBinding, InvokeRequest, InvokeResponse, Operation,
    OutputBinding, Reading, operations,
};
use crate::metadata::Properties;
use crate::pubsub::mqtt3::Mqtt3PubSub;
use crate::pubsub::{PubSub, PubSubError, PublishRequest, SubscribeRequest};

/// Request metadata naming the topic to publish to instead of the component's.
pub const TOPIC_METADATA_KEY: &str = "topic";

/// Further publish attempts after a failed one (upstream's three).
const PUBLISH_RETRIES: u32 = 3;
/// The pause between publish attempts.
const PUBLISH_RETRY_WAIT: Duration = Duration::from_millis(200);
/// How long a second reading waits for the first one to finish stopping.
const READING_HANDOVER_WAIT: Duration = Duration::from_secs(2);

/// An MQTT topic as a binding.
pub struct Mqtt3Binding {
    settings: Settings,
    /// The publishing connection, made on first use.
    producer: tokio::sync::Mutex<Option<Arc<Mqtt3PubSub>>>,
    /// Whether a reading is running.
    reading: Arc<AtomicBool>,
    closed: AtomicBool,
    /// Set once the binding closes; running readings stop.
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for Mqtt3Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt3Binding")
            .field("host", &self.settings.broker.host)
            .field("port", &self.settings.broker.port)
            .field("topic", &self.settings.topic)
            .finish_non_exhaustive()
    }
}

/// Reads the settings; connections are made when the binding is used.
pub fn open(properties: &Properties) -> Result<Mqtt3Binding, BindingError> {
    Ok(Mqtt3Binding::new(Settings::parse(properties)?))
}

impl Mqtt3Binding {
    /// A binding with these settings.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            producer: tokio::sync::Mutex::new(None),
            reading: Arc::new(AtomicBool::new(false)),
            closed: AtomicBool::new(false),
            closing: watch::Sender::new(false),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The publishing connection, connecting it first if needed.
    async fn producer(&self) -> Result<Arc<Mqtt3PubSub>, BindingError> {
        let mut producer = self.producer.lock().await;
        if let Some(connected) = &*producer {
            return Ok(Arc::clone(connected));
        }
        let connected = Mqtt3PubSub::connect(self.settings.producer())
            .await
            .map(Arc::new)
            .map_err(|error| {
                BindingError::Backend(format!("failed to create producer connection: {error}"))
            })?;
        *producer = Some(Arc::clone(&connected));
        Ok(connected)
    }

    /// Claims the one reading, waiting a little for a stopping one to let go.
    async fn claim_reading(&self) -> Result<(), BindingError> {
        let claim = || {
            self.reading
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        };
        if claim() {
            return Ok(());
        }
        tracing::debug!("mqtt3 binding: a reading is already active; waiting before retrying");
        tokio::time::sleep(READING_HANDOVER_WAIT).await;
        if claim() {
            return Ok(());
        }
        Err(BindingError::InvalidRequest(
            "the subscription is already active".into(),
        ))
    }
}

#[async_trait::async_trait]
impl OutputBinding for Mqtt3Binding {
    fn operations(&self) -> Vec<Operation> {
        vec![operations::CREATE.to_owned()]
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, BindingError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(BindingError::Closed);
        }
        if request.operation != operations::CREATE {
            return Err(BindingError::UnsupportedOperation(request.operation));
        }
        let producer = self.producer().await?;
        let topic = request
            .metadata
            .get(TOPIC_METADATA_KEY)
            .filter(|topic| !topic.is_empty())
            .unwrap_or(&self.settings.topic)
            .clone();
        // No metadata: the component's `retain` applies, as upstream's binding has it.
        let publish = PublishRequest {
            topic,
            data: request.data,
            metadata: HashMap::new(),
            content_type: None,
        };
        let mut retries = 0;
        loop {
            match producer.publish(publish.clone()).await {
                Ok(()) => {
                    if retries > 0 {
                        tracing::debug!(
                            "mqtt3 binding: published a message after it previously failed"
                        );
                    }
                    return Ok(InvokeResponse::default());
                }
                Err(PubSubError::Backend(reason)) if retries < PUBLISH_RETRIES => {
                    tracing::debug!("mqtt3 binding: could not publish, retrying: {reason}");
                    retries += 1;
                    tokio::time::sleep(PUBLISH_RETRY_WAIT).await;
                }
                Err(PubSubError::Closed) => return Err(BindingError::Closed),
                Err(PubSubError::InvalidRequest(reason) | PubSubError::InvalidMetadata(reason)) => {
                    return Err(BindingError::InvalidRequest(reason));
                }
                Err(PubSubError::Backend(reason)) => return Err(BindingError::Backend(reason)),
            }
        }
    }

    async fn close(&self) -> Result<(), BindingError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.closing.send_replace(true);
        if let Some(producer) = self.producer.lock().await.take() {
            producer.close().await.map_err(BindingError::backend)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl InputBinding for Mqtt3Binding {
    async fn read(&self, handler: Arc<dyn EventHandler>) -> Result<Reading, BindingError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(BindingError::Closed);
        }
        self.claim_reading().await?;
        let release = |error: BindingError| {
            self.reading.store(false, Ordering::SeqCst);
            error
        };
        tracing::info!(
            "mqtt3 binding: subscribing to topic {} (qos: 1)",
            self.settings.topic
        );
        let consumer = Mqtt3PubSub::connect(self.settings.consumer())
            .await
            .map_err(|error| {
                release(BindingError::Backend(format!("failed to connect: {error}")))
            })?;
        let (stopping, events) = Events::new(handler, &self.settings);
        let subscribed = consumer
            .subscribe(
                SubscribeRequest {
                    topic: self.settings.topic.clone(),
                    metadata: HashMap::new(),
                },
                Arc::new(events),
            )
            .await;
        let subscription = match subscribed {
            Ok(subscription) => subscription,
            Err(error) => {
                if let Err(error) = consumer.close().await {
                    tracing::debug!("mqtt3 binding: closing the consumer failed: {error}");
                }
                return Err(release(BindingError::backend(error)));
            }
        };
        let parts = Mutex::new(Some((
            consumer,
            subscription,
            stopping,
            self.closing.subscribe(),
            Arc::clone(&self.reading),
            self.settings.topic.clone(),
        )));
        Ok(Reading::spawn(1, move |mut stop| {
            let parts = parts.lock().unwrap_or_else(PoisonError::into_inner).take();
            async move {
                let Some((consumer, subscription, stopping, mut closing, reading, topic)) = parts
                else {
                    return;
                };
                tokio::select! {
                    () = stop.stopped() => {}
                    _ = closing.wait_for(|closing| *closing) => {}
                }
                tracing::info!(
                    "mqtt3 binding: disconnecting and stopping subscription to topic {topic}"
                );
                // Retries in progress give up; handlers in progress complete.
                stopping.send_replace(true);
                subscription.unsubscribe().await;
                if let Err(error) = consumer.close().await {
                    tracing::debug!("mqtt3 binding: closing the consumer failed: {error}");
                }
                reading.store(false, Ordering::SeqCst);
            }
        }))
    }

    async fn close(&self) -> Result<(), BindingError> {
        OutputBinding::close(self).await
    }
}
