//! Command-line flags of the placement service, with upstream's names and defaults.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use dapr_kit::cli::{LogFlags, MetricsFlags, parse_go_bool, parse_go_duration};

/// Environment variable whose truthy value turns `--metadata-enabled` on by default.
pub const METADATA_ENABLED_ENV: &str = "DAPR_PLACEMENT_METADATA_ENABLED";

/// Shortest and longest keepalive interval or timeout the service accepts.
const KEEPALIVE_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(10));

/// Everything the placement binary can be told on its command line.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "placement",
    version,
    about = "Dapr placement service: distributes actor types over the sidecars that host them"
)]
pub struct Options {
    /// Identity of this node in the Raft cluster.
    #[arg(long = "id", default_value = "dapr-placement-0")]
    pub raft_id: String,
    /// Raft cluster members as `id=host:port` pairs, comma separated or repeated.
    #[arg(
        long = "initial-cluster",
        value_delimiter = ',',
        default_value = "dapr-placement-0=127.0.0.1:8201"
    )]
    pub initial_cluster: Vec<RaftPeer>,
    /// Keep the Raft log and snapshots in memory (ignored when --raft-logstore-path is set).
    #[arg(long = "inmem-store-enabled", default_value = "true", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub inmem_store_enabled: bool,
    /// Directory of the on-disk Raft log store; setting it disables the in-memory store.
    #[arg(long = "raft-logstore-path")]
    pub raft_logstore_path: Option<PathBuf>,
    /// Port of the placement gRPC API that sidecars connect to.
    #[arg(long = "port", default_value_t = 50005)]
    pub port: u16,
    /// Address the placement gRPC API binds to (all interfaces when empty).
    #[arg(long = "listen-address")]
    pub listen_address: Option<String>,
    /// Port of the HTTP health server.
    #[arg(long = "healthz-port", default_value_t = 8080)]
    pub healthz_port: u16,
    /// Address the HTTP health server binds to (all interfaces when empty).
    #[arg(long = "healthz-listen-address")]
    pub healthz_listen_address: Option<String>,
    /// Require mutual TLS on the placement gRPC API.
    #[arg(long = "tls-enabled", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub tls_enabled: bool,
    /// Publish the placement tables on the health server; defaults to the truthiness of
    /// DAPR_PLACEMENT_METADATA_ENABLED.
    #[arg(long = "metadata-enabled", default_value_t = metadata_enabled_from_env(), num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub metadata_enabled: bool,
    /// Number of virtual nodes per host on the consistent-hash ring.
    #[arg(long = "replicationFactor", default_value_t = 100)]
    pub replication_factor: u32,
    /// How often keepalive pings are sent to each sidecar stream (1s to 10s).
    #[arg(long = "keepalive-time", default_value = "2s", value_parser = parse_keepalive)]
    pub keepalive_time: Duration,
    /// How long a sidecar may take to answer a keepalive ping before its stream is closed
    /// (1s to 10s).
    #[arg(long = "keepalive-timeout", default_value = "3s", value_parser = parse_keepalive)]
    pub keepalive_timeout: Duration,
    /// How long a table dissemination round may take before unresponsive sidecars are dropped.
    #[arg(long = "disseminate-timeout", default_value = "8s", value_parser = parse_go_duration)]
    pub disseminate_timeout: Duration,
    /// When above zero, delay the next dissemination round by this much so that bursts of
    /// membership changes are folded into one round.
    #[arg(long = "disseminate-coalesce-window", default_value = "0s", value_parser = parse_go_duration)]
    pub disseminate_coalesce_window: Duration,
    /// Trust domain of the control plane.
    #[arg(long = "trust-domain", default_value = "localhost")]
    pub trust_domain: String,
    /// PEM file holding the control plane's trust anchors.
    #[arg(
        long = "trust-anchors-file",
        default_value = "/var/run/secrets/dapr.io/tls/ca.crt"
    )]
    pub trust_anchors_file: PathBuf,
    /// Address of the Sentry certificate authority.
    #[arg(long = "sentry-address", default_value_t = default_sentry_address())]
    pub sentry_address: String,
    /// Runtime mode: `standalone` or `kubernetes`.
    #[arg(long = "mode", default_value = "standalone")]
    pub mode: String,
    /// Deprecated: upper bound of the API level reported to the cluster.
    #[arg(long = "max-api-level", default_value_t = 10, hide = true)]
    pub max_api_level: i32,
    /// Deprecated: lower bound of the API level enforced in the cluster.
    #[arg(long = "min-api-level", default_value_t = 0, hide = true)]
    pub min_api_level: i32,
    /// Logging flags.
    #[command(flatten)]
    pub log: LogFlags,
    /// Metrics flags.
    #[command(flatten)]
    pub metrics: MetricsFlags,
}

