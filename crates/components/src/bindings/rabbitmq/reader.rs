//! A reading's task: consume the queue, hand each delivery to the app one at a time, ack it
//! when the app accepted it and requeue it when not; after a failure wait
//! `reconnectWaitInSeconds`, reconnect when the channel is gone and consume again.
//! Stopping cancels the consumer, lets the event in hand finish and requeues deliveries
//! not yet handed over.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::queue::{Failure, Queue};
use crate::bindings::{EventHandler, InputEvent, StopSignal};
use crate::pubsub::rabbitmq::consumer::consumer_tag;
use crate::pubsub::rabbitmq::link::{LinkError, must_reconnect};

/// What Go's `url.QueryEscape` leaves as it is (besides letters and digits).
const QUERY_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One reading of the queue.
#[derive(Clone)]
pub(super) struct Reader {
    queue: Arc<Queue>,
    handler: Arc<dyn EventHandler>,
}

/// How one consume attempt ended.
enum Ended {
    /// Stopping was asked for.
    Stopped,
    /// The channel, the consumer or a settlement failed.
    Failed(Box<Failure>),
}

impl Reader {
    /// A reading of `queue` into `handler`.
    pub(super) fn new(queue: Arc<Queue>, handler: Arc<dyn EventHandler>) -> Self {
        Self { queue, handler }
    }

    /// Reads until stopped or the binding is closed.
    pub(super) async fn run(self, mut stop: StopSignal) {
        let queue_name = &self.queue.settings().queue_name;
        loop {
            let failure = match self.consume(&mut stop).await {
                Ended::Stopped => break,
                Ended::Failed(failure) => failure,
            };
            if stop.is_stopped() || self.queue.link().is_closed() {
                break;
            }
            tracing::error!(
                "rabbitmq binding: error consuming messages from queue [{queue_name}]: {}",
                failure.error
            );
            let wait = self.queue.settings().reconnect_wait;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.stopped() => break,
            }
            if must_reconnect(failure.channel.as_ref(), &failure.error)
                && let Err(error) = self.queue.link().reconnect(failure.count).await
            {
                tracing::warn!("rabbitmq binding: reconnect failed: {error}");
            }
        }
        tracing::info!("rabbitmq binding: input binding closed, stop fetching messages");
    }

    /// Consumes until stopped or until something fails.
    async fn consume(&self, stop: &mut StopSignal) -> Ended {
        let queue_name = self.queue.settings().queue_name.as_str();
        let (channel, count) = match self.queue.channel().await {
            Ok(found) => found,
            Err(failure) => return Ended::Failed(Box::new(failure)),
        };
        let fail = |error: LinkError| {
            Ended::Failed(Box::new(Failure {
                channel: Some(channel.clone()),
                count,
                error,
            }))
        };
        let tag = consumer_tag(queue_name);
        let consumer = channel
            .basic_consume(
                queue_name.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        let mut consumer = match consumer {
            Ok(consumer) => consumer,
            Err(error) => return fail(error.into()),
        };
        tracing::debug!("rabbitmq binding: consuming queue {queue_name} as {tag}");
        loop {
            let next = tokio::select! {
                biased;
                () = stop.stopped() => {
                    self.cancel(&channel, &tag, &mut consumer).await;
                    return Ended::Stopped;
                }
                next = consumer.next() => next,
            };
            let delivery = match next {
                // The channel closed or the broker cancelled the consumer.
                None => return fail(LinkError::NotConnected),
                Some(Err(error)) => return fail(error.into()),
                Some(Ok(delivery)) => delivery,
            };
            if let Err(error) = self.handle(delivery).await {
                return fail(error.into());
            }
        }
    }

    /// Hands one delivery to the app and settles it with the broker.
    async fn handle(&self, delivery: Delivery) -> Result<(), lapin::Error> {
        let Delivery {
            data,
            acker,
            properties,
            ..
        } = delivery;
        let event = InputEvent {
            data: Bytes::from(data),
            metadata: properties
                .headers()
                .as_ref()
                .map(metadata)
                .unwrap_or_default(),
            content_type: None,
        };
        let settled = match self.handler.handle(event).await {
            Ok(_) => acker.ack(BasicAckOptions::default()).await?,
            Err(error) => {
                tracing::debug!("rabbitmq binding: the app refused a message, requeueing: {error}");
                let options = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                acker.nack(options).await?
            }
        };
        if !settled {
            tracing::debug!("rabbitmq binding: a delivery was already settled");
        }
        Ok(())
    }

    /// Cancels the consumer and requeues deliveries that arrived but were not handed over.
    async fn cancel(&self, channel: &Channel, tag: &str, consumer: &mut Consumer) {
        if let Err(error) = channel
            .basic_cancel(tag.into(), BasicCancelOptions::default())
            .await
        {
            tracing::debug!("rabbitmq binding: failed to cancel consumer {tag}: {error}");
        }
        while let Some(Some(Ok(delivery))) = consumer.next().now_or_never() {
            let options = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            if let Err(error) = delivery.acker.nack(options).await {
                tracing::debug!("rabbitmq binding: returning a delivery failed: {error}");
            }
        }
    }
}

/// The string headers of a message, their names escaped for use as URL query parameters
/// (they reach the app as HTTP metadata), as upstream does.
fn metadata(headers: &FieldTable) -> HashMap<String, String> {
    headers
        .inner()
        .iter()
        .filter_map(|(name, value)| {
            let text = match value {
                AMQPValue::LongString(text) => {
                    String::from_utf8_lossy(text.as_bytes()).into_owned()
                }
                AMQPValue::ShortString(text) => text.to_string(),
                _ => return None,
            };
            Some((query_escape(name.as_str()), text))
        })
        .collect()
}

/// Go's `url.QueryEscape`.
fn query_escape(text: &str) -> String {
    utf8_percent_encode(text, QUERY_ESCAPED)
        .to_string()
        .replace("%20", "+")
}
