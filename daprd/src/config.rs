//! The sidecar's resolved start-up configuration: flags checked, defaults applied and
//! aliases folded, with upstream's rules and error messages.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::options::Options;
use crate::quantity;

/// Default maximum request body size (4 MiB), as upstream.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 4 << 20;
/// Default HTTP read buffer size (4 KiB), as upstream.
pub const DEFAULT_READ_BUFFER_SIZE: u64 = 4 << 10;
/// Default graceful shutdown period, as upstream.
pub const DEFAULT_GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(5);
/// Default time between app health probes.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// Default timeout of one app health probe.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Default number of failed probes before the app is unhealthy.
pub const DEFAULT_PROBE_THRESHOLD: u32 = 3;
/// First port of the range a missing `--dapr-internal-grpc-port` is chosen from.
const STABLE_INTERNAL_PORT_BASE: u16 = 47300;

/// Where the sidecar gets its resources and identity from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Resources from files, local name resolution.
    Standalone,
    /// Resources from the operator, identities from sentry.
    Kubernetes,
}

/// How the sidecar talks to its application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppProtocol {
    /// HTTP/1.1 in clear text.
    Http,
    /// HTTP over TLS.
    Https,
    /// HTTP/2 in clear text.
    H2c,
    /// gRPC in clear text.
    Grpc,
    /// gRPC over TLS.
    Grpcs,
}

impl AppProtocol {
    /// The name upstream uses for the protocol (`http`, `https`, `h2c`, `grpc`, `grpcs`).
    pub fn as_str(self) -> &'static str {
        match self {
            AppProtocol::Http => "http",
            AppProtocol::Https => "https",
            AppProtocol::H2c => "h2c",
            AppProtocol::Grpc => "grpc",
            AppProtocol::Grpcs => "grpcs",
        }
    }
}

/// The application the sidecar fronts, when `--app-port` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConnection {
    /// Host or address of the application.
    pub address: String,
    /// Port of the application.
    pub port: u16,
    /// Protocol of the application.
    pub protocol: AppProtocol,
}

/// How the sidecar probes its app's health (`--enable-app-health-check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHealthConfig {
    /// HTTP path probed (HTTP apps only).
    pub path: String,
    /// Time between probes.
    pub interval: Duration,
    /// Timeout of one probe.
    pub timeout: Duration,
    /// Consecutive failures before the app counts as unhealthy.
    pub threshold: u32,
}

/// A flag value that upstream would reject, with upstream's wording.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Standalone mode needs a usable app id.
    #[error("parameter app-id cannot be empty")]
    EmptyAppId,
    /// App ids become DNS names and key prefixes.
    #[error("parameter app-id cannot contain dots")]
    AppIdWithDots,
    /// `--mode` is not a known mode.
    #[error("invalid value for 'mode': {0} (use standalone or kubernetes)")]
    Mode(String),
    /// A port flag is not a port number.
    #[error("error parsing {flag} flag: {value:?} is not a valid port")]
    Port {
        /// The flag name.
        flag: &'static str,
        /// The rejected value.
        value: String,
    },
    /// The app port equals one of the sidecar's own ports.
    #[error("the '{flag}' argument value {port} conflicts with 'app-port'")]
    PortConflict {
        /// The sidecar flag that collides.
        flag: &'static str,
        /// The shared port.
        port: u16,
    },
    /// `--app-protocol` is not a known protocol.
    #[error("invalid value for 'app-protocol': {0}")]
    AppProtocol(String),
    /// A size flag is not a Kubernetes quantity.
    #[error("invalid value for '{flag}' option: {source}")]
    Quantity {
        /// The flag name.
        flag: &'static str,
        /// Why the quantity was rejected.
        source: quantity::QuantityError,
    },
    /// A listen address is neither an IP address nor `localhost`.
    #[error("invalid value for 'dapr-listen-addresses': {0:?} is not an IP address")]
    ListenAddress(String),
    /// An entry of `--disable-init-endpoints` is unknown.
    #[error("invalid value for 'disable-init-endpoints': {0}")]
    DisableInitEndpoint(String),
    /// Health probe timing that cannot work.
    #[error("value for 'health-probe-timeout' must be smaller than 'health-probe-interval'")]
    ProbeTimeout,
}

