//! daprd's command line: every upstream flag name with upstream's default.
//!
//! Parsing is pflag-compatible (see `dapr_kit::cli`). Flags this build does not act on yet
//! are still accepted so existing manifests keep working; `Options::unimplemented_flags`
//! names the ones the user set.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use dapr_kit::cli::{LogFlags, MetricsFlags, parse_go_bool, parse_go_duration};

/// The daprd command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "daprd",
    version,
    about = "Dapr sidecar runtime",
    disable_help_subcommand = true
)]
pub struct Options {
    /// Unique application id, used for service discovery, state key prefixes and pub/sub.
    #[arg(long = "app-id", default_value = "")]
    pub app_id: String,
    /// Runtime mode: standalone or kubernetes.
    #[arg(long = "mode", default_value = "standalone")]
    pub mode: String,
    /// Port of the public HTTP API.
    #[arg(long = "dapr-http-port", default_value = "3500")]
    pub dapr_http_port: String,
    /// Port of the public gRPC API.
    #[arg(long = "dapr-grpc-port", default_value = "50001")]
    pub dapr_grpc_port: String,
    /// Port of the internal sidecar-to-sidecar gRPC API; empty picks a stable free port.
    #[arg(long = "dapr-internal-grpc-port", default_value = "")]
    pub dapr_internal_grpc_port: String,
    /// Address the internal gRPC API binds to.
    #[arg(long = "dapr-internal-grpc-listen-address", default_value = "")]
    pub dapr_internal_grpc_listen_address: String,
    /// Comma-separated addresses the public APIs bind to (empty: all interfaces).
    #[arg(long = "dapr-listen-addresses", default_value = "")]
    pub dapr_listen_addresses: String,
    /// Port of a separate public server for health and metadata only.
    #[arg(long = "dapr-public-port", default_value = "")]
    pub dapr_public_port: String,
    /// Address of the public health/metadata server.
    #[arg(long = "dapr-public-listen-address", default_value = "")]
    pub dapr_public_listen_address: String,
    /// Port the application listens on; without it the sidecar runs client-only.
    #[arg(long = "app-port", default_value = "")]
    pub app_port: String,
    /// Protocol of the application: http, https, h2c, grpc or grpcs.
    #[arg(long = "app-protocol", default_value = "http")]
    pub app_protocol: String,
    /// Address of the application.
    #[arg(long = "app-channel-address", default_value = "127.0.0.1")]
    pub app_channel_address: String,
    /// Maximum concurrent calls into the application; -1 means unlimited.
    #[arg(long = "app-max-concurrency", default_value_t = -1, allow_negative_numbers = true)]
    pub app_max_concurrency: i64,
    /// Deprecated: use `--app-protocol https` or `grpcs`.
    #[arg(long = "app-ssl", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub app_ssl: bool,
    /// Directory with resource YAML files; may be repeated or comma-separated.
    #[arg(long = "resources-path", value_delimiter = ',')]
    pub resources_path: Vec<PathBuf>,
    /// Alias of `--resources-path` (used when `--resources-path` is not given).
    #[arg(long = "components-path", default_value = "")]
    pub components_path: String,
    /// Configuration file (standalone) or Configuration object name (kubernetes).
    #[arg(long = "config", value_delimiter = ',')]
    pub config: Vec<String>,
    /// Address of the operator (kubernetes mode).
    #[arg(long = "control-plane-address", default_value = "")]
    pub control_plane_address: String,
    /// Address of the Sentry certificate authority.
    #[arg(long = "sentry-address", default_value = "")]
    pub sentry_address: String,
    /// Trust domain of the control plane.
    #[arg(
        long = "control-plane-trust-domain",
        default_value = "localhost",
        env = "DAPR_CONTROLPLANE_TRUST_DOMAIN"
    )]
    pub control_plane_trust_domain: String,
    /// Namespace of the control plane.
    #[arg(
        long = "control-plane-namespace",
        default_value = "default",
        env = "DAPR_CONTROLPLANE_NAMESPACE"
    )]
    pub control_plane_namespace: String,
    /// JWT audiences to request from Sentry.
    #[arg(long = "sentry-request-jwt-audiences", value_delimiter = ',')]
    pub sentry_request_jwt_audiences: Vec<String>,
    /// Enable mutual TLS between sidecars.
    #[arg(long = "enable-mtls", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub enable_mtls: bool,
    /// Allowed CORS origins for the HTTP API.
    #[arg(long = "allowed-origins", default_value = "*")]
    pub allowed_origins: String,
    /// Serve the profiling endpoints.
    #[arg(long = "enable-profiling", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub enable_profiling: bool,
    /// Port of the profiling server.
    #[arg(long = "profile-port", default_value = "7777")]
    pub profile_port: String,
    /// Print build information and exit.
    #[arg(long = "build-info", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub build_info: bool,
    /// Wait until the sidecar reports outbound readiness, then exit.
    #[arg(long = "wait", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub wait: bool,
    /// Deprecated: maximum request body size in MB; `--max-body-size` wins.
    #[arg(long = "dapr-http-max-request-size")]
    pub dapr_http_max_request_size: Option<i64>,
    /// Maximum request body size, as a Kubernetes quantity (`4Mi`, `100M`).
    #[arg(long = "max-body-size")]
    pub max_body_size: Option<String>,
    /// Deprecated: HTTP read buffer size in KB; `--read-buffer-size` wins.
    #[arg(long = "dapr-http-read-buffer-size")]
    pub dapr_http_read_buffer_size: Option<i64>,
    /// HTTP read buffer (and header) size, as a Kubernetes quantity (`4Ki`).
    #[arg(long = "read-buffer-size")]
    pub read_buffer_size: Option<String>,
    /// Directory for Unix domain sockets; when set the public APIs also listen there.
    #[arg(long = "unix-domain-socket", default_value = "")]
    pub unix_domain_socket: String,
    /// Seconds to wait for in-flight work when stopping.
    #[arg(
        long = "dapr-graceful-shutdown-seconds",
        default_value_t = 5,
        allow_negative_numbers = true
    )]
    pub dapr_graceful_shutdown_seconds: i64,
    /// Keep serving after SIGTERM for this long, or until the app is unhealthy.
    #[arg(long = "dapr-block-shutdown-duration", value_parser = parse_go_duration)]
    pub dapr_block_shutdown_duration: Option<Duration>,
    /// Log every API call.
    #[arg(long = "enable-api-logging", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub enable_api_logging: Option<bool>,
    /// Do not register the built-in Kubernetes secret store.
    #[arg(long = "disable-builtin-k8s-secret-store", default_value = "false", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub disable_builtin_k8s_secret_store: bool,
    /// Probe the application's health.
    #[arg(long = "enable-app-health-check", default_value = "false", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub enable_app_health_check: bool,
    /// HTTP path of the application's health endpoint.
    #[arg(long = "app-health-check-path", default_value = "/healthz")]
    pub app_health_check_path: String,
    /// Seconds between application health probes.
    #[arg(long = "app-health-probe-interval", default_value_t = 5)]
    pub app_health_probe_interval: i64,
    /// Timeout of one application health probe, in milliseconds.
    #[arg(long = "app-health-probe-timeout", default_value_t = 500)]
    pub app_health_probe_timeout: i64,
    /// Consecutive failed probes before the app counts as unhealthy.
    #[arg(long = "app-health-threshold", default_value_t = 3)]
    pub app_health_threshold: i64,
    /// App endpoints not to call at start: `config`, `subscribe`.
    #[arg(long = "disable-init-endpoints", value_delimiter = ',')]
    pub disable_init_endpoints: Vec<String>,
    /// Addresses of the placement service(s).
    #[arg(long = "placement-host-address", default_value = "")]
    pub placement_host_address: String,
    /// Addresses of the scheduler service(s), comma-separated.
    #[arg(long = "scheduler-host-address", value_delimiter = ',')]
    pub scheduler_host_address: Vec<String>,
    /// Number of job streams opened to the scheduler.
    #[arg(long = "scheduler-job-streams", default_value_t = 3)]
    pub scheduler_job_streams: u32,
    /// Timeout of one placement dissemination round.
    #[arg(long = "actors-disseminate-timeout", default_value = "30s", value_parser = parse_go_duration)]
    pub actors_disseminate_timeout: Duration,
    /// Period of the hot-reload reconcile; 0 uses the default.
    #[arg(long = "hot-reload-reconcile-interval", default_value = "0s", value_parser = parse_go_duration)]
    pub hot_reload_reconcile_interval: Duration,
    /// Timeout of the app's input-binding discovery call.
    #[arg(long = "app-binding-options-timeout", default_value = "3s", value_parser = parse_go_duration)]
    pub app_binding_options_timeout: Duration,
    /// Deprecated and without effect.
    #[arg(long = "reminders-service", default_value = "", hide = true)]
    pub reminders_service: String,
    /// Deprecated and without effect.
    #[arg(long = "actors-service", default_value = "", hide = true)]
    pub actors_service: String,
    /// Logging flags.
    #[command(flatten)]
    pub log: LogFlags,
    /// Metrics flags.
    #[command(flatten)]
    pub metrics: MetricsFlags,
}

