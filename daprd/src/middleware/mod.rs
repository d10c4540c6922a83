//! HTTP middleware pipelines (Configuration `spec.httpPipeline` for requests into the
//! sidecar's HTTP API, `spec.appHttpPipeline` for the sidecar's HTTP calls to its app):
//! the loaded middleware components, chained in the order the pipeline lists them.
//! Requests pass each stage in order (a stage may answer instead); responses pass them
//! back in reverse. Stages are found among the loaded components by name and type at each
//! request, so a hot reload takes effect at once; a handler naming no loaded component of
//! its type is skipped, as upstream skips it, with a warning.

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use dapr_components::middleware::{BoxError, HttpMiddleware};
use dapr_resources::configuration::PipelineSpec;
use http_body_util::BodyExt;

use crate::components::Components;

/// A started middleware component.
pub struct MiddlewareHandle {
    /// The component's name.
    pub name: String,
    /// Its `spec.type`.
    pub component_type: String,
    /// Its `spec.version`.
    pub version: String,
    /// The middleware.
    pub middleware: Arc<dyn HttpMiddleware>,
}

impl std::fmt::Debug for MiddlewareHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiddlewareHandle")
            .field("name", &self.name)
            .field("component_type", &self.component_type)
            .finish_non_exhaustive()
    }
}

/// One handler of a pipeline: the component's name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Handler {
    name: String,
    component_type: String,
}

/// A pipeline over the sidecar's components.
#[derive(Clone)]
pub struct Pipeline {
    /// `server` or `app`, for logs.
    label: &'static str,
    handlers: Vec<Handler>,
    components: Arc<Components>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("label", &self.label)
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

fn to_middleware_body(body: Body) -> dapr_components::middleware::MiddlewareBody {
    body.map_err(BoxError::from).boxed_unsync()
}

impl Pipeline {
    /// The pipeline `spec` describes (`label` names it in logs); `None` when it lists no
    /// handlers.
    pub fn new(
        label: &'static str,
        spec: Option<&PipelineSpec>,
        components: Arc<Components>,
    ) -> Option<Self> {
        let handlers: Vec<Handler> = spec?
            .handlers
            .iter()
            .map(|handler| Handler {
                name: handler.name.clone(),
                component_type: handler.type_.clone(),
            })
            .collect();
        if handlers.is_empty() {
            return None;
        }
        let pipeline = Self {
            label,
            handlers,
            components,
        };
        for handler in &pipeline.handlers {
            if pipeline.stage(handler).is_none() {
                tracing::warn!(
                    "{label} pipeline: no middleware component named {} of type {} is loaded; the handler is skipped",
                    handler.name,
                    handler.component_type
                );
            }
        }
        tracing::info!("Building pipeline {label}");
        Some(pipeline)
    }

    fn stage(&self, handler: &Handler) -> Option<Arc<dyn HttpMiddleware>> {
        self.components
            .snapshot()
            .middlewares
            .get(&handler.name)
            .filter(|handle| {
                handle
                    .component_type
                    .eq_ignore_ascii_case(&handler.component_type)
            })
            .map(|handle| Arc::clone(&handle.middleware))
    }

    /// Runs `request` through the stages, then through `next` unless a stage answered it,
    /// and the response back through the stages that saw the request.
    pub async fn run<E, F, Fut>(
        &self,
        request: http::Request<Body>,
        next: F,
    ) -> Result<http::Response<Body>, E>
    where
        F: FnOnce(http::Request<Body>) -> Fut,
        Fut: Future<Output = Result<http::Response<Body>, E>>,
    {
        let stages: Vec<Arc<dyn HttpMiddleware>> = self
            .handlers
            .iter()
            .filter_map(|handler| self.stage(handler))
            .collect();
        if stages.is_empty() {
            return next(request).await;
        }
        let mut request = request.map(to_middleware_body);
        if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
            let peer = *peer;
            request.extensions_mut().insert(peer);
        }
        let mut passed = 0;
        let mut state = Ok(request);
        for stage in &stages {
            let Ok(request) = state else {
                break;
            };
            state = stage.on_request(request).await;
            if state.is_ok() {
                passed += 1;
            }
        }
        let mut response = match state {
            Ok(request) => next(request.map(Body::new)).await?.map(to_middleware_body),
            Err(response) => response,
        };
        for stage in stages[..passed].iter().rev() {
            response = stage.on_response(response).await;
        }
        Ok(response.map(Body::new))
    }
}

/// The server-side layer: runs requests into the HTTP API through `pipeline`.
pub async fn server_layer(
    axum::extract::State(pipeline): axum::extract::State<Option<Arc<Pipeline>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(pipeline) = pipeline else {
        return next.run(request).await;
    };
    let outcome: Result<_, std::convert::Infallible> = pipeline
        .run(
            request,
            |request| async move { Ok(next.run(request).await) },
        )
        .await;
    match outcome {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
