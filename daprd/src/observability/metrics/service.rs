//! `dapr_runtime_*`: component loading, mTLS, actors, access control and service
//! invocation between sidecars.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};

use super::{IntLabel, MetricsError, Registrar, SidecarMetrics, bool_label, fractional_millis};

const APP_ID: &str = "app_id";
const COMPONENT: &str = "component";
const REASON: &str = "reason";
const COMPONENT_NAME: &str = "componentName";
const OPERATION: &str = "operation";
const ACTOR_TYPE: &str = "actor_type";
const SUCCESS: &str = "success";
const TRUST_DOMAIN: &str = "trustDomain";
const NAMESPACE: &str = "namespace";
const SOURCE_APP_ID: &str = "src_app_id";
const DESTINATION_APP_ID: &str = "dst_app_id";
const TYPE: &str = "type";
const STATUS: &str = "status";

/// Whether an invocation was a single request/response or a stream (the `type` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationKind {
    /// One request, one response.
    Unary,
    /// A proxied gRPC stream.
    Streaming,
}

impl InvocationKind {
    fn label(self) -> &'static str {
        match self {
            InvocationKind::Unary => "unary",
            InvocationKind::Streaming => "streaming",
        }
    }
}

/// The runtime families.
#[derive(Debug)]
pub(super) struct ServiceFamilies {
    component_loaded: IntCounterVec,
    component_init: IntCounterVec,
    component_init_failed: IntCounterVec,
    mtls_init: IntCounterVec,
    mtls_init_failed: IntCounterVec,
    mtls_cert_rotated: IntCounterVec,
    mtls_cert_rotation_failed: IntCounterVec,
    actor_status_reported: IntCounterVec,
    actor_status_report_failed: IntCounterVec,
    actor_table_operation_received: IntCounterVec,
    actor_rebalanced: IntCounterVec,
    actor_deactivated: IntCounterVec,
    actor_deactivation_failed: IntCounterVec,
    actor_pending_calls: IntGaugeVec,
    actor_timers: IntGaugeVec,
    actor_reminders: IntGaugeVec,
    actor_reminders_fired: IntCounterVec,
    actor_timers_fired: IntCounterVec,
    /// Running totals behind `actor_pending_calls`, per actor type.
    pending_actor_calls: Mutex<HashMap<String, i64>>,
    acl_app_allowed: IntCounterVec,
    acl_global_allowed: IntCounterVec,
    acl_app_blocked: IntCounterVec,
    acl_global_blocked: IntCounterVec,
    workflow_acl_allowed: IntCounterVec,
    workflow_acl_denied: IntCounterVec,
    invocation_requests_sent: IntCounterVec,
    invocation_requests_received: IntCounterVec,
    invocation_responses_sent: IntCounterVec,
    invocation_responses_received: IntCounterVec,
    invocation_response_latency: HistogramVec,
}