impl Options {
    /// The options a command line without any flags yields.
    pub fn defaults() -> Self {
        <Self as clap::Parser>::parse_from(["placement"])
    }

    /// Flags this build accepts but does not act on yet, each paired with whether it was set
    /// to something other than its default.
    pub fn unimplemented_flags(&self) -> Vec<(&'static str, bool)> {
        let defaults = Self::defaults();
        vec![
            ("id", self.raft_id != defaults.raft_id),
            (
                "initial-cluster",
                self.initial_cluster != defaults.initial_cluster,
            ),
            (
                "inmem-store-enabled",
                self.inmem_store_enabled != defaults.inmem_store_enabled,
            ),
            ("raft-logstore-path", self.raft_logstore_path.is_some()),
            ("port", self.port != defaults.port),
            ("listen-address", self.listen_address.is_some()),
            ("tls-enabled", self.tls_enabled != defaults.tls_enabled),
            ("metadata-enabled", self.metadata_enabled),
            (
                "replicationFactor",
                self.replication_factor != defaults.replication_factor,
            ),
            (
                "keepalive-time",
                self.keepalive_time != defaults.keepalive_time,
            ),
            (
                "keepalive-timeout",
                self.keepalive_timeout != defaults.keepalive_timeout,
            ),
            (
                "disseminate-timeout",
                self.disseminate_timeout != defaults.disseminate_timeout,
            ),
            (
                "disseminate-coalesce-window",
                self.disseminate_coalesce_window != defaults.disseminate_coalesce_window,
            ),
            ("trust-domain", self.trust_domain != defaults.trust_domain),
            (
                "trust-anchors-file",
                self.trust_anchors_file != defaults.trust_anchors_file,
            ),
            (
                "sentry-address",
                self.sentry_address != defaults.sentry_address,
            ),
            ("mode", self.mode != defaults.mode),
            (
                "max-api-level",
                self.max_api_level != defaults.max_api_level,
            ),
            (
                "min-api-level",
                self.min_api_level != defaults.min_api_level,
            ),
        ]
    }
}

/// One member of the initial Raft cluster, written `id=host:port` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftPeer {
    /// The member's Raft node id.
    pub id: String,
    /// The `host:port` its Raft transport listens on.
    pub address: String,
}

impl FromStr for RaftPeer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((id, address)) if !address.contains('=') => Ok(Self {
                id: id.trim().to_owned(),
                address: address.trim().to_owned(),
            }),
            _ => Err(format!(
                "invalid cluster member {text:?}: expected id=host:port"
            )),
        }
    }
}

/// Parses a keepalive interval or timeout and checks it lies in the accepted range.
fn parse_keepalive(text: &str) -> Result<Duration, String> {
    let value = parse_go_duration(text)?;
    let (min, max) = KEEPALIVE_RANGE;
    if value < min || value > max {
        return Err(format!(
            "must be between {min:?} and {max:?}, got {value:?}"
        ));
    }
    Ok(value)
}

/// Whether DAPR_PLACEMENT_METADATA_ENABLED holds a truthy value (`y`, `yes`, `true`, `t`,
/// `on` or `1`, in any case).
fn metadata_enabled_from_env() -> bool {
    std::env::var(METADATA_ENABLED_ENV).is_ok_and(|value| {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "y" | "yes" | "true" | "t" | "on" | "1"
        )
    })
}

/// Sentry's in-cluster address in this workload's namespace (`NAMESPACE`, else `default`).
fn default_sentry_address() -> String {
    let namespace = std::env::var("NAMESPACE").unwrap_or_else(|_| "default".to_owned());
    format!("dapr-sentry.{namespace}.svc:443")
}

