//! What a subscription declares on the broker, named as upstream names it: the topic's
//! exchange, the queue `<consumerID>-<topic>` (or the subscription's `queueName`) bound to
//! it once per routing key, and with `enableDeadLetter` the fanout exchange `dlx-<queue>`
//! feeding the lazy queue `dlq-<queue>`.

use std::collections::HashMap;

use lapin::options::{BasicQosOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::link::{LinkError, State};
use super::settings::Settings;
use crate::pubsub::{PubSubError, SubscribeRequest};

/// Subscription metadata naming the queue to consume.
const QUEUE_NAME_KEY: &str = "queueName";
/// Subscription (and publish) metadata with the routing key(s).
pub(super) const ROUTING_KEY_KEY: &str = "routingKey";
/// Subscription metadata: the queue's `x-max-priority`.
const MAX_PRIORITY_KEY: &str = "maxPriority";
/// Subscription metadata: `classic` (default) or `quorum`.
const QUEUE_TYPE_KEY: &str = "queueType";
/// Subscription metadata: a truthy value sets `x-single-active-consumer`.
const SINGLE_ACTIVE_CONSUMER_KEY: &str = "singleActiveConsumer";

/// Everything one subscription declares, worked out before anything is sent.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The topic, which is also the exchange's name.
    pub topic: String,
    /// The queue consumed.
    pub queue: String,
    /// The queue's arguments.
    arguments: FieldTable,
    /// Binding keys (one empty key when none are given).
    routing_keys: Vec<String>,
    /// `dlx-<queue>` and `dlq-<queue>` with the dead letter queue's arguments.
    dead_letter: Option<(String, String, FieldTable)>,
}

impl Plan {
    /// Works out a subscription's names and arguments, refusing bad subscription
    /// metadata up front.
    pub(super) fn new(
        settings: &Settings,
        request: &SubscribeRequest,
    ) -> Result<Self, PubSubError> {
        let metadata = &request.metadata;
        let queue = match metadata.get(QUEUE_NAME_KEY).filter(|name| !name.is_empty()) {
            Some(name) => name.clone(),
            None if settings.consumer_id.is_empty() => {
                return Err(PubSubError::InvalidRequest(
                    "consumerID is required for subscriptions that don't specify a queue name"
                        .to_owned(),
                ));
            }
            None => format!("{}-{}", settings.consumer_id, request.topic),
        };

        let mut arguments = FieldTable::default();
        let dead_letter = settings.enable_dead_letter.then(|| {
            let exchange = format!("dlx-{queue}");
            let mut dlq_arguments = length_limits(settings);
            dlq_arguments.insert("x-queue-mode".into(), long_string("lazy"));
            arguments.insert("x-dead-letter-exchange".into(), long_string(&exchange));
            (exchange, format!("dlq-{queue}"), dlq_arguments)
        });
        for (key, value) in length_limits(settings).inner() {
            arguments.insert(key.clone(), value.clone());
        }
        if let Some(text) = present(metadata, MAX_PRIORITY_KEY) {
            let priority = parse_unsigned(MAX_PRIORITY_KEY, text)?;
            let priority = u8::try_from(priority).unwrap_or(u8::MAX);
            arguments.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(priority));
        }
        let queue_type = match present(metadata, QUEUE_TYPE_KEY) {
            None => "classic",
            Some(kind @ ("classic" | "quorum")) => kind,
            Some(other) => {
                return Err(PubSubError::InvalidRequest(format!(
                    "invalid queue type {other}. Valid types are classic and quorum"
                )));
            }
        };
        arguments.insert("x-queue-type".into(), long_string(queue_type));
        if present(metadata, SINGLE_ACTIVE_CONSUMER_KEY).is_some_and(crate::metadata::is_truthy) {
            arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        }
        if let Some(text) = present(metadata, "maxLenBytes") {
            let limit = parse_unsigned("x-max-length-bytes", text)?;
            arguments.insert("x-max-length-bytes".into(), long_long(limit));
        }
        if let Some(text) = present(metadata, "maxLen") {
            let limit = parse_unsigned("x-max-length", text)?;
            arguments.insert("x-max-length".into(), long_long(limit));
        }
        let routing_keys = metadata
            .get(ROUTING_KEY_KEY)
            .map(String::as_str)
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        Ok(Self {
            topic: request.topic.clone(),
            queue,
            arguments,
            routing_keys,
            dead_letter,
        })
    }

    /// Declares the exchanges and queues and binds them, on the locked connection.
    pub(super) async fn declare(
        &self,
        state: &mut State,
        channel: &Channel,
        settings: &Settings,
    ) -> Result<(), LinkError> {
        let auto_delete = settings.delete_when_unused;
        state
            .ensure_exchange(
                channel,
                &self.topic,
                settings.exchange_kind.clone(),
                settings.durable,
                auto_delete,
            )
            .await?;
        if let Some((exchange, queue, arguments)) = &self.dead_letter {
            // The dead letter exchange and queue are always durable.
            state
                .ensure_exchange(channel, exchange, ExchangeKind::Fanout, true, auto_delete)
                .await?;
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        auto_delete,
                        ..QueueDeclareOptions::default()
                    },
                    arguments.clone(),
                )
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        tracing::info!("rabbitmq pub/sub: declaring queue '{}'", self.queue);
        channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: settings.durable,
                    auto_delete,
                    ..QueueDeclareOptions::default()
                },
                self.arguments.clone(),
            )
            .await?;
        if settings.prefetch_count > 0 {
            channel
                .basic_qos(
                    u16::from(settings.prefetch_count),
                    BasicQosOptions::default(),
                )
                .await?;
        }
        for key in &self.routing_keys {
            channel
                .queue_bind(
                    self.queue.as_str().into(),
                    self.topic.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

/// `x-max-length` / `x-max-length-bytes` from the component's `maxLen` / `maxLenBytes`.
fn length_limits(settings: &Settings) -> FieldTable {
    let mut arguments = FieldTable::default();
    if settings.max_len > 0 {
        arguments.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(settings.max_len),
        );
    }
    if settings.max_len_bytes > 0 {
        arguments.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(settings.max_len_bytes),
        );
    }
    arguments
}

fn present<'a>(metadata: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    metadata
        .get(key)
        .map(String::as_str)
        .filter(|text| !text.is_empty())
}

fn parse_unsigned(name: &str, text: &str) -> Result<u64, PubSubError> {
    text.parse::<u64>().map_err(|error| {
        PubSubError::InvalidRequest(format!(
            "rabbitmq pub/sub error: can't parse {name} value '{text}' on subscription metadata: {error}"
        ))
    })
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(text.into())
}

fn long_long(value: u64) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(value).unwrap_or(i64::MAX))
}
