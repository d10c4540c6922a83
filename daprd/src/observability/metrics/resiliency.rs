//! `dapr_resiliency_*`: loaded policies, their applications and activations, and circuit
//! breaker states.

use prometheus::{IntCounterVec, IntGaugeVec};

use super::{MetricsError, Registrar, SidecarMetrics};

const APP_ID: &str = "app_id";
const NAME: &str = "name";
const NAMESPACE: &str = "namespace";
const POLICY: &str = "policy";
const FLOW_DIRECTION: &str = "flow_direction";
const TARGET: &str = "target";
const STATUS: &str = "status";

/// Which kind of policy (the `policy` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    /// A circuit breaker.
    CircuitBreaker,
    /// A retry.
    Retry,
    /// A timeout.
    Timeout,
}

impl PolicyType {
    fn label(self) -> &'static str {
        match self {
            PolicyType::CircuitBreaker => "circuitbreaker",
            PolicyType::Retry => "retry",
            PolicyType::Timeout => "timeout",
        }
    }
}

/// Whether the policy guards an outgoing or an incoming call (the `flow_direction` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFlowDirection {
    /// Calls the sidecar makes.
    Outbound,
    /// Calls the sidecar receives.
    Inbound,
}

impl PolicyFlowDirection {
    fn label(self) -> &'static str {
        match self {
            PolicyFlowDirection::Outbound => "outbound",
            PolicyFlowDirection::Inbound => "inbound",
        }
    }
}

/// A circuit breaker's state (the `status` label of `dapr_resiliency_cb_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitBreakerState {
    /// Calls flow.
    Closed,
    /// Trial calls flow.
    HalfOpen,
    /// Calls are refused.
    Open,
    /// Not known.
    Unknown,
}

impl CircuitBreakerState {
    const ALL: [CircuitBreakerState; 4] = [
        CircuitBreakerState::Closed,
        CircuitBreakerState::HalfOpen,
        CircuitBreakerState::Open,
        CircuitBreakerState::Unknown,
    ];

    /// The label value, as upstream's breaker names its states.
    pub fn label(self) -> &'static str {
        match self {
            CircuitBreakerState::Closed => "closed",
            CircuitBreakerState::HalfOpen => "half-open",
            CircuitBreakerState::Open => "open",
            CircuitBreakerState::Unknown => "unknown",
        }
    }
}

/// The resiliency families.
#[derive(Debug)]
pub(super) struct ResiliencyFamilies {
    loaded: IntCounterVec,
    executed: IntCounterVec,
    activated: IntCounterVec,
    circuit_breaker_state: IntGaugeVec,
}

impl ResiliencyFamilies {
    pub(super) fn register(registrar: &Registrar<'_>) -> Result<Self, MetricsError> {
        let policy = [
            APP_ID,
            NAME,
            POLICY,
            NAMESPACE,
            FLOW_DIRECTION,
            TARGET,
            STATUS,
        ];
        Ok(ResiliencyFamilies {
            loaded: registrar.counter(
                "dapr_resiliency_loaded",
                "Resiliency policies loaded.",
                &[APP_ID, NAME, NAMESPACE],
            )?,
            executed: registrar.counter(
                "dapr_resiliency_count",
                "Times a resiliency policy was applied to a call.",
                &policy,
            )?,
            activated: registrar.counter(
                "dapr_resiliency_activations_total",
                "Times a resiliency policy was activated by a failure or a state change.",
                &policy,
            )?,
            circuit_breaker_state: registrar.gauge(
                "dapr_resiliency_cb_state",
                "1 for the current state of a circuit breaker, 0 for the others.",
                &policy,
            )?,
        })
    }
}

/// The target label of an actor type.
pub fn actor_target(actor_type: &str) -> String {
    format!("actor_{actor_type}")
}

/// The target label of an app.
pub fn app_target(app_id: &str) -> String {
    format!("app_{app_id}")
}

/// The target label of a component.
pub fn component_target(name: &str, component_type: &str) -> String {
    format!("{component_type}_{name}")
}

/// Identifies one policy application: which resiliency resource, policy and target.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRef<'a> {
    /// Name of the Resiliency resource.
    pub resiliency: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// The kind of policy.
    pub policy: PolicyType,
    /// Outgoing or incoming.
    pub direction: PolicyFlowDirection,
    /// The target label (see [`actor_target`], [`app_target`], [`component_target`]).
    pub target: &'a str,
}

impl SidecarMetrics {
    /// A Resiliency resource was loaded.
    pub fn record_resiliency_loaded(&self, resiliency: &str, namespace: &str) {
        if let Some(families) = self.families() {
            families
                .resiliency
                .loaded
                .with_label_values(&[families.app_id.as_str(), resiliency, namespace])
                .inc();
        }
    }

    /// A policy was applied; for circuit breakers `breaker` is its state afterwards (it
    /// also becomes the `status` label and updates the state gauge).
    pub fn record_resiliency_executed(
        &self,
        policy: PolicyRef<'_>,
        breaker: Option<CircuitBreakerState>,
    ) {
        if let Some(families) = self.families() {
            let status = breaker.map_or("", CircuitBreakerState::label);
            families
                .resiliency
                .executed
                .with_label_values(&policy_labels(&families.app_id, &policy, status))
                .inc();
            if let (PolicyType::CircuitBreaker, Some(state)) = (policy.policy, breaker) {
                self.record_circuit_breaker_state(policy, state);
            }
        }
    }

    /// A policy was activated (a retry retried, a timeout fired, a breaker changed state).
    pub fn record_resiliency_activated(
        &self,
        policy: PolicyRef<'_>,
        breaker: Option<CircuitBreakerState>,
    ) {
        if let Some(families) = self.families() {
            let status = breaker.map_or("", CircuitBreakerState::label);
            families
                .resiliency
                .activated
                .with_label_values(&policy_labels(&families.app_id, &policy, status))
                .inc();
        }
    }

    /// Sets the state gauge of a circuit breaker: 1 for `state`, 0 for the others.
    pub fn record_circuit_breaker_state(&self, policy: PolicyRef<'_>, state: CircuitBreakerState) {
        if let Some(families) = self.families() {
            for candidate in CircuitBreakerState::ALL {
                families
                    .resiliency
                    .circuit_breaker_state
                    .with_label_values(&policy_labels(&families.app_id, &policy, candidate.label()))
                    .set(i64::from(candidate == state));
            }
        }
    }
}

fn policy_labels<'a>(app_id: &'a str, policy: &PolicyRef<'a>, status: &'a str) -> [&'a str; 7] {
    [
        app_id,
        policy.resiliency,
        policy.policy.label(),
        policy.namespace,
        policy.direction.label(),
        policy.target,
        status,
    ]
}
