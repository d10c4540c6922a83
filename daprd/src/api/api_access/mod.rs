//! The API allowlist and denylist (Configuration `spec.api.allowed` / `spec.api.denied`),
//! enforced on both public servers as upstream does.
//!
//! A rule names an API group and version (`state` `v1`, `lock` `v1alpha1`, ...) for one
//! protocol. Over HTTP ([`http_routes`]) an endpoint matches a rule by its group
//! (`v1/state` covers `/v1.0/state/...`, `v1alpha1/state` covers
//! `/v1.0-alpha1/state/{storeName}/query`) or when its route template starts with the
//! rule's `version/name` (`v1.0/state`). A refused endpoint is as if it did not exist:
//! the request goes to the invocation fallback (the `dapr-app-id` header form) when
//! invocation is allowed, else gets chi's `404 page not found` (or `405` when another
//! verb of the path is served). Over gRPC ([`grpc_methods`]) each rule stands for
//! upstream's list of `Dapr` methods; a refused method gets `Unimplemented` with
//! upstream's details; other services (proxied calls, health) are never refused. A
//! denylist entry wins over an allowlist entry; with an allowlist, everything not on it is
//! refused; health checks are always open.
//!
//! Deviations, all at start: upstream ignores a rule whose protocol is neither `http` nor
//! `grpc` (also an empty one) and compares `grpc` case-sensitively; here such a rule
//! stops the start naming its field, and `GRPC` counts as `grpc` (as `HTTP` counts as
//! `http` upstream). A rule without name or version (required by upstream's CRD) is
//! refused too.

mod grpc_methods;
mod http_routes;

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dapr_resources::configuration::{ApiAccessRule, ApiSpec};

use crate::invoke::Invoker;
use http_routes::{ENDPOINTS, Endpoint};

/// A rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid API access rule: {field}: {message}")]
pub struct ApiAccessError {
    /// The field (`api.allowed[2].protocol`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The rules of one list.
#[derive(Debug, Clone, Default)]
struct Rules {
    /// HTTP rules as `version/name`.
    http: HashSet<String>,
    /// gRPC methods (`/dapr.proto.runtime.v1.Dapr/GetState`).
    grpc: HashSet<String>,
}

/// The compiled allowlist and denylist.
#[derive(Debug, Clone, Default)]
pub struct ApiAccess {
    /// Per entry of [`ENDPOINTS`]: whether the lists leave it served; `None` when no
    /// HTTP rule is set.
    http_open: Option<Vec<bool>>,
    grpc_allowed: HashSet<String>,
    grpc_denied: HashSet<String>,
}

/// What the HTTP server does with a request under the lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpVerdict {
    /// Its endpoint serves it.
    Serve,
    /// The invocation fallback handles it.
    Invoke,
    /// `405`: the path is served, with these verbs only.
    MethodNotAllowed(Vec<Method>),
    /// `404 page not found`.
    NotFound,
}

fn compile_list(list: &str, rules: &[ApiAccessRule]) -> Result<Rules, ApiAccessError> {
    let mut compiled = Rules::default();
    for (index, rule) in rules.iter().enumerate() {
        let field = |name: &str| format!("api.{list}[{index}].{name}");
        for (name, value) in [("name", &rule.name), ("version", &rule.version)] {
            if value.is_empty() {
                return Err(ApiAccessError {
                    field: field(name),
                    message: "missing".into(),
                });
            }
        }
        match rule.protocol.to_ascii_lowercase().as_str() {
            "http" => {
                compiled
                    .http
                    .insert(format!("{}/{}", rule.version, rule.name));
            }
            "grpc" => compiled
                .grpc
                .extend(grpc_methods::methods(&rule.name, &rule.version)),
            other => {
                return Err(ApiAccessError {
                    field: field("protocol"),
                    message: format!("invalid protocol {other:?}: use http or grpc"),
                });
            }
        }
    }
    Ok(compiled)
}

/// Whether `endpoint` matches one of `rules` (`version/name`): by its group, or by its
/// route starting with the rule (upstream's older form).
fn endpoint_matches(endpoint: &Endpoint, rules: &HashSet<String>) -> bool {
    if rules.contains(&format!("{}/{}", endpoint.group_version, endpoint.group)) {
        return true;
    }
    let route = endpoint.full_route();
    rules.iter().any(|rule| route.starts_with(rule.as_str()))
}

