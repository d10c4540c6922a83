//! Resiliency: upstream's `Resiliency` resources compiled at start into timeouts, retries
//! and circuit breakers, looked up per target (an app for service invocation, a component
//! per direction) and applied around each call by [`Policy::run`].
//!
//! As upstream: every resource in scope contributes to one set of named policies and
//! targets; a target without its own policies falls back to the `Default…Policy` names
//! (`DefaultAppRetryPolicy`, `DefaultStatestoreComponentOutboundTimeoutPolicy`,
//! `DefaultComponentRetryPolicy`, `DefaultRetryPolicy`, ...); the built-in
//! `DaprBuiltInServiceRetries` policy (3 retries, 1 s apart) covers invocations that never
//! reached the peer sidecar when the target app has no policy, and may be overridden but
//! not below 3 retries. Unlike upstream, which logs a bad resource and drops it, a bad
//! resource (an unknown policy name, an invalid duration or status list, a `trip`
//! expression that does not compile) stops the start, naming its file and field. Circuit
//! breakers are kept per target: one per app id, one per component and direction.

mod breaker;
mod errors;
mod outbound;
mod policy;
mod retry;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dapr_kit::backoff::{BackoffPolicy, ConstantBackoff};
use dapr_resources::loader::Loaded;
use dapr_resources::resiliency::Resiliency as ResiliencyResource;

pub use errors::ResiliencyError;
pub use outbound::ComponentError;
pub use policy::{Failure, Policy, PolicyError};
pub use retry::RetryPolicy;

use breaker::{BreakerTemplate, CircuitBreaker};
use errors::FieldError;
use policy::Named;

use crate::observability::metrics::{
    PolicyFlowDirection, SidecarMetrics, app_target, component_target,
};

/// The built-in retry policy of service invocation.
const BUILT_IN_SERVICE_RETRIES: &str = "DaprBuiltInServiceRetries";
/// Built-in retry policies a resource may override (with at least 3 retries).
const BUILT_IN_RETRIES: [&str; 4] = [
    BUILT_IN_SERVICE_RETRIES,
    "DaprBuiltInActorRetries",
    "DaprBuiltInActorReminderRetries",
    "DaprBuiltInInitializationRetries",
];
/// A built-in retry policy resources may not override.
const PROTECTED_RETRIES: &str = "DaprBuiltInActorNotFoundRetries";
/// The fewest retries an overridden built-in policy keeps.
const BUILT_IN_MINIMUM_RETRIES: u64 = 3;

/// The building block of a component, as default policy names spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComponentKind {
    /// A state store.
    StateStore,
    /// A pub/sub broker.
    PubSub,
    /// A binding.
    Binding,
    /// A secret store.
    SecretStore,
    /// A configuration store.
    Configuration,
    /// A lock store.
    Lock,
    /// A crypto component.
    Crypto,
}

/// Every component kind, for precomputing default policy names.
const COMPONENT_KINDS: [ComponentKind; 7] = [
    ComponentKind::StateStore,
    ComponentKind::PubSub,
    ComponentKind::Binding,
    ComponentKind::SecretStore,
    ComponentKind::Configuration,
    ComponentKind::Lock,
    ComponentKind::Crypto,
];

impl ComponentKind {
    /// Upstream's name (`Statestore`, `Pubsub`, ...), used in default policy names and in
    /// the metrics `target` label.
    pub fn upstream_name(self) -> &'static str {
        match self {
            ComponentKind::StateStore => "Statestore",
            ComponentKind::PubSub => "Pubsub",
            ComponentKind::Binding => "Binding",
            ComponentKind::SecretStore => "Secretstore",
            ComponentKind::Configuration => "Configuration",
            ComponentKind::Lock => "Lock",
            ComponentKind::Crypto => "Crypto",
        }
    }
}

/// Which way a component call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the component into the app (pub/sub deliveries, input bindings).
    Inbound,
    /// From the sidecar to the component.
    Outbound,
}

impl Direction {
    fn upstream_name(self) -> &'static str {
        match self {
            Direction::Inbound => "Inbound",
            Direction::Outbound => "Outbound",
        }
    }

    fn metrics(self) -> PolicyFlowDirection {
        match self {
            Direction::Inbound => PolicyFlowDirection::Inbound,
            Direction::Outbound => PolicyFlowDirection::Outbound,
        }
    }
}