/// Everything the runtime needs to start, resolved from [`Options`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The application id.
    pub app_id: String,
    /// Standalone or Kubernetes.
    pub mode: Mode,
    /// Port of the public HTTP API.
    pub http_port: u16,
    /// Port of the public gRPC API.
    pub grpc_port: u16,
    /// Port of the internal gRPC API.
    pub internal_grpc_port: u16,
    /// Address the internal gRPC API binds to (all interfaces unless
    /// `--dapr-internal-grpc-listen-address` says otherwise).
    pub internal_grpc_listen_address: IpAddr,
    /// Addresses the public APIs bind to.
    pub listen_addresses: Vec<IpAddr>,
    /// The application, when the sidecar is not client-only.
    pub app: Option<AppConnection>,
    /// `--app-channel-address`, reported by the metadata API even without an app.
    pub app_channel_address: String,
    /// Maximum concurrent calls into the app; 0 means unlimited.
    pub app_max_concurrency: u32,
    /// App health probing, when enabled.
    pub app_health: Option<AppHealthConfig>,
    /// `DAPR_API_TOKEN`: when set, every API call but health checks must carry it.
    pub api_token: Option<String>,
    /// `APP_API_TOKEN`: sent to the app on every call from the sidecar.
    pub app_api_token: Option<String>,
    /// The namespace of this app (`NAMESPACE`, `default` when unset).
    pub namespace: String,
    /// `--unix-domain-socket`: when set, the public APIs listen on sockets in this
    /// folder instead of TCP.
    pub unix_domain_socket: String,
    /// `--enable-api-logging` when given; otherwise the Configuration decides.
    pub enable_api_logging: Option<bool>,
    /// Directories resources are loaded from (standalone mode).
    pub resources_paths: Vec<PathBuf>,
    /// Configuration files or names.
    pub config: Vec<String>,
    /// Largest accepted request body, in bytes.
    pub max_body_size: u64,
    /// HTTP read buffer size, in bytes.
    pub read_buffer_size: u64,
    /// How long in-flight work may take after a stop was requested.
    pub graceful_shutdown: Duration,
    /// Metrics server address, when metrics are enabled.
    pub metrics_address: Option<SocketAddr>,
    /// App endpoints not to call at start.
    pub disable_init_endpoints: Vec<String>,
    /// How long the app may take to say whether it listens to an input binding.
    pub app_binding_options_timeout: Duration,
}

fn parse_port(flag: &'static str, value: &str) -> Result<u16, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Port {
        flag,
        value: value.to_string(),
    })
}

fn parse_listen_address(text: &str) -> Result<IpAddr, ConfigError> {
    match text.trim() {
        "" => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "localhost" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        other => other
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| ConfigError::ListenAddress(other.to_string())),
    }
}

/// Picks the internal gRPC port when none was given: a port derived from the app id and
/// working directory (so a restarted app keeps its port) if it is free, else any free port.
fn stable_internal_port(app_id: &str) -> u16 {
    let seed = format!(
        "{app_id}|{}",
        std::env::current_dir().unwrap_or_default().display()
    );
    // FNV-1a: stable across runs and platforms, unlike std's randomly keyed hasher.
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let span = u64::from(u16::MAX - STABLE_INTERNAL_PORT_BASE);
    let candidate = STABLE_INTERNAL_PORT_BASE + (hash % span) as u16;
    let free = |port: u16| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok();
    match free(candidate) {
        Some(_) => candidate,
        None => free(0)
            .and_then(|listener| listener.local_addr().ok())
            .map_or(candidate, |addr| addr.port()),
    }
}

