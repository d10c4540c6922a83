//! Command-line flags of the sidecar injector, with upstream's names and defaults.

use std::path::PathBuf;

use dapr_kit::cli::{LogFlags, MetricsFlags, parse_go_bool};

/// Everything the injector binary can be told on its command line.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "injector",
    version,
    about = "Dapr sidecar injector: admission webhook adding daprd to annotated pods"
)]
pub struct Options {
    /// Port of the HTTP health server.
    #[arg(long = "healthz-port", default_value_t = 8080)]
    pub healthz_port: u16,
    /// Address the HTTP health server binds to (all interfaces when empty).
    #[arg(long = "healthz-listen-address")]
    pub healthz_listen_address: Option<String>,
    /// Port of the admission webhook.
    #[arg(long = "port", default_value_t = 4000)]
    pub port: u16,
    /// Address the admission webhook binds to (all interfaces when empty).
    #[arg(long = "listen-address")]
    pub listen_address: Option<String>,
    /// The cluster runs the scheduler, so injected sidecars are given its address.
    #[arg(long = "scheduler-enabled", default_value = "true", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub scheduler_enabled: bool,
    /// Kubeconfig file used to reach the Kubernetes API.
    #[arg(long = "kubeconfig", default_value_t = default_kubeconfig())]
    pub kubeconfig: String,
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
        <Self as clap::Parser>::parse_from(["injector"])
    }

    /// Flags this build accepts but does not act on yet, each paired with whether it was set
    /// to something other than its default.
    pub fn unimplemented_flags(&self) -> Vec<(&'static str, bool)> {
        let defaults = Self::defaults();
        vec![
            ("port", self.port != defaults.port),
            ("listen-address", self.listen_address.is_some()),
            (
                "scheduler-enabled",
                self.scheduler_enabled != defaults.scheduler_enabled,
            ),
            ("kubeconfig", self.kubeconfig != defaults.kubeconfig),
        ]
    }
}

/// `$HOME/.kube/config`, or empty when there is no home directory.
fn default_kubeconfig() -> String {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home)
            .join(".kube")
            .join("config")
            .to_string_lossy()
            .into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        dapr_kit::cli::try_parse_args("injector", args)
    }

    #[test]
    fn defaults_match_upstream() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.healthz_port, 8080);
        assert_eq!(options.healthz_listen_address, None);
        assert_eq!(options.port, 4000);
        assert_eq!(options.listen_address, None);
        assert!(options.scheduler_enabled);
        assert_eq!(options.kubeconfig, default_kubeconfig());
        assert_eq!(options.log.log_level, "info");
        assert!(!options.log.log_as_json);
        assert_eq!(options.metrics.metrics_port, 9090);
        assert!(options.metrics.enable_metrics);
        assert!(options.unimplemented_flags().iter().all(|(_, set)| !set));
    }

    #[test]
    fn single_dash_forms_are_accepted() {
        let options = parse(&[
            "-port",
            "4443",
            "-healthz-listen-address=127.0.0.1",
            "-kubeconfig",
            "/etc/kube",
        ])
        .unwrap();
        assert_eq!(options.port, 4443);
        assert_eq!(options.healthz_listen_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(options.kubeconfig, "/etc/kube");
        let changed: Vec<_> = options
            .unimplemented_flags()
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(changed, ["port", "kubeconfig"]);
    }

    #[test]
    fn booleans_take_only_attached_values() {
        assert!(
            !parse(&["--scheduler-enabled=false"])
                .unwrap()
                .scheduler_enabled
        );
        let options =
            parse(&["-scheduler-enabled", "--log-as-json", "--enable-metrics=f"]).unwrap();
        assert!(options.scheduler_enabled);
        assert!(options.log.log_as_json);
        assert!(!options.metrics.enable_metrics);
        assert!(parse(&["--scheduler-enabled=on"]).is_err());
        // A bare boolean never takes the next word as its value.
        assert!(parse(&["--scheduler-enabled", "false"]).is_err());
    }

    #[test]
    fn invalid_numbers_are_usage_errors() {
        let err = parse(&["--healthz-port", "abc"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(parse(&["--port", "-5"]).is_err());
    }
}
