//! Where the sidecar's servers listen: TCP on every `--dapr-listen-addresses` entry, or,
//! with `--unix-domain-socket DIR`, the public APIs on `DIR/dapr-<app-id>-http.socket`
//! and `DIR/dapr-<app-id>-grpc.socket` instead, as upstream names them.

use axum::serve::ListenerExt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use dapr_kit::shutdown::ShutdownSignal;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::task::JoinSet;

use crate::RuntimeError;
use crate::uds_authority::AuthorityRepair;

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

/// How long a client may take to send a request's headers, as upstream's
/// `ReadHeaderTimeout`; slow senders cannot hold connections open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The smallest header buffer hyper accepts.
const MIN_HEADER_BUFFER: usize = 8 * 1024;

/// Serves `router` (HTTP/1.1 and HTTP/2, including gRPC's prior-knowledge h2c) on
/// `listener` until `stop` fires and in-flight calls are done. Request headers must arrive
/// within [`HEADER_READ_TIMEOUT`] and fit in `header_limit` bytes (`--read-buffer-size`,
/// at least 8 KiB).
pub fn spawn(
    servers: &mut JoinSet<Result<(), RuntimeError>>,
    name: &'static str,
    listener: Listener,
    router: axum::Router,
    header_limit: u64,
    stop: ShutdownSignal,
) {
    let header_limit = usize::try_from(header_limit)
        .unwrap_or(usize::MAX)
        .max(MIN_HEADER_BUFFER);
    match listener {
        Listener::Tcp(listener) => {
            // Replies are written in pieces (head, then streamed body): without
            // TCP_NODELAY each later piece waits for the peer's delayed ACK (~40 ms).
            let listener = listener.tap_io(|stream| {
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::trace!("failed to set TCP_NODELAY: {err}");
                }
            });
            servers.spawn(async move {
                serve_connections(listener, router, header_limit, stop).await;
                Ok(())
            });
        }
        Listener::Unix { listener, path } => {
            servers.spawn(async move {
                let listener = RepairingUnixListener(listener);
                serve_connections(listener, router, header_limit, stop).await;
                if let Err(err) = std::fs::remove_file(&path) {
                    tracing::warn!("failed to remove {}: {err}", path.display());
                }
                Ok(())
            });
        }
    }
    tracing::debug!("{name} server started");
}

/// A Unix socket listener whose connections get [`AuthorityRepair`].
struct RepairingUnixListener(UnixListener);

impl axum::serve::Listener for RepairingUnixListener {
    type Io = AuthorityRepair<UnixStream>;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, address) = axum::serve::Listener::accept(&mut self.0).await;
        (AuthorityRepair::new(io), address)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Accepts connections until `stop`, then waits for open ones to finish gracefully.
async fn serve_connections<L: axum::serve::Listener>(
    mut listener: L,
    router: axum::Router,
    header_limit: usize,
    stop: ShutdownSignal,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(header_limit);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(header_limit).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            (io, _) = listener.accept() => {
                let service = TowerToHyperService::new(router.clone());
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::trace!("connection ended with an error: {err}");
                    }
                });
            }
            () = stop.wait() => break,
        }
    }
    graceful.shutdown().await;
}
