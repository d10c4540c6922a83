//! Turns a reading's MQTT messages into binding events: each goes to the app with its
//! `topic` as metadata, and a refused one is tried again after a pause, as often as
//! `backOffMaxRetries` allows, before it is left unacknowledged. A stopping reading ends
//! the retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::TOPIC_METADATA_KEY;
use super::settings::{Retries, Settings};
use crate::bindings::{EventHandler, InputEvent};
use crate::pubsub::{Message, MessageHandler, NotAcknowledged};

/// The reading's message handler.
pub(super) struct Events {
    handler: Arc<dyn EventHandler>,
    retries: Retries,
    retry_wait: Duration,
    /// Becomes true when the reading stops.
    stopping: watch::Receiver<bool>,
}

impl Events {
    /// Events for `handler`, and the switch that ends their retries.
    pub(super) fn new(
        handler: Arc<dyn EventHandler>,
        settings: &Settings,
    ) -> (watch::Sender<bool>, Self) {
        let (stop, stopping) = watch::channel(false);
        let events = Self {
            handler,
            retries: settings.retries,
            retry_wait: settings.retry_wait,
            stopping,
        };
        (stop, events)
    }
}

#[async_trait::async_trait]
impl MessageHandler for Events {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        let topic = message.topic;
        let event = InputEvent {
            data: message.data,
            metadata: HashMap::from([(TOPIC_METADATA_KEY.to_owned(), topic.clone())]),
            content_type: None,
        };
        let mut retries = 0;
        loop {
            tracing::debug!("mqtt3 binding: processing a message from topic {topic}");
            let refused = match self.handler.handle(event.clone()).await {
                Ok(_) => {
                    if retries > 0 {
                        tracing::info!(
                            "mqtt3 binding: processed a message from topic {topic} after it previously failed"
                        );
                    }
                    return Ok(());
                }
                Err(refused) => refused,
            };
            if !self.retries.allow(retries) || *self.stopping.borrow() {
                tracing::error!(
                    "mqtt3 binding: failed processing a message from topic {topic}: {refused}"
                );
                return Err(NotAcknowledged(refused.0));
            }
            tracing::error!(
                "mqtt3 binding: error processing a message from topic {topic}: {refused}; retrying"
            );
            let mut stopping = self.stopping.clone();
            tokio::select! {
                () = tokio::time::sleep(self.retry_wait) => {}
                _ = stopping.wait_for(|stopping| *stopping) => {
                    return Err(NotAcknowledged(refused.0));
                }
            }
            retries += 1;
        }
    }
}