#[cfg(test)]
mod tests {

    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        dapr_kit::cli::try_parse_args("placement", args)
    }

    #[test]
    fn defaults_match_upstream() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.raft_id, "dapr-placement-0");
        assert_eq!(
            options.initial_cluster,
            vec![RaftPeer {
                id: "dapr-placement-0".into(),
                address: "127.0.0.1:8201".into()
            }]
        );
        assert!(options.inmem_store_enabled);
        assert_eq!(options.raft_logstore_path, None);
        assert_eq!(options.port, 50005);
        assert_eq!(options.listen_address, None);
        assert_eq!(options.healthz_port, 8080);
        assert_eq!(options.healthz_listen_address, None);
        assert!(!options.tls_enabled);
        assert_eq!(options.metadata_enabled, metadata_enabled_from_env());
        assert_eq!(options.replication_factor, 100);
        assert_eq!(options.keepalive_time, Duration::from_secs(2));
        assert_eq!(options.keepalive_timeout, Duration::from_secs(3));
        assert_eq!(options.disseminate_timeout, Duration::from_secs(8));
        assert_eq!(options.disseminate_coalesce_window, Duration::ZERO);
        assert_eq!(options.trust_domain, "localhost");
        assert_eq!(
            options.trust_anchors_file,
            PathBuf::from("/var/run/secrets/dapr.io/tls/ca.crt")
        );
        assert!(
            options.sentry_address.starts_with("dapr-sentry.")
                && options.sentry_address.ends_with(".svc:443")
        );
        assert_eq!(options.mode, "standalone");
        assert_eq!(options.max_api_level, 10);
        assert_eq!(options.min_api_level, 0);
        assert_eq!(options.log.log_level, "info");
        assert!(!options.log.log_as_json);
        assert_eq!(options.metrics.metrics_port, 9090);
        assert!(options.metrics.enable_metrics);
        assert!(options.unimplemented_flags().iter().all(|(_, set)| !set));
    }

    #[test]
    fn single_dash_and_equals_forms_are_accepted() {
        let options = parse(&[
            "-id",
            "p1",
            "-port=6000",
            "--healthz-port",
            "18080",
            "-replicationFactor",
            "7",
        ])
        .unwrap();
        assert_eq!(options.raft_id, "p1");
        assert_eq!(options.port, 6000);
        assert_eq!(options.healthz_port, 18080);
        assert_eq!(options.replication_factor, 7);
        let changed: Vec<_> = options
            .unimplemented_flags()
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(changed, ["id", "port", "replicationFactor"]);
    }

    #[test]
    fn booleans_take_only_attached_values() {
        let options = parse(&[
            "--tls-enabled",
            "--inmem-store-enabled=false",
            "-metadata-enabled=1",
            "--mode",
            "kubernetes",
        ])
        .unwrap();
        assert!(options.tls_enabled);
        assert!(!options.inmem_store_enabled);
        assert!(options.metadata_enabled);
        assert_eq!(options.mode, "kubernetes");
        assert!(parse(&["--tls-enabled=maybe"]).is_err());
    }

    #[test]
    fn durations_parse_and_keepalives_are_bounded() {
        let options = parse(&[
            "--keepalive-time",
            "1500ms",
            "--keepalive-timeout=10s",
            "--disseminate-coalesce-window",
            "250ms",
        ])
        .unwrap();
        assert_eq!(options.keepalive_time, Duration::from_millis(1500));
        assert_eq!(options.keepalive_timeout, Duration::from_secs(10));
        assert_eq!(
            options.disseminate_coalesce_window,
            Duration::from_millis(250)
        );
        assert!(parse(&["--keepalive-time", "11s"]).is_err());
        assert!(parse(&["--keepalive-timeout", "500ms"]).is_err());
        assert!(parse(&["--keepalive-time", "5x"]).is_err());
    }

    #[test]
    fn cluster_members_accept_commas_and_repeats() {
        let peer = |id: &str, address: &str| RaftPeer {
            id: id.into(),
            address: address.into(),
        };
        let options = parse(&[
            "--initial-cluster",
            "a=h1:1,b=h2:2",
            "--initial-cluster=c=h3:3",
        ])
        .unwrap();
        assert_eq!(
            options.initial_cluster,
            vec![peer("a", "h1:1"), peer("b", "h2:2"), peer("c", "h3:3")]
        );
        assert!(parse(&["--initial-cluster", "no-address"]).is_err());
    }

    #[test]
    fn invalid_numbers_are_usage_errors() {
        let err = parse(&["--healthz-port", "abc"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(parse(&["--port", "70000"]).is_err());
    }
}
