//! Reading from input bindings, as upstream: once the app is up and healthy, each
//! binding whose input half the sidecar uses is read from if the app listens to it (its
//! `direction` names `input`; else an HTTP app answers `OPTIONS /<route>` with 2xx or
//! 405, or a gRPC app lists it in `ListInputBindings`, asked until it answers once; a
//! failed answer counts as an empty list), each question bounded by `--app-binding-options-timeout`.
//! When the app turns unhealthy every reading stops, and starts again (the app asked
//! again) when it recovers. Bindings a reload adds are read from too; the ones it
//! removes or replaces stop reading at once.
//!
//! A binding the app could not be asked about, or whose reading fails to start, is
//! logged and skipped; the others still start.

mod delivery;
mod grpc;
mod http;

use std::sync::Arc;

use dapr_components::bindings::EventHandler;
use dapr_kit::shutdown::ShutdownSignal;
use tonic::metadata::AsciiMetadataValue;

use super::BindingHandle;
use crate::channel::AppChannel;
use crate::runtime::Runtime;
use delivery::{AppTarget, Delivery};
use grpc::GrpcApp;

/// The input bindings' readings for one app.
#[derive(Debug)]
pub struct InputBindings {
    runtime: Arc<Runtime>,
    app: AppChannel,
    target: AppTarget,
    /// A gRPC app's `ListInputBindings` answer, once asked.
    listed: Option<Vec<String>>,
    /// The bindings looked at since the app last became healthy (reading or not).
    considered: Vec<Arc<BindingHandle>>,
}

impl InputBindings {
    /// Readings of `runtime`'s input bindings into `app`.
    pub fn new(runtime: Arc<Runtime>, app: AppChannel) -> Self {
        let target = match app.grpc_transport() {
            Some(transport) => AppTarget::Grpc(GrpcApp {
                transport,
                token: runtime
                    .config
                    .app_api_token
                    .as_deref()
                    .and_then(|token| AsciiMetadataValue::try_from(token).ok()),
                max_message_size: usize::try_from(runtime.config.max_body_size)
                    .unwrap_or(usize::MAX),
            }),
            None => AppTarget::Http(app.clone()),
        };
        Self {
            runtime,
            app,
            target,
            listed: None,
            considered: Vec::new(),
        }
    }

    /// Reads from the input bindings while the app is healthy, following component
    /// reloads, until `shutdown`; then stops every reading (events in hand complete).
    pub async fn run(mut self, shutdown: ShutdownSignal) {
        let mut health = self.app.health().subscribe();
        let mut reloads = self.runtime.components.changes();
        loop {
            reloads.borrow_and_update();
            if *health.borrow_and_update() {
                self.start().await;
            } else {
                self.stop().await;
            }
            tokio::select! {
                () = shutdown.wait() => break,
                changed = health.changed() => if changed.is_err() { break },
                changed = reloads.changed() => if changed.is_err() { break },
            }
        }
        self.stop().await;
    }

    /// Starts reading from the input bindings not looked at yet; stops reading from the
    /// ones the components no longer hold (removed or replaced by a reload).
    async fn start(&mut self) {
        let current: Vec<Arc<BindingHandle>> = self
            .runtime
            .components
            .snapshot()
            .bindings
            .values()
            .filter(|handle| handle.input.is_some())
            .cloned()
            .collect();
        let (kept, removed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.considered)
            .into_iter()
            .partition(|seen| current.iter().any(|handle| Arc::ptr_eq(handle, seen)));
        self.considered = kept;
        for handle in removed {
            handle.stop_reading().await;
        }
        for handle in current {
            if self
                .considered
                .iter()
                .any(|seen| Arc::ptr_eq(seen, &handle))
            {
                continue;
            }
            self.considered.push(Arc::clone(&handle));
            self.start_one(&handle).await;
        }
    }

    /// Starts reading from `handle` if the app listens to it.
    async fn start_one(&mut self, handle: &BindingHandle) {
        let listens = if handle.input_declared {
            true
        } else {
            match self.app_listens(handle).await {
                Ok(listens) => listens,
                Err(reason) => {
                    tracing::warn!("failed to read from bindings: {reason}");
                    return;
                }
            }
        };
        if !listens {
            tracing::info!("app has not subscribed to binding {}.", handle.name);
            return;
        }
        let handler = self.handler(handle);
        let started = handle
            .start_reading(|input| async move {
                input.read(handler).await.map_err(|error| error.to_string())
            })
            .await;
        match started {
            Ok(true) => tracing::info!("reading from input binding {}", handle.name),
            Ok(false) => {}
            Err(reason) => {
                tracing::error!("error reading from input binding {}: {reason}", handle.name);
            }
        }
    }

    /// The handler delivering `handle`'s events to the app.
    pub(super) fn handler(&self, handle: &BindingHandle) -> Arc<dyn EventHandler> {
        Arc::new(Delivery {
            binding: handle.name.clone(),
            route: handle.route.clone(),
            target: self.target.clone(),
            runtime: Arc::clone(&self.runtime),
        })
    }

    /// Whether the app listens to `handle`'s events.
    async fn app_listens(&mut self, handle: &BindingHandle) -> Result<bool, String> {
        match &self.target {
            AppTarget::Http(app) => {
                tokio::time::timeout(
                    self.runtime.config.app_binding_options_timeout,
                    http::listens(app, &handle.route),
                )
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "could not invoke OPTIONS method on input binding subscription endpoint {:?}: context deadline exceeded",
                            handle.route
                        ))
                    })
            }
            AppTarget::Grpc(app) => {
                if self.listed.is_none() {
                    match app.listed_bindings(self.runtime.config.app_binding_options_timeout).await {
                        Ok(listed) => self.listed = Some(listed),
                        Err(reason) => {
                            tracing::warn!("failed to list the app's input bindings: {reason}");
                        }
                    }
                }
                Ok(self
                    .listed
                    .as_ref()
                    .is_some_and(|listed| listed.contains(&handle.name)))
            }
        }
    }

    /// Stops every reading, all at once.
    async fn stop(&mut self) {
        let stops = self.considered.drain(..).map(|handle| async move {
            handle.stop_reading().await;
        });
        futures::future::join_all(stops).await;
    }
}
