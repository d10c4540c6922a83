//! Connections to Redis for the state store: one multiplexed connection to a single
//! server (`node`), to a Redis Cluster, or to the master that Sentinel names (found again
//! after a failover).
//!
//! Commands retry as upstream's go-redis client does: after a connection failure, up to
//! `redisMaxRetries` more attempts, each after a random wait between
//! `redisMinRetryInterval` and `redisMaxRetryInterval`, each dialling a fresh connection
//! once if the last one broke (so a refused connection fails at once). The whole call,
//! retries included, is bounded by the read or write timeout, as upstream bounds it with
//! a context deadline.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    Pipeline, RedisConnectionInfo, RedisError, RedisFuture, RedisResult, ServerErrorKind,
    TlsCertificates, TlsMode, Value,
};

use super::metadata::{Address, RedisMetadata, Topology};
use super::node::Node;

/// Whether an operation reads or writes (it decides which timeout applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Bounded by `readTimeout`.
    Read,
    /// Bounded by `writeTimeout`.
    Write,
}

/// A handle for one attempt of an operation; cheap to clone.
#[derive(Clone)]
pub(crate) enum Connection {
    /// A single server (node mode, or the current Sentinel master).
    Node(MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The master that Sentinel names, looked up again when it stops answering.
struct Failover {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<Arc<Node>>,
    dial_timeout: Duration,
}

impl Failover {
    async fn connect(sentinel: &mut SentinelClient, dial_timeout: Duration) -> RedisResult<Node> {
        let client = sentinel.async_get_client().await?;
        Ok(Node::new(client, dial_timeout))
    }

    fn current(&self) -> Arc<Node> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Asks Sentinel for the master again and switches to it.
    async fn refresh(&self) -> RedisResult<()> {
        let mut sentinel = self.sentinel.lock().await;
        let node = Arc::new(Self::connect(&mut sentinel, self.dial_timeout).await?);
        match self.current.write() {
            Ok(mut current) => *current = node,
            Err(poisoned) => *poisoned.into_inner() = node,
        }
        Ok(())
    }
}

enum Target {
    Node(Arc<Node>),
    Cluster(ClusterConnection),
    Sentinel(Box<Failover>),
}

/// go-redis's retry policy: `retries` more attempts after a connection failure, the wait
/// before retry `n` being `min` plus a random part of `min << n`, capped at `max`. Either
/// bound turned off (`None`) turns the waits off, as in go-redis.
#[derive(Debug, Clone, Copy)]
struct Retry {
    retries: usize,
    min: Option<Duration>,
    max: Option<Duration>,
}

impl Retry {
    /// The wait before retry `retry` (counted from 1), with `random` as the jitter source.
    fn delay(&self, retry: usize, random: u64) -> Duration {
        let (Some(min), Some(max)) = (self.min, self.max) else {
            return Duration::ZERO;
        };
        let window = u32::try_from(retry)
            .ok()
            .and_then(|shift| 1u32.checked_shl(shift))
            .and_then(|factor| min.checked_mul(factor));
        let Some(window) = window else {
            return max;
        };
        let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX).max(1);
        min.saturating_add(Duration::from_nanos(random % window))
            .min(max)
    }

    /// The effective backoff bounds (for the cluster client's own retries): none when
    /// either is off, and the first wait never above the ceiling.
    fn bounds(&self) -> (Duration, Duration) {
        match (self.min, self.max) {
            (Some(min), Some(max)) => (min.min(max), max),
            _ => (Duration::ZERO, Duration::ZERO),
        }
    }
}

/// A random number for the backoff jitter (std's per-instance random hasher keys).
fn jitter() -> u64 {
    RandomState::new().hash_one(())
}

/// The store's connection to Redis.
pub(crate) struct Redis {
    target: Target,
    retry: Retry,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Redis {
    /// Prepares the connection as the settings say. A single server (or the Sentinel
    /// master) is dialled by the first command, so callers check reachability with a
    /// `PING`; a cluster and Sentinel are asked for their topology here.
    pub(crate) async fn connect(metadata: &RedisMetadata) -> RedisResult<Self> {
        let retry = Retry {
            retries: metadata.max_retries,
            min: metadata.min_retry_interval,
            max: metadata.max_retry_interval,
        };
        let target = match &metadata.topology {
            Topology::Node => {
                let address = metadata.addresses.first().ok_or_else(no_address)?;
                let client = client(address, metadata)?;
                Target::Node(Arc::new(Node::new(client, metadata.dial_timeout)))
            }
            Topology::Cluster => Target::Cluster(cluster(metadata, retry).await?),
            Topology::Sentinel { master_name } => {
                let mut sentinel = sentinel(master_name, metadata)?;
                let current = Failover::connect(&mut sentinel, metadata.dial_timeout).await?;
                Target::Sentinel(Box::new(Failover {
                    sentinel: tokio::sync::Mutex::new(sentinel),
                    current: RwLock::new(Arc::new(current)),
                    dial_timeout: metadata.dial_timeout,
                }))
            }
        };
        Ok(Self {
            target,
            retry,
            read_timeout: metadata.read_timeout,
            write_timeout: metadata.write_timeout,
        })
    }

    /// A client for a dedicated connection to the single server of `metadata` (pub/sub
    /// subscriptions need their own connection); `None` for a cluster or Sentinel.
    pub(crate) fn single_server_client(metadata: &RedisMetadata) -> Option<RedisResult<Client>> {
        match metadata.topology {
            Topology::Node => Some(
                metadata
                    .addresses
                    .first()
                    .ok_or_else(no_address)
                    .and_then(|address| client(address, metadata)),
            ),
            _ => None,
        }
    }

    /// True for a Redis Cluster (multi-key scripts must stay within one slot).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// Runs one command.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        access: Access,
        cmd: &Cmd,
    ) -> RedisResult<T> {
        self.run(access, |mut connection| async move {
            cmd.query_async(&mut connection).await
        })
        .await
    }

