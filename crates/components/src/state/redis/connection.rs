//! Connections to Redis for the state store: one multiplexed, self-reconnecting
//! connection to a single server, to a Redis Cluster, or to the master that Sentinel names
//! (found again after a failover). Every command runs under the configured read or write
//! timeout and is retried after connection failures with the configured backoff, as
//! upstream's go-redis client does.

use std::future::Future;
use std::sync::RwLock;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    Pipeline, RedisConnectionInfo, RedisError, RedisFuture, RedisResult, ServerErrorKind,
    TlsCertificates, TlsMode, Value,
};

use super::metadata::{Address, RedisMetadata, Topology};

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
    Node(ConnectionManager),
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

/// The master that Sentinel names, reconnected when it stops being the master.
struct Failover {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<ConnectionManager>,
    config: ConnectionManagerConfig,
}

impl Failover {
    async fn connect(
        sentinel: &mut SentinelClient,
        config: &ConnectionManagerConfig,
    ) -> RedisResult<ConnectionManager> {
        let client = sentinel.async_get_client().await?;
        ConnectionManager::new_with_config(client, config.clone()).await
    }

    fn current(&self) -> ConnectionManager {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Asks Sentinel for the master again and switches to it.
    async fn refresh(&self) -> RedisResult<()> {
        let mut sentinel = self.sentinel.lock().await;
        let connection = Self::connect(&mut sentinel, &self.config).await?;
        match self.current.write() {
            Ok(mut current) => *current = connection,
            Err(poisoned) => *poisoned.into_inner() = connection,
        }
        Ok(())
    }
}

enum Target {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Box<Failover>),
}

/// Backoff between retries: doubling from `min`, capped at `max`.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: usize,
    min: Option<Duration>,
    max: Option<Duration>,
}

impl Retry {
    fn delay(&self, attempt: usize) -> Duration {
        let Some(min) = self.min else {
            return Duration::ZERO;
        };
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        let delay = min.saturating_mul(factor);
        self.max.map_or(delay, |max| delay.min(max))
    }
}

/// The store's connection to Redis.
pub(crate) struct Redis {
    target: Target,
    retry: Retry,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Redis {
    /// Connects as the settings say; fails when no server answers.
    pub(crate) async fn connect(metadata: &RedisMetadata) -> RedisResult<Self> {
        let retry = Retry {
            attempts: metadata.max_retries,
            min: metadata.min_retry_interval,
            max: metadata.max_retry_interval,
        };
        let target = match &metadata.topology {
            Topology::Node => {
                let address = metadata.addresses.first().ok_or_else(no_address)?;
                let client = client(address, metadata)?;
                Target::Node(
                    ConnectionManager::new_with_config(client, manager_config(metadata, retry))
                        .await?,
                )
            }
            Topology::Cluster => Target::Cluster(cluster(metadata, retry).await?),
            Topology::Sentinel { master_name } => {
                let mut sentinel = sentinel(master_name, metadata)?;
                let config = manager_config(metadata, retry);
                let current = Failover::connect(&mut sentinel, &config).await?;
                Target::Sentinel(Box::new(Failover {
                    sentinel: tokio::sync::Mutex::new(sentinel),
                    current: RwLock::new(current),
                    config,
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

    /// True for a Redis Cluster (multi-key scripts must stay within one slot).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    fn connection(&self) -> Connection {
        match &self.target {
            Target::Node(connection) => Connection::Node(connection.clone()),
            Target::Cluster(connection) => Connection::Cluster(connection.clone()),
            Target::Sentinel(failover) => Connection::Node(failover.current()),
        }
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

    /// Runs an operation under the access's timeout, retrying after connection failures.
    pub(crate) async fn run<T, F, Fut>(&self, access: Access, operation: F) -> RedisResult<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let timeout = match access {
            Access::Read => self.read_timeout,
            Access::Write => self.write_timeout,
        };
        let mut attempt = 0;
        loop {
            let attempted = operation(self.connection());
            let result = match timeout {
                None => attempted.await,
                Some(limit) => match tokio::time::timeout(limit, attempted).await {
                    Ok(result) => result,
                    Err(_) => Err(RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("redis command timed out after {limit:?}"),
                    ))),
                },
            };
            match result {
                Err(error) if attempt < self.retry.attempts && retriable(&error) => {
                    attempt += 1;
                    tracing::debug!(%error, attempt, "redis command failed; retrying");
                    tokio::time::sleep(self.retry.delay(attempt)).await;
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

fn manager_config(metadata: &RedisMetadata, retry: Retry) -> ConnectionManagerConfig {
    let mut config = ConnectionManagerConfig::new()
        .set_number_of_retries(retry.attempts)
        .set_connection_timeout(Some(metadata.dial_timeout))
        .set_response_timeout(None);
    if let Some(min) = retry.min {
        let min = retry.max.map_or(min, |max| min.min(max));
        config = config.set_min_delay(min);
    }
    if let Some(max) = retry.max {
        config = config.set_max_delay(max);
    }
    config
}

async fn cluster(metadata: &RedisMetadata, retry: Retry) -> RedisResult<ClusterConnection> {
    let nodes = metadata
        .addresses
        .iter()
        .map(|address| connection_info(address, metadata, 0))
        .collect::<RedisResult<Vec<_>>>()?;
    let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let mut builder = ClusterClientBuilder::new(nodes)
        .retries(u32::try_from(retry.attempts).unwrap_or(u32::MAX))
        .connection_timeout(metadata.dial_timeout);
    if let Some(min) = retry.min {
        builder = builder.min_retry_wait(millis(min));
    }
    if let Some(max) = retry.max {
        builder = builder.max_retry_wait(millis(max));
    }
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

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let retry = Retry {
            attempts: 5,
            min: Some(Duration::from_millis(100)),
            max: Some(Duration::from_millis(350)),
        };
        assert_eq!(retry.delay(1), Duration::from_millis(100));
        assert_eq!(retry.delay(2), Duration::from_millis(200));
        assert_eq!(retry.delay(3), Duration::from_millis(350));
        let disabled = Retry {
            attempts: 5,
            min: None,
            max: None,
        };
        assert_eq!(disabled.delay(4), Duration::ZERO);
    }
}