impl RuntimeConfig {
    /// Checks the flags and applies upstream's defaults.
    pub fn from_options(options: &Options) -> Result<Self, ConfigError> {
        let mode = match options.mode.as_str() {
            "standalone" => Mode::Standalone,
            "kubernetes" => Mode::Kubernetes,
            other => return Err(ConfigError::Mode(other.to_string())),
        };
        if mode == Mode::Standalone {
            if options.app_id.is_empty() {
                return Err(ConfigError::EmptyAppId);
            }
            if options.app_id.contains('.') {
                return Err(ConfigError::AppIdWithDots);
            }
        }

        let http_port = parse_port("dapr-http-port", &options.dapr_http_port)?;
        let grpc_port = parse_port("dapr-grpc-port", &options.dapr_grpc_port)?;
        let internal_grpc_port = match options.dapr_internal_grpc_port.trim() {
            "" | "0" => stable_internal_port(&options.app_id),
            port => parse_port("dapr-internal-grpc-port", port)?,
        };

        let app = if options.app_port.trim().is_empty() {
            None
        } else {
            let port = parse_port("app-port", &options.app_port)?;
            if port == http_port {
                return Err(ConfigError::PortConflict {
                    flag: "dapr-http-port",
                    port,
                });
            }
            if port == grpc_port {
                return Err(ConfigError::PortConflict {
                    flag: "dapr-grpc-port",
                    port,
                });
            }
            let protocol = match (
                options.app_protocol.to_ascii_lowercase().as_str(),
                options.app_ssl,
            ) {
                ("http" | "", false) => AppProtocol::Http,
                ("http" | "", true) | ("https", _) => AppProtocol::Https,
                ("h2c", _) => AppProtocol::H2c,
                ("grpc", false) => AppProtocol::Grpc,
                ("grpc", true) | ("grpcs", _) => AppProtocol::Grpcs,
                _ => return Err(ConfigError::AppProtocol(options.app_protocol.clone())),
            };
            Some(AppConnection {
                address: options.app_channel_address.clone(),
                port,
                protocol,
            })
        };

        let mut resources_paths = options.resources_path.clone();
        if resources_paths.is_empty() && !options.components_path.is_empty() {
            resources_paths.push(PathBuf::from(&options.components_path));
        }

        let max_body_size = match (&options.max_body_size, options.dapr_http_max_request_size) {
            (Some(text), _) => {
                quantity::parse_bytes(text).map_err(|source| ConfigError::Quantity {
                    flag: "max-body-size",
                    source,
                })?
            }
            (None, Some(megabytes)) if megabytes > 0 => (megabytes as u64) << 20,
            _ => DEFAULT_MAX_BODY_SIZE,
        };
        let read_buffer_size = match (
            &options.read_buffer_size,
            options.dapr_http_read_buffer_size,
        ) {
            (Some(text), _) => {
                quantity::parse_bytes(text).map_err(|source| ConfigError::Quantity {
                    flag: "read-buffer-size",
                    source,
                })?
            }
            (None, Some(kilobytes)) if kilobytes > 0 => (kilobytes as u64) << 10,
            _ => DEFAULT_READ_BUFFER_SIZE,
        };

        let graceful_shutdown = u64::try_from(options.dapr_graceful_shutdown_seconds)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_GRACEFUL_SHUTDOWN);

        let listen_addresses = options
            .dapr_listen_addresses
            .split(',')
            .map(parse_listen_address)
            .collect::<Result<Vec<_>, _>>()?;

        let mut disable_init_endpoints = Vec::new();
        for endpoint in &options.disable_init_endpoints {
            let endpoint = endpoint.trim().to_ascii_lowercase();
            match endpoint.as_str() {
                "" => {}
                "config" | "subscribe" => disable_init_endpoints.push(endpoint),
                _ => return Err(ConfigError::DisableInitEndpoint(endpoint)),
            }
        }

