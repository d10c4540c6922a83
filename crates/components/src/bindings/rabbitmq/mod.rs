//! `bindings.rabbitmq`: publishes to and reads from one RabbitMQ queue, as upstream's
//! binding does, over the `pubsub.rabbitmq` connection ([`Link`]).
//!
//! Opening connects and declares the queue `queueName` with upstream's flags and
//! arguments (`x-message-ttl`, `x-max-priority`), so upstream's daprd and this one can
//! share it; every new connection declares it again and sets the channel's prefetch. The
//! output half (`create`) publishes persistent messages through the default exchange with
//! the request metadata as headers and `ttl`/`ttlInSeconds`, `priority`, `contentType`,
//! `messageID`, `correlationID` and `type` applied. A reading consumes the queue and hands
//! each delivery to the handler, one at a time, with its string headers as metadata; it
//! acknowledges the delivery once the handler accepted it and requeues it otherwise. After
//! a failure it waits `reconnectWaitInSeconds` and reconnects. Modules: `settings` (the
//! metadata), `queue` (the declared queue on the current connection), `publish` (a
//! message's properties) and `reader` (a reading's task).

mod publish;
mod queue;
mod reader;
mod settings;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use lapin::options::BasicPublishOptions;

use self::queue::Queue;
use self::reader::Reader;
pub use self::settings::Settings;
use crate::bindings::{
    BindingError, EventHandler, InputBinding, InvokeRequest, InvokeResponse, Operation,
    OutputBinding, Reading, operations,
};
use crate::metadata::Properties;
use crate::pubsub::rabbitmq::link::{Link, LinkError, must_reconnect};

/// A RabbitMQ queue as a binding.
pub struct RabbitMqBinding {
    queue: Arc<Queue>,
}

impl std::fmt::Debug for RabbitMqBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings = self.queue.settings();
        f.debug_struct("RabbitMqBinding")
            .field("host", &settings.uri.authority.host)
            .field("port", &settings.uri.authority.port)
            .field("queue", &settings.queue_name)
            .finish_non_exhaustive()
    }
}

/// Reads the settings, connects and declares the queue.
pub async fn open(properties: &Properties) -> Result<RabbitMqBinding, BindingError> {
    RabbitMqBinding::connect(Settings::parse(properties)?).await
}

impl RabbitMqBinding {
    /// Connects with these settings and declares the queue.
    pub async fn connect(settings: Settings) -> Result<Self, BindingError> {
        let link = Link::open(settings.endpoint())
            .await
            .map_err(BindingError::backend)?;
        let queue = Arc::new(Queue::new(settings, Arc::new(link)));
        if let Err(failure) = queue.channel().await {
            queue.link().close().await;
            return Err(BindingError::backend(failure.error));
        }
        tracing::info!("rabbitmq binding: connected");
        Ok(Self { queue })
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        self.queue.settings()
    }

    /// One publish attempt: the channel's connection number and the outcome.
    async fn publish_once(
        &self,
        request: &InvokeRequest,
        properties: &lapin::BasicProperties,
    ) -> Result<(), queue::Failure> {
        let (channel, count) = self.queue.channel().await?;
        let fail = |error: lapin::Error| queue::Failure {
            channel: Some(channel.clone()),
            count,
            error: LinkError::Amqp(error),
        };
        let confirmation = channel
            .basic_publish(
                "".into(),
                self.settings().queue_name.as_str().into(),
                BasicPublishOptions::default(),
                &request.data,
                properties.clone(),
            )
            .await
            .map_err(fail)?;
        confirmation.await.map_err(fail)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl OutputBinding for RabbitMqBinding {
    fn operations(&self) -> Vec<Operation> {
        vec![operations::CREATE.to_owned()]
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, BindingError> {
        if self.queue.link().is_closed() {
            return Err(BindingError::Closed);
        }
        if request.operation != operations::CREATE {
            return Err(BindingError::UnsupportedOperation(request.operation));
        }
        let properties = publish::properties(&request.metadata)?;
        let failure = match self.publish_once(&request, &properties).await {
            Ok(()) => return Ok(InvokeResponse::default()),
            Err(failure) => failure,
        };
        if !must_reconnect(failure.channel.as_ref(), &failure.error) {
            return Err(publish_error(&failure.error));
        }
        // The connection is gone: replace it and try once more.
        tracing::warn!(
            "rabbitmq binding: publishing failed, reconnecting: {}",
            failure.error
        );
        if let Err(error) = self.queue.link().reconnect(failure.count).await {
            return Err(publish_error(&error));
        }
        self.publish_once(&request, &properties)
            .await
            .map(|()| InvokeResponse::default())
            .map_err(|failure| publish_error(&failure.error))
    }

    async fn close(&self) -> Result<(), BindingError> {
        self.queue.link().close().await;
        Ok(())
    }
}

#[async_trait::async_trait]
impl InputBinding for RabbitMqBinding {
    async fn read(&self, handler: Arc<dyn EventHandler>) -> Result<Reading, BindingError> {
        if self.queue.link().is_closed() {
            return Err(BindingError::Closed);
        }
        let reader = Reader::new(Arc::clone(&self.queue), handler);
        Ok(Reading::spawn(1, move |stop| reader.clone().run(stop)))
    }

    async fn close(&self) -> Result<(), BindingError> {
        OutputBinding::close(self).await
    }
}

/// Upstream's wording for a failed publish.
fn publish_error(error: &LinkError) -> BindingError {
    match error {
        LinkError::Closed => BindingError::Closed,
        LinkError::NotConnected => {
            BindingError::Backend("channel/connection is not open".to_owned())
        }
        LinkError::Amqp(error) => {
            BindingError::Backend(format!("failed to publish message: {error}"))
        }
    }
}
