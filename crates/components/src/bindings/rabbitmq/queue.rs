//! The binding's queue on the current connection: whoever needs the channel gets it with
//! the queue declared (and the channel's prefetch set) once per connection, as upstream
//! does on every connect.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lapin::Channel;
use lapin::options::{BasicQosOptions, QueueDeclareOptions};

use super::settings::Settings;
use crate::pubsub::rabbitmq::link::{Link, LinkError};

/// An operation on the channel failed.
#[derive(Debug)]
pub(super) struct Failure {
    /// The channel used, if there was one.
    pub channel: Option<Channel>,
    /// The number of the connection it belonged to.
    pub count: u64,
    /// What went wrong.
    pub error: LinkError,
}

/// The settings, the connection and what has been declared on it.
pub(super) struct Queue {
    settings: Settings,
    link: Arc<Link>,
    /// The number of the connection the queue was last declared on (0: none yet).
    declared: AtomicU64,
}

impl Queue {
    /// The queue of `settings` on `link`; nothing is declared yet.
    pub(super) fn new(settings: Settings, link: Arc<Link>) -> Self {
        Self {
            settings,
            link,
            declared: AtomicU64::new(0),
        }
    }

    /// The settings.
    pub(super) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The connection.
    pub(super) fn link(&self) -> &Link {
        &self.link
    }

    /// The open channel and its connection number, with the queue declared on it.
    pub(super) async fn channel(&self) -> Result<(Channel, u64), Failure> {
        let state = self.link.lock().await;
        let count = state.count();
        let Some(channel) = state.channel() else {
            return Err(Failure {
                channel: None,
                count,
                error: LinkError::NotConnected,
            });
        };
        if self.declared.load(Ordering::SeqCst) != count {
            if let Err(error) = self.declare(&channel).await {
                return Err(Failure {
                    channel: Some(channel),
                    count,
                    error: LinkError::Amqp(error),
                });
            }
            self.declared.store(count, Ordering::SeqCst);
        }
        Ok((channel, count))
    }

    async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let settings = &self.settings;
        // Upstream applies the prefetch to the whole channel and ignores a refusal.
        if let Err(error) = channel
            .basic_qos(settings.prefetch_count, BasicQosOptions { global: true })
            .await
        {
            tracing::warn!("rabbitmq binding: setting the prefetch count failed: {error}");
        }
        tracing::debug!(
            "rabbitmq binding: declaring queue '{}'",
            settings.queue_name
        );
        channel
            .queue_declare(
                settings.queue_name.as_str().into(),
                QueueDeclareOptions {
                    durable: settings.durable,
                    auto_delete: settings.delete_when_unused,
                    exclusive: settings.exclusive,
                    ..QueueDeclareOptions::default()
                },
                settings.queue_arguments(),
            )
            .await?;
        Ok(())
    }
}