/// The policy names a target uses.
#[derive(Debug, Clone, Default)]
struct TargetNames {
    timeout: Option<String>,
    retry: Option<String>,
    breaker: Option<String>,
}

impl TargetNames {
    fn new(timeout: &str, retry: &str, breaker: &str) -> Self {
        let name = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        Self {
            timeout: name(timeout),
            retry: name(retry),
            breaker: name(breaker),
        }
    }

    fn is_empty(&self) -> bool {
        self.timeout.is_none() && self.retry.is_none() && self.breaker.is_none()
    }
}

/// The compiled resiliency resources of one sidecar.
#[derive(Debug, Default)]
pub struct Resiliency {
    timeouts: HashMap<String, Named<Duration>>,
    retries: HashMap<String, Named<Arc<RetryPolicy>>>,
    breakers: HashMap<String, Named<Arc<BreakerTemplate>>>,
    apps: HashMap<String, TargetNames>,
    /// Component targets by name: inbound, then outbound.
    components: HashMap<String, [TargetNames; 2]>,
    /// The default names of apps without a target.
    app_defaults: TargetNames,
    /// The default names of components without a target, per kind and direction.
    component_defaults: HashMap<(ComponentKind, Direction), TargetNames>,
    /// Breaker instances by target (`app/<id>`, `component/<name>/<direction>`).
    breaker_instances: Mutex<HashMap<String, Arc<CircuitBreaker>>>,
    metrics: SidecarMetrics,
    service_retries: Option<Arc<RetryPolicy>>,
}

/// A reference from a target to a policy, checked once every resource is read.
struct PolicyReference {
    resource: String,
    file: String,
    field: String,
    kind: PolicyKind,
    name: String,
}

#[derive(Debug, Clone, Copy)]
enum PolicyKind {
    Timeout,
    Retry,
    CircuitBreaker,
}

impl Resiliency {
    /// Compiles `resources` (already filtered to this app's scope), counting each in
    /// `dapr_resiliency_loaded`.
    pub fn compile(
        resources: &[Loaded<ResiliencyResource>],
        metrics: SidecarMetrics,
    ) -> Result<Self, ResiliencyError> {
        let mut compiled = Resiliency {
            metrics,
            ..Resiliency::default()
        };
        let mut references = Vec::new();
        for loaded in resources {
            compiled.add(loaded, &mut references)?;
        }
        compiled.app_defaults = compiled.default_names(&["App".to_owned()]);
        for kind in COMPONENT_KINDS {
            for direction in [Direction::Inbound, Direction::Outbound] {
                let direction_name = direction.upstream_name();
                let names = compiled.default_names(&[
                    format!("{}Component{direction_name}", kind.upstream_name()),
                    format!("Component{direction_name}"),
                    "Component".to_owned(),
                ]);
                compiled.component_defaults.insert((kind, direction), names);
            }
        }
        for reference in references {
            let defined = match reference.kind {
                PolicyKind::Timeout => compiled.timeouts.contains_key(&reference.name),
                PolicyKind::Retry => compiled.retries.contains_key(&reference.name),
                PolicyKind::CircuitBreaker => compiled.breakers.contains_key(&reference.name),
            };
            if !defined {
                let kind = match reference.kind {
                    PolicyKind::Timeout => "timeout",
                    PolicyKind::Retry => "retry",
                    PolicyKind::CircuitBreaker => "circuit breaker",
                };
                return Err(ResiliencyError {
                    resource: reference.resource,
                    file: reference.file.into(),
                    field: reference.field,
                    message: format!("{kind} policy {:?} is not defined", reference.name),
                });
            }
        }
        Ok(compiled)
    }

