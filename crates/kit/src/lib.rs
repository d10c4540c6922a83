//! Shared plumbing for every Dapr binary (daprd, operator, placement, sentry, scheduler,
//! injector): upstream-shaped logging, shutdown coordination, the Prometheus metrics
//! server, readiness and the healthz server, Go duration text, retry backoff sequences,
//! process facts, and the pflag-compatible command line and run loop they share. Nothing
//! here knows about Dapr's APIs; it only keeps the binaries' outward behaviour (log lines,
//! flags, ports, paths, status codes) the same as upstream's.

// Tests may unwrap: a panic there is a test failure with its message.

pub mod backoff;
pub mod cli;
pub mod control_plane;
pub mod duration;
pub mod healthz;
mod http_server;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod shutdown;

#[cfg(test)]
mod test_http;