impl ServiceFamilies {
    pub(super) fn register(registrar: &Registrar<'_>) -> Result<Self, MetricsError> {
        let actor = [APP_ID, ACTOR_TYPE];
        let acl = [APP_ID, TRUST_DOMAIN, NAMESPACE];
        let workflow_acl = [APP_ID, SOURCE_APP_ID, OPERATION, TYPE];
        Ok(ServiceFamilies {
            component_loaded: registrar.counter(
                "dapr_runtime_component_loaded",
                "Components loaded.",
                &[APP_ID],
            )?,
            component_init: registrar.counter(
                "dapr_runtime_component_init_total",
                "Components initialized, by component type.",
                &[APP_ID, COMPONENT],
            )?,
            component_init_failed: registrar.counter(
                "dapr_runtime_component_init_fail_total",
                "Components that failed to initialize.",
                &[APP_ID, COMPONENT, REASON, COMPONENT_NAME],
            )?,
            mtls_init: registrar.counter(
                "dapr_runtime_mtls_init_total",
                "mTLS authenticator initializations.",
                &[APP_ID],
            )?,
            mtls_init_failed: registrar.counter(
                "dapr_runtime_mtls_init_fail_total",
                "Failed mTLS authenticator initializations.",
                &[APP_ID, REASON],
            )?,
            mtls_cert_rotated: registrar.counter(
                "dapr_runtime_mtls_workload_cert_rotated_total",
                "Workload certificate rotations.",
                &[APP_ID],
            )?,
            mtls_cert_rotation_failed: registrar.counter(
                "dapr_runtime_mtls_workload_cert_rotated_fail_total",
                "Failed workload certificate rotations.",
                &[APP_ID, REASON],
            )?,
            actor_status_reported: registrar.counter(
                "dapr_runtime_actor_status_report_total",
                "Status reports sent to the placement service.",
                &[APP_ID, ACTOR_TYPE, OPERATION],
            )?,
            actor_status_report_failed: registrar.counter(
                "dapr_runtime_actor_status_report_fail_total",
                "Failed status reports to the placement service.",
                &[APP_ID, ACTOR_TYPE, OPERATION, REASON],
            )?,
            actor_table_operation_received: registrar.counter(
                "dapr_runtime_actor_table_operation_recv_total",
                "Placement table operations received.",
                &[APP_ID, ACTOR_TYPE, OPERATION],
            )?,
            actor_rebalanced: registrar.counter(
                "dapr_runtime_actor_rebalanced_total",
                "Actor rebalancing requests.",
                &actor,
            )?,
            actor_deactivated: registrar.counter(
                "dapr_runtime_actor_deactivated_total",
                "Actors deactivated.",
                &actor,
            )?,
            actor_deactivation_failed: registrar.counter(
                "dapr_runtime_actor_deactivated_failed_total",
                "Failed actor deactivations.",
                &actor,
            )?,
            actor_pending_calls: registrar.gauge(
                "dapr_runtime_actor_pending_actor_calls",
                "Actor calls waiting for the per-actor lock.",
                &actor,
            )?,
            actor_timers: registrar.gauge(
                "dapr_runtime_actor_timers",
                "Active actor timers.",
                &actor,
            )?,
            actor_reminders: registrar.gauge(
                "dapr_runtime_actor_reminders",
                "Active actor reminders.",
                &actor,
            )?,
            actor_reminders_fired: registrar.counter(
                "dapr_runtime_actor_reminders_fired_total",
                "Actor reminders fired.",
                &[APP_ID, ACTOR_TYPE, SUCCESS],
            )?,
            actor_timers_fired: registrar.counter(
                "dapr_runtime_actor_timers_fired_total",
                "Actor timers fired.",
                &[APP_ID, ACTOR_TYPE, SUCCESS],
            )?,
            pending_actor_calls: Mutex::new(HashMap::new()),
            acl_app_allowed: registrar.counter(
                "dapr_runtime_acl_app_policy_action_allowed_total",
                "Requests allowed by an app-specific access control action.",
                &acl,
            )?,
            acl_global_allowed: registrar.counter(
                "dapr_runtime_acl_global_policy_action_allowed_total",
                "Requests allowed by the global access control action.",
                &acl,
            )?,
            acl_app_blocked: registrar.counter(
                "dapr_runtime_acl_app_policy_action_blocked_total",
                "Requests blocked by an app-specific access control action.",
                &acl,
            )?,
            acl_global_blocked: registrar.counter(
                "dapr_runtime_acl_global_policy_action_blocked_total",
                "Requests blocked by the global access control action.",
                &acl,
            )?,
            workflow_acl_allowed: registrar.counter(
                "dapr_runtime_workflow_acl_action_allowed_total",
                "Workflow and activity operations allowed by the workflow access policy.",
                &workflow_acl,
            )?,
            workflow_acl_denied: registrar.counter(
                "dapr_runtime_workflow_acl_action_denied_total",
                "Workflow and activity operations denied by the workflow access policy.",
                &workflow_acl,
            )?,
            invocation_requests_sent: registrar.counter(
                "dapr_runtime_service_invocation_req_sent_total",
                "Service invocation requests sent.",
                &[APP_ID, DESTINATION_APP_ID, TYPE],
            )?,
            invocation_requests_received: registrar.counter(
                "dapr_runtime_service_invocation_req_recv_total",
                "Service invocation requests received.",
                &[APP_ID, SOURCE_APP_ID],
            )?,
            invocation_responses_sent: registrar.counter(
                "dapr_runtime_service_invocation_res_sent_total",
                "Service invocation responses sent.",
                &[APP_ID, DESTINATION_APP_ID, STATUS],
            )?,
            invocation_responses_received: registrar.counter(
                "dapr_runtime_service_invocation_res_recv_total",
                "Service invocation responses received.",
                &[APP_ID, SOURCE_APP_ID, STATUS, TYPE],
            )?,
            invocation_response_latency: registrar.latency(
                "dapr_runtime_service_invocation_res_recv_latency_ms",
                "Latency of service invocation responses, in milliseconds.",
                &[APP_ID, SOURCE_APP_ID, STATUS],
            )?,
        })
    }
}