    fn add(
        &mut self,
        loaded: &Loaded<ResiliencyResource>,
        references: &mut Vec<PolicyReference>,
    ) -> Result<(), ResiliencyError> {
        let resource = &loaded.resource;
        let name = resource.metadata.name.clone().unwrap_or_default();
        let namespace = resource.metadata.namespace.clone().unwrap_or_default();
        let file = loaded.source.file.display().to_string();
        let fail = |field: String, error: FieldError| ResiliencyError {
            resource: name.clone(),
            file: Path::new(&file).to_path_buf(),
            field: if error.field.is_empty() {
                field
            } else {
                format!("{field}.{}", error.field)
            },
            message: error.message,
        };
        let resource_name: Arc<str> = Arc::from(name.as_str());
        let resource_namespace: Arc<str> = Arc::from(namespace.as_str());
        let named = |value| Named {
            resource: resource_name.clone(),
            namespace: resource_namespace.clone(),
            value,
        };
        let policies = &resource.spec.policies;
        for (policy, text) in &policies.timeouts {
            let timeout = retry::duration("", text)
                .map_err(|error| fail(format!("spec.policies.timeouts.{policy}"), error))?;
            self.timeouts.insert(policy.clone(), named(timeout));
        }
        for (policy, spec) in &policies.retries {
            let field = format!("spec.policies.retries.{policy}");
            let mut compiled = RetryPolicy::compile(spec).map_err(|error| fail(field, error))?;
            if policy == PROTECTED_RETRIES {
                tracing::warn!(
                    "resiliency {name}: the built-in policy {policy} cannot be overridden; it is ignored"
                );
                continue;
            }
            if BUILT_IN_RETRIES.contains(&policy.as_str()) {
                compiled = compiled.with_minimum_retries(BUILT_IN_MINIMUM_RETRIES);
            }
            let compiled = Arc::new(compiled);
            if policy == BUILT_IN_SERVICE_RETRIES {
                self.service_retries = Some(compiled.clone());
            }
            self.retries.insert(
                policy.clone(),
                Named {
                    resource: resource_name.clone(),
                    namespace: resource_namespace.clone(),
                    value: compiled,
                },
            );
        }
        for (policy, spec) in &policies.circuit_breakers {
            let field = format!("spec.policies.circuitBreakers.{policy}");
            let template = BreakerTemplate::compile(spec).map_err(|error| fail(field, error))?;
            self.breakers.insert(
                policy.clone(),
                Named {
                    resource: resource_name.clone(),
                    namespace: resource_namespace.clone(),
                    value: Arc::new(template),
                },
            );
        }

        let mut refer = |field: String, names: &TargetNames| {
            let kinds = [
                (PolicyKind::Timeout, "timeout", &names.timeout),
                (PolicyKind::Retry, "retry", &names.retry),
                (PolicyKind::CircuitBreaker, "circuitBreaker", &names.breaker),
            ];
            for (kind, key, policy) in kinds {
                if let Some(policy) = policy {
                    references.push(PolicyReference {
                        resource: name.clone(),
                        file: file.clone(),
                        field: format!("{field}.{key}"),
                        kind,
                        name: policy.clone(),
                    });
                }
            }
        };
        let targets = &resource.spec.targets;
        for (app, target) in &targets.apps {
            let names = TargetNames::new(&target.timeout, &target.retry, &target.circuit_breaker);
            refer(format!("spec.targets.apps.{app}"), &names);
            self.apps.insert(app.clone(), names);
        }
        for (component, target) in &targets.components {
            let names = [("inbound", &target.inbound), ("outbound", &target.outbound)].map(
                |(key, policies)| {
                    let names = TargetNames::new(
                        &policies.timeout,
                        &policies.retry,
                        &policies.circuit_breaker,
                    );
                    refer(format!("spec.targets.components.{component}.{key}"), &names);
                    names
                },
            );
            self.components.insert(component.clone(), names);
        }
        // Actor targets are checked now; they apply once actors are served.
        for (actor_type, target) in &targets.actors {
            let field = format!("spec.targets.actors.{actor_type}");
            match (
                target.circuit_breaker.is_empty(),
                target.circuit_breaker_scope.as_str(),
            ) {
                (true, _) | (false, "type" | "id" | "both") => {}
                (false, "") => {
                    return Err(fail(
                        field,
                        FieldError::new(
                            "circuitBreakerScope",
                            "actor circuit breakers must include scope",
                        ),
                    ));
                }
                (false, other) => {
                    return Err(fail(
                        field,
                        FieldError::new(
                            "circuitBreakerScope",
                            format!("unknown circuit breaker scope {other:?}"),
                        ),
                    ));
                }
            }
            let names = TargetNames::new(&target.timeout, &target.retry, &target.circuit_breaker);
            refer(field, &names);
        }
        tracing::info!("loaded resiliency configuration {name}");
        self.metrics.record_resiliency_loaded(&name, &namespace);
        Ok(())
    }