        let probe_interval = match options.app_health_probe_interval {
            seconds if seconds > 0 => Duration::from_secs(seconds as u64),
            _ => DEFAULT_PROBE_INTERVAL,
        };
        let probe_timeout = match options.app_health_probe_timeout {
            millis if millis > 0 => Duration::from_millis(millis as u64),
            _ => DEFAULT_PROBE_TIMEOUT,
        };
        if probe_timeout > probe_interval {
            return Err(ConfigError::ProbeTimeout);
        }
        let app_health = options.enable_app_health_check.then(|| AppHealthConfig {
            path: format!("/{}", options.app_health_check_path.trim_start_matches('/')),
            interval: probe_interval,
            timeout: probe_timeout,
            threshold: u32::try_from(options.app_health_threshold)
                .ok()
                .filter(|threshold| *threshold >= 1)
                .unwrap_or(DEFAULT_PROBE_THRESHOLD),
        });
        let non_empty_env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());

        Ok(Self {
            app_id: options.app_id.clone(),
            mode,
            http_port,
            grpc_port,
            internal_grpc_port,
            internal_grpc_listen_address: parse_listen_address(
                &options.dapr_internal_grpc_listen_address,
            )?,
            listen_addresses,
            app,
            app_channel_address: options.app_channel_address.clone(),
            app_max_concurrency: u32::try_from(options.app_max_concurrency).unwrap_or(0),
            app_health,
            api_token: non_empty_env("DAPR_API_TOKEN"),
            app_api_token: non_empty_env("APP_API_TOKEN"),
            enable_api_logging: options.enable_api_logging,
            unix_domain_socket: options.unix_domain_socket.clone(),
            namespace: non_empty_env("NAMESPACE").unwrap_or_else(|| "default".to_string()),
            resources_paths,
            config: options.config.clone(),
            max_body_size,
            read_buffer_size,
            graceful_shutdown,
            metrics_address: options.metrics.listen_address(),
            disable_init_endpoints,
            app_binding_options_timeout: options.app_binding_options_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn resolve(args: &[&str]) -> Result<RuntimeConfig, ConfigError> {
        let mut all = vec!["daprd"];
        all.extend_from_slice(args);
        RuntimeConfig::from_options(&Options::try_parse_from(all).unwrap())
    }

    #[test]
    fn defaults_resolve() {
        let config = resolve(&["--app-id", "x"]).unwrap();
        assert_eq!(config.http_port, 3500);
        assert_eq!(config.grpc_port, 50001);
        assert!(
            config.internal_grpc_port >= STABLE_INTERNAL_PORT_BASE || config.internal_grpc_port > 0
        );
        assert_eq!(
            config.listen_addresses,
            vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
        );
        assert_eq!(config.app, None);
        assert_eq!(config.max_body_size, 4 << 20);
        assert_eq!(config.read_buffer_size, 4 << 10);
        assert_eq!(config.graceful_shutdown, Duration::from_secs(5));
        assert_eq!(
            config.metrics_address,
            Some("0.0.0.0:9090".parse().unwrap())
        );
    }

    #[test]
    fn flags_fold_like_upstream() {
        let config = resolve(&[
            "--app-id",
            "x",
            "--app-port",
            "3000",
            "--app-protocol",
            "GRPC",
            "--app-ssl",
            "--components-path",
            "./components",
            "--dapr-http-max-request-size",
            "16",
            "--read-buffer-size",
            "8Ki",
            "--dapr-listen-addresses",
            "127.0.0.1,::1",
            "--dapr-graceful-shutdown-seconds",
            "-1",
            "--dapr-internal-grpc-port",
            "50002",
        ])
        .unwrap();
        let app = config.app.unwrap();
        assert_eq!(
            (app.port, app.protocol, app.address.as_str()),
            (3000, AppProtocol::Grpcs, "127.0.0.1")
        );
        assert_eq!(config.resources_paths, vec![PathBuf::from("./components")]);
        assert_eq!(config.max_body_size, 16 << 20);
        assert_eq!(config.read_buffer_size, 8 << 10);
        assert_eq!(config.listen_addresses.len(), 2);
        assert_eq!(config.graceful_shutdown, DEFAULT_GRACEFUL_SHUTDOWN);
        assert_eq!(config.internal_grpc_port, 50002);
    }

    #[test]
    fn the_stable_internal_port_repeats() {
        assert_eq!(
            stable_internal_port("same-app"),
            stable_internal_port("same-app")
        );
    }

    #[test]
    fn rejects_what_upstream_rejects() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "parameter app-id cannot be empty"),
            (&["--app-id", "a.b"], "parameter app-id cannot contain dots"),
            (
                &["--app-id", "x", "--mode", "cloud"],
                "invalid value for 'mode'",
            ),
            (
                &["--app-id", "x", "--dapr-http-port", "http"],
                "error parsing dapr-http-port flag",
            ),
            (
                &["--app-id", "x", "--app-port", "3500"],
                "'dapr-http-port' argument value 3500 conflicts",
            ),
            (
                &["--app-id", "x", "--app-port", "1", "--app-protocol", "ftp"],
                "invalid value for 'app-protocol': ftp",
            ),
            (
                &["--app-id", "x", "--max-body-size", "4MB"],
                "invalid value for 'max-body-size' option",
            ),
            (
                &["--app-id", "x", "--dapr-listen-addresses", "nowhere"],
                "dapr-listen-addresses",
            ),
            (
                &["--app-id", "x", "--disable-init-endpoints", "health"],
                "disable-init-endpoints': health",
            ),
            (
                &[
                    "--app-id",
                    "x",
                    "--app-health-probe-interval",
                    "1",
                    "--app-health-probe-timeout",
                    "2000",
                ],
                "health-probe-timeout",
            ),
        ];
        for (args, message) in cases {
            let err = resolve(args).unwrap_err().to_string();
            assert!(err.contains(message), "{args:?}: {err}");
        }
    }
}