impl SidecarMetrics {
    /// An access control decision on a call from `app_id` in `namespace` of
    /// `trust_domain` (the caller's identity, as upstream labels it), taken by the
    /// caller's app policy or by the global default.
    pub fn record_acl_decision(
        &self,
        app_policy: bool,
        allowed: bool,
        app_id: &str,
        trust_domain: &str,
        namespace: &str,
    ) {
        if let Some(families) = self.families() {
            let service = &families.service;
            let family = match (app_policy, allowed) {
                (true, true) => &service.acl_app_allowed,
                (true, false) => &service.acl_app_blocked,
                (false, true) => &service.acl_global_allowed,
                (false, false) => &service.acl_global_blocked,
            };
            family
                .with_label_values(&[app_id, trust_domain, namespace])
                .inc();
        }
    }

    /// A component was loaded.
    pub fn record_component_loaded(&self) {
        if let Some(families) = self.families() {
            families
                .service
                .component_loaded
                .with_label_values(&[families.app_id.as_str()])
                .inc();
        }
    }

    /// A component of `component_type` (e.g. `state.redis`) was initialized.
    pub fn record_component_initialized(&self, component_type: &str) {
        if let Some(families) = self.families() {
            families
                .service
                .component_init
                .with_label_values(&[families.app_id.as_str(), component_type])
                .inc();
        }
    }

    /// Component `name` of `component_type` failed to initialize for `reason`
    /// (upstream uses `init` and `creation`).
    pub fn record_component_init_failed(&self, component_type: &str, reason: &str, name: &str) {
        if let Some(families) = self.families() {
            families
                .service
                .component_init_failed
                .with_label_values(&[families.app_id.as_str(), component_type, reason, name])
                .inc();
        }
    }

    /// The mTLS authenticator started (`Ok`) or failed to (`Err(reason)`).
    pub fn record_mtls_init(&self, outcome: Result<(), &str>) {
        if let Some(families) = self.families() {
            let app = families.app_id.as_str();
            match outcome {
                Ok(()) => families.service.mtls_init.with_label_values(&[app]).inc(),
                Err(reason) => families
                    .service
                    .mtls_init_failed
                    .with_label_values(&[app, reason])
                    .inc(),
            }
        }
    }

    /// The workload certificate was rotated (`Ok`) or its rotation failed (`Err(reason)`).
    pub fn record_mtls_cert_rotation(&self, outcome: Result<(), &str>) {
        if let Some(families) = self.families() {
            let app = families.app_id.as_str();
            match outcome {
                Ok(()) => families
                    .service
                    .mtls_cert_rotated
                    .with_label_values(&[app])
                    .inc(),
                Err(reason) => families
                    .service
                    .mtls_cert_rotation_failed
                    .with_label_values(&[app, reason])
                    .inc(),
            }
        }
    }

    /// A status report to placement (`operation`) succeeded (`Ok`) or failed.
    pub fn record_actor_status_report(&self, operation: &str, outcome: Result<(), &str>) {
        if let Some(families) = self.families() {
            let app = families.app_id.as_str();
            match outcome {
                Ok(()) => families
                    .service
                    .actor_status_reported
                    .with_label_values(&[app, "", operation])
                    .inc(),
                Err(reason) => families
                    .service
                    .actor_status_report_failed
                    .with_label_values(&[app, "", operation, reason])
                    .inc(),
            }
        }
    }

    /// A placement table operation (`lock`, `update`, `unlock`) arrived.
    pub fn record_actor_table_operation(&self, operation: &str) {
        if let Some(families) = self.families() {
            families
                .service
                .actor_table_operation_received
                .with_label_values(&[families.app_id.as_str(), "", operation])
                .inc();
        }
    }

    /// Actors of `actor_type` were drained for rebalancing.
    pub fn record_actor_rebalanced(&self, actor_type: &str) {
        if let Some(families) = self.families() {
            families
                .service
                .actor_rebalanced
                .with_label_values(&[families.app_id.as_str(), actor_type])
                .inc();
        }
    }

    /// An actor of `actor_type` was deactivated (`true`) or its deactivation failed.
    pub fn record_actor_deactivation(&self, actor_type: &str, succeeded: bool) {
        if let Some(families) = self.families() {
            let family = if succeeded {
                &families.service.actor_deactivated
            } else {
                &families.service.actor_deactivation_failed
            };
            family
                .with_label_values(&[families.app_id.as_str(), actor_type])
                .inc();
        }
    }

    /// Adds `delta` (negative when calls finish) to the pending calls of `actor_type`.
    pub fn record_actor_pending_calls(&self, actor_type: &str, delta: i64) {
        if let Some(families) = self.families() {
            let mut totals = families
                .service
                .pending_actor_calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let total = totals.entry(actor_type.to_string()).or_default();
            *total += delta;
            families
                .service
                .actor_pending_calls
                .with_label_values(&[families.app_id.as_str(), actor_type])
                .set(*total);
        }
    }

