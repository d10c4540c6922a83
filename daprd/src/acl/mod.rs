//! Access control of service invocation (Configuration `spec.accessControl`), applied by
//! the receiving sidecar to every call that reaches it from another sidecar. Policies are
//! compiled at start; each call is judged on the caller's identity ([`identity`]), the
//! method and, for HTTP apps, the verb, with upstream's precedence: a policy for the
//! caller's app id and namespace (and matching trust domain) applies its operation rules
//! ([`operations`]) and default action, everything else gets the global default action.
//! Decisions are counted in `dapr_runtime_acl_*`; a denied call gets upstream's
//! `PermissionDenied` status.
//!
//! Deviations, all at start: an action that is neither `allow` nor `deny` (upstream takes
//! any text other than `allow` as a denial), a verb other than upstream's upper-case verb
//! names or `*` (upstream silently never matches it) and an operation without a name stop
//! the start, naming the field; a missing app id, trust domain or namespace is reported
//! for the first policy lacking it. A second policy for the same app id and namespace
//! replaces the first, as upstream, with a warning. Without a global `defaultAction`,
//! access is denied even for an explicit empty `policies: []`, which upstream allows
//! (the two cannot be told apart once loaded).

pub mod identity;
pub mod operations;

use std::collections::HashMap;

use dapr_resources::configuration::AccessControlSpec;

pub use identity::CallerIdentity;
use operations::{OperationRule, OperationRules};

use crate::observability::metrics::SidecarMetrics;

/// A Configuration's access control section that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid access control spec: {field}: {message}")]
pub struct AclError {
    /// The field (`accessControl.policies[1].operations[0].action`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The policy for one calling app.
#[derive(Debug, Clone)]
struct AppPolicy {
    /// `allow` or `deny`; empty leaves the global default.
    default_action: String,
    trust_domain: String,
    rules: OperationRules,
}

/// The outcome of judging one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call may proceed.
    pub allowed: bool,
    /// Whether the caller's app policy decided (else the global default did).
    pub by_app_policy: bool,
}

/// Compiled access control.
#[derive(Debug, Clone)]
pub struct AccessControl {
    default_action: String,
    /// Policies by `(app id, namespace)`.
    policies: HashMap<(String, String), AppPolicy>,
    /// Whether this sidecar's app speaks HTTP: operations then match case-insensitively
    /// and by verb.
    app_is_http: bool,
    metrics: SidecarMetrics,
}

/// `text` as a lower-case action; empty stays empty when `optional`.
fn action(field: String, text: &str, optional: bool) -> Result<String, AclError> {
    let lower = text.trim().to_ascii_lowercase();
    match lower.as_str() {
        "allow" | "deny" => Ok(lower),
        "" if optional => Ok(lower),
        _ => Err(AclError {
            field,
            message: format!("invalid action {text:?}: use allow or deny"),
        }),
    }
}

/// The verbs an operation rule may name: upstream's `HTTPExtension` verbs as it spells
/// them, and `*` for any.
const HTTP_VERBS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*",
];

fn is_allow(action: &str) -> bool {
    action == "allow"
}

