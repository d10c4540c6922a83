//! The API allowlist and denylist (Configuration `spec.api.allowed` / `spec.api.denied`),
//! enforced on both public servers as upstream does.
//!
//! A rule names an API group and version (`state` `v1`, `lock` `v1alpha1`, ...) for one
//! protocol. Over HTTP an endpoint matches a rule by its group (`v1/state` for
//! `/v1.0/state/...`, `v1alpha1/state` for `/v1.0-alpha1/state/...`) or when its route
//! starts with `version/name` (`v1.0/state`); a denied endpoint is as if it did not exist
//! (the `dapr-app-id` invocation fallback still answers, if invocation is allowed, else
//! `404 page not found`). Over gRPC each rule stands for upstream's list of `Dapr` methods;
//! a refused method gets `Unimplemented` with upstream's details. A denylist entry wins
//! over an allowlist entry; with an allowlist, everything not on it is refused. Health
//! checks are always allowed. Unlike upstream, which ignores rules for other protocols, a
//! rule whose protocol is neither `http` nor `grpc`, or which has no name or version,
//! stops the start, naming its field.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dapr_resources::configuration::{ApiAccessRule, ApiSpec};

use crate::invoke::Invoker;

/// Prefix of the methods of the `dapr.proto.runtime` services.
const RUNTIME_PREFIX: &str = "/dapr.proto.runtime.";

/// The `Dapr` methods of each gRPC API group (`name.version`), as upstream lists them.
const GRPC_GROUPS: &[(&str, &[&str])] = &[
    ("invoke.v1", &["InvokeService"]),
    (
        "state.v1",
        &[
            "GetState",
            "GetBulkState",
            "SaveState",
            "DeleteState",
            "DeleteBulkState",
            "ExecuteStateTransaction",
        ],
    ),
    ("state.v1alpha1", &["QueryStateAlpha1"]),
    ("publish.v1", &["PublishEvent", "BulkPublishEvent"]),
    ("publish.v1alpha1", &["BulkPublishEventAlpha1"]),
    ("bindings.v1", &["InvokeBinding"]),
    ("secrets.v1", &["GetSecret", "GetBulkSecret"]),
    (
        "actors.v1",
        &[
            "RegisterActorTimer",
            "UnregisterActorTimer",
            "RegisterActorReminder",
            "GetActorReminder",
            "UnregisterActorReminder",
            "UnregisterActorRemindersByType",
            "ListActorReminders",
            "GetActorState",
            "ExecuteActorStateTransaction",
            "InvokeActor",
        ],
    ),
    ("actors.v1alpha1", &["SubscribeActorEventsAlpha1"]),
    ("metadata.v1", &["GetMetadata", "SetMetadata"]),
    (
        "configuration.v1alpha1",
        &[
            "GetConfigurationAlpha1",
            "SubscribeConfigurationAlpha1",
            "UnsubscribeConfigurationAlpha1",
        ],
    ),
    (
        "configuration.v1",
        &[
            "GetConfiguration",
            "SubscribeConfiguration",
            "UnsubscribeConfiguration",
        ],
    ),
    ("lock.v1alpha1", &["TryLockAlpha1"]),
    ("unlock.v1alpha1", &["UnlockAlpha1"]),
    (
        "subtlecrypto.v1alpha1",
        &[
            "SubtleGetKeyAlpha1",
            "SubtleEncryptAlpha1",
            "SubtleDecryptAlpha1",
            "SubtleSignAlpha1",
            "SubtleVerifyAlpha1",
            "SubtleWrapKeyAlpha1",
            "SubtleUnwrapKeyAlpha1",
        ],
    ),
    ("crypto.v1alpha1", &["EncryptAlpha1", "DecryptAlpha1"]),
    (
        "workflows.v1alpha1",
        &[
            "StartWorkflowAlpha1",
            "GetWorkflowAlpha1",
            "TerminateWorkflowAlpha1",
            "RaiseEventWorkflowAlpha1",
            "PurgeWorkflowAlpha1",
            "PauseWorkflowAlpha1",
            "ResumeWorkflowAlpha1",
        ],
    ),
    (
        "workflows.v1beta1",
        &[
            "StartWorkflowBeta1",
            "GetWorkflowBeta1",
            "TerminateWorkflowBeta1",
            "RaiseEventWorkflowBeta1",
            "PurgeWorkflowBeta1",
            "PauseWorkflowBeta1",
            "ResumeWorkflowBeta1",
        ],
    ),
    (
        "jobs.v1alpha1",
        &[
            "ScheduleJobAlpha1",
            "DeleteJobAlpha1",
            "GetJobAlpha1",
            "DeleteJobsByPrefixAlpha1",
            "ListJobsAlpha1",
        ],
    ),
    (
        "jobs.v1",
        &[
            "ScheduleJob",
            "DeleteJob",
            "GetJob",
            "DeleteJobsByPrefix",
            "ListJobs",
        ],
    ),
    ("shutdown.v1", &["Shutdown"]),
    ("subscribe.v1alpha1", &["SubscribeTopicEventsAlpha1"]),
    ("conversation.v1alpha1", &["ConverseAlpha1"]),
    ("conversation.v1alpha2", &["ConverseAlpha2"]),
];

