//! `pubsub.rabbitmq`: upstream's RabbitMQ broker over AMQP 0-9-1.
//!
//! A topic is an exchange of that name (`exchangeKind`, fanout by default); a
//! subscription consumes the queue `<consumerID>-<topic>` bound to it, so instances
//! sharing a `consumerID` share its messages. One connection and one channel per
//! instance carry publishing and every subscription; when they fail, the side that
//! notices waits `reconnectWaitSeconds` and reconnects. Modules: `settings` (the
//! metadata), `link` (the shared connection), `topology` (what a subscription declares)
//! and `consumer` (a subscription's task).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use tokio::sync::oneshot;

use crate::metadata::Properties;
use crate::pubsub::{
    Feature, MessageHandler, PubSub, PubSubError, PublishRequest, SubscribeRequest, Subscription,
};

pub(crate) mod consumer;
pub(crate) mod link;
pub(crate) mod settings;
mod topology;

#[cfg(test)]
pub(crate) mod tests;

use consumer::Worker;
use link::{Link, LinkError, must_reconnect};
use settings::{ERROR_PREFIX, Settings, message_ttl};
use topology::{Plan, ROUTING_KEY_KEY};

/// Publishing gives up after this many attempts.
const PUBLISH_ATTEMPTS: u32 = 3;
/// The pause between publish attempts when the channel is still open.
const PUBLISH_RETRY_WAIT: Duration = Duration::from_secs(2);
/// How long `subscribe` waits for the first consumer to be registered.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(60);
/// Publish metadata keys copied into AMQP properties (matched without regard to case).
const CONTENT_TYPE_KEY: &str = "contentType";
const MESSAGE_ID_KEY: &str = "messageID";
const CORRELATION_ID_KEY: &str = "correlationID";
const TYPE_KEY: &str = "type";
const PRIORITY_KEY: &str = "priority";

/// The broker's capabilities (upstream's list).
const FEATURES: &[Feature] = &[Feature::MessageTtl];

/// A RabbitMQ broker connection.
pub struct RabbitMqPubSub {
    settings: Arc<Settings>,
    link: Arc<Link>,
}

impl std::fmt::Debug for RabbitMqPubSub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RabbitMqPubSub")
            .field("host", &self.settings.uri.authority.host)
            .field("port", &self.settings.uri.authority.port)
            .finish_non_exhaustive()
    }
}

/// Reads the settings and connects.
pub async fn open(properties: &Properties) -> Result<RabbitMqPubSub, PubSubError> {
    let settings = Arc::new(Settings::from_properties(properties)?);
    let link = Link::open(settings.endpoint())
        .await
        .map_err(|error| PubSubError::Backend(format!("{ERROR_PREFIX} {error}")))?;
    Ok(RabbitMqPubSub {
        settings,
        link: Arc::new(link),
    })
}

impl RabbitMqPubSub {
    /// One publish attempt; also returns the channel it used and the connection number
    /// for the reconnect rule.
    async fn publish_once(
        &self,
        request: &PublishRequest,
        routing_key: &str,
        properties: &BasicProperties,
    ) -> (Option<lapin::Channel>, u64, Result<(), LinkError>) {
        let confirmation = {
            let mut state = self.link.lock().await;
            let count = state.count();
            let Some(channel) = state.channel() else {
                return (None, count, Err(LinkError::NotConnected));
            };
            let declared = state
                .ensure_exchange(
                    &channel,
                    &request.topic,
                    self.settings.exchange_kind.clone(),
                    self.settings.durable,
                    self.settings.delete_when_unused,
                )
                .await;
            if let Err(error) = declared {
                return (Some(channel), count, Err(error));
            }
            let sent = channel
                .basic_publish(
                    request.topic.as_str().into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    &request.data,
                    properties.clone(),
                )
                .await;
            match sent {
                Ok(confirmation) => (channel, count, confirmation),
                Err(error) => return (Some(channel), count, Err(error.into())),
            }
        };
        let (channel, count, confirmation) = confirmation;
        let result = match confirmation.await {
            Ok(answer) if answer.is_nack() => Err(LinkError::Amqp(lapin::Error::from(
                std::io::Error::other("did not receive confirmation of publishing"),
            ))),
            Ok(_) => Ok(()),
            Err(error) => Err(error.into()),
        };
        (Some(channel), count, result)
    }
}