impl Options {
    /// Flags that were set but whose behaviour this build does not provide yet.
    pub fn unimplemented_flags(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("dapr-public-port", !self.dapr_public_port.is_empty()),
            (
                "control-plane-address",
                !self.control_plane_address.is_empty(),
            ),
            ("sentry-address", !self.sentry_address.is_empty()),
            (
                "sentry-request-jwt-audiences",
                !self.sentry_request_jwt_audiences.is_empty(),
            ),
            ("enable-mtls", self.enable_mtls),
            ("enable-profiling", self.enable_profiling),
            ("wait", self.wait),
            ("build-info", self.build_info),
            (
                "dapr-block-shutdown-duration",
                self.dapr_block_shutdown_duration.is_some(),
            ),
            (
                "disable-init-endpoints",
                !self.disable_init_endpoints.is_empty(),
            ),
            (
                "placement-host-address",
                !self.placement_host_address.is_empty(),
            ),
            (
                "scheduler-host-address",
                !self.scheduler_host_address.is_empty(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        dapr_kit::cli::try_parse_args("daprd", args)
    }

    #[test]
    fn defaults_match_upstream() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.dapr_http_port, "3500");
        assert_eq!(options.dapr_grpc_port, "50001");
        assert_eq!(options.dapr_internal_grpc_port, "");
        assert_eq!(options.mode, "standalone");
        assert_eq!(options.app_protocol, "http");
        assert_eq!(options.app_channel_address, "127.0.0.1");
        assert_eq!(options.app_max_concurrency, -1);
        assert_eq!(options.profile_port, "7777");
        assert_eq!(options.dapr_graceful_shutdown_seconds, 5);
        assert_eq!(options.app_health_check_path, "/healthz");
        assert_eq!(options.app_health_probe_interval, 5);
        assert_eq!(options.app_health_probe_timeout, 500);
        assert_eq!(options.app_health_threshold, 3);
        assert_eq!(options.scheduler_job_streams, 3);
        assert_eq!(options.actors_disseminate_timeout, Duration::from_secs(30));
        assert_eq!(options.app_binding_options_timeout, Duration::from_secs(3));
        assert_eq!(options.allowed_origins, "*");
        assert_eq!(options.metrics.metrics_port, 9090);
        assert!(options.metrics.enable_metrics);
        assert_eq!(options.log.log_level, "info");
        assert_eq!(options.enable_api_logging, None);
        assert!(options.unimplemented_flags().iter().all(|(_, set)| !set));
    }

    #[test]
    fn accepts_upstream_spellings() {
        let options = parse(&[
            "-app-id",
            "orders",
            "--app-port=3000",
            "--resources-path",
            "a,b",
            "--resources-path=c",
            "--enable-api-logging",
            "--enable-mtls=false",
            "--config",
            "cfg.yaml",
            "--dapr-block-shutdown-duration",
            "1m30s",
            "--scheduler-host-address",
            "h1:1,h2:2",
        ])
        .unwrap();
        assert_eq!(options.app_id, "orders");
        assert_eq!(options.app_port, "3000");
        assert_eq!(
            options.resources_path,
            vec![PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c")]
        );
        assert_eq!(options.enable_api_logging, Some(true));
        assert!(!options.enable_mtls);
        assert_eq!(options.config, vec!["cfg.yaml".to_string()]);
        assert_eq!(
            options.dapr_block_shutdown_duration,
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            options.scheduler_host_address,
            vec!["h1:1".to_string(), "h2:2".to_string()]
        );
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        for bad in [
            &["--dapr-graceful-shutdown-seconds", "soon"][..],
            &["--actors-disseminate-timeout", "5x"],
            &["--enable-mtls=maybe"],
            &["--no-such-flag"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
