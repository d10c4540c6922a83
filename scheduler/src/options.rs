//! Command-line flags of the scheduler, with upstream's names and defaults, and the
//! cross-flag rules upstream enforces before starting.

use std::path::PathBuf;
use std::time::Duration;

use dapr_kit::cli::{LogFlags, MetricsFlags, parse_go_bool, parse_go_duration};

/// A combination of flags the scheduler refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// `--kubeconfig` was given outside Kubernetes mode.
    #[error("--kubeconfig is only valid with --mode=kubernetes")]
    KubeconfigOutsideKubernetes,
    /// An external-etcd flag was given while etcd is embedded.
    #[error("--{0} cannot be used with --etcd-embed")]
    ExternalEtcdFlagWithEmbed(&'static str),
    /// External etcd was chosen without any endpoint to reach it.
    #[error("--etcd-client-endpoints is required when --etcd-embed=false")]
    MissingEtcdEndpoints,
}

/// Everything the scheduler binary can be told on its command line.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "scheduler",
    version,
    about = "Dapr scheduler: stores jobs and reminders and triggers them on sidecars"
)]
pub struct Options {
    /// Port of the scheduler gRPC API that sidecars connect to.
    #[arg(long = "port", default_value_t = 50006)]
    pub port: u16,
    /// Port of the HTTP health server.
    #[arg(long = "healthz-port", default_value_t = 8080)]
    pub healthz_port: u16,
    /// Address the HTTP health server binds to (all interfaces when empty).
    #[arg(long = "healthz-listen-address")]
    pub healthz_listen_address: Option<String>,
    /// Address the scheduler gRPC API binds to (all interfaces when empty).
    #[arg(long = "listen-address")]
    pub listen_address: Option<String>,
    /// `host:port` advertised to sidecars instead of this host's own address, for networks
    /// where the two differ.
    #[arg(long = "override-broadcast-host-port")]
    pub override_broadcast_host_port: Option<String>,
    /// Require mutual TLS on the scheduler gRPC API.
    #[arg(long = "tls-enabled", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub tls_enabled: bool,
    /// Trust domain of the control plane.
    #[arg(long = "trust-domain", default_value = "localhost")]
    pub trust_domain: String,
    /// PEM file holding the control plane's trust anchors; none is read unless given.
    #[arg(long = "trust-anchors-file")]
    pub trust_anchors_file: Option<PathBuf>,
    /// Address of the Sentry certificate authority.
    #[arg(long = "sentry-address", default_value_t = default_sentry_address())]
    pub sentry_address: String,
    /// Runtime mode: `standalone` or `kubernetes`.
    #[arg(long = "mode", default_value = "standalone")]
    pub mode: String,
    /// Kubeconfig file used to reach the Kubernetes API (Kubernetes mode only).
    #[arg(long = "kubeconfig", hide = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Identity of this scheduler, also its etcd member name.
    #[arg(long = "id", default_value = "dapr-scheduler-server-0")]
    pub id: String,
    /// Run etcd inside this process; when false, connect to --etcd-client-endpoints instead.
    #[arg(long = "etcd-embed", default_value = "true", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub etcd_embed: bool,
    /// Embedded etcd cluster members as `name=peer-url` pairs, comma separated or repeated.
    #[arg(
        long = "etcd-initial-cluster",
        value_delimiter = ',',
        default_value = "dapr-scheduler-server-0=http://localhost:2380"
    )]
    pub etcd_initial_cluster: Vec<String>,
    /// Directory of the embedded etcd's data.
    #[arg(long = "etcd-data-dir", default_value = "./data")]
    pub etcd_data_dir: PathBuf,
    /// Client port of the embedded etcd.
    #[arg(long = "etcd-client-port", default_value_t = 2379)]
    pub etcd_client_port: u16,
    /// Address the embedded etcd's client port binds to.
    #[arg(long = "etcd-client-listen-address", default_value = "localhost")]
    pub etcd_client_listen_address: String,
    /// Storage quota of the embedded etcd, as a Kubernetes quantity such as `8Gi`.
    #[arg(long = "etcd-space-quota", default_value = "9.2E")]
    pub etcd_space_quota: String,
    /// Compaction mode of the embedded etcd: `periodic` or `revision`.
    #[arg(long = "etcd-compaction-mode", default_value = "revision")]
    pub etcd_compaction_mode: String,
    /// What compaction keeps: a duration in periodic mode, a revision count in revision mode.
    #[arg(long = "etcd-compaction-retention", default_value = "1000000")]
    pub etcd_compaction_retention: String,
    /// Committed transactions between two snapshots to disk.
    #[arg(long = "etcd-snapshot-count", default_value_t = 100_000)]
    pub etcd_snapshot_count: u64,
    /// Snapshot files kept on disk (0 keeps all).
    #[arg(long = "etcd-max-snapshots", default_value_t = 10)]
    pub etcd_max_snapshots: u32,
    /// Write-ahead log files kept on disk (0 keeps all).
    #[arg(long = "etcd-max-wals", default_value_t = 10)]
    pub etcd_max_wals: u32,
    /// Operations after which the backend transaction is committed.
    #[arg(long = "etcd-backend-batch-limit", default_value_t = 10_000)]
    pub etcd_backend_batch_limit: u32,
    /// Time after which the backend transaction is committed.
    #[arg(long = "etcd-backend-batch-interval", default_value = "100ms", value_parser = parse_go_duration)]
    pub etcd_backend_batch_interval: Duration,
    /// Most operations one etcd transaction may carry.
    #[arg(long = "etcd-max-txn-ops", default_value_t = 10_000)]
    pub etcd_max_txn_ops: u32,
    /// Megabytes that must be reclaimable before etcd defragments at start-up (0 disables).
    #[arg(
        long = "etcd-experimental-bootstrap-defrag-threshold-megabytes",
        default_value_t = 100
    )]
    pub etcd_defrag_threshold_megabytes: u32,
    /// Skip ahead election ticks at start-up so the first leader is elected sooner.
    #[arg(long = "etcd-initial-election-tick-advance", default_value = "false", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub etcd_initial_election_tick_advance: bool,
    /// Detail of etcd's own metrics: `basic` or `extensive`.
    #[arg(long = "etcd-metrics", default_value = "basic")]
    pub etcd_metrics: String,
    /// Client URLs of an external etcd, comma separated or repeated (only with
    /// --etcd-embed=false).
    #[arg(long = "etcd-client-endpoints", value_delimiter = ',')]
    pub etcd_client_endpoints: Vec<String>,
    /// User name for an external etcd (only with --etcd-embed=false).
    #[arg(long = "etcd-client-username")]
    pub etcd_client_username: Option<String>,
    /// Password for an external etcd (only with --etcd-embed=false).
    #[arg(long = "etcd-client-password")]
    pub etcd_client_password: Option<String>,
    /// Directory the workload identity (certificate, key, trust anchors) is written to.
    #[arg(long = "identity-directory-write", hide = true, default_value_os_t = default_identity_directory())]
    pub identity_directory_write: PathBuf,
    /// Number of workers delivering due jobs, each owning a partition of the job space.
    #[arg(long = "workers", default_value_t = 2048)]
    pub workers: u32,
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
        <Self as clap::Parser>::parse_from(["scheduler"])
    }

    /// Checks the rules that involve more than one flag.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.kubeconfig.is_some() && self.mode != "kubernetes" {
            return Err(OptionsError::KubeconfigOutsideKubernetes);
        }
        if self.etcd_embed {
            let external = [
                (
                    "etcd-client-endpoints",
                    !self.etcd_client_endpoints.is_empty(),
                ),
                (
                    "etcd-client-username",
                    self.etcd_client_username
                        .as_ref()
                        .is_some_and(|name| !name.is_empty()),
                ),
                (
                    "etcd-client-password",
                    self.etcd_client_password
                        .as_ref()
                        .is_some_and(|word| !word.is_empty()),
                ),
            ];
            if let Some((flag, _)) = external.into_iter().find(|(_, given)| *given) {
                return Err(OptionsError::ExternalEtcdFlagWithEmbed(flag));
            }
        } else if self.etcd_client_endpoints.is_empty() {
            return Err(OptionsError::MissingEtcdEndpoints);
        }
        Ok(())
    }

    /// Flags this build accepts but does not act on yet, each paired with whether it was set
    /// to something other than its default.
    pub fn unimplemented_flags(&self) -> Vec<(&'static str, bool)> {
        let defaults = Self::defaults();
        vec![
            ("port", self.port != defaults.port),
            ("listen-address", self.listen_address.is_some()),
            (
                "override-broadcast-host-port",
                self.override_broadcast_host_port.is_some(),
            ),
            ("tls-enabled", self.tls_enabled != defaults.tls_enabled),
            ("trust-domain", self.trust_domain != defaults.trust_domain),
            ("trust-anchors-file", self.trust_anchors_file.is_some()),
            (
                "sentry-address",
                self.sentry_address != defaults.sentry_address,
            ),
            ("mode", self.mode != defaults.mode),
            ("kubeconfig", self.kubeconfig.is_some()),
            ("id", self.id != defaults.id),
            ("etcd-embed", self.etcd_embed != defaults.etcd_embed),
            (
                "etcd-initial-cluster",
                self.etcd_initial_cluster != defaults.etcd_initial_cluster,
            ),
            (
                "etcd-data-dir",
                self.etcd_data_dir != defaults.etcd_data_dir,
            ),
            (
                "etcd-client-port",
                self.etcd_client_port != defaults.etcd_client_port,
            ),
            (
                "etcd-client-listen-address",
                self.etcd_client_listen_address != defaults.etcd_client_listen_address,
            ),
            (
                "etcd-space-quota",
                self.etcd_space_quota != defaults.etcd_space_quota,
            ),
            (
                "etcd-compaction-mode",
                self.etcd_compaction_mode != defaults.etcd_compaction_mode,
            ),
            (
                "etcd-compaction-retention",
                self.etcd_compaction_retention != defaults.etcd_compaction_retention,
            ),
            (
                "etcd-snapshot-count",
                self.etcd_snapshot_count != defaults.etcd_snapshot_count,
            ),
            (
                "etcd-max-snapshots",
                self.etcd_max_snapshots != defaults.etcd_max_snapshots,
            ),
            (
                "etcd-max-wals",
                self.etcd_max_wals != defaults.etcd_max_wals,
            ),
            (
                "etcd-backend-batch-limit",
                self.etcd_backend_batch_limit != defaults.etcd_backend_batch_limit,
            ),
            (
                "etcd-backend-batch-interval",
                self.etcd_backend_batch_interval != defaults.etcd_backend_batch_interval,
            ),
            (
                "etcd-max-txn-ops",
                self.etcd_max_txn_ops != defaults.etcd_max_txn_ops,
            ),
            (
                "etcd-experimental-bootstrap-defrag-threshold-megabytes",
                self.etcd_defrag_threshold_megabytes != defaults.etcd_defrag_threshold_megabytes,
            ),
            (
                "etcd-initial-election-tick-advance",
                self.etcd_initial_election_tick_advance
                    != defaults.etcd_initial_election_tick_advance,
            ),
            ("etcd-metrics", self.etcd_metrics != defaults.etcd_metrics),
            (
                "etcd-client-endpoints",
                !self.etcd_client_endpoints.is_empty(),
            ),
            ("etcd-client-username", self.etcd_client_username.is_some()),
            ("etcd-client-password", self.etcd_client_password.is_some()),
            (
                "identity-directory-write",
                self.identity_directory_write != defaults.identity_directory_write,
            ),
            ("workers", self.workers != defaults.workers),
        ]
    }
}