/// A rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid API access rule: {field}: {message}")]
pub struct ApiAccessError {
    /// The field (`api.allowed[2].protocol`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The rules of one list for one protocol.
#[derive(Debug, Clone, Default)]
struct Rules {
    /// HTTP rules as `version/name`.
    http: Vec<String>,
    /// gRPC methods (`/dapr.proto.runtime.v1.Dapr/GetState`).
    grpc: HashSet<String>,
}

/// The compiled allowlist and denylist.
#[derive(Debug, Clone, Default)]
pub struct ApiAccess {
    allowed: Rules,
    denied: Rules,
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
            "http" => compiled
                .http
                .push(format!("{}/{}", rule.version, rule.name)),
            "grpc" => {
                let group = format!("{}.{}", rule.name, rule.version);
                if let Some((_, methods)) = GRPC_GROUPS.iter().find(|(name, _)| *name == group) {
                    compiled.grpc.extend(
                        methods
                            .iter()
                            .map(|method| format!("{RUNTIME_PREFIX}v1.Dapr/{method}")),
                    );
                }
            }
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

/// The API group of an HTTP path: (`v1/state`, `v1.0/state/...` without the slash).
fn http_group(path: &str) -> Option<(String, &str)> {
    let route = path.trim_start_matches('/');
    let mut segments = route.split('/');
    let api_version = segments.next()?;
    let name = segments.next()?;
    let version = match api_version {
        "v1.0" => "v1",
        "v1.0-alpha1" => "v1alpha1",
        "v1.0-alpha2" => "v1alpha2",
        "v1.0-beta1" => "v1beta1",
        _ => return None,
    };
    Some((format!("{version}/{name}"), route))
}

impl Rules {
    fn http_matches(&self, group: &str, route: &str) -> bool {
        self.http
            .iter()
            .any(|rule| rule == group || route.starts_with(rule.as_str()))
    }
}

impl ApiAccess {
    /// Compiles `spec` (`None`: everything allowed).
    pub fn compile(spec: Option<&ApiSpec>) -> Result<Self, ApiAccessError> {
        let Some(spec) = spec else {
            return Ok(Self::default());
        };
        Ok(Self {
            allowed: compile_list("allowed", &spec.allowed)?,
            denied: compile_list("denied", &spec.denied)?,
        })
    }

    /// Whether the HTTP lists restrict anything.
    fn restricts_http(&self) -> bool {
        !self.allowed.http.is_empty() || !self.denied.http.is_empty()
    }

    /// Whether the gRPC lists restrict anything.
    fn restricts_grpc(&self) -> bool {
        !self.allowed.grpc.is_empty() || !self.denied.grpc.is_empty()
    }

    /// Whether HTTP requests to `path` reach their endpoint. Paths outside the versioned
    /// API (invocation by `dapr-app-id` header) belong to the invocation group.
    pub fn http_allows(&self, path: &str) -> bool {
        let (group, route) = match http_group(path) {
            Some((group, _)) if group.ends_with("/healthz") => return true,
            Some((group, route)) => (group, route),
            None => ("v1/invoke".to_owned(), "v1.0/invoke"),
        };
        if self.denied.http_matches(&group, route) {
            return false;
        }
        self.allowed.http.is_empty() || self.allowed.http_matches(&group, route)
    }

