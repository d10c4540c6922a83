//! The healthz and Prometheus metrics servers every control-plane service runs: bound up
//! front (failing fast, naming the address) and served until shutdown.

use std::io;
use std::net::SocketAddr;

use crate::healthz::Health;
use crate::metrics::MetricsRegistry;
use crate::shutdown::ShutdownSignal;
use tokio::net::TcpListener;

/// Readiness part of the metrics server, named as upstream names it.
const METRICS_PART: &str = "metrics-exporter";

/// Host the healthz server binds to when no address was given.
const ALL_INTERFACES: &str = "0.0.0.0";

/// Where the healthz and metrics servers listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Host or IP of the healthz server; all interfaces when `None` or empty.
    pub healthz_host: Option<String>,
    /// Port of the healthz server.
    pub healthz_port: u16,
    /// Address of the metrics server; `None` when metrics are disabled.
    pub metrics: Option<SocketAddr>,
}

/// Why the servers could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not be bound.
    #[error("cannot listen on {address} for the {server} server: {source}")]
    Bind {
        /// Which server (`healthz` or `metrics`).
        server: &'static str,
        /// The `host:port` it tried.
        address: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// A server stopped with an I/O error before shutdown.
    #[error("the {server} server failed: {source}")]
    Serve {
        /// Which server (`healthz` or `metrics`).
        server: &'static str,
        /// The I/O error it stopped with.
        #[source]
        source: io::Error,
    },
}

/// Binds both listeners (failing fast, naming the address), reports the metrics part ready,
/// and serves until `shutdown` fires and both servers have drained.
pub async fn serve(
    endpoints: Endpoints,
    health: Health,
    registry: MetricsRegistry,
    shutdown: ShutdownSignal,
) -> Result<(), Error> {
    let healthz_host = endpoints.healthz_host.filter(|host| !host.is_empty());
    let healthz_address = join_host_port(
        healthz_host.as_deref().unwrap_or(ALL_INTERFACES),
        endpoints.healthz_port,
    );
    let healthz_listener = bind("healthz", healthz_address).await?;
    let metrics_part = health.register(METRICS_PART);
    let metrics_listener = match endpoints.metrics {
        Some(address) => Some(bind("metrics", address.to_string()).await?),
        None => None,
    };
    metrics_part.set_ready(true);

    let healthz = async {
        crate::healthz::serve(healthz_listener, health, shutdown.clone())
            .await
            .map_err(|source| Error::Serve {
                server: "healthz",
                source,
            })
    };
    let metrics = async {
        match metrics_listener {
            Some(listener) => crate::metrics::serve(listener, registry, shutdown.clone())
                .await
                .map_err(|source| Error::Serve {
                    server: "metrics",
                    source,
                }),
            None => Ok(()),
        }
    };
    tokio::try_join!(healthz, metrics)?;
    Ok(())
}

/// `host:port`, with IPv6 literals in brackets.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn bind(server: &'static str, address: String) -> Result<TcpListener, Error> {
    match TcpListener::bind(address.as_str()).await {
        Ok(listener) => Ok(listener),
        Err(source) => Err(Error::Bind {
            server,
            address,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::shutdown::Shutdown;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// A loopback port that was free a moment ago.
    async fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// The status code of `GET path`, or `None` when nothing answers.
    async fn get_status(port: u16, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        response.split(' ').nth(1)?.parse().ok()
    }

    async fn wait_for_status(port: u16, path: &str) -> u16 {
        for _ in 0..100 {
            if let Some(status) = get_status(port, path).await {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nothing answered on port {port}");
    }

    fn endpoints(healthz_port: u16, metrics_port: Option<u16>) -> Endpoints {
        Endpoints {
            healthz_host: Some("127.0.0.1".to_owned()),
            healthz_port,
            metrics: metrics_port.map(|port| SocketAddr::from(([127, 0, 0, 1], port))),
        }
    }

    #[tokio::test]
    async fn serves_healthz_and_metrics_until_shutdown() {
        let (healthz_port, metrics_port) = (free_port().await, free_port().await);
        let shutdown = Shutdown::new();
        let health = Health::new();
        let servers = tokio::spawn(serve(
            endpoints(healthz_port, Some(metrics_port)),
            health.clone(),
            MetricsRegistry::new(),
            shutdown.signal(),
        ));
        assert_eq!(wait_for_status(healthz_port, "/healthz").await, 200);
        assert!(health.is_ready());
        assert_eq!(wait_for_status(metrics_port, "/metrics").await, 200);
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), servers)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(get_status(healthz_port, "/healthz").await, None);
        assert_eq!(get_status(metrics_port, "/metrics").await, None);
    }

    #[tokio::test]
    async fn disabled_metrics_still_count_as_ready() {
        let healthz_port = free_port().await;
        let shutdown = Shutdown::new();
        let servers = tokio::spawn(serve(
            endpoints(healthz_port, None),
            Health::new(),
            MetricsRegistry::new(),
            shutdown.signal(),
        ));
        assert_eq!(wait_for_status(healthz_port, "/healthz").await, 200);
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), servers)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_naming_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let result = serve(
            endpoints(port, None),
            Health::new(),
            MetricsRegistry::new(),
            Shutdown::new().signal(),
        )
        .await;
        match result {
            Err(Error::Bind {
                server, address, ..
            }) => {
                assert_eq!(server, "healthz");
                assert_eq!(address, format!("127.0.0.1:{port}"));
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
        let free = free_port().await;
        let result = serve(
            endpoints(free, Some(port)),
            Health::new(),
            MetricsRegistry::new(),
            Shutdown::new().signal(),
        )
        .await;
        assert!(
            matches!(
                result,
                Err(Error::Bind {
                    server: "metrics",
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(join_host_port("::1", 8080), "[::1]:8080");
        assert_eq!(join_host_port("localhost", 8080), "localhost:8080");
    }
}
