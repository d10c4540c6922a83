//! The `mdns` resolver (upstream's default in standalone mode): each sidecar publishes
//! its app id and internal gRPC address over multicast DNS and answers other sidecars'
//! queries; a lookup browses for the app id and caches every answer, rotating among
//! instances. The records follow upstream's conventions (see [`records`]), so our
//! sidecars and upstream ones on the same network find each other.
//!
//! Interfaces: by default every running non-loopback interface with an IPv4 address (as
//! upstream uses every multicast-capable one). The `interface` setting, or else the
//! `DAPR_MDNS_INTERFACE` environment variable, names the interfaces to use instead
//! (comma-separated, e.g. `lo`); nothing is then sent or received on any other. Only IPv4
//! multicast is used; the records may still carry an IPv6 address.

mod cache;
mod engine;
mod records;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Instance, NameResolver, ResolveError, ResolveRequest, join_host_port};
use crate::metadata::Properties;
use engine::{Command, Engine, Shared};

/// The component name in `spec.nameResolution.component`.
pub const COMPONENT: &str = "mdns";
/// Environment variable naming the interfaces to use when the configuration does not.
pub const INTERFACE_ENV: &str = "DAPR_MDNS_INTERFACE";

/// How long a lookup waits for a first answer (upstream's browse timeout).
const BROWSE_TIMEOUT: Duration = Duration::from_secs(1);
/// When an unanswered lookup asks again.
const QUERY_RETRY: Duration = Duration::from_millis(300);

/// The `mdns` resolver's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MdnsConfig {
    /// Interfaces to multicast on, by name; empty means every running non-loopback
    /// interface with an IPv4 address.
    pub interfaces: Vec<String>,
}

impl MdnsConfig {
    /// Reads `interface` (comma-separated names) from `spec.nameResolution.configuration`,
    /// falling back to the `DAPR_MDNS_INTERFACE` environment variable.
    pub fn from_json(configuration: &serde_json::Value) -> Result<Self, ResolveError> {
        Self::from_json_or(configuration, std::env::var(INTERFACE_ENV).ok())
    }

    /// [`Self::from_json`] with the environment variable's value given.
    fn from_json_or(
        configuration: &serde_json::Value,
        from_env: Option<String>,
    ) -> Result<Self, ResolveError> {
        let properties = Properties::from_json(configuration).map_err(|error| {
            ResolveError::InvalidConfiguration {
                component: COMPONENT,
                reason: error.to_string(),
            }
        })?;
        let configured = properties.text("interface", &[]).map(str::to_owned);
        let names = configured
            .filter(|names| !names.trim().is_empty())
            .or(from_env)
            .unwrap_or_default();
        Ok(Self {
            interfaces: names
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// The IPv4 address of each interface to use (one per interface).
    fn interface_addresses(&self) -> Result<Vec<Ipv4Addr>, ResolveError> {
        let invalid = |reason: String| ResolveError::InvalidConfiguration {
            component: COMPONENT,
            reason,
        };
        let all = if_addrs::get_if_addrs().map_err(|error| ResolveError::Backend {
            component: COMPONENT,
            reason: format!("cannot list network interfaces: {error}"),
        })?;
        let ipv4 = |interface: &if_addrs::Interface| match interface.ip() {
            IpAddr::V4(address) => Some(address),
            IpAddr::V6(_) => None,
        };
        let mut chosen: Vec<(String, Ipv4Addr)> = Vec::new();
        if self.interfaces.is_empty() {
            for interface in &all {
                if let Some(address) =
                    ipv4(interface).filter(|_| !interface.is_loopback() && interface.is_oper_up())
                    && !chosen.iter().any(|(name, _)| *name == interface.name)
                {
                    chosen.push((interface.name.clone(), address));
                }
            }
            if chosen.is_empty() {
                return Err(invalid(format!(
                    "no running network interface has an IPv4 address; name one with the `interface` setting or {INTERFACE_ENV} (e.g. lo)"
                )));
            }
        } else {
            for wanted in &self.interfaces {
                let address = all
                    .iter()
                    .filter(|interface| interface.name == *wanted)
                    .find_map(ipv4)
                    .ok_or_else(|| {
                        invalid(format!(
                            "network interface {wanted:?} not found or has no IPv4 address"
                        ))
                    })?;
                chosen.push((wanted.clone(), address));
            }
        }
        tracing::debug!(?chosen, "mDNS interfaces");
        Ok(chosen.into_iter().map(|(_, address)| address).collect())
    }
}

/// The `mdns` resolver.
pub struct MdnsResolver {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    engine: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
}

impl MdnsResolver {
    /// Opens the multicast socket on the configured interfaces, publishes `instance` and
    /// starts answering queries.
    pub async fn start(config: MdnsConfig, instance: Instance) -> Result<Self, ResolveError> {
        instance.check_registrable(COMPONENT)?;
        let address = if instance.host_address.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            instance
                .host_address
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| ResolveError::InvalidInstance {
                    component: COMPONENT,
                    reason: format!(
                        "host address {:?} is not an IP address",
                        instance.host_address
                    ),
                })?
        };
        let interfaces = config.interface_addresses()?;
        let host = host_label();
        let announcement = records::Announcement::new(
            &instance.app_id,
            &instance_label(&host),
            &host,
            address,
            instance.internal_grpc_port,
        )
        .map_err(|error| ResolveError::InvalidInstance {
            component: COMPONENT,
            reason: error.to_string(),
        })?;
        let (socket, interfaces) =
            engine::open_socket(&interfaces).map_err(|error| ResolveError::Backend {
                component: COMPONENT,
                reason: format!(
                    "cannot open the mDNS socket (UDP port 5353) on {interfaces:?}: {error}"
                ),
            })?;

        let shared = Arc::new(Shared::default());
        let (commands, receiver) = mpsc::unbounded_channel();
        let engine = Engine {
            socket,
            interfaces,
            announcement,
            shared: Arc::clone(&shared),
            commands: receiver,
        };
        let task = tokio::spawn(engine.run());
        tracing::info!(
            "local service entry announced: {} -> {}",
            instance.app_id,
            join_host_port(&address.to_string(), instance.internal_grpc_port)
        );
        Ok(Self {
            shared,
            commands,
            engine: tokio::sync::Mutex::new(Some(task)),
            closed: AtomicBool::new(false),
        })
    }

    fn pick(&self, app_id: &str) -> Option<String> {
        self.shared
            .with_cache(|cache| cache.pick(app_id, Instant::now()))
            .map(|address| address.to_string())
    }

    fn send_query(&self, app_id: &str) -> Result<(), ResolveError> {
        self.commands
            .send(Command::Query(app_id.to_owned()))
            .map_err(|_| ResolveError::Closed {
                component: COMPONENT,
            })
    }
}

#[async_trait::async_trait]
impl NameResolver for MdnsResolver {
    fn component(&self) -> &'static str {
        COMPONENT
    }

