//! Command-line flags of the operator, with upstream's names and defaults.
//!
//! Upstream parses these with Go's standard `flag` package and also registers klog's flags;
//! only the operator's own flags are accepted here.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use dapr_kit::cli::{LogFlags, MetricsFlags, parse_go_bool, parse_go_duration};

/// Everything the operator binary can be told on its command line.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "operator",
    version,
    about = "Dapr operator: watches Dapr resources and streams them to sidecars"
)]
pub struct Options {
    /// Name of the Dapr Configuration resource holding control-plane settings, or a path to a
    /// configuration file.
    #[arg(long = "config", default_value = "daprsystem")]
    pub config: String,
    /// How often to look for pods that should have a sidecar but lack one: a duration of at
    /// least 1s, `once` to check only at start-up, or `0` to never check.
    #[arg(long = "watch-interval", default_value = "0")]
    pub watch_interval: WatchInterval,
    /// Upper bound on how many such pods are restarted per minute.
    #[arg(long = "max-pod-restarts-per-minute", default_value_t = 20)]
    pub max_pod_restarts_per_minute: u32,
    /// Run without leader election (every replica acts as leader).
    #[arg(long = "disable-leader-election", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub disable_leader_election: bool,
    /// Do not create Kubernetes Services for Dapr-enabled Deployments and StatefulSets.
    #[arg(long = "disable-service-reconciler", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub disable_service_reconciler: bool,
    /// Only watch Dapr-annotated resources in this namespace (all namespaces when empty).
    #[arg(long = "watch-namespace")]
    pub watch_namespace: Option<String>,
    /// Also create Services for Dapr-enabled Argo Rollouts.
    #[arg(long = "enable-argo-rollout-service-reconciler", default_value = "false", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub enable_argo_rollout_service_reconciler: bool,
    /// Let the sidecar watchdog label pods that already have a sidecar.
    #[arg(long = "watchdog-can-patch-pod-labels", default_value = "false", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub watchdog_can_patch_pod_labels: bool,
    /// PEM file holding the control plane's trust anchors.
    #[arg(
        long = "trust-anchors-file",
        default_value = "/var/run/secrets/dapr.io/tls/ca.crt"
    )]
    pub trust_anchors_file: PathBuf,
    /// Port of the operator gRPC API that sidecars connect to.
    #[arg(long = "port", default_value_t = 6500)]
    pub port: u16,
    /// Address the operator gRPC API binds to (all interfaces when empty).
    #[arg(long = "listen-address")]
    pub listen_address: Option<String>,
    /// Port of the HTTP health server.
    #[arg(long = "healthz-port", default_value_t = 8080)]
    pub healthz_port: u16,
    /// Address the HTTP health server binds to (all interfaces when empty).
    #[arg(long = "healthz-listen-address")]
    pub healthz_listen_address: Option<String>,
    /// Port of the conversion webhook server.
    #[arg(long = "webhook-server-port", default_value_t = 19443)]
    pub webhook_server_port: u16,
    /// Address the conversion webhook server binds to (all interfaces when empty).
    #[arg(long = "webhook-server-listen-address")]
    pub webhook_server_listen_address: Option<String>,
    /// How often the informer cache is fully resynced; `0` keeps the library default.
    #[arg(long = "cache-sync-period", default_value = "0s", value_parser = parse_go_duration)]
    pub cache_sync_period: Duration,
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
        <Self as clap::Parser>::parse_from(["operator"])
    }

    /// Flags this build accepts but does not act on yet, each paired with whether it was set
    /// to something other than its default.
    pub fn unimplemented_flags(&self) -> Vec<(&'static str, bool)> {
        let defaults = Self::defaults();
        vec![
            ("config", self.config != defaults.config),
            (
                "watch-interval",
                self.watch_interval != defaults.watch_interval,
            ),
            (
                "max-pod-restarts-per-minute",
                self.max_pod_restarts_per_minute != defaults.max_pod_restarts_per_minute,
            ),
            (
                "disable-leader-election",
                self.disable_leader_election != defaults.disable_leader_election,
            ),
            (
                "disable-service-reconciler",
                self.disable_service_reconciler != defaults.disable_service_reconciler,
            ),
            ("watch-namespace", self.watch_namespace.is_some()),
            (
                "enable-argo-rollout-service-reconciler",
                self.enable_argo_rollout_service_reconciler
                    != defaults.enable_argo_rollout_service_reconciler,
            ),
            (
                "watchdog-can-patch-pod-labels",
                self.watchdog_can_patch_pod_labels != defaults.watchdog_can_patch_pod_labels,
            ),
            (
                "trust-anchors-file",
                self.trust_anchors_file != defaults.trust_anchors_file,
            ),
            ("port", self.port != defaults.port),
            ("listen-address", self.listen_address.is_some()),
            (
                "webhook-server-port",
                self.webhook_server_port != defaults.webhook_server_port,
            ),
            (
                "webhook-server-listen-address",
                self.webhook_server_listen_address.is_some(),
            ),
            (
                "cache-sync-period",
                self.cache_sync_period != defaults.cache_sync_period,
            ),
        ]
    }
}

