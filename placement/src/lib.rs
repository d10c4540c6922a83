//! The placement service. Today this crate owns the `placement` binary's command line (every
//! upstream flag with upstream's default), its healthz server (`GET /healthz` on
//! `--healthz-port`) and its Prometheus metrics server, and a clean exit on SIGTERM. Flags
//! whose behaviour is not built yet are accepted and logged when set. It will own the
//! placement gRPC API on `--port`: a Raft-replicated (openraft) table of which sidecar hosts
//! which actor types, disseminated to every connected sidecar, and the `/placement/state`
//! metadata endpoint.

mod options;
use dapr_kit::control_plane as servers;

use std::time::Duration;

use dapr_kit::healthz::Health;
use dapr_kit::metrics::MetricsRegistry;
use dapr_kit::shutdown::ShutdownSignal;

pub use options::{METADATA_ENABLED_ENV, Options, RaftPeer};
pub use servers::Error;

/// The component name placement logs under.
pub const COMPONENT: &str = "dapr-placement";

/// How long placement may take to stop once SIGTERM or SIGINT arrived.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs placement with `options` until `shutdown` fires and every server has stopped.
pub async fn run(options: Options, shutdown: ShutdownSignal) -> Result<(), Error> {
    tracing::info!(
        "Starting Dapr Placement Service -- version {}",
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
