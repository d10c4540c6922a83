//! The operator. Today this crate owns the `operator` binary's command line (every flag of
//! upstream's operator with its default; klog's flags are not accepted), its healthz server
//! (`GET /healthz` on `--healthz-port`) and its Prometheus metrics server, and a clean exit
//! on SIGTERM. Flags whose behaviour is not built yet are accepted and logged when set. It
//! will own watching Dapr's custom resources (components, configurations, subscriptions,
//! resiliency, HTTP endpoints) in Kubernetes and streaming them to sidecars over the
//! operator gRPC API on `--port`, the Service reconciler, the sidecar watchdog and the CRD
//! conversion webhook on `--webhook-server-port`.

mod options;
use dapr_kit::control_plane as servers;

use std::time::Duration;

use dapr_kit::healthz::Health;
use dapr_kit::metrics::MetricsRegistry;
use dapr_kit::shutdown::ShutdownSignal;

pub use options::{Options, WatchInterval};
pub use servers::Error;

/// The component name the operator logs under.
pub const COMPONENT: &str = "dapr-operator";

/// How long the operator may take to stop once SIGTERM or SIGINT arrived.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the operator with `options` until `shutdown` fires and every server has stopped.
pub async fn run(options: Options, shutdown: ShutdownSignal) -> Result<(), Error> {
    tracing::info!(
        "Starting Dapr Operator -- version {}",
        env!("CARGO_PKG_VERSION")
    );
    tracing::info!("Log level set to: {}", options.log.log_level);
    dapr_kit::cli::warn_unimplemented(COMPONENT, &options.unimplemented_flags());
    let endpoints = servers::Endpoints {
        healthz_host: options.healthz_listen_address,
        healthz_port: options.healthz_port,
        metrics: options.metrics.listen_address(),
    };
    servers::serve(endpoints, Health::new(), MetricsRegistry::new(), shutdown).await
}