impl ApiAccess {
    /// Compiles `spec` (`None`: everything allowed).
    pub fn compile(spec: Option<&ApiSpec>) -> Result<Self, ApiAccessError> {
        let Some(spec) = spec else {
            return Ok(Self::default());
        };
        let allowed = compile_list("allowed", &spec.allowed)?;
        let denied = compile_list("denied", &spec.denied)?;
        let http_open = (!allowed.http.is_empty() || !denied.http.is_empty()).then(|| {
            ENDPOINTS
                .iter()
                .map(|endpoint| {
                    endpoint.always_allowed
                        || (!endpoint_matches(endpoint, &denied.http)
                            && (allowed.http.is_empty()
                                || endpoint_matches(endpoint, &allowed.http)))
                })
                .collect()
        });
        Ok(Self {
            http_open,
            grpc_allowed: allowed.grpc,
            grpc_denied: denied.grpc,
        })
    }

    /// What happens to an HTTP request `method` `path`: served by the endpoint the
    /// router would pick among the allowed ones, else handed to the invocation fallback
    /// if that is allowed, else refused as chi refuses unknown routes.
    pub fn http_verdict(&self, method: &Method, path: &str) -> HttpVerdict {
        let Some(open) = &self.http_open else {
            return HttpVerdict::Serve;
        };
        let mut verbs = Vec::new();
        let mut path_served = false;
        for (endpoint, _) in ENDPOINTS.iter().zip(open).filter(|(_, open)| **open) {
            if !endpoint.matches_path(path) {
                continue;
            }
            if endpoint.answers(method) {
                return HttpVerdict::Serve;
            }
            path_served = true;
            verbs.extend(endpoint.methods.iter().cloned());
        }
        let fallback_open = ENDPOINTS
            .iter()
            .zip(open)
            .any(|(endpoint, open)| endpoint.is_fallback && *open);
        if fallback_open {
            HttpVerdict::Invoke
        } else if path_served {
            HttpVerdict::MethodNotAllowed(verbs)
        } else {
            HttpVerdict::NotFound
        }
    }

    /// Whether the gRPC lists restrict anything.
    fn restricts_grpc(&self) -> bool {
        !self.grpc_allowed.is_empty() || !self.grpc_denied.is_empty()
    }

    /// Whether gRPC method `path` (`/package.Service/Method`) may be called.
    pub fn grpc_allows(&self, path: &str) -> bool {
        if !path.starts_with(grpc_methods::RUNTIME_PREFIX) {
            return true;
        }
        if self.grpc_denied.contains(path) {
            return false;
        }
        self.grpc_allowed.is_empty() || self.grpc_allowed.contains(path)
    }
}

/// The HTTP layer's state: the lists and the invoker for the invocation fallback.
#[derive(Debug, Clone)]
pub struct HttpAccess {
    access: Arc<ApiAccess>,
    invoker: Arc<Invoker>,
}

impl HttpAccess {
    /// The layer state for `access`, falling back to invocation through `invoker`.
    pub fn new(access: Arc<ApiAccess>, invoker: Arc<Invoker>) -> Self {
        Self { access, invoker }
    }
}

/// HTTP: requests to refused endpoints are handled as requests to unknown routes.
pub async fn http_layer(State(state): State<HttpAccess>, request: Request, next: Next) -> Response {
    match state
        .access
        .http_verdict(request.method(), request.uri().path())
    {
        HttpVerdict::Serve => next.run(request).await,
        HttpVerdict::Invoke => {
            crate::api::http::invoke::invoke(State(state.invoker.clone()), request).await
        }
        HttpVerdict::MethodNotAllowed(verbs) => {
            let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
            for verb in verbs {
                if let Ok(value) = HeaderValue::from_str(verb.as_str()) {
                    response.headers_mut().append(header::ALLOW, value);
                }
            }
            response
        }
        HttpVerdict::NotFound => (
            StatusCode::NOT_FOUND,
            [(header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
            "404 page not found\n",
        )
            .into_response(),
    }
}

/// gRPC: refused `Dapr` methods answer `Unimplemented` with upstream's details.
pub async fn grpc_layer(
    State(access): State<Arc<ApiAccess>>,
    request: Request,
    next: Next,
) -> Response {
    if !access.restricts_grpc() || access.grpc_allows(request.uri().path()) {
        return next.run(request).await;
    }
    crate::api::grpc::invoke::http_error(
        StatusCode::NOT_IMPLEMENTED,
        b"requested endpoint is not available",
    )
    .unwrap_or_else(|| tonic::Status::unimplemented("Not Implemented"))
    .into_http()
}

#[cfg(test)]
mod tests;