    /// Runs an operation, retrying after connection failures, all within the access's
    /// timeout.
    pub(crate) async fn run<T, F, Fut>(&self, access: Access, operation: F) -> RedisResult<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let timeout = match access {
            Access::Read => self.read_timeout,
            Access::Write => self.write_timeout,
        };
        let attempts = self.attempts(&operation);
        match timeout {
            None => attempts.await,
            Some(limit) => tokio::time::timeout(limit, attempts)
                .await
                .unwrap_or_else(|_| {
                    Err(RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("redis command timed out after {limit:?}"),
                    )))
                }),
        }
    }

    /// The first attempt and the retries after connection failures.
    async fn attempts<T, F, Fut>(&self, operation: &F) -> RedisResult<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let mut retry = 0;
        loop {
            match self.attempt(operation).await {
                Err(error) if retry < self.retry.retries && retriable(&error) => {
                    retry += 1;
                    tracing::debug!(%error, retry, "redis command failed; retrying");
                    tokio::time::sleep(self.retry.delay(retry, jitter())).await;
                    if let Target::Sentinel(failover) = &self.target
                        && let Err(error) = failover.refresh().await
                    {
                        tracing::debug!(%error, "asking sentinel for the master failed");
                    }
                }
                other => return other,
            }
        }
    }

    /// One attempt; a single server's connection is dropped when the attempt shows it
    /// broken, so the next attempt dials again.
    async fn attempt<T, F, Fut>(&self, operation: &F) -> RedisResult<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let node = match &self.target {
            Target::Cluster(connection) => {
                return operation(Connection::Cluster(connection.clone())).await;
            }
            Target::Node(node) => node.clone(),
            Target::Sentinel(failover) => failover.current(),
        };
        let dialled = node.connection().await?;
        let result = operation(Connection::Node(dialled.connection)).await;
        if let Err(error) = &result
            && error.is_unrecoverable_error()
        {
            node.discard(dialled.generation);
        }
        result
    }
}

/// Failures after which the same command may succeed on a new connection.
fn retriable(error: &RedisError) -> bool {
    if error.is_timeout() {
        return false;
    }
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::BusyLoading
            )
        )
}

fn no_address() -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "redisHost has no address"))
}

fn connection_address(address: &Address, metadata: &RedisMetadata) -> ConnectionAddr {
    match &metadata.tls {
        None => ConnectionAddr::Tcp(address.host.clone(), address.port),
        Some(tls) => ConnectionAddr::TcpTls {
            host: address.host.clone(),
            port: address.port,
            insecure: tls.insecure_skip_verify,
            tls_params: None,
        },
    }
}

fn redis_settings(metadata: &RedisMetadata, db: i64) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default().set_db(db);
    if let Some(username) = &metadata.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &metadata.password {
        settings = settings.set_password(password);
    }
    settings
}

fn connection_info(
    address: &Address,
    metadata: &RedisMetadata,
    db: i64,
) -> RedisResult<ConnectionInfo> {
    Ok(connection_address(address, metadata)
        .into_connection_info()?
        .set_redis_settings(redis_settings(metadata, db)))
}

fn certificates(metadata: &RedisMetadata) -> Option<TlsCertificates> {
    let (cert, key) = metadata.tls.as_ref()?.client_identity.as_ref()?;
    Some(TlsCertificates {
        client_tls: Some(ClientTlsConfig {
            client_cert: cert.as_bytes().to_vec(),
            client_key: key.as_bytes().to_vec(),
        }),
        root_cert: None,
    })
}

