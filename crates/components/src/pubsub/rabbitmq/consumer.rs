//! A subscription's task: declare, consume, hand each delivery to the app and ack it (or
//! nack it, requeued only with `requeueInFailure`), and after a lost channel wait
//! `reconnectWaitSeconds`, reconnect and start again. Stopping cancels the consumer,
//! returns deliveries not yet handed to the app and waits for the handlers in progress.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::link::{Link, LinkError, must_reconnect};
use super::settings::{Concurrency, Settings};
use super::topology::Plan;
use crate::pubsub::{Message, MessageHandler, StopSignal};

/// AMQP's limit on a consumer tag's length.
const MAX_CONSUMER_TAG_LEN: usize = 255;

/// What one subscription works with.
#[derive(Clone)]
pub(super) struct Worker {
    /// The component's shared connection.
    pub link: Arc<Link>,
    /// The component's settings.
    pub settings: Arc<Settings>,
    /// The subscription's exchange, queue and bindings.
    pub plan: Plan,
    /// The app.
    pub handler: Arc<dyn MessageHandler>,
}

/// How one consume attempt ended.
enum Ended {
    /// Stopping was asked for.
    Stopped,
    /// The channel or a declaration failed: the channel used, the connection number and
    /// the error.
    Failed(Box<(Option<Channel>, u64, LinkError)>),
}

/// How listening to one consumer ended.
enum Listened {
    Stopped,
    /// The consumer's stream ended (the channel closed).
    StreamEnded,
    Failed(LinkError),
}