    async fn resolve(&self, request: &ResolveRequest) -> Result<String, ResolveError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ResolveError::Closed {
                component: COMPONENT,
            });
        }
        let app_id = request.app_id.as_str();
        self.shared.with_cache(|cache| cache.want(app_id));
        if let Some(address) = self.pick(app_id) {
            return Ok(address);
        }
        tracing::debug!(%app_id, "no mDNS address found in cache, browsing network");
        self.send_query(app_id)?;
        let started = Instant::now();
        let mut retried = false;
        loop {
            let updated = self.shared.updated.notified();
            tokio::pin!(updated);
            updated.as_mut().enable();
            if let Some(address) = self.pick(app_id) {
                return Ok(address);
            }
            tokio::select! {
                _ = &mut updated => {}
                _ = tokio::time::sleep_until(started + QUERY_RETRY), if !retried => {
                    retried = true;
                    self.send_query(app_id)?;
                }
                _ = tokio::time::sleep_until(started + BROWSE_TIMEOUT) => {
                    return Err(ResolveError::ServiceNotFound { app_id: app_id.to_owned() });
                }
            }
        }
    }

    async fn close(&self) -> Result<(), ResolveError> {
        let mut engine = self.engine.lock().await;
        let Some(task) = engine.take() else {
            return Ok(());
        };
        self.closed.store(true, Ordering::Release);
        let (done, withdrawn) = oneshot::channel();
        if self.commands.send(Command::Close(done)).is_ok() {
            let _ = withdrawn.await;
        }
        task.await.map_err(|error| ResolveError::Backend {
            component: COMPONENT,
            reason: format!("mDNS task failed: {error}"),
        })
    }
}

/// This machine's host name, first label only (the SRV target is `<host>.local.`).
fn host_label() -> String {
    let full = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let first = full.trim().split('.').next().unwrap_or_default();
    if first.is_empty() || first.len() > 40 {
        "dapr".to_owned()
    } else {
        first.to_owned()
    }
}

/// Upstream's instance name, `<host>:<pid>`; further resolvers in the same process add
/// `-<n>` so their instance names stay distinct.
fn instance_label(host: &str) -> String {
    static STARTED: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    match STARTED.fetch_add(1, Ordering::Relaxed) {
        0 => format!("{host}:{pid}"),
        n => format!("{host}:{pid}-{n}"),
    }
}