fn tls_mode(metadata: &RedisMetadata) -> Option<TlsMode> {
    metadata.tls.as_ref().map(|tls| {
        if tls.insecure_skip_verify {
            TlsMode::Insecure
        } else {
            TlsMode::Secure
        }
    })
}

fn client(address: &Address, metadata: &RedisMetadata) -> RedisResult<Client> {
    let info = connection_info(address, metadata, metadata.db)?;
    match certificates(metadata) {
        Some(certificates) => Client::build_with_tls(info, certificates),
        None => Client::open(info),
    }
}

async fn cluster(metadata: &RedisMetadata, retry: Retry) -> RedisResult<ClusterConnection> {
    let nodes = metadata
        .addresses
        .iter()
        .map(|address| connection_info(address, metadata, 0))
        .collect::<RedisResult<Vec<_>>>()?;
    let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let (min_wait, max_wait) = retry.bounds();
    let mut builder = ClusterClientBuilder::new(nodes)
        .retries(u32::try_from(retry.retries).unwrap_or(u32::MAX))
        .min_retry_wait(millis(min_wait))
        .max_retry_wait(millis(max_wait))
        .connection_timeout(metadata.dial_timeout);
    if let Some(certificates) = certificates(metadata) {
        builder = builder.certs(certificates);
    }
    builder.build()?.get_async_connection().await
}

fn sentinel(master_name: &str, metadata: &RedisMetadata) -> RedisResult<SentinelClient> {
    let sentinels = metadata
        .addresses
        .iter()
        .map(|address| connection_address(address, metadata));
    let mut builder =
        SentinelClientBuilder::new(sentinels, master_name, SentinelServerType::Master)?
            .set_client_to_redis_db(metadata.db);
    if let Some(mode) = tls_mode(metadata) {
        builder = builder.set_client_to_redis_tls_mode(mode);
    }
    if let Some(username) = &metadata.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &metadata.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(username) = &metadata.sentinel_username {
        builder = builder.set_client_to_sentinel_username(username);
    }
    if let Some(password) = &metadata.sentinel_password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if let Some(certificates) = certificates(metadata) {
        builder = builder
            .set_client_to_redis_certificates(certificates.clone())
            .set_client_to_sentinel_certificates(certificates);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(min: Option<u64>, max: Option<u64>) -> Retry {
        Retry {
            retries: 3,
            min: min.map(Duration::from_millis),
            max: max.map(Duration::from_millis),
        }
    }

    #[test]
    fn waits_grow_from_the_floor_within_a_doubling_window() {
        let retry = retry(Some(8), Some(512));
        assert_eq!(retry.delay(1, 0), Duration::from_millis(8));
        // Retry n waits in [min, min + min << n).
        let window = |n: u32| Duration::from_millis(8) * (1 << n);
        for n in 1..=3 {
            for random in [1, 12_345_678, u64::MAX / 3, u64::MAX] {
                let delay = retry.delay(n as usize, random);
                assert!(delay >= Duration::from_millis(8), "{n}: {delay:?}");
                assert!(
                    delay < Duration::from_millis(8) + window(n),
                    "{n}: {delay:?}"
                );
            }
        }
        // Later retries reach the ceiling, and never pass it.
        assert_eq!(retry.delay(10, u64::MAX / 2), Duration::from_millis(512));
        assert_eq!(retry.delay(64, 7), Duration::from_millis(512));
    }

    #[test]
    fn the_state_store_defaults_wait_the_ceiling_every_time() {
        // Upstream's state store starts at 2s, above go-redis's 512ms ceiling.
        let retry = retry(Some(2_000), Some(512));
        for n in 1..=3 {
            for random in [0, 99, u64::MAX] {
                assert_eq!(retry.delay(n, random), Duration::from_millis(512));
            }
        }
        let ms = Duration::from_millis;
        assert_eq!(retry.bounds(), (ms(512), ms(512)));
        assert_eq!(self::retry(Some(8), Some(512)).bounds(), (ms(8), ms(512)));
    }

    #[test]
    fn either_bound_turned_off_turns_the_waits_off() {
        for retry in [
            retry(None, Some(512)),
            retry(Some(8), None),
            retry(None, None),
        ] {
            assert_eq!(retry.delay(1, u64::MAX), Duration::ZERO);
            assert_eq!(retry.bounds(), (Duration::ZERO, Duration::ZERO));
        }
    }

    #[test]
    fn jitter_varies() {
        let draws: std::collections::HashSet<u64> = (0..64).map(|_| jitter()).collect();
        assert!(draws.len() > 60, "{}", draws.len());
    }
}
