//! Connections to other sidecars (and to the local gRPC app for proxied calls): one
//! HTTP/2 [`Channel`] per `host:port`, created on first use and shared by every call to
//! that address, invocations and proxied gRPC calls alike, multiplexed as streams.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// How long a connection attempt may take (grpc-go's default dial timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Idle connections are pinged this often to find dead peers.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// A ping unanswered for this long closes the connection.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A failure to reach `address`, worded as Go's gRPC library words it
/// (`connection error: desc = "transport: Error while dialing: dial tcp …: connect:
/// connection refused"`) when the cause is a refused or unreachable connection.
pub fn dial_failure(address: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            let reason = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
                _ => io.to_string(),
            };
            return format!(
                "connection error: desc = \"transport: Error while dialing: dial tcp {address}: {reason}\""
            );
        }
        cause = current.source();
    }
    super::endpoint::error_chain(error)
}

/// The pool of peer connections, keyed by `host:port`.
#[derive(Debug, Default)]
pub struct PeerPool {
    channels: Mutex<HashMap<String, Channel>>,
}

impl PeerPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// The channel to `address` (`host:port`), created (without connecting yet) on first
    /// use. Fails only when `address` cannot form a URI.
    pub fn channel(&self, address: &str) -> Result<Channel, String> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "connection pool is unusable".to_string())?;
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|err| format!("invalid address {address:?}: {err}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
        let channel = endpoint.connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// Drops the channel to `address`, so the next call dials afresh.
    pub fn forget(&self, address: &str) {
        if let Ok(mut channels) = self.channels.lock() {
            channels.remove(address);
        }
    }
}