    /// The retries of invocations that did not reach the peer when the target app has
    /// no policy of its own: `DaprBuiltInServiceRetries`.
    pub fn service_retries(&self) -> Arc<RetryPolicy> {
        self.service_retries.clone().unwrap_or_else(|| {
            Arc::new(RetryPolicy::new(BackoffPolicy::Constant(ConstantBackoff {
                interval: Duration::from_secs(1),
                max_retries: Some(BUILT_IN_MINIMUM_RETRIES),
            })))
        })
    }

    /// Whether app `app_id` is a target of its own (defaults do not count), which turns
    /// the built-in service retries off for it, as upstream.
    pub fn has_app_policy(&self, app_id: &str) -> bool {
        self.apps.contains_key(app_id)
    }

    /// The policy of service invocations of app `app_id`.
    pub fn app_policy(&self, app_id: &str) -> Policy {
        let names = self.apps.get(app_id).unwrap_or(&self.app_defaults);
        if names.is_empty() {
            return Policy::none();
        }
        self.policy(
            names,
            format!("app[{app_id}]"),
            app_target(app_id),
            Direction::Outbound,
            format!("app/{app_id}"),
        )
    }

    /// The policy of calls to component `name` of `kind` in `direction`.
    pub fn component_policy(
        &self,
        name: &str,
        kind: ComponentKind,
        direction: Direction,
    ) -> Policy {
        let names = match self.components.get(name) {
            Some([inbound, outbound]) => match direction {
                Direction::Inbound => Some(inbound),
                Direction::Outbound => Some(outbound),
            },
            None => self.component_defaults.get(&(kind, direction)),
        };
        let Some(names) = names.filter(|names| !names.is_empty()) else {
            return Policy::none();
        };
        let label = match direction {
            Direction::Inbound => "input",
            Direction::Outbound => "output",
        };
        self.policy(
            names,
            format!("component[{name}] {label}"),
            component_target(name, kind.upstream_name()),
            direction,
            format!("component/{name}/{label}"),
        )
    }

    /// The default policy names for a target of `levels` (most specific first), then the
    /// top-level defaults.
    fn default_names(&self, levels: &[String]) -> TargetNames {
        fn pick<T>(policies: &HashMap<String, T>, levels: &[String], kind: &str) -> Option<String> {
            levels
                .iter()
                .map(|level| format!("Default{level}{kind}Policy"))
                .chain(std::iter::once(format!("Default{kind}Policy")))
                .find(|name| policies.contains_key(name))
        }
        TargetNames {
            timeout: pick(&self.timeouts, levels, "Timeout"),
            retry: pick(&self.retries, levels, "Retry"),
            breaker: pick(&self.breakers, levels, "CircuitBreaker"),
        }
    }

    fn policy(
        &self,
        names: &TargetNames,
        name: String,
        target: String,
        direction: Direction,
        breaker_key: String,
    ) -> Policy {
        if names.is_empty() {
            return Policy::none();
        }
        let breaker = names
            .breaker
            .as_ref()
            .and_then(|policy| self.breakers.get(policy))
            .map(|template| Named {
                resource: template.resource.clone(),
                namespace: template.namespace.clone(),
                value: self.breaker_instance(breaker_key, &template.value),
            });
        let policy = Policy {
            name,
            target,
            direction: direction.metrics(),
            timeout: names
                .timeout
                .as_ref()
                .and_then(|policy| self.timeouts.get(policy))
                .cloned(),
            retry: names
                .retry
                .as_ref()
                .and_then(|policy| self.retries.get(policy))
                .cloned(),
            breaker,
            metrics: self.metrics.clone(),
        };
        policy.record_executed();
        policy
    }

    fn breaker_instance(
        &self,
        key: String,
        template: &Arc<BreakerTemplate>,
    ) -> Arc<CircuitBreaker> {
        let mut instances = self
            .breaker_instances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        instances
            .entry(key)
            .or_insert_with(|| Arc::new(CircuitBreaker::new(template.clone())))
            .clone()
    }
}
