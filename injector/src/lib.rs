//! The sidecar injector. Today this crate owns the `injector` binary's command line (every
//! upstream flag with upstream's default), its healthz server (`GET /healthz` on
//! `--healthz-port`) and its Prometheus metrics server, and a clean exit on SIGTERM. Flags
//! whose behaviour is not built yet are accepted and logged when set. It will own the
//! Kubernetes mutating admission webhook on `--port` that adds the daprd container (and its
//! volumes, environment and certificates) to pods annotated `dapr.io/enabled`, and keeping
//! the webhook configuration's CA bundle in step with the trust anchors.

mod options;
use dapr_kit::control_plane as servers;

use std::time::Duration;

use dapr_kit::healthz::Health;
use dapr_kit::metrics::MetricsRegistry;
use dapr_kit::shutdown::ShutdownSignal;

pub use options::Options;
pub use servers::Error;

/// The component name the injector logs under.
pub const COMPONENT: &str = "dapr-injector";

/// How long the injector may take to stop once SIGTERM or SIGINT arrived.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the injector with `options` until `shutdown` fires and every server has stopped.
pub async fn run(options: Options, shutdown: ShutdownSignal) -> Result<(), Error> {
    tracing::info!(
        "Starting Dapr Sidecar Injector -- version {}",
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
