//! Readiness of a process made of named parts, and the control-plane healthz server.
//!
//! Upstream's contract: every part registers itself and starts not ready; the process is
//! ready once at least one part is registered and all of them report ready. The server
//! answers `GET /healthz` with 200 when ready and 503 otherwise, on port 8080 by default,
//! and counts itself as a part ("healthz-server") that is ready once it is listening.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use tokio::net::TcpListener;

use crate::shutdown::ShutdownSignal;

/// Upstream's default `--healthz-port` for the control-plane services.
pub const DEFAULT_HEALTHZ_PORT: u16 = 8080;

/// The path the healthz server answers on.
pub const HEALTHZ_PATH: &str = "/healthz";

/// The part name the healthz server registers for itself.
pub const HEALTHZ_SERVER_PART: &str = "healthz-server";

/// The readiness of every registered part; clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct Health {
    parts: Arc<Mutex<Parts>>,
}

#[derive(Debug, Default)]
struct Parts {
    next_id: u64,
    by_id: BTreeMap<u64, Part>,
}

#[derive(Debug)]
struct Part {
    name: String,
    ready: bool,
}

impl Health {
    /// No parts registered yet (and therefore not ready).
    pub fn new() -> Self {
        Health::default()
    }

    /// Adds a part, initially not ready, and returns the handle it reports through.
    /// Registering the same name twice adds two parts that must both become ready.
    pub fn register(&self, name: impl Into<String>) -> HealthReporter {
        let mut parts = self.lock();
        let id = parts.next_id;
        parts.next_id += 1;
        parts.by_id.insert(
            id,
            Part {
                name: name.into(),
                ready: false,
            },
        );
        HealthReporter {
            id,
            health: self.clone(),
        }
    }

    /// True when at least one part is registered and every part reported ready.
    pub fn is_ready(&self) -> bool {
        let parts = self.lock();
        !parts.by_id.is_empty() && parts.by_id.values().all(|part| part.ready)
    }

    /// The names of the parts that are not ready, in registration order.
    pub fn not_ready_parts(&self) -> Vec<String> {
        self.lock()
            .by_id
            .values()
            .filter(|part| !part.ready)
            .map(|part| part.name.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Parts> {
        // Every update is a single field write, so a panic elsewhere cannot leave the map
        // half-updated; keep serving it.
        self.parts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One part's handle for reporting its readiness. Dropping it keeps the last report.
#[derive(Debug, Clone)]
pub struct HealthReporter {
    id: u64,
    health: Health,
}

impl HealthReporter {
    /// Reports this part ready (`true`) or not ready (`false`).
    pub fn set_ready(&self, ready: bool) {
        if let Some(part) = self.health.lock().by_id.get_mut(&self.id) {
            part.ready = ready;
        }
    }
}

/// A router with `GET /healthz` (200 ready, 503 not ready, empty body), for binaries that
/// mount it on a server they already run.
pub fn router(health: Health) -> axum::Router {
    axum::Router::new()
        .route(HEALTHZ_PATH, axum::routing::get(healthz_status))
        .with_state(health)
}

async fn healthz_status(State(health): State<Health>) -> StatusCode {
    if health.is_ready() {
        StatusCode::OK
    } else {
        tracing::debug!(targets = ?health.not_ready_parts(), "targets are unhealthy");
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Serves `GET /healthz` on `listener` until `shutdown` resolves. Registers the
/// "healthz-server" part and reports it ready once serving.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    shutdown: ShutdownSignal,
) -> std::io::Result<()> {
    serve_with_routes(listener, health, axum::Router::new(), shutdown).await
}

/// Like [`serve`], with `extra` routes on the same server (upstream placement exposes
/// `/placement/state` this way).
pub async fn serve_with_routes(
    listener: TcpListener,
    health: Health,
    extra: axum::Router,
    shutdown: ShutdownSignal,
) -> std::io::Result<()> {
    let server_part = health.register(HEALTHZ_SERVER_PART);
    let app = router(health).merge(extra);
    if let Ok(address) = listener.local_addr() {
        tracing::info!("Healthz server is listening on {address}");
    }
    server_part.set_ready(true);
    crate::http_server::serve_router(listener, app, shutdown).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::shutdown::Shutdown;
    use crate::test_http::request;

    #[test]
    fn not_ready_without_parts() {
        let health = Health::new();
        assert!(!health.is_ready());
        assert!(health.not_ready_parts().is_empty());
    }

    #[test]
    fn ready_only_when_every_part_is_ready() {
        let health = Health::new();
        let runtime = health.register("runtime");
        let placement = health.register(String::from("placement"));
        assert!(!health.is_ready());
        assert_eq!(health.not_ready_parts(), ["runtime", "placement"]);

        runtime.set_ready(true);
        assert!(!health.is_ready());
        assert_eq!(health.not_ready_parts(), ["placement"]);

        placement.set_ready(true);
        assert!(health.is_ready());
        assert!(health.not_ready_parts().is_empty());

        runtime.set_ready(false);
        assert!(!health.is_ready());
        assert_eq!(health.not_ready_parts(), ["runtime"]);

        runtime.set_ready(true);
        runtime.set_ready(true);
        assert!(health.is_ready());

        let late = health.register("late");
        assert!(
            !health.is_ready(),
            "a newly registered part starts not ready"
        );
        drop(late);
        assert!(
            !health.is_ready(),
            "dropping a reporter keeps its last state"
        );
    }

    #[test]
    fn duplicate_names_are_separate_parts() {
        let health = Health::new();
        let first = health.register("worker");
        let second = health.register("worker");
        first.set_ready(true);
        assert!(!health.is_ready());
        second.set_ready(true);
        assert!(health.is_ready());
    }

    #[tokio::test]
    async fn serves_healthz_over_http_until_shutdown() {
        let health = Health::new();
        let runtime = health.register("runtime");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let extra = axum::Router::new().route(
            "/placement/state",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"tables": []})) }),
        );
        let server = tokio::spawn(serve_with_routes(
            listener,
            health.clone(),
            extra,
            shutdown.signal(),
        ));

        let response = request(address, "GET", "/healthz").await;
        assert_eq!(response.status, 503);
        assert_eq!(
            health.not_ready_parts(),
            ["runtime"],
            "the server part is ready"
        );

        runtime.set_ready(true);
        let response = request(address, "GET", "/healthz").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "");

        let response = request(address, "GET", "/placement/state").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, r#"{"tables":[]}"#);

        assert_eq!(request(address, "GET", "/other").await.status, 404);
        assert_eq!(request(address, "POST", "/healthz").await.status, 405);

        runtime.set_ready(false);
        assert_eq!(request(address, "GET", "/healthz").await.status, 503);

        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stops after shutdown")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn serve_counts_itself_as_a_part() {
        let health = Health::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let server = tokio::spawn(serve(listener, health.clone(), shutdown.signal()));

        // With no other parts, the server itself makes the process ready.
        assert_eq!(request(address, "GET", "/healthz").await.status, 200);
        assert!(health.is_ready());

        shutdown.trigger();
        server.await.unwrap().unwrap();
    }
}