impl Worker {
    /// Runs the subscription until stopped (or the component is closed); `ready` hears
    /// once the first consumer is registered.
    pub(super) async fn run(self, mut stop: StopSignal, ready: Option<oneshot::Sender<()>>) {
        let mut ready = ready;
        let mut in_flight = JoinSet::new();
        loop {
            let (channel, count, error) =
                match self.consume(&mut stop, &mut ready, &mut in_flight).await {
                    Ended::Stopped => break,
                    Ended::Failed(failure) => *failure,
                };
            if stop.is_stopped() || self.link.is_closed() {
                break;
            }
            tracing::error!(
                "rabbitmq pub/sub error: subscriber for {} failed: {error}",
                self.plan.queue
            );
            let reconnect = must_reconnect(channel.as_ref(), &error);
            if reconnect {
                tracing::warn!(
                    "rabbitmq pub/sub: subscriber is reconnecting in {:?} ...",
                    self.settings.reconnect_wait
                );
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.reconnect_wait) => {}
                () = stop.stopped() => break,
            }
            if reconnect && let Err(error) = self.link.reconnect(count).await {
                tracing::warn!("rabbitmq pub/sub: reconnecting failed: {error}");
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// Declares and consumes until stopped or until something fails.
    async fn consume(
        &self,
        stop: &mut StopSignal,
        ready: &mut Option<oneshot::Sender<()>>,
        in_flight: &mut JoinSet<()>,
    ) -> Ended {
        loop {
            if stop.is_stopped() {
                return Ended::Stopped;
            }
            let (channel, count, consumer, tag) = {
                let mut state = self.link.lock().await;
                let count = state.count();
                let Some(channel) = state.channel() else {
                    return Ended::Failed(Box::new((None, count, LinkError::NotConnected)));
                };
                if let Err(error) = self
                    .plan
                    .declare(&mut state, &channel, &self.settings)
                    .await
                {
                    return Ended::Failed(Box::new((Some(channel), count, error)));
                }
                let tag = consumer_tag(&self.plan.queue);
                let options = BasicConsumeOptions {
                    no_ack: self.settings.auto_ack,
                    ..BasicConsumeOptions::default()
                };
                let consumer = match channel
                    .basic_consume(
                        self.plan.queue.as_str().into(),
                        tag.as_str().into(),
                        options,
                        FieldTable::default(),
                    )
                    .await
                {
                    Ok(consumer) => consumer,
                    Err(error) => {
                        return Ended::Failed(Box::new((Some(channel), count, error.into())));
                    }
                };
                (channel, count, consumer, tag)
            };
            tracing::debug!(
                "rabbitmq pub/sub: registered consumer {tag} for queue {}",
                self.plan.queue
            );
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            let mut consumer = consumer;
            let listened = self.listen(&channel, &mut consumer, stop, in_flight).await;
            let stopped = matches!(listened, Listened::Stopped);
            // On a stop, wait for the broker to confirm that nothing more is coming.
            let cancel = BasicCancelOptions { nowait: !stopped };
            if let Err(error) = channel.basic_cancel(tag.as_str().into(), cancel).await {
                tracing::debug!("rabbitmq pub/sub: failed to cancel consumer {tag}: {error}");
            }
            match listened {
                Listened::Stopped => {
                    self.return_unhandled(&mut consumer).await;
                    return Ended::Stopped;
                }
                Listened::StreamEnded => {
                    tracing::debug!(
                        "rabbitmq pub/sub: subscriber channel closed for topic {}",
                        self.plan.topic
                    );
                }
                Listened::Failed(error) => {
                    return Ended::Failed(Box::new((Some(channel), count, error)));
                }
            }
        }
    }

    /// Hands deliveries to the app until stopped or the consumer ends.
    async fn listen(
        &self,
        channel: &Channel,
        consumer: &mut Consumer,
        stop: &mut StopSignal,
        in_flight: &mut JoinSet<()>,
    ) -> Listened {
        loop {
            while in_flight.try_join_next().is_some() {}
            let next = tokio::select! {
                biased;
                () = stop.stopped() => return Listened::Stopped,
                next = consumer.next() => next,
            };
            let delivery = match next {
                None => return Listened::StreamEnded,
                Some(Err(error)) => return Listened::Failed(error.into()),
                Some(Ok(delivery)) => delivery,
            };
            match self.settings.concurrency {
                Concurrency::Single => {
                    if let Err(error) = self.handle(delivery).await
                        && must_reconnect(Some(channel), &error)
                    {
                        return Listened::Failed(error);
                    }
                }
                Concurrency::Parallel => {
                    let worker = self.clone();
                    in_flight.spawn(async move {
                        if let Err(error) = worker.handle(delivery).await {
                            tracing::error!("rabbitmq pub/sub: error handling message: {error}");
                        }
                    });
                }
            }
        }
    }

    /// Hands one delivery to the app and settles it with the broker.
    async fn handle(&self, delivery: Delivery) -> Result<(), LinkError> {
        let metadata = if self.settings.properties_to_metadata {
            properties_metadata(&delivery)
        } else {
            HashMap::new()
        };
        let Delivery {
            data,
            acker,
            properties,
            ..
        } = delivery;
        let message = Message {
            topic: self.plan.topic.clone(),
            data: Bytes::from(data),
            metadata,
            content_type: None,
        };
        let message_id = properties
            .message_id()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        match self.handler.handle(message).await {
            Err(error) => {
                tracing::error!(
                    "rabbitmq pub/sub error: handling message from topic '{}', {error}",
                    self.plan.topic
                );
                if !self.settings.auto_ack {
                    let requeue = self.settings.requeue_in_failure;
                    tracing::debug!(
                        "rabbitmq pub/sub: nacking message '{message_id}' from topic '{}', requeue={requeue}",
                        self.plan.topic
                    );
                    let options = BasicNackOptions {
                        multiple: false,
                        requeue,
                    };
                    acker.nack(options).await?;
                }
            }
            Ok(()) => {
                if !self.settings.auto_ack {
                    acker.ack(BasicAckOptions::default()).await?;
                }
            }
        }
        Ok(())
    }

    /// Puts back deliveries that arrived but were never handed to the app.
    async fn return_unhandled(&self, consumer: &mut Consumer) {
        while let Some(Some(Ok(delivery))) = consumer.next().now_or_never() {
            if self.settings.auto_ack {
                continue;
            }
            let options = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            if let Err(error) = delivery.acker.nack(options).await {
                tracing::debug!("rabbitmq pub/sub: returning a delivery failed: {error}");
            }
        }
    }
}

/// `<queue>-<uuid>`, cut from the left to AMQP's length limit so the unique part stays.
pub(crate) fn consumer_tag(queue: &str) -> String {
    let tag = format!("{queue}-{}", uuid::Uuid::new_v4());
    let mut start = tag.len().saturating_sub(MAX_CONSUMER_TAG_LEN);
    while !tag.is_char_boundary(start) {
        start += 1;
    }
    tag[start..].to_owned()
}

/// The message's AMQP properties and headers as `metadata.*` entries (upstream's
/// `publishMessagePropertiesToMetadata`).
fn properties_metadata(delivery: &Delivery) -> HashMap<String, String> {
    let properties = &delivery.properties;
    let mut metadata = HashMap::new();
    let fields = [
        ("metadata.messageid", properties.message_id()),
        ("metadata.correlationid", properties.correlation_id()),
        ("metadata.type", properties.kind()),
        ("metadata.contenttype", properties.content_type()),
    ];
    for (key, value) in fields {
        if let Some(value) = value.as_ref().filter(|value| !value.as_str().is_empty()) {
            metadata.insert(key.to_owned(), value.to_string());
        }
    }
    if let Some(headers) = properties.headers() {
        for (name, value) in headers.inner() {
            metadata.insert(format!("metadata.{name}"), header_text(value));
        }
    }
    metadata
}

/// A header value as text.
fn header_text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(text) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
        AMQPValue::ShortString(text) => text.to_string(),
        AMQPValue::ByteArray(bytes) => String::from_utf8_lossy(bytes.as_slice()).into_owned(),
        AMQPValue::Boolean(flag) => flag.to_string(),
        AMQPValue::ShortShortInt(number) => number.to_string(),
        AMQPValue::ShortShortUInt(number) => number.to_string(),
        AMQPValue::ShortInt(number) => number.to_string(),
        AMQPValue::ShortUInt(number) => number.to_string(),
        AMQPValue::LongInt(number) => number.to_string(),
        AMQPValue::LongUInt(number) => number.to_string(),
        AMQPValue::LongLongInt(number) => number.to_string(),
        AMQPValue::Float(number) => number.to_string(),
        AMQPValue::Double(number) => number.to_string(),
        AMQPValue::Timestamp(stamp) => stamp.to_string(),
        other => format!("{other:?}"),
    }
}