    /// The current number of timers of `actor_type`.
    pub fn record_actor_timers(&self, actor_type: &str, timers: i64) {
        if let Some(families) = self.families() {
            families
                .service
                .actor_timers
                .with_label_values(&[families.app_id.as_str(), actor_type])
                .set(timers);
        }
    }

    /// The current number of reminders of `actor_type`.
    pub fn record_actor_reminders(&self, actor_type: &str, reminders: i64) {
        if let Some(families) = self.families() {
            families
                .service
                .actor_reminders
                .with_label_values(&[families.app_id.as_str(), actor_type])
                .set(reminders);
        }
    }

    /// A reminder of `actor_type` fired.
    pub fn record_actor_reminder_fired(&self, actor_type: &str, succeeded: bool) {
        if let Some(families) = self.families() {
            families
                .service
                .actor_reminders_fired
                .with_label_values(&[families.app_id.as_str(), actor_type, bool_label(succeeded)])
                .inc();
        }
    }

    /// A timer of `actor_type` fired.
    pub fn record_actor_timer_fired(&self, actor_type: &str, succeeded: bool) {
        if let Some(families) = self.families() {
            families
                .service
                .actor_timers_fired
                .with_label_values(&[families.app_id.as_str(), actor_type, bool_label(succeeded)])
                .inc();
        }
    }

    /// An access control decision about a caller (its app id, trust domain and namespace
    /// from its SPIFFE id): `by_app_policy` when an app-specific rule decided, else the
    /// global default.
    pub fn record_access_control(
        &self,
        caller_app_id: &str,
        trust_domain: &str,
        namespace: &str,
        by_app_policy: bool,
        allowed: bool,
    ) {
        if let Some(families) = self.families() {
            let service = &families.service;
            let family = match (by_app_policy, allowed) {
                (true, true) => &service.acl_app_allowed,
                (false, true) => &service.acl_global_allowed,
                (true, false) => &service.acl_app_blocked,
                (false, false) => &service.acl_global_blocked,
            };
            family
                .with_label_values(&[caller_app_id, trust_domain, namespace])
                .inc();
        }
    }

    /// A workflow access policy decision about `caller_app_id` doing `operation` on an
    /// `operation_type` (`workflow` or `activity`).
    pub fn record_workflow_access(
        &self,
        caller_app_id: &str,
        operation_type: &str,
        operation: &str,
        allowed: bool,
    ) {
        if let Some(families) = self.families() {
            let family = if allowed {
                &families.service.workflow_acl_allowed
            } else {
                &families.service.workflow_acl_denied
            };
            family
                .with_label_values(&[
                    families.app_id.as_str(),
                    caller_app_id,
                    operation,
                    operation_type,
                ])
                .inc();
        }
    }

    /// A service invocation request was sent to `destination_app_id`.
    pub fn record_invocation_request_sent(&self, destination_app_id: &str, kind: InvocationKind) {
        if let Some(families) = self.families() {
            families
                .service
                .invocation_requests_sent
                .with_label_values(&[families.app_id.as_str(), destination_app_id, kind.label()])
                .inc();
        }
    }

    /// A service invocation request arrived from `source_app_id`.
    pub fn record_invocation_request_received(&self, source_app_id: &str) {
        if let Some(families) = self.families() {
            families
                .service
                .invocation_requests_received
                .with_label_values(&[families.app_id.as_str(), source_app_id])
                .inc();
        }
    }

    /// This sidecar answered an invocation from `caller_app_id` with `status` (the HTTP
    /// status or gRPC code of the app's response). Upstream labels the caller `dst_app_id`.
    pub fn record_invocation_response_sent(&self, caller_app_id: &str, status: i32) {
        if let Some(families) = self.families() {
            let status = IntLabel::new(status);
            families
                .service
                .invocation_responses_sent
                .with_label_values(&[families.app_id.as_str(), caller_app_id, status.as_str()])
                .inc();
        }
    }

    /// The response of an invocation sent to `target_app_id` arrived with `status`, after
    /// `elapsed` (the latency is recorded for unary calls only, as upstream). Upstream labels
    /// the target `src_app_id` (it is where the response came from).
    pub fn record_invocation_response_received(
        &self,
        target_app_id: &str,
        status: i32,
        kind: InvocationKind,
        elapsed: Duration,
    ) {
        if let Some(families) = self.families() {
            let status = IntLabel::new(status);
            let app = families.app_id.as_str();
            families
                .service
                .invocation_responses_received
                .with_label_values(&[app, target_app_id, status.as_str(), kind.label()])
                .inc();
            if kind == InvocationKind::Unary {
                families
                    .service
                    .invocation_response_latency
                    .with_label_values(&[app, target_app_id, status.as_str()])
                    .observe(fractional_millis(elapsed));
            }
        }
    }
}
