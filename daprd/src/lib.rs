//! daprd, the Dapr sidecar: it owns the public HTTP and gRPC APIs an application calls, the
//! channel back to the application, and the components behind every building block. This
//! crate is the runtime as a library; `main.rs` only parses flags and calls [`run`].

pub mod acl;
pub mod bindings;
pub mod channel;
pub mod components;
pub mod config;
pub mod configuration;
pub mod crypto;
pub mod error;
pub mod go_json;
pub mod invoke;
pub mod lock;
pub mod metadata;
pub mod middleware;
pub mod nameresolution;
pub mod observability;
pub mod options;
pub mod outbound_tls;
pub mod pubsub;
pub mod resiliency;
pub mod resources;
pub mod runtime;
pub mod secrets;
pub mod state;

mod api;
mod listeners;
mod quantity;
#[cfg(test)]
mod test_support;
mod uds_authority;

use std::net::SocketAddr;
use std::sync::Arc;

use dapr_kit::healthz::Health;
use dapr_kit::metrics::MetricsRegistry;
use dapr_kit::shutdown::{Shutdown, ShutdownSignal};

use tokio::task::JoinSet;

pub use config::RuntimeConfig;

use crate::metadata::MetadataStore;
use crate::pubsub::subscriptions;
use crate::runtime::Runtime;

/// The environment variable holding the pod's name (`{podName}` in component metadata).
const POD_NAME_VARIABLE: &str = "POD_NAME";

