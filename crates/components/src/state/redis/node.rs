//! The connection to one Redis server (a node, or the master Sentinel names): a single
//! multiplexed connection, dialled when an attempt first needs it and dialled again by
//! the next attempt after it broke or after a dial failed. A dial is one try bounded by
//! `dialTimeout`, so a refused connection fails at once; waiting between tries is the
//! command retry loop's job (`connection`), as with go-redis, whose pool dials within
//! each attempt.
//!
//! Concurrent attempts share one dial rather than each opening a connection.

use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisResult};

/// A dial in progress or done, shared by every attempt that waits for it.
type Dial = Shared<BoxFuture<'static, RedisResult<MultiplexedConnection>>>;

/// The current dial and its sequence number (which tells a broken connection from the
/// one that replaced it).
struct Slot {
    generation: u64,
    dial: Dial,
}

/// A connection handed to one attempt.
pub(crate) struct Dialled {
    /// Which dial made it (to discard exactly this one if it breaks).
    pub generation: u64,
    /// The multiplexed connection.
    pub connection: MultiplexedConnection,
}

/// One server's self-redialling connection.
pub(crate) struct Node {
    client: Client,
    config: AsyncConnectionConfig,
    slot: Mutex<Slot>,
}

impl Node {
    /// Prepares the connection; nothing is dialled until the first attempt.
    pub(crate) fn new(client: Client, dial_timeout: Duration) -> Self {
        // Command timeouts are applied per call by the retry loop (read or write), so the
        // connection itself has none.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(dial_timeout))
            .set_response_timeout(None);
        let dial = dial(&client, &config);
        Self {
            client,
            config,
            slot: Mutex::new(Slot {
                generation: 0,
                dial,
            }),
        }
    }

    /// The current connection, dialling it if needed; a failed dial is forgotten, so the
    /// next attempt dials afresh.
    pub(crate) async fn connection(&self) -> RedisResult<Dialled> {
        let (generation, dial) = {
            let slot = self.slot();
            (slot.generation, slot.dial.clone())
        };
        match dial.await {
            Ok(connection) => Ok(Dialled {
                generation,
                connection,
            }),
            Err(error) => {
                self.discard(generation);
                Err(error)
            }
        }
    }

    /// Drops the connection of `generation` (it broke) so that the next attempt dials a
    /// new one; a connection dialled since is kept.
    pub(crate) fn discard(&self, generation: u64) {
        let mut slot = self.slot();
        if slot.generation == generation {
            slot.generation = generation.wrapping_add(1);
            slot.dial = dial(&self.client, &self.config);
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        match self.slot.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// A dial that starts when first awaited.
fn dial(client: &Client, config: &AsyncConnectionConfig) -> Dial {
    let client = client.clone();
    let config = config.clone();
    async move {
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
    .boxed()
    .shared()
}
