//! One subscription to a stream: a reader that takes new entries for the consumer group
//! (`XREADGROUP ... >`), a reclaimer that takes back entries left pending longer than
//! `processingTimeout` (`XPENDING` + `XCLAIM`, every `redeliverInterval`), and
//! `concurrency` workers that hand the queued messages to the subscriber and `XACK` the
//! ones it accepts. A message the subscriber refuses, or does not finish within
//! `processingTimeout`, stays pending and is redelivered by a reclaimer.
//!
//! Every instance uses `consumerID` as both the group and the consumer name, as upstream
//! does, so the pending list is shared and any instance may redeliver.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::{RedisError, Value};
use tokio::sync::{Mutex, mpsc};

use crate::pubsub::{MessageHandler, StopSignal};
use crate::state::redis::connection::{Access, Redis};

use super::settings::StreamSettings;
use super::stream::{self, Entry};

/// The pause after a failed read before the next one.
const READ_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// A message waiting for a worker.
struct Delivery {
    id: String,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a subscription task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Reads new entries.
    Reader,
    /// Redelivers entries pending too long.
    Reclaimer,
    /// Hands messages to the subscriber.
    Worker,
}

/// The state a subscription's tasks share.
pub(super) struct Consumer {
    redis: Arc<Redis>,
    /// The reader's own connection: a blocking read would hold up a shared one.
    reader: std::sync::Mutex<Option<Redis>>,
    settings: Arc<StreamSettings>,
    topic: String,
    handler: Arc<dyn MessageHandler>,
    queue: mpsc::Sender<Delivery>,
    queued: Mutex<mpsc::Receiver<Delivery>>,
}

impl Consumer {
    /// A consumer of `topic` whose reader uses the connection `reader`.
    pub(super) fn new(
        redis: Arc<Redis>,
        reader: Redis,
        settings: Arc<StreamSettings>,
        topic: String,
        handler: Arc<dyn MessageHandler>,
    ) -> Self {
        let (queue, queued) = mpsc::channel(settings.queue_depth.max(1));
        Self {
            redis,
            reader: std::sync::Mutex::new(Some(reader)),
            settings,
            topic,
            handler,
            queue,
            queued: Mutex::new(queued),
        }
    }

    /// The roles of the subscription's tasks, in the order they are started.
    pub(super) fn roles(settings: &StreamSettings) -> Vec<Role> {
        let mut roles = vec![Role::Reader];
        if settings.redelivers() {
            roles.push(Role::Reclaimer);
        }
        roles.extend(std::iter::repeat_n(Role::Worker, settings.concurrency));
        roles
    }

    /// Runs one task until the subscription stops.
    pub(super) async fn run(self: Arc<Self>, role: Role, stop: StopSignal) {
        match role {
            Role::Reader => {
                let reader = self
                    .reader
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                if let Some(reader) = reader {
                    self.read_new(reader, stop).await;
                }
            }
            Role::Reclaimer => self.reclaim_loop(stop).await,
            Role::Worker => self.work(stop).await,
        }
    }

