//! Serving an axum router on a bound listener until shutdown, shared by the metrics and
//! healthz servers.

use tokio::net::TcpListener;

use crate::shutdown::ShutdownSignal;

/// Serves `router` on `listener`; once `shutdown` resolves, stops accepting, lets in-flight
/// requests finish and returns.
pub(crate) async fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    shutdown: ShutdownSignal,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
