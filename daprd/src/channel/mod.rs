//! The app channel: how the sidecar calls its own application at `--app-port`, over HTTP
//! (`http`, `https`, `h2c`) or gRPC (`grpc`, `grpcs`), with upstream's header rules,
//! `--app-max-concurrency`, the `APP_API_TOKEN` header, app health checks and the wait for
//! the app's port at start-up.

mod connect;
mod errors;
mod grpc;
mod headers;
mod health;
mod http;
mod status;
mod tls;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use dapr_kit::shutdown::ShutdownSignal;
use tokio::sync::Semaphore;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Endpoint;

use crate::config::{AppConnection, AppHealthConfig, AppProtocol, RuntimeConfig};
use crate::error::ApiError;
use crate::invoke::{InvokeRequest, InvokeResponse};

use connect::AppConnector;
use health::HealthReporter;

pub(crate) use grpc::ON_INVOKE;
pub use health::AppHealth;
pub use status::{grpc_code_from_http_status, http_status_from_grpc_code};

/// Time one start-up dial of the app port may take, as upstream.
const WAIT_DIAL_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between start-up dials, as upstream.
const WAIT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Failed start-up dials between two "still waiting" logs, as upstream.
const WAIT_LOG_EVERY: u64 = 100;

/// Settings of the channel that [`RuntimeConfig`] does not carry.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChannelOptions {
    /// Token sent as `dapr-api-token` on every call into the app (`APP_API_TOKEN`).
    pub api_token: Option<String>,
    /// Most calls in flight to the app at once (`--app-max-concurrency`); `None` is no
    /// limit.
    pub max_concurrency: Option<usize>,
    /// App health checks, when enabled.
    pub health_check: Option<AppHealthConfig>,
}

impl std::fmt::Debug for ChannelOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: only say whether there is one.
        f.debug_struct("ChannelOptions")
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("max_concurrency", &self.max_concurrency)
            .field("health_check", &self.health_check)
            .finish()
    }
}

impl ChannelOptions {
    /// The channel settings `config` describes.
    pub fn from_config(config: &RuntimeConfig) -> Self {
        Self {
            api_token: config.app_api_token.clone(),
            max_concurrency: usize::try_from(config.app_max_concurrency)
                .ok()
                .filter(|limit| *limit > 0),
            health_check: config.app_health.clone(),
        }
    }
}

enum Transport {
    /// Boxed: the pooled client is much larger than the gRPC channel.
    Http(Box<http::HttpChannel>),
    Grpc(grpc::GrpcChannel),
}

struct Shared {
    app: AppConnection,
    connector: AppConnector,
    transport: Transport,
    concurrency: Option<Arc<Semaphore>>,
    health_check: Option<AppHealthConfig>,
    health_reporter: HealthReporter,
    health: AppHealth,
    /// The `appHttpPipeline`, set once the components are loaded.
    pipeline: std::sync::OnceLock<crate::middleware::Pipeline>,
}

/// The connection to the app; cheap to clone, one per sidecar.
#[derive(Clone)]
pub struct AppChannel {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AppChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppChannel")
            .field("app", &self.shared.app)
            .field("healthy", &self.shared.health.is_healthy())
            .finish_non_exhaustive()
    }
}

impl AppChannel {
    /// The channel for `config`'s app, or `None` for a client-only sidecar (no
    /// `--app-port`). No connection is opened yet.
    pub fn from_config(
        config: &RuntimeConfig,
        options: ChannelOptions,
    ) -> Result<Option<Self>, ApiError> {
        let Some(app) = &config.app else {
            tracing::warn!("App channel is not initialized. Did you configure an app-port?");
            return Ok(None);
        };
        let max_body_size = usize::try_from(config.max_body_size).unwrap_or(usize::MAX);
        Self::new(app.clone(), max_body_size, options).map(Some)
    }