/// Sentry's in-cluster address in this workload's namespace (`NAMESPACE`, else `default`).
fn default_sentry_address() -> String {
    let namespace = std::env::var("NAMESPACE").unwrap_or_else(|_| "default".to_owned());
    format!("dapr-sentry.{namespace}.svc:443")
}

/// `secrets/dapr.io/tls` under the system temporary directory.
fn default_identity_directory() -> PathBuf {
    std::env::temp_dir().join("secrets/dapr.io/tls")
}

#[cfg(test)]
mod tests {

    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        dapr_kit::cli::try_parse_args("scheduler", args)
    }

    #[test]
    fn defaults_match_upstream() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.port, 50006);
        assert_eq!(options.healthz_port, 8080);
        assert_eq!(options.healthz_listen_address, None);
        assert_eq!(options.listen_address, None);
        assert_eq!(options.override_broadcast_host_port, None);
        assert!(!options.tls_enabled);
        assert_eq!(options.trust_domain, "localhost");
        assert_eq!(options.trust_anchors_file, None);
        assert!(
            options.sentry_address.starts_with("dapr-sentry.")
                && options.sentry_address.ends_with(".svc:443")
        );
        assert_eq!(options.mode, "standalone");
        assert_eq!(options.kubeconfig, None);
        assert_eq!(options.id, "dapr-scheduler-server-0");
        assert!(options.etcd_embed);
        assert_eq!(
            options.etcd_initial_cluster,
            ["dapr-scheduler-server-0=http://localhost:2380"]
        );
        assert_eq!(options.etcd_data_dir, PathBuf::from("./data"));
        assert_eq!(options.etcd_client_port, 2379);
        assert_eq!(options.etcd_client_listen_address, "localhost");
        assert_eq!(options.etcd_space_quota, "9.2E");
        assert_eq!(options.etcd_compaction_mode, "revision");
        assert_eq!(options.etcd_compaction_retention, "1000000");
        assert_eq!(options.etcd_snapshot_count, 100_000);
        assert_eq!(options.etcd_max_snapshots, 10);
        assert_eq!(options.etcd_max_wals, 10);
        assert_eq!(options.etcd_backend_batch_limit, 10_000);
        assert_eq!(
            options.etcd_backend_batch_interval,
            Duration::from_millis(100)
        );
        assert_eq!(options.etcd_max_txn_ops, 10_000);
        assert_eq!(options.etcd_defrag_threshold_megabytes, 100);
        assert!(!options.etcd_initial_election_tick_advance);
        assert_eq!(options.etcd_metrics, "basic");
        assert!(options.etcd_client_endpoints.is_empty());
        assert_eq!(options.etcd_client_username, None);
        assert_eq!(options.etcd_client_password, None);
        assert_eq!(
            options.identity_directory_write,
            std::env::temp_dir().join("secrets/dapr.io/tls")
        );
        assert_eq!(options.workers, 2048);
        assert_eq!(options.log.log_level, "info");
        assert_eq!(options.metrics.metrics_port, 9090);
        assert!(options.metrics.enable_metrics);
        assert_eq!(options.validate(), Ok(()));
        assert!(options.unimplemented_flags().iter().all(|(_, set)| !set));
    }

    #[test]
    fn single_dash_forms_are_accepted() {
        let options = parse(&["-id", "s1", "-workers=16", "-healthz-port", "18080"]).unwrap();
        assert_eq!(options.id, "s1");
        assert_eq!(options.workers, 16);
        assert_eq!(options.healthz_port, 18080);
        let changed: Vec<_> = options
            .unimplemented_flags()
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(changed, ["id", "workers"]);
    }

    #[test]
    fn booleans_take_only_attached_values() {
        let options = parse(&[
            "--tls-enabled",
            "--etcd-initial-election-tick-advance=true",
            "--etcd-embed=false",
            "--etcd-client-endpoints",
            "http://127.0.0.1:2379",
        ])
        .unwrap();
        assert!(options.tls_enabled);
        assert!(options.etcd_initial_election_tick_advance);
        assert!(!options.etcd_embed);
        assert_eq!(options.validate(), Ok(()));
        assert!(parse(&["--etcd-embed=sometimes"]).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse(&["--etcd-backend-batch-interval", "1s"])
                .unwrap()
                .etcd_backend_batch_interval,
            Duration::from_secs(1)
        );
        assert!(parse(&["--etcd-backend-batch-interval", "5x"]).is_err());
    }

    #[test]
    fn string_slices_accept_commas_and_repeats() {
        let options = parse(&[
            "--etcd-initial-cluster",
            "a=http://h1:2380,b=http://h2:2380",
            "--etcd-initial-cluster=c=http://h3:2380",
        ])
        .unwrap();
        assert_eq!(
            options.etcd_initial_cluster,
            ["a=http://h1:2380", "b=http://h2:2380", "c=http://h3:2380"]
        );
    }

    #[test]
    fn cross_flag_rules_match_upstream() {
        assert_eq!(
            parse(&["--kubeconfig", "/k"]).unwrap().validate(),
            Err(OptionsError::KubeconfigOutsideKubernetes)
        );
        assert_eq!(
            parse(&["--kubeconfig", "/k", "--mode", "kubernetes"])
                .unwrap()
                .validate(),
            Ok(())
        );
        assert_eq!(
            parse(&["--etcd-client-endpoints", "http://127.0.0.1:2379"])
                .unwrap()
                .validate(),
            Err(OptionsError::ExternalEtcdFlagWithEmbed(
                "etcd-client-endpoints"
            ))
        );
        assert_eq!(
            parse(&["--etcd-client-password", "secret"])
                .unwrap()
                .validate(),
            Err(OptionsError::ExternalEtcdFlagWithEmbed(
                "etcd-client-password"
            ))
        );
        assert_eq!(
            parse(&["--etcd-embed=false"]).unwrap().validate(),
            Err(OptionsError::MissingEtcdEndpoints)
        );
    }

    #[test]
    fn invalid_numbers_are_usage_errors() {
        let err = parse(&["--healthz-port", "abc"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(parse(&["--workers", "many"]).is_err());
    }
}
