//! `pubsub.redis`: the Redis Streams broker, compatible on the wire and on the server with
//! upstream's component, so either daprd can read what the other published.
//!
//! A topic is a stream. Publishing appends an entry with the payload in `data` and the
//! publish metadata (JSON) in `metadata`, trimmed to about `maxLenApprox` entries or to
//! `streamTTL` of age. Subscribing joins the consumer group `consumerID` (created at the
//! start of the stream when missing) and delivers through `consumer`: accepted messages
//! are acknowledged, the others stay pending until the redelivery loop claims them.
//!
//! Where behaviour differs from upstream's component (the stored data does not):
//! - a message the subscriber refuses stays pending and is redelivered after
//!   `processingTimeout` (upstream now acknowledges it unless the processing timeout
//!   expired, leaving retries to daprd's resiliency); daprd decides by what it returns;
//! - workers and the queue belong to each subscription rather than to the component;
//! - `redeliverInterval` also accepts Go duration text (upstream silently ignores it);
//! - `consumerID` is required (daprd always sets it).

mod consumer;
mod settings;
mod stream;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use redis::RedisError;

use crate::metadata::Properties;
use crate::pubsub::{
    Feature, MessageHandler, PubSub, PubSubError, PublishRequest, SubscribeRequest, Subscription,
};
use crate::state::redis::connection::{Access, Redis};

use consumer::Consumer;
use settings::StreamSettings;

/// How much longer than its `BLOCK` time a read may take before it counts as failed (as
/// go-redis allows blocking commands).
const BLOCKING_READ_GRACE: Duration = Duration::from_secs(10);

/// Opens a Redis Streams broker from the component's settings and checks the server
/// answers.
pub async fn open(properties: &Properties) -> Result<RedisPubSub, PubSubError> {
    let settings = StreamSettings::parse(properties)?;
    if !settings.connection.pool_settings_given.is_empty() {
        tracing::warn!(
            settings = %settings.connection.pool_settings_given.join(", "),
            "pubsub.redis multiplexes commands over one connection per server; connection \
             pool settings are accepted but have no effect"
        );
    }
    let hosts = settings.connection.hosts();
    let unreachable = |error: RedisError| {
        PubSubError::Backend(format!(
            "redis streams: error connecting to redis at {hosts}: {error}"
        ))
    };
    let redis = Redis::connect(&settings.connection)
        .await
        .map_err(unreachable)?;
    redis
        .query::<String>(Access::Read, &redis::cmd("PING"))
        .await
        .map_err(unreachable)?;
    tracing::debug!(%hosts, consumer = %settings.consumer_id, "redis streams connected");
    Ok(RedisPubSub {
        redis: Arc::new(redis),
        settings: Arc::new(settings),
        closed: AtomicBool::new(false),
    })
}

/// The Redis Streams broker.
pub struct RedisPubSub {
    redis: Arc<Redis>,
    settings: Arc<StreamSettings>,
    closed: AtomicBool,
}

impl std::fmt::Debug for RedisPubSub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisPubSub")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RedisPubSub {
    fn check_open(&self) -> Result<(), PubSubError> {
        if self.closed.load(Ordering::Acquire) {
            Err(PubSubError::Closed)
        } else {
            Ok(())
        }
    }

    /// A connection of its own for a subscription's blocking reads, whose timeout leaves
    /// room for the `BLOCK` time.
    async fn reader_connection(&self) -> Result<Redis, PubSubError> {
        let mut metadata = self.settings.connection.clone();
        let timeout = metadata
            .read_timeout
            .map(|block| block + BLOCKING_READ_GRACE);
        metadata.read_timeout = timeout;
        metadata.write_timeout = timeout;
        Redis::connect(&metadata).await.map_err(|error| {
            PubSubError::Backend(format!(
                "redis streams: error connecting to redis at {}: {error}",
                metadata.hosts()
            ))
        })
    }
}

#[async_trait::async_trait]
impl PubSub for RedisPubSub {
    fn features(&self) -> &[Feature] {
        &[]
    }

    async fn publish(&self, request: PublishRequest) -> Result<(), PubSubError> {
        self.check_open()?;
        let metadata = stream::encode_metadata(&request.metadata)?;
        let mut add = redis::cmd("XADD");
        add.arg(&request.topic);
        if self.settings.max_len_approx > 0 {
            add.arg("MAXLEN").arg("~").arg(self.settings.max_len_approx);
        } else if let Some(min_id) = self.settings.min_id(SystemTime::now()) {
            add.arg("MINID").arg("~").arg(min_id);
        }
        add.arg("*")
            .arg(stream::DATA_FIELD)
            .arg(request.data.as_ref())
            .arg(stream::METADATA_FIELD)
            .arg(metadata);
        self.redis
            .query::<String>(Access::Write, &add)
            .await
            .map(drop)
            .map_err(|error| {
                PubSubError::Backend(format!("redis streams: error from publish: {error}"))
            })
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<Subscription, PubSubError> {
        self.check_open()?;
        Consumer::create_group(&self.redis, &request.topic, &self.settings.consumer_id)
            .await
            .map_err(|error| PubSubError::Backend(format!("redis streams: {error}")))?;
        let reader = self.reader_connection().await?;
        let roles = Consumer::roles(&self.settings);
        let consumer = Arc::new(Consumer::new(
            self.redis.clone(),
            reader,
            self.settings.clone(),
            request.topic,
            handler,
        ));
        let next = Cell::new(0);
        Ok(Subscription::spawn(roles.len(), move |stop| {
            let role = roles[next.get() % roles.len()];
            next.set(next.get() + 1);
            consumer.clone().run(role, stop)
        }))
    }

    async fn ping(&self) -> Result<(), PubSubError> {
        self.redis
            .query::<String>(Access::Read, &redis::cmd("PING"))
            .await
            .map(drop)
            .map_err(|error| {
                PubSubError::Backend(format!(
                    "redis pubsub: error connecting to redis at {}: {error}",
                    self.settings.connection.hosts()
                ))
            })
    }

    async fn close(&self) -> Result<(), PubSubError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
