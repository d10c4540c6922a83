//! Where the sidecar's servers listen: TCP on every `--dapr-listen-addresses` entry, or,
//! with `--unix-domain-socket DIR`, the public APIs on `DIR/dapr-<app-id>-http.socket`
//! and `DIR/dapr-<app-id>-grpc.socket` instead, as upstream names them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use dapr_kit::shutdown::ShutdownSignal;
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinSet;

use crate::RuntimeError;

/// A bound listener of one server.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket.
    Tcp(TcpListener),
    /// A Unix domain socket, removed from disk when its server stops.
    Unix {
        /// The bound socket.
        listener: UnixListener,
        /// Its file.
        path: PathBuf,
    },
}

/// Binds one TCP address, naming it in the error.
pub async fn bind_tcp(address: SocketAddr) -> Result<TcpListener, RuntimeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| RuntimeError::Bind {
            address: address.to_string(),
            source,
        })
}

/// The listeners of a public API (`kind` is `http` or `grpc`): its Unix socket when
/// `socket_dir` is set, else `port` on every address that can be bound (at least one
/// must be, as upstream requires).
pub async fn public(
    kind: &str,
    app_id: &str,
    socket_dir: &str,
    addresses: &[IpAddr],
    port: u16,
) -> Result<Vec<Listener>, RuntimeError> {
    if !socket_dir.is_empty() {
        let path = PathBuf::from(format!("{socket_dir}/dapr-{app_id}-{kind}.socket"));
        let listener = UnixListener::bind(&path).map_err(|source| RuntimeError::Bind {
            address: path.display().to_string(),
            source,
        })?;
        tracing::info!(
            "{} server listening on UNIX socket: {}",
            kind.to_uppercase(),
            path.display()
        );
        return Ok(vec![Listener::Unix { listener, path }]);
    }
    let mut listeners = Vec::new();
    let mut last_error = None;
    for ip in addresses {
        match bind_tcp(SocketAddr::new(*ip, port)).await {
            Ok(listener) => {
                tracing::info!(
                    "{} server listening on TCP address: {}",
                    kind.to_uppercase(),
                    SocketAddr::new(*ip, port)
                );
                listeners.push(Listener::Tcp(listener));
            }
            Err(err) => {
                tracing::debug!("{err}");
                last_error = Some(err);
            }
        }
    }
    match (listeners.is_empty(), last_error) {
        (true, Some(err)) => Err(err),
        _ => Ok(listeners),
    }
}

/// Serves `router` (HTTP/1.1 and HTTP/2, including gRPC's prior-knowledge h2c) on
/// `listener` until `stop` fires and in-flight calls are done.
pub fn spawn(
    servers: &mut JoinSet<Result<(), RuntimeError>>,
    name: &'static str,
    listener: Listener,
    router: axum::Router,
    stop: ShutdownSignal,
) {
    let failed = move |source| RuntimeError::Serve {
        server: name,
        source,
    };
    match listener {
        Listener::Tcp(listener) => {
            servers.spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move { stop.wait().await })
                    .await
                    .map_err(failed)
            });
        }
        Listener::Unix { listener, path } => {
            servers.spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { stop.wait().await })
                    .await;
                if let Err(err) = std::fs::remove_file(&path) {
                    tracing::warn!("failed to remove {}: {err}", path.display());
                }
                served.map_err(failed)
            });
        }
    }
}