/// When the sidecar watchdog looks for pods missing their sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchInterval {
    /// Never.
    Disabled,
    /// Once, when the operator starts.
    Once,
    /// Repeatedly, with this period (at least one second).
    Every(Duration),
}

impl FromStr for WatchInterval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "0" | "false" | "f" | "no" | "off" => Ok(Self::Disabled),
            "once" => Ok(Self::Once),
            _ => {
                let period = parse_go_duration(text)?;
                if period < Duration::from_secs(1) {
                    return Err("must be `0`, `once` or a duration of at least 1s".to_owned());
                }
                Ok(Self::Every(period))
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        dapr_kit::cli::try_parse_args("operator", args)
    }

    #[test]
    fn defaults_match_upstream() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.config, "daprsystem");
        assert_eq!(options.watch_interval, WatchInterval::Disabled);
        assert_eq!(options.max_pod_restarts_per_minute, 20);
        assert!(!options.disable_leader_election);
        assert!(!options.disable_service_reconciler);
        assert_eq!(options.watch_namespace, None);
        assert!(!options.enable_argo_rollout_service_reconciler);
        assert!(!options.watchdog_can_patch_pod_labels);
        assert_eq!(
            options.trust_anchors_file,
            PathBuf::from("/var/run/secrets/dapr.io/tls/ca.crt")
        );
        assert_eq!(options.port, 6500);
        assert_eq!(options.listen_address, None);
        assert_eq!(options.healthz_port, 8080);
        assert_eq!(options.healthz_listen_address, None);
        assert_eq!(options.webhook_server_port, 19443);
        assert_eq!(options.webhook_server_listen_address, None);
        assert_eq!(options.cache_sync_period, Duration::ZERO);
        assert_eq!(options.log.log_level, "info");
        assert_eq!(options.metrics.metrics_port, 9090);
        assert!(options.metrics.enable_metrics);
        assert!(options.unimplemented_flags().iter().all(|(_, set)| !set));
    }

    #[test]
    fn go_flag_single_dash_forms_are_accepted() {
        let options = parse(&[
            "-config",
            "my-config",
            "-healthz-port=18080",
            "-watch-namespace",
            "apps",
        ])
        .unwrap();
        assert_eq!(options.config, "my-config");
        assert_eq!(options.healthz_port, 18080);
        assert_eq!(options.watch_namespace.as_deref(), Some("apps"));
        let changed: Vec<_> = options
            .unimplemented_flags()
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(changed, ["config", "watch-namespace"]);
    }

    #[test]
    fn booleans_take_only_attached_values() {
        let options = parse(&[
            "-disable-leader-election",
            "--disable-service-reconciler=true",
            "--watchdog-can-patch-pod-labels=0",
            "-port",
            "7000",
        ])
        .unwrap();
        assert!(options.disable_leader_election);
        assert!(options.disable_service_reconciler);
        assert!(!options.watchdog_can_patch_pod_labels);
        assert_eq!(options.port, 7000);
        assert!(parse(&["--disable-leader-election=nope"]).is_err());
    }

    #[test]
    fn watch_interval_accepts_off_once_and_periods() {
        for off in ["0", "false", "F", "no", "OFF"] {
            assert_eq!(
                parse(&["--watch-interval", off]).unwrap().watch_interval,
                WatchInterval::Disabled
            );
        }
        assert_eq!(
            parse(&["--watch-interval=Once"]).unwrap().watch_interval,
            WatchInterval::Once
        );
        assert_eq!(
            parse(&["-watch-interval", "2m"]).unwrap().watch_interval,
            WatchInterval::Every(Duration::from_secs(120))
        );
        assert!(parse(&["--watch-interval", "500ms"]).is_err());
        assert!(parse(&["--watch-interval", "0s"]).is_err());
        assert!(parse(&["--watch-interval", "soon"]).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse(&["--cache-sync-period", "10h"])
                .unwrap()
                .cache_sync_period,
            Duration::from_secs(36_000)
        );
        assert!(parse(&["--cache-sync-period", "5x"]).is_err());
    }

    #[test]
    fn invalid_numbers_are_usage_errors() {
        let err = parse(&["--healthz-port", "abc"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(parse(&["--max-pod-restarts-per-minute", "-1"]).is_err());
    }
}