/// Why the sidecar could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A listener could not be opened.
    #[error("failed to listen on {address}: {source}")]
    Bind {
        /// The address (or socket file) that was asked for.
        address: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The resources or configuration file are invalid.
    #[error(transparent)]
    Resources(#[from] resources::ResourcesError),
    /// The configuration's access control section is invalid.
    #[error("error loading configuration: {0}")]
    AccessControl(#[from] acl::AclError),
    /// The configuration's API allowlist or denylist is invalid.
    #[error("error loading configuration: {0}")]
    ApiAccess(#[from] api::api_access::ApiAccessError),
    /// A resiliency resource is invalid.
    #[error("error loading resiliency policies: {0}")]
    Resiliency(#[from] resiliency::ResiliencyError),
    /// A component failed to start and does not ignore errors.
    #[error(transparent)]
    Component(#[from] components::ComponentError),
    /// The name resolver could not start.
    #[error("failed to initialize name resolution: {0}")]
    NameResolution(#[from] dapr_components::nameresolution::ResolveError),
    /// The app channel could not be set up.
    #[error("failed to create the app channel: {0}")]
    AppChannel(error::ApiError),
    /// Metrics or tracing could not be set up (e.g. an invalid exporter setting).
    #[error("failed to initialize observability: {0}")]
    Observability(String),
    /// The configuration's secret scopes are invalid.
    #[error("error loading configuration: {0}")]
    SecretScopes(#[from] secrets::ScopesError),
    /// A server stopped with an I/O error.
    #[error("{server} server failed: {source}")]
    Serve {
        /// Which server.
        server: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Names of the preview features the configuration turns on.
fn enabled_features(startup: &resources::StartupResources) -> Vec<String> {
    startup
        .configuration
        .as_ref()
        .map(|configuration| {
            configuration
                .spec
                .features
                .iter()
                .filter(|feature| feature.enabled == Some(true))
                .map(|feature| feature.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the app's programmatic subscriptions and reports them, merged with the
/// declarative ones, in the metadata API; returns the merged list. As upstream, only when
/// a pub/sub component is loaded; `--disable-init-endpoints` naming `subscribe` skips the
/// app's list, and a failure to read it is logged: the declarative subscriptions remain.
async fn app_subscriptions(
    runtime: &Runtime,
    app: &channel::AppChannel,
    resources: &dapr_resources::loader::LoadedResources,
) -> Vec<subscriptions::Subscription> {
    if runtime.components.snapshot().pubsubs.is_empty() {
        return Vec::new();
    }
    let config = &runtime.config;
    let declarative = subscriptions::declarative(
        resources
            .subscriptions
            .iter()
            .map(|loaded| &loaded.resource),
        &config.app_id,
    );
    let skip_app = config
        .disable_init_endpoints
        .iter()
        .any(|endpoint| endpoint == "subscribe");
    let programmatic = if skip_app {
        tracing::warn!(
            "Skipping programmatic subscription loading (see 'disable-init-endpoints' flag/annotation)"
        );
        Vec::new()
    } else {
        match subscriptions::discover(app, &config.app_id, config.app_api_token.as_deref()).await {
            Ok(programmatic) => programmatic,
            Err(error) => {
                tracing::error!("{error}");
                Vec::new()
            }
        }
    };
    let merged = subscriptions::merge(&declarative, &programmatic);
    runtime.metadata.set_subscriptions(&merged);
    merged
}

/// Delivers the app's subscriptions until `stop`: those `discovered` at start, or, when
/// the app was not healthy yet, those read once it first is (as upstream reads them when
/// the app becomes healthy).
async fn run_subscriber(
    runtime: Arc<Runtime>,
    app: channel::AppChannel,
    resources: dapr_resources::loader::LoadedResources,
    discovered: Option<Vec<subscriptions::Subscription>>,
    stop: ShutdownSignal,
) {
    let subscriptions = match discovered {
        Some(subscriptions) => subscriptions,
        None => {
            let mut health = app.health().subscribe();
            tokio::select! {
                _ = health.wait_for(|healthy| *healthy) => {}
                () = stop.wait() => return,
            }
            tokio::select! {
                subscriptions = app_subscriptions(&runtime, &app, &resources) => subscriptions,
                () = stop.wait() => return,
            }
        }
    };
    if subscriptions.is_empty() {
        return;
    }
    let target = pubsub::delivery::AppTarget::new(&app, runtime.config.app_api_token.clone());
    let subscriber = pubsub::delivery::Subscriber::new(runtime, target, subscriptions);
    subscriber.run(app.health().subscribe(), stop).await;
}

/// Runs the sidecar until `external` fires or the shutdown API is called, then stops its
/// servers, giving in-flight calls up to `--dapr-graceful-shutdown-seconds`.
pub async fn run(config: RuntimeConfig, external: ShutdownSignal) -> Result<(), RuntimeError> {
    let startup = resources::load(&config)?;
    let shutdown = Shutdown::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            external.wait().await;
            shutdown.trigger();
        });
    }

    let health = Health::new();
    let runtime_ready = health.register("runtime");
    let outbound_health = Health::new();
    let outbound_ready = outbound_health.register("outbound");

    let resolver = nameresolution::start(&config, startup.configuration.as_ref()).await?;
    let app_channel =
        channel::AppChannel::from_config(&config, channel::ChannelOptions::from_config(&config))
            .map_err(RuntimeError::AppChannel)?;

    let configuration_spec = startup
        .configuration
        .as_ref()
        .map(|configuration| &configuration.spec);
    let secret_scopes = secrets::SecretScopes::from_spec(
        configuration_spec.and_then(|spec| spec.secrets.as_ref()),
    )?;
    let metrics_registry = MetricsRegistry::new();
    let metrics = if config.metrics_address.is_some() {
        let spec = configuration_spec
            .map(observability::metrics::effective_metric_spec)
            .unwrap_or_default();
        let settings = observability::metrics::MetricsSettings::from_spec(
            &config.app_id,
            &config.namespace,
            &spec,
        );
        observability::metrics::SidecarMetrics::register(&metrics_registry, &settings)
            .map_err(|err| RuntimeError::Observability(err.to_string()))?
    } else {
        observability::metrics::SidecarMetrics::disabled()
    };
    let mut tracing_spec = configuration_spec
        .and_then(|spec| spec.tracing.clone())
        .unwrap_or_default();
    observability::trace::apply_otel_environment(&mut tracing_spec, |name| {
        std::env::var(name).ok()
    })
    .map_err(|err| RuntimeError::Observability(err.to_string()))?;
    let tracing_pipeline =
        observability::trace::Tracing::start(&config.app_id, Some(&tracing_spec))
            .map_err(|err| RuntimeError::Observability(err.to_string()))?;
    let api_logging_spec = configuration_spec
        .and_then(|spec| spec.logging.as_ref())
        .and_then(|logging| logging.api_logging.clone())
        .unwrap_or_default();
    let api_logging = config
        .enable_api_logging
        .or(api_logging_spec.enabled)
        .unwrap_or(false)
        .then(|| observability::api_log::HttpApiLogSettings {
            obfuscate_urls: api_logging_spec.obfuscate_urls.unwrap_or(false),
            omit_health_checks: api_logging_spec.omit_health_checks.unwrap_or(false),
        });

    let app_is_http = config.app.as_ref().is_some_and(|app| {
        matches!(
            app.protocol,
            config::AppProtocol::Http | config::AppProtocol::Https | config::AppProtocol::H2c
        )
    });
    let access_control = acl::AccessControl::compile(
        configuration_spec.and_then(|spec| spec.access_control.as_ref()),
        app_is_http,
        metrics.clone(),
    )?
    .map(Arc::new);
    let api_access = Arc::new(api::api_access::ApiAccess::compile(
        configuration_spec.and_then(|spec| spec.api.as_ref()),
    )?);
    let resiliency = Arc::new(resiliency::Resiliency::compile(
        &startup.resources.resiliencies,
        metrics.clone(),
    )?);

    let pod_name = std::env::var(POD_NAME_VARIABLE).unwrap_or_default();
    let components = Arc::new(components::Components::new(
        components::load(
            &startup.resources.components,
            components::LoadContext {
                mode: config.mode,
                metrics: &metrics,
                app_id: &config.app_id,
                namespace: &config.namespace,
                pod_name: &pod_name,
            },
            None,
        )
        .await?,
    ));
    let http_pipeline = middleware::Pipeline::new(
        "server",
        configuration_spec.and_then(|spec| spec.http_pipeline.as_ref()),
        components.clone(),
    )
    .map(Arc::new);
    if let (Some(app), Some(pipeline)) = (
        &app_channel,
        middleware::Pipeline::new(
            "app",
            configuration_spec.and_then(|spec| spec.app_http_pipeline.as_ref()),
            components.clone(),
        ),
    ) {
        app.set_pipeline(pipeline);
    }
    let metadata = MetadataStore::new(
        &config,
        &startup.resources,
        enabled_features(&startup),
        components.clone(),
    );

    let invoker = Arc::new(
        invoke::Invoker::new(
            invoke::InvokerConfig::new(
                &config.app_id,
                &config.namespace,
                config.internal_grpc_port,
            ),
            Some(resolver.clone()),
            app_channel.clone(),
        )
        .with_metrics(metrics.clone())
        .with_resiliency(resiliency.clone()),
    );
    invoker.set_http_endpoints(
        startup
            .resources
            .http_endpoints
            .iter()
            .map(|loaded| loaded.resource.clone()),
    );

    let runtime = Arc::new(Runtime {
        config,
        health,
        outbound_health,
        metadata,
        shutdown: shutdown.clone(),
        invoker,
        components,
        resiliency,
        http_pipeline,
        api_access,
        access_control,
        configuration_streams: Default::default(),
        secret_scopes,
        metrics,
        tracing: tracing_pipeline,
        api_logging,
    });
    let config = &runtime.config;

    // Bind every listener before serving anything, so a taken port fails the start.
    let metrics_listener = match config.metrics_address {
        Some(address) => Some(listeners::bind_tcp(address).await?),
        None => None,
    };
    let socket_dir = &config.unix_domain_socket;
    let http_listeners = listeners::public(
        "http",
        &config.app_id,
        socket_dir,
        &config.listen_addresses,
        config.http_port,
    )
    .await?;
    let grpc_listeners = listeners::public(
        "grpc",
        &config.app_id,
        socket_dir,
        &config.listen_addresses,
        config.grpc_port,
    )
    .await?;
    let internal_listener = listeners::bind_tcp(SocketAddr::new(
        config.internal_grpc_listen_address,
        config.internal_grpc_port,
    ))
    .await?;

    let mut servers: JoinSet<Result<(), RuntimeError>> = JoinSet::new();
    if let Some(listener) = metrics_listener {
        let stop = shutdown.signal();
        servers.spawn(async move {
            dapr_kit::metrics::serve(listener, metrics_registry, stop)
                .await
                .map_err(|source| RuntimeError::Serve {
                    server: "metrics",
                    source,
                })
        });
    }
    let http_router = api::http::router(runtime.clone());
    for listener in http_listeners {
        listeners::spawn(
            &mut servers,
            "HTTP API",
            listener,
            http_router.clone(),
            config.read_buffer_size,
            shutdown.signal(),
        );
    }
    let grpc_router = api::grpc::router(runtime.clone());
    for listener in grpc_listeners {
        listeners::spawn(
            &mut servers,
            "gRPC API",
            listener,
            grpc_router.clone(),
            config.read_buffer_size,
            shutdown.signal(),
        );
    }

    if let Ok(address) = internal_listener.local_addr() {
        tracing::info!("Internal gRPC server is listening on {address}");
    }
    listeners::spawn(
        &mut servers,
        "internal gRPC",
        listeners::Listener::Tcp(internal_listener),
        api::internal::router(&runtime),
        config.read_buffer_size,
        shutdown.signal(),
    );

    let hot_reload = runtime.config.mode == config::Mode::Standalone
        && enabled_features(&startup)
            .iter()
            .any(|feature| feature == components::reload::HOT_RELOAD_FEATURE);
    if hot_reload {
        let watch = components::reload::Watch {
            paths: runtime.config.resources_paths.clone(),
            app_id: runtime.config.app_id.clone(),
            namespace: runtime.config.namespace.clone(),
            pod_name,
            components: runtime.components.clone(),
            metrics: runtime.metrics.clone(),
        };
        tokio::spawn(components::reload::run(watch, shutdown.signal()));
    }

    // The sidecar serves its app's callers once the app listens, as upstream waits for it.
    outbound_ready.set_ready(true);
    let mut subscriber_task = None;
    let mut input_bindings_task = None;
    if let Some(app) = &app_channel {
        let stopped = shutdown.signal();
        tokio::select! {
            () = app.wait_for_app() => {}
            () = stopped.wait() => {}
        }
        // The app's subscriptions are read once it is healthy (at once without health
        // checks, so the metadata API lists them when the sidecar reports Running).
        let stopped = shutdown.signal();
        let discovered = if app.health().is_healthy() {
            tokio::select! {
                subscriptions = app_subscriptions(&runtime, app, &startup.resources) => Some(subscriptions),
                () = stopped.wait() => Some(Vec::new()),
            }
        } else {
            None
        };
        subscriber_task = Some(tokio::spawn(run_subscriber(
            runtime.clone(),
            app.clone(),
            startup.resources.clone(),
            discovered,
            shutdown.signal(),
        )));
        let input_bindings = bindings::InputBindings::new(runtime.clone(), app.clone());
        input_bindings_task = Some(tokio::spawn(input_bindings.run(shutdown.signal())));
        let app = app.clone();
        let stop = shutdown.signal();
        tokio::spawn(async move { app.run_health_checks(stop).await });
    }
    runtime_ready.set_ready(true);
    tracing::info!("dapr initialized, status: Running");

    let stopped = shutdown.signal();
    let mut outcome = tokio::select! {
        () = stopped.wait() => Ok(()),
        Some(Ok(Err(err))) = servers.join_next() => Err(err),
    };
    shutdown.trigger();
    let grace = runtime.config.graceful_shutdown;
    let drained = dapr_kit::shutdown::drain_within(grace, async {
        // Subscriptions stop first: brokers stop pulling and deliveries in hand finish.
        if let Some(task) = subscriber_task
            && let Err(error) = task.await
        {
            tracing::error!("the subscriber task ended abnormally: {error}");
        }
        // So do input bindings: events in hand reach the app before components close.
        if let Some(task) = input_bindings_task
            && let Err(error) = task.await
        {
            tracing::error!("the input bindings task ended abnormally: {error}");
        }
        let mut first_error = None;
        while let Some(joined) = servers.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(err)) => first_error = first_error.or(Some(err)),
                Err(join_error) => tracing::error!("server task ended abnormally: {join_error}"),
            }
        }
        first_error
    })
    .await;
    match drained {
        Ok(Some(err)) if outcome.is_ok() => outcome = Err(err),
        Ok(_) => {}
        Err(exceeded) => {
            tracing::warn!("in-flight calls did not finish within {exceeded}; stopping anyway");
            servers.abort_all();
        }
    }
    runtime.components.snapshot().close().await;
    runtime.tracing.shutdown().await;
    if let Err(err) = resolver.close().await {
        tracing::warn!("failed to close the name resolver: {err}");
    }
    outcome
}