    /// Whether gRPC method `path` (`/package.Service/Method`) may be called.
    pub fn grpc_allows(&self, path: &str) -> bool {
        if !path.starts_with(RUNTIME_PREFIX) {
            return true;
        }
        if self.denied.grpc.contains(path) {
            return false;
        }
        self.allowed.grpc.is_empty() || self.allowed.grpc.contains(path)
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
    let access = &state.access;
    if !access.restricts_http() || access.http_allows(request.uri().path()) {
        return next.run(request).await;
    }
    if access.http_allows("/v1.0/invoke") {
        return crate::api::http::invoke::invoke(State(state.invoker.clone()), request).await;
    }
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
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
mod tests {
    use super::*;

    fn rule(name: &str, version: &str, protocol: &str) -> ApiAccessRule {
        ApiAccessRule {
            name: name.into(),
            version: version.into(),
            protocol: protocol.into(),
        }
    }

    fn access(allowed: Vec<ApiAccessRule>, denied: Vec<ApiAccessRule>) -> ApiAccess {
        ApiAccess::compile(Some(&ApiSpec { allowed, denied })).unwrap()
    }

    #[test]
    fn http_paths_match_by_group_or_route_prefix() {
        let only_state = access(vec![rule("state", "v1", "http")], vec![]);
        assert!(only_state.http_allows("/v1.0/state/store/key"));
        assert!(!only_state.http_allows("/v1.0-alpha1/state/store/query"));
        assert!(!only_state.http_allows("/v1.0/publish/bus/topic"));
        assert!(!only_state.http_allows("/v1.0/invoke/app/method/x"));
        assert!(
            !only_state.http_allows("/orders"),
            "header invocation is invocation"
        );
        assert!(only_state.http_allows("/v1.0/healthz"));
        assert!(only_state.http_allows("/v1.0/healthz/outbound"));

        let by_route = access(vec![rule("state", "v1.0", "http")], vec![]);
        assert!(by_route.http_allows("/v1.0/state/store"));
        assert!(!by_route.http_allows("/v1.0-alpha1/state/store/query"));

        let alpha = access(vec![rule("lock", "v1alpha1", "http")], vec![]);
        assert!(alpha.http_allows("/v1.0-alpha1/lock/store"));
        assert!(!alpha.http_allows("/v1.0-alpha1/unlock/store"));

        let deny_wins = access(
            vec![rule("state", "v1", "http"), rule("publish", "v1", "http")],
            vec![rule("state", "v1", "http")],
        );
        assert!(!deny_wins.http_allows("/v1.0/state/store"));
        assert!(deny_wins.http_allows("/v1.0/publish/bus/topic"));

        let denied_only = access(vec![], vec![rule("secrets", "v1", "http")]);
        assert!(!denied_only.http_allows("/v1.0/secrets/store/key"));
        assert!(denied_only.http_allows("/v1.0/metadata"));
        // gRPC rules leave HTTP alone.
        assert!(!access(vec![rule("state", "v1", "grpc")], vec![]).restricts_http());
    }

    #[test]
    fn grpc_methods_match_upstreams_groups() {
        let only_state = access(vec![rule("state", "v1", "GRPC")], vec![]);
        assert!(only_state.grpc_allows("/dapr.proto.runtime.v1.Dapr/GetState"));
        assert!(only_state.grpc_allows("/dapr.proto.runtime.v1.Dapr/ExecuteStateTransaction"));
        assert!(!only_state.grpc_allows("/dapr.proto.runtime.v1.Dapr/QueryStateAlpha1"));
        assert!(!only_state.grpc_allows("/dapr.proto.runtime.v1.Dapr/GetMetadata"));
        // Other services (proxied calls, health) are never restricted.
        assert!(only_state.grpc_allows("/grpc.health.v1.Health/Check"));
        assert!(only_state.grpc_allows("/my.Service/Method"));

        let denied = access(vec![], vec![rule("publish", "v1", "grpc")]);
        assert!(!denied.grpc_allows("/dapr.proto.runtime.v1.Dapr/PublishEvent"));
        assert!(denied.grpc_allows("/dapr.proto.runtime.v1.Dapr/BulkPublishEventAlpha1"));
        assert!(!access(vec![rule("state", "v1", "http")], vec![]).restricts_grpc());
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        let error = ApiAccess::compile(Some(&ApiSpec {
            allowed: vec![
                rule("state", "v1", "http"),
                rule("state", "v1", "websocket"),
            ],
            denied: vec![],
        }))
        .unwrap_err();
        assert_eq!(error.field, "api.allowed[1].protocol");
        assert_eq!(
            error.message,
            "invalid protocol \"websocket\": use http or grpc"
        );
        let error = ApiAccess::compile(Some(&ApiSpec {
            allowed: vec![],
            denied: vec![rule("", "v1", "grpc")],
        }))
        .unwrap_err();
        assert_eq!(error.field, "api.denied[0].name");
    }
}