    /// Creates the consumer group (reading from the stream's start), and the stream if
    /// needed; an existing group is fine.
    pub(super) async fn create_group(
        redis: &Redis,
        topic: &str,
        group: &str,
    ) -> Result<(), RedisError> {
        let created = redis
            .query::<()>(
                Access::Write,
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(topic)
                    .arg(group)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    async fn read_new(&self, reader: Redis, mut stop: StopSignal) {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(&self.settings.consumer_id)
            .arg(&self.settings.consumer_id);
        if self.settings.queue_depth > 0 {
            read.arg("COUNT").arg(self.settings.queue_depth);
        }
        let block = self
            .settings
            .connection
            .read_timeout
            .unwrap_or(Duration::ZERO);
        read.arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.topic)
            .arg(">");
        while !stop.is_stopped() {
            let reply = tokio::select! {
                biased;
                () = stop.stopped() => return,
                reply = reader.query::<Value>(Access::Read, &read) => reply,
            };
            let entries = reply
                .map_err(|error| error.to_string())
                .and_then(|reply| stream::read_reply(reply).map_err(|error| error.to_string()));
            match entries {
                Ok(entries) => {
                    if !self.enqueue(entries, &mut stop).await {
                        return;
                    }
                }
                Err(error) => {
                    tracing::error!(
                        topic = %self.topic,
                        %error,
                        "redis streams: error reading from stream"
                    );
                    if error.contains("NOGROUP") {
                        self.recreate_group().await;
                    }
                    tokio::select! {
                        () = stop.stopped() => return,
                        () = tokio::time::sleep(READ_ERROR_BACKOFF) => {}
                    }
                }
            }
        }
    }

    async fn recreate_group(&self) {
        tracing::warn!(
            group = %self.settings.consumer_id,
            topic = %self.topic,
            "redis streams: the consumer group is gone (data loss, or the group or stream \
             was deleted); recreating it"
        );
        if let Err(error) =
            Self::create_group(&self.redis, &self.topic, &self.settings.consumer_id).await
        {
            tracing::error!(topic = %self.topic, %error, "redis streams: recreating the group failed");
        }
    }

    /// Queues entries for the workers; false once the subscription stops.
    async fn enqueue(&self, entries: Vec<Entry>, stop: &mut StopSignal) -> bool {
        for entry in entries {
            let Some(fields) = entry.fields else { continue };
            let delivery = Delivery {
                id: entry.id,
                fields,
            };
            tokio::select! {
                biased;
                () = stop.stopped() => return false,
                sent = self.queue.send(delivery) => if sent.is_err() { return false },
            }
        }
        true
    }

    async fn reclaim_loop(&self, mut stop: StopSignal) {
        let mut ticker = tokio::time::interval(self.settings.redeliver_interval);
        loop {
            tokio::select! {
                biased;
                () = stop.stopped() => return,
                _ = ticker.tick() => {}
            }
            if !self.reclaim(&mut stop).await {
                return;
            }
        }
    }

    /// Claims and queues every pending entry idle longer than `processingTimeout`; false
    /// once the subscription stops.
    async fn reclaim(&self, stop: &mut StopSignal) -> bool {
        let group = &self.settings.consumer_id;
        let timeout = self.settings.processing_timeout;
        loop {
            let pending = self
                .redis
                .query::<Value>(
                    Access::Read,
                    redis::cmd("XPENDING")
                        .arg(&self.topic)
                        .arg(group)
                        .arg("-")
                        .arg("+")
                        .arg(self.settings.queue_depth.max(1)),
                )
                .await
                .map_err(|error| error.to_string())
                .and_then(|reply| stream::pending_reply(reply).map_err(|error| error.to_string()));
            let pending = match pending {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::error!(topic = %self.topic, %error, "redis streams: error retrieving pending messages");
                    return true;
                }
            };
            let ids: Vec<String> = pending
                .into_iter()
                .filter(|entry| entry.idle >= timeout)
                .map(|entry| entry.id)
                .collect();
            if ids.is_empty() {
                return true;
            }
            let claimed = match self.claim(&ids, timeout).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(topic = %self.topic, %error, "redis streams: error claiming pending messages");
                    return true;
                }
            };
            let some_deleted = claimed.iter().any(Option::is_none);
            let claimed: Vec<Entry> = claimed.into_iter().flatten().collect();
            let returned: HashSet<&str> = claimed.iter().map(|entry| entry.id.as_str()).collect();
            let unanswered: Vec<String> = ids
                .iter()
                .filter(|id| !returned.contains(id.as_str()))
                .cloned()
                .collect();
            let (present, deleted): (Vec<Entry>, Vec<Entry>) = claimed
                .into_iter()
                .partition(|entry| entry.fields.is_some());
            for entry in deleted {
                self.acknowledge(&entry.id).await;
            }
            if !self.enqueue(present, stop).await {
                return false;
            }
            if some_deleted && !self.drop_deleted(unanswered, stop).await {
                return false;
            }
        }
    }

    /// Redis 6 answers nil for pending entries that were deleted, without saying which:
    /// claim the unanswered ones one by one and acknowledge those that are gone.
    async fn drop_deleted(&self, ids: Vec<String>, stop: &mut StopSignal) -> bool {
        for id in ids {
            match self
                .claim(std::slice::from_ref(&id), self.settings.processing_timeout)
                .await
            {
                Ok(claimed) if claimed.iter().any(Option::is_none) => self.acknowledge(&id).await,
                Ok(claimed) => {
                    if !self
                        .enqueue(claimed.into_iter().flatten().collect(), stop)
                        .await
                    {
                        return false;
                    }
                }
                Err(error) => {
                    tracing::error!(topic = %self.topic, id, %error, "redis streams: error claiming a pending message");
                }
            }
        }
        true
    }

    async fn claim(
        &self,
        ids: &[String],
        min_idle: Duration,
    ) -> Result<Vec<Option<Entry>>, String> {
        let mut claim = redis::cmd("XCLAIM");
        claim
            .arg(&self.topic)
            .arg(&self.settings.consumer_id)
            .arg(&self.settings.consumer_id)
            .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
            .arg(ids);
        let reply = self
            .redis
            .query::<Value>(Access::Read, &claim)
            .await
            .map_err(|error| error.to_string())?;
        stream::entry_list(reply).map_err(|error| error.to_string())
    }

    async fn acknowledge(&self, id: &str) {
        let acked = self
            .redis
            .query::<i64>(
                Access::Read,
                redis::cmd("XACK")
                    .arg(&self.topic)
                    .arg(&self.settings.consumer_id)
                    .arg(id),
            )
            .await;
        if let Err(error) = acked {
            tracing::error!(topic = %self.topic, id, %error, "redis streams: error acknowledging message");
        }
    }

    async fn work(&self, mut stop: StopSignal) {
        loop {
            let delivery = {
                let mut queued = tokio::select! {
                    biased;
                    () = stop.stopped() => return,
                    queued = self.queued.lock() => queued,
                };
                tokio::select! {
                    biased;
                    () = stop.stopped() => return,
                    delivery = queued.recv() => delivery,
                }
            };
            match delivery {
                Some(delivery) => self.process(delivery).await,
                None => return,
            }
        }
    }

    /// Hands one message to the subscriber; acknowledges it when accepted in time.
    async fn process(&self, delivery: Delivery) {
        tracing::debug!(topic = %self.topic, id = %delivery.id, "processing redis message");
        let message = stream::message(&self.topic, &delivery.id, &delivery.fields);
        let handled = self.handler.handle(message);
        let outcome = if self.settings.redelivers() {
            match tokio::time::timeout(self.settings.processing_timeout, handled).await {
                Ok(outcome) => outcome.map_err(|error| error.to_string()),
                Err(_) => Err(format!(
                    "not handled within the processing timeout of {:?}",
                    self.settings.processing_timeout
                )),
            }
        } else {
            handled.await.map_err(|error| error.to_string())
        };
        match outcome {
            Ok(()) => self.acknowledge(&delivery.id).await,
            Err(error) => tracing::error!(
                topic = %self.topic,
                id = %delivery.id,
                %error,
                "error processing redis message; it stays pending for redelivery"
            ),
        }
    }
}