/// The AMQP properties of a published message.
fn publish_properties(
    settings: &Settings,
    request: &PublishRequest,
) -> Result<BasicProperties, PubSubError> {
    let metadata = &request.metadata;
    let ttl = message_ttl(metadata).map_err(PubSubError::InvalidRequest)?;
    let mut properties = BasicProperties::default().with_content_type("text/plain".into());
    // Mode 0 means "not set": the property is left out, as upstream's client does.
    if settings.delivery_mode > 0 {
        properties = properties.with_delivery_mode(settings.delivery_mode);
    }
    if let Some(ttl) = ttl.or(settings.default_ttl) {
        // RabbitMQ takes the expiration in milliseconds.
        properties = properties.with_expiration(ttl.as_millis().to_string().into());
    }
    if let Some(text) = metadata.get(PRIORITY_KEY).filter(|text| !text.is_empty()) {
        match text.trim().parse::<i64>() {
            Ok(priority) => {
                let priority = u8::try_from(priority.clamp(0, 255)).unwrap_or(u8::MAX);
                properties = properties.with_priority(priority);
            }
            Err(_) => tracing::warn!(
                "rabbitmq pub/sub: publishing to {} failed to parse priority: {text}, it is ignored.",
                request.topic
            ),
        }
    }
    if let Some(value) = lookup(metadata, CONTENT_TYPE_KEY) {
        properties = properties.with_content_type(value.into());
    }
    if let Some(value) = lookup(metadata, MESSAGE_ID_KEY) {
        properties = properties.with_message_id(value.into());
    }
    if let Some(value) = lookup(metadata, CORRELATION_ID_KEY) {
        properties = properties.with_correlation_id(value.into());
    }
    if let Some(value) = lookup(metadata, TYPE_KEY) {
        properties = properties.with_type(value.into());
    }
    Ok(properties)
}

/// A non-empty metadata value, by exact name first and then without regard to case.
pub(crate) fn lookup<'a>(
    metadata: &'a std::collections::HashMap<String, String>,
    key: &str,
) -> Option<&'a str> {
    metadata
        .get(key)
        .filter(|value| !value.is_empty())
        .or_else(|| {
            metadata
                .iter()
                .find(|(name, value)| !value.is_empty() && name.eq_ignore_ascii_case(key))
                .map(|(_, value)| value)
        })
        .map(String::as_str)
}

#[async_trait::async_trait]
impl PubSub for RabbitMqPubSub {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        if self.link.is_closed() {
            return Err(PubSubError::Closed);
        }
        let properties = publish_properties(&self.settings, &request)?;
        let routing_key = request
            .metadata
            .get(ROUTING_KEY_KEY)
            .map(String::as_str)
            .unwrap_or_default()
            .to_owned();
        tracing::debug!("rabbitmq pub/sub: publishing message to {}", request.topic);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (channel, count, result) =
                self.publish_once(&request, &routing_key, &properties).await;
            let Err(error) = result else {
                return Ok(());
            };
            if attempt >= PUBLISH_ATTEMPTS {
                tracing::error!("rabbitmq pub/sub: publishing failed: {error}");
                return Err(PubSubError::Backend(format!("{ERROR_PREFIX} {error}")));
            }
            if must_reconnect(channel.as_ref(), &error) {
                tracing::warn!(
                    "rabbitmq pub/sub: publisher is reconnecting in {:?} ...",
                    self.settings.reconnect_wait
                );
                tokio::time::sleep(self.settings.reconnect_wait).await;
                if let Err(error) = self.link.reconnect(count).await {
                    tracing::warn!("rabbitmq pub/sub: reconnecting failed: {error}");
                }
            } else {
                tracing::warn!(
                    "rabbitmq pub/sub: publishing attempt ({attempt}/{PUBLISH_ATTEMPTS}) failed: {error}"
                );
                tokio::time::sleep(PUBLISH_RETRY_WAIT).await;
            }
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError> {
        if self.link.is_closed() {
            return Err(PubSubError::Closed);
        }
        let plan = Plan::new(&self.settings, &request)?;
        let queue = plan.queue.clone();
        tracing::info!(
            "rabbitmq pub/sub: subscribe to topic/queue '{}/{queue}'",
            request.topic
        );
        let worker = Worker {
            link: self.link.clone(),
            settings: self.settings.clone(),
            plan,
            handler,
        };
        let (ready_sender, ready) = oneshot::channel();
        let ready_sender = Mutex::new(Some(ready_sender));
        let subscription = Subscription::spawn(1, |stop| {
            let sender = ready_sender
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            worker.clone().run(stop, sender)
        });
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, ready).await {
            Ok(Ok(())) => Ok(subscription),
            _ => {
                subscription.unsubscribe().await;
                if self.link.is_closed() {
                    return Err(PubSubError::Closed);
                }
                Err(PubSubError::Backend(format!(
                    "failed to subscribe to {queue}"
                )))
            }
        }
    }

    async fn ping(&self) -> Result<(), PubSubError> {
        if self.link.is_connected().await {
            Ok(())
        } else {
            Err(PubSubError::Backend(format!(
                "{ERROR_PREFIX} channel/connection is not open"
            )))
        }
    }

    async fn close(&self) -> Result<(), PubSubError> {
        self.link.close().await;
        Ok(())
    }
}