    /// A channel to `app`; `max_body_size` bounds the messages of gRPC apps.
    pub fn new(
        app: AppConnection,
        max_body_size: usize,
        options: ChannelOptions,
    ) -> Result<Self, ApiError> {
        let alpn: Option<&[&[u8]]> = match app.protocol {
            AppProtocol::Http | AppProtocol::H2c | AppProtocol::Grpc => None,
            AppProtocol::Https => Some(&[]),
            AppProtocol::Grpcs => Some(&[b"h2"]),
        };
        let tls = alpn
            .map(tls::app_client_config)
            .transpose()
            .map_err(errors::setup)?;
        let connector = AppConnector::new(&app.address, app.port, tls).map_err(errors::setup)?;
        let host = app.address.trim_start_matches('[').trim_end_matches(']');
        let authority = if host.contains(':') {
            format!("[{host}]:{}", app.port)
        } else {
            format!("{host}:{}", app.port)
        };

        let transport = match app.protocol {
            AppProtocol::Http | AppProtocol::Https | AppProtocol::H2c => {
                let scheme = if app.protocol == AppProtocol::Https {
                    "https"
                } else {
                    "http"
                };
                let token = options
                    .api_token
                    .as_deref()
                    .map(HeaderValue::from_str)
                    .transpose()
                    .map_err(errors::setup)?;
                Transport::Http(Box::new(http::HttpChannel::new(
                    connector.clone(),
                    format!("{scheme}://{authority}"),
                    app.protocol == AppProtocol::H2c,
                    token,
                )))
            }
            AppProtocol::Grpc | AppProtocol::Grpcs => {
                // The connector does the TLS; the URI only names the `:authority`.
                let channel = Endpoint::from_shared(format!("http://{authority}"))
                    .map_err(errors::setup)?
                    .connect_with_connector_lazy(connector.clone());
                let token = options
                    .api_token
                    .as_deref()
                    .map(AsciiMetadataValue::try_from)
                    .transpose()
                    .map_err(errors::setup)?;
                Transport::Grpc(grpc::GrpcChannel::new(channel, max_body_size, token))
            }
        };

        if let Some(limit) = options.max_concurrency {
            tracing::info!("app max concurrency set to {limit}");
        }
        let (health_reporter, health) = HealthReporter::new(options.health_check.is_none());
        Ok(Self {
            shared: Arc::new(Shared {
                app,
                connector,
                transport,
                concurrency: options
                    .max_concurrency
                    .map(|limit| Arc::new(Semaphore::new(limit))),
                health_check: options.health_check,
                health_reporter,
                health,
                pipeline: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Runs every later HTTP call to the app through `pipeline` (`appHttpPipeline`); a
    /// second pipeline is ignored.
    pub fn set_pipeline(&self, pipeline: crate::middleware::Pipeline) {
        if self.shared.pipeline.set(pipeline).is_err() {
            tracing::warn!("the app channel's pipeline is already set");
        }
    }

    /// The app this channel calls.
    pub fn app(&self) -> &AppConnection {
        &self.shared.app
    }

    /// The HTTP/2 channel to a gRPC app (`grpc`, or `grpcs` with its TLS), shared with
    /// invocations, for forwarding raw gRPC calls; `None` for HTTP apps.
    pub fn grpc_transport(&self) -> Option<tonic::transport::Channel> {
        match &self.shared.transport {
            Transport::Grpc(channel) => Some(channel.transport().clone()),
            Transport::Http(_) => None,
        }
    }

    /// The app's health as the health checks see it (always healthy without checks).
    pub fn health(&self) -> AppHealth {
        self.shared.health.clone()
    }

    /// Calls a method of the app. Returns once the app's status and headers arrived; an
    /// HTTP app's body keeps streaming after that. No timeout applies here: callers bound
    /// the call (resiliency) by dropping the future or the response body.
    ///
    /// Fails when the app is unhealthy, when an HTTP app cannot be reached, or when a
    /// gRPC app's body is unreadable or larger than `--max-body-size`. A gRPC app that
    /// cannot be reached answers with `Unavailable`, as upstream reports it.
    pub async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, ApiError> {
        if !self.shared.health.is_healthy() {
            return Err(errors::app_unhealthy());
        }
        let permit = match &self.shared.concurrency {
            Some(limit) => Some(
                Arc::clone(limit)
                    .acquire_owned()
                    .await
                    .map_err(ApiError::internal)?,
            ),
            None => None,
        };
        match &self.shared.transport {
            Transport::Http(channel) => {
                channel
                    .invoke(request, permit, self.shared.pipeline.get())
                    .await
            }
            Transport::Grpc(channel) => {
                let response = channel.invoke(request).await;
                drop(permit);
                response
            }
        }
    }

    /// One health probe: `Err` carries the reason it failed.
    async fn probe(&self, config: &AppHealthConfig) -> Result<(), String> {
        match &self.shared.transport {
            Transport::Http(channel) => channel.probe(&config.path, config.timeout).await,
            Transport::Grpc(channel) => channel.probe(config.timeout).await,
        }
    }

    /// Runs the app health checks until `shutdown`, updating [`AppChannel::health`].
    /// Returns at once when health checks are disabled.
    pub async fn run_health_checks(&self, shutdown: ShutdownSignal) {
        let Some(config) = &self.shared.health_check else {
            return;
        };
        self.shared
            .health_reporter
            .run(config, || self.probe(config), shutdown)
            .await;
    }

    /// Waits until the app accepts connections on its port (and completes a TLS handshake
    /// for `https`/`grpcs`), dialling every 100 ms. Like upstream it never gives up:
    /// callers race it against shutdown or their own deadline.
    pub async fn wait_for_app(&self) {
        let app = &self.shared.app;
        tracing::info!(
            "application protocol: {}. waiting on port {}.  This will block until the app is listening on that port.",
            app.protocol.as_str(),
            app.port
        );
        let mut attempts: u64 = 0;
        loop {
            let dial = tokio::time::timeout(WAIT_DIAL_TIMEOUT, self.shared.connector.connect());
            if let Ok(Ok(_connection)) = dial.await {
                break;
            }
            attempts += 1;
            tokio::time::sleep(WAIT_RETRY_DELAY).await;
            if attempts.is_multiple_of(WAIT_LOG_EVERY) {
                tracing::info!("waiting for application to listen on port {}", app.port);
            }
        }
        tracing::info!("application discovered on port {}", app.port);
    }
}
