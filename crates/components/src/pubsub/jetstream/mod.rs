//! `pubsub.jetstream`: NATS JetStream as a broker, as upstream's component uses it.
//!
//! A publish goes to the subject named by the topic and waits for the stream's
//! acknowledgement; a CloudEvent's `id` becomes the `Nats-Msg-Id` header so JetStream
//! drops duplicates. The stream must already exist: its subjects must cover the topics
//! (or `streamName` names it). Each subscription binds a push consumer on that stream
//! filtered to the topic: an existing durable one named by `durableName`, or a new one,
//! shared through a deliver group when `queueGroupName` is set (see [`consumer`]);
//! [`delivery`] hands its messages to the app and acknowledges them.

mod consumer;
mod delivery;
mod settings;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream;
use async_nats::{ConnectOptions, ServerAddr};

use self::delivery::Delivery;
use self::settings::{Auth, Settings};
use crate::metadata::Properties;
use crate::pubsub::{
    Feature, MessageHandler, PubSub, PubSubError, PublishRequest, SubscribeRequest, Subscription,
};

/// The `pubsub.jetstream` broker: one NATS connection and its JetStream context.
#[derive(Debug)]
pub struct JetStreamPubSub {
    settings: Settings,
    client: async_nats::Client,
    context: jetstream::Context,
    closed: AtomicBool,
}

/// Connects to NATS with the component's settings.
pub async fn open(properties: &Properties) -> Result<JetStreamPubSub, PubSubError> {
    let settings = Settings::from_properties(properties)?;
    let client = connect_options(&settings)?
        .connect(server_addresses(&settings.nats_url)?)
        .await
        .map_err(PubSubError::backend)?;
    tracing::debug!("connected to nats at {}", settings.nats_url);
    let context = match (&settings.api_prefix, &settings.domain) {
        (Some(prefix), _) => jetstream::with_prefix(client.clone(), prefix.trim_end_matches('.')),
        (None, Some(domain)) => jetstream::with_domain(client.clone(), domain),
        (None, None) => jetstream::new(client.clone()),
    };
    Ok(JetStreamPubSub {
        settings,
        client,
        context,
        closed: AtomicBool::new(false),
    })
}

/// `natsURL` may list several servers, separated by commas.
fn server_addresses(urls: &str) -> Result<Vec<ServerAddr>, PubSubError> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            ServerAddr::from_str(url).map_err(|error| {
                PubSubError::InvalidMetadata(format!("invalid nats URL {url:?}: {error}"))
            })
        })
        .collect()
}

fn connect_options(settings: &Settings) -> Result<ConnectOptions, PubSubError> {
    let options = ConnectOptions::new().name(&settings.name);
    Ok(match &settings.auth {
        Auth::None => options,
        Auth::Jwt { jwt, seed_key } => options
            .credentials(&credentials_text(jwt, seed_key))
            .map_err(|error| PubSubError::InvalidMetadata(format!("jwt or seedKey: {error}")))?,
        Auth::ClientCertificate {
            cert_path,
            key_path,
        } => options
            .add_client_certificate(cert_path.into(), key_path.into())
            .require_tls(true),
        Auth::Token(token) => options.token(token.clone()),
    })
}

/// A user JWT and nkey seed in the NATS credentials-file layout, the form the client
/// takes them in.
fn credentials_text(jwt: &str, seed_key: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed_key}\n------END USER NKEY SEED------\n"
    )
}

/// The CloudEvent `id` of a JSON payload, when it has a textual one.
fn cloud_event_id(data: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Object(mut event)) => match event.remove("id") {
            Some(serde_json::Value::String(id)) if !id.is_empty() => Some(id),
            _ => None,
        },
        _ => None,
    }
}

impl JetStreamPubSub {
    fn check_open(&self) -> Result<(), PubSubError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(PubSubError::Closed)
        } else {
            Ok(())
        }
    }

    /// The stream the topic's consumer lives on.
    async fn stream_name(&self, topic: &str) -> Result<String, PubSubError> {
        match &self.settings.stream_name {
            Some(name) => Ok(name.clone()),
            None => self
                .context
                .stream_by_subject(topic)
                .await
                .map_err(|error| PubSubError::Backend(format!("no stream for {topic}: {error}"))),
        }
    }
}

#[async_trait::async_trait]
impl PubSub for JetStreamPubSub {
    fn features(&self) -> &[Feature] {
        &[]
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        self.check_open()?;
        let acknowledgement = match cloud_event_id(&request.data) {
            Some(id) => {
                tracing::debug!("publishing to topic {} id: {id}", request.topic);
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                self.context
                    .publish_with_headers(request.topic, headers, request.data)
                    .await
            }
            None => {
                tracing::warn!("empty message ID, Jetstream deduplication will not be possible");
                self.context.publish(request.topic, request.data).await
            }
        }
        .map_err(PubSubError::backend)?;
        acknowledgement.await.map_err(PubSubError::backend)?;
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError> {
        self.check_open()?;
        let topic = request.topic;
        let config = consumer::consumer_config(&self.settings, &topic, self.client.new_inbox())?;
        let stream = self.stream_name(&topic).await?;
        let consumer = consumer::bind(&self.context, &stream, &topic, config).await?;
        let messages = consumer.messages().await.map_err(PubSubError::backend)?;
        match &self.settings.queue_group_name {
            Some(group) => tracing::debug!(
                "nats: subscribed to subject {topic} with queue group {group} on stream {stream}"
            ),
            None => tracing::debug!("nats: subscribed to subject {topic} on stream {stream}"),
        }
        let delivery = Delivery {
            topic,
            handler,
            acknowledges: self.settings.ack_policy.acknowledges(),
            nak_delay: self.settings.ack_wait,
            concurrency: self.settings.concurrency,
        };
        // One task owns the message stream; the cell hands it over exactly once.
        let work = Cell::new(Some((delivery, messages)));
        Ok(Subscription::spawn(1, move |stop| {
            let work = work.take();
            async move {
                if let Some((delivery, messages)) = work {
                    delivery.run(messages, stop).await;
                }
            }
        }))
    }

    async fn ping(&self) -> Result<(), PubSubError> {
        self.check_open()?;
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(PubSubError::Backend(format!("nats connection is {state}"))),
        }
    }

    async fn close(&self) -> Result<(), PubSubError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.client.drain().await.map_err(PubSubError::backend)
    }
}