impl AccessControl {
    /// Compiles `spec` for an app that speaks HTTP when `app_is_http`; `None` when it sets
    /// nothing (no access control, as upstream).
    pub fn compile(
        spec: Option<&AccessControlSpec>,
        app_is_http: bool,
        metrics: SidecarMetrics,
    ) -> Result<Option<Self>, AclError> {
        let Some(spec) = spec else {
            return Ok(None);
        };
        if spec.trust_domain.is_empty()
            && spec.default_action.is_empty()
            && spec.policies.is_empty()
        {
            return Ok(None);
        }
        let mut default_action = action(
            "accessControl.defaultAction".into(),
            &spec.default_action,
            true,
        )?;
        if default_action.is_empty() {
            tracing::warn!(
                "No global default action has been specified. Setting default global action as Deny"
            );
            default_action = "deny".into();
        }
        let mut policies = HashMap::new();
        for (index, policy) in spec.policies.iter().enumerate() {
            let field = |name: &str| format!("accessControl.policies[{index}].{name}");
            for (name, value) in [
                ("appId", &policy.app_id),
                ("trustDomain", &policy.trust_domain),
                ("namespace", &policy.namespace),
            ] {
                if value.is_empty() {
                    return Err(AclError {
                        field: field(name),
                        message: "missing; every app policy names the caller's appId, trustDomain and namespace".into(),
                    });
                }
            }
            let mut rules = OperationRules::default();
            for (position, operation) in policy.operations.iter().enumerate() {
                let operation_field = |name: &str| {
                    format!("accessControl.policies[{index}].operations[{position}].{name}")
                };
                let operation_action = action(operation_field("action"), &operation.action, false)?;
                if operation.name.is_empty() {
                    return Err(AclError {
                        field: operation_field("name"),
                        message: "missing operation name".into(),
                    });
                }
                let mut path = operation.name.clone();
                if !path.starts_with('/') {
                    path.insert(0, '/');
                }
                if app_is_http {
                    path = path.to_ascii_lowercase();
                }
                let mut verbs = Vec::with_capacity(operation.http_verb.len());
                for (verb_index, verb) in operation.http_verb.iter().enumerate() {
                    if !HTTP_VERBS.contains(&verb.as_str()) {
                        return Err(AclError {
                            field: operation_field(&format!("httpVerb[{verb_index}]")),
                            message: format!(
                                "invalid verb {verb:?}: use one of {} (upper case)",
                                HTTP_VERBS.join(", ")
                            ),
                        });
                    }
                    verbs.push((verb.clone(), operation_action.clone()));
                }
                rules.insert(
                    &path,
                    OperationRule {
                        verbs,
                        action: operation_action,
                    },
                );
            }
            let key = (policy.app_id.clone(), policy.namespace.clone());
            if policies.contains_key(&key) {
                tracing::warn!(
                    "accessControl.policies[{index}] replaces an earlier policy for app {} in namespace {}",
                    policy.app_id,
                    policy.namespace
                );
            }
            policies.insert(
                key,
                AppPolicy {
                    default_action: action(field("defaultAction"), &policy.default_action, true)?,
                    trust_domain: policy.trust_domain.clone(),
                    rules,
                },
            );
        }
        Ok(Some(Self {
            default_action,
            policies,
            app_is_http,
            metrics,
        }))
    }

    /// Judges a call of `operation` (the method) with HTTP `verb` (`None` for calls
    /// without one) from `caller`.
    pub fn decide(
        &self,
        caller: Option<&CallerIdentity>,
        operation: &str,
        verb: Option<&str>,
    ) -> Decision {
        let app_is_http = self.app_is_http;
        let global = Decision {
            allowed: is_allow(&self.default_action),
            by_app_policy: false,
        };
        let Some(caller) = caller else {
            return global;
        };
        let key = (caller.app_id.clone(), caller.namespace.clone());
        let Some(policy) = self.policies.get(&key) else {
            return global;
        };
        if policy.trust_domain != caller.trust_domain {
            return global;
        }
        let mut action = self.default_action.as_str();
        let mut by_app_policy = false;
        if !policy.default_action.is_empty() {
            action = &policy.default_action;
            by_app_policy = true;
        }
        let mut path = if operation.starts_with('/') {
            operation.to_owned()
        } else {
            format!("/{operation}")
        };
        if app_is_http {
            path = path.to_ascii_lowercase();
        }
        if let Some(rule) = policy.rules.find(&path) {
            if app_is_http {
                match verb {
                    Some(verb) => {
                        if let Some(verb_action) = rule.for_verb(verb) {
                            action = verb_action;
                        }
                    }
                    None => action = &policy.default_action,
                }
            } else {
                action = &rule.action;
            }
        }
        Decision {
            allowed: is_allow(action),
            by_app_policy,
        }
    }

    /// Judges a call as [`AccessControl::decide`], counts the decision, and turns a denial
    /// into upstream's `PermissionDenied` status.
    pub fn authorize(
        &self,
        caller: Option<&CallerIdentity>,
        operation: &str,
        verb: Option<&str>,
    ) -> Result<(), tonic::Status> {
        let decision = self.decide(caller, operation, verb);
        let (app_id, namespace, trust_domain) = caller.map_or(("", "", ""), |caller| {
            (
                caller.app_id.as_str(),
                caller.namespace.as_str(),
                caller.trust_domain.as_str(),
            )
        });
        self.metrics.record_acl_decision(
            decision.by_app_policy,
            decision.allowed,
            app_id,
            trust_domain,
            namespace,
        );
        if decision.allowed {
            return Ok(());
        }
        let id = caller.map(CallerIdentity::spiffe_id).unwrap_or_default();
        // Upstream only reads the verb of calls to HTTP apps.
        let verb = verb.filter(|_| self.app_is_http).unwrap_or("NONE");
        let message = format!(
            "access control policy has denied access to id: {id} operation: {operation} verb: {verb}"
        );
        tracing::debug!("{message}");
        Err(tonic::Status::permission_denied(message))
    }
}

#[cfg(test)]
mod tests;
