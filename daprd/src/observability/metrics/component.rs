//! `dapr_component_*`: operations on the components behind each building block. Each
//! operation counts once; its latency is recorded only when it took measurable time, as
//! upstream does.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec};

use super::{MetricsError, Registrar, SidecarMetrics, bool_label, fractional_millis};

const APP_ID: &str = "app_id";
const COMPONENT: &str = "component";
const NAMESPACE: &str = "namespace";
const OPERATION: &str = "operation";
const SUCCESS: &str = "success";
const TOPIC: &str = "topic";
const PROCESS_STATUS: &str = "process_status";
const STATUS: &str = "status";

/// A count and a latency family with the same labels.
#[derive(Debug)]
struct CountAndLatency {
    count: IntCounterVec,
    latency: HistogramVec,
}

impl CountAndLatency {
    fn register(
        registrar: &Registrar<'_>,
        prefix: &str,
        what: &str,
        labels: &[&str],
    ) -> Result<Self, MetricsError> {
        Ok(CountAndLatency {
            count: registrar.counter(
                &format!("{prefix}_count"),
                &format!("Operations on {what}."),
                labels,
            )?,
            latency: registrar.latency(
                &format!("{prefix}_latencies"),
                &format!("Latency of operations on {what}, in milliseconds."),
                labels,
            )?,
        })
    }

    fn record(&self, labels: &[&str], elapsed: Duration) {
        self.count.with_label_values(labels).inc();
        if !elapsed.is_zero() {
            self.latency
                .with_label_values(labels)
                .observe(fractional_millis(elapsed));
        }
    }
}

/// The component families.
#[derive(Debug)]
pub(super) struct ComponentFamilies {
    pubsub_ingress: CountAndLatency,
    bulk_pubsub_ingress: CountAndLatency,
    bulk_pubsub_ingress_events: IntCounterVec,
    pubsub_egress: CountAndLatency,
    bulk_pubsub_egress: CountAndLatency,
    bulk_pubsub_egress_events: IntCounterVec,
    input_binding: CountAndLatency,
    output_binding: CountAndLatency,
    state: CountAndLatency,
    configuration: CountAndLatency,
    secret: CountAndLatency,
    conversation: CountAndLatency,
    crypto: CountAndLatency,
    job_success: IntCounterVec,
    job_failure: IntCounterVec,
    job_latency: HistogramVec,
}

impl ComponentFamilies {
    pub(super) fn register(registrar: &Registrar<'_>) -> Result<Self, MetricsError> {
        let ingress = [APP_ID, COMPONENT, NAMESPACE, PROCESS_STATUS, TOPIC, STATUS];
        let bulk_ingress = [APP_ID, COMPONENT, NAMESPACE, PROCESS_STATUS, TOPIC];
        let egress = [APP_ID, COMPONENT, NAMESPACE, SUCCESS, TOPIC];
        let operation = [APP_ID, COMPONENT, NAMESPACE, OPERATION, SUCCESS];
        let outcome = [APP_ID, COMPONENT, NAMESPACE, SUCCESS];
        let family = |prefix: &str, what: &str, labels: &[&str]| {
            CountAndLatency::register(registrar, prefix, what, labels)
        };
        Ok(ComponentFamilies {
            pubsub_ingress: family(
                "dapr_component_pubsub_ingress",
                "messages delivered from pub/sub to the app",
                &ingress,
            )?,
            bulk_pubsub_ingress: family(
                "dapr_component_pubsub_ingress_bulk",
                "bulk deliveries from pub/sub to the app",
                &bulk_ingress,
            )?,
            bulk_pubsub_ingress_events: registrar.counter(
                "dapr_component_pubsub_ingress_bulk_event_count",
                "Recordings of messages delivered through bulk subscriptions.",
                &bulk_ingress,
            )?,
            pubsub_egress: family(
                "dapr_component_pubsub_egress",
                "messages published to pub/sub",
                &egress,
            )?,
            bulk_pubsub_egress: family(
                "dapr_component_pubsub_egress_bulk",
                "bulk publishes to pub/sub",
                &egress,
            )?,
            bulk_pubsub_egress_events: registrar.counter(
                "dapr_component_pubsub_egress_bulk_event_count",
                "Recordings of messages published through bulk publish.",
                &egress,
            )?,
            input_binding: family(
                "dapr_component_input_binding",
                "events from input bindings delivered to the app",
                &outcome,
            )?,
            output_binding: family(
                "dapr_component_output_binding",
                "output bindings",
                &operation,
            )?,
            state: family("dapr_component_state", "state stores", &operation)?,
            configuration: family(
                "dapr_component_configuration",
                "configuration stores",
                &operation,
            )?,
            secret: family("dapr_component_secret", "secret stores", &operation)?,
            conversation: family(
                "dapr_component_conversation",
                "conversation components",
                &outcome,
            )?,
            crypto: family("dapr_component_crypto", "crypto components", &operation)?,
            job_success: registrar.counter(
                "dapr_component_job_success_count",
                "Job triggers the app handled.",
                &[APP_ID, NAMESPACE, OPERATION],
            )?,
            job_failure: registrar.counter(
                "dapr_component_job_failure_count",
                "Job triggers the app failed to handle.",
                &[APP_ID, NAMESPACE, OPERATION],
            )?,
            job_latency: registrar.latency(
                "dapr_component_job_latencies",
                "Time the app took to handle a job trigger, in milliseconds.",
                &[APP_ID, NAMESPACE, OPERATION, SUCCESS],
            )?,
        })
    }
}

/// Building blocks whose component operations are counted and timed alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// Output bindings (`dapr_component_output_binding_*`).
    OutputBinding,
    /// State stores (`dapr_component_state_*`).
    State,
    /// Configuration stores (`dapr_component_configuration_*`).
    Configuration,
    /// Secret stores (`dapr_component_secret_*`).
    Secret,
}

/// Operation names upstream uses in the `operation` label.
pub mod operation {
    /// A delete.
    pub const DELETE: &str = "delete";
    /// A get.
    pub const GET: &str = "get";
    /// A set.
    pub const SET: &str = "set";
    /// A state query.
    pub const QUERY: &str = "query";
    /// A configuration subscription.
    pub const SUBSCRIBE: &str = "subscribe";
    /// A configuration unsubscription.
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    /// A state transaction.
    pub const TRANSACTION: &str = "transaction";
    /// A bulk get.
    pub const BULK_GET: &str = "bulk_get";
    /// A bulk delete.
    pub const BULK_DELETE: &str = "bulk_delete";
    /// A crypto operation.
    pub const CRYPTO: &str = "crypto_op";
    /// A job trigger.
    pub const JOB_TRIGGER: &str = "job_trigger_op";
}

impl SidecarMetrics {
    fn with_component<R>(
        &self,
        record: impl FnOnce(&super::Families, &str, &str) -> R,
    ) -> Option<R> {
        self.families()
            .map(|families| record(families, &families.app_id, &families.namespace))
    }

    /// A message from pub/sub `component` on `topic` was handled by the app:
    /// `process_status` is `success`, `retry` or `drop`; `status` the app's answer
    /// (defaults to the process status when empty).
    pub fn record_pubsub_ingress(
        &self,
        component: &str,
        topic: &str,
        process_status: &str,
        status: &str,
        elapsed: Duration,
    ) {
        let status = if status.is_empty() {
            process_status
        } else {
            status
        };
        self.with_component(|families, app, namespace| {
            families.component.pubsub_ingress.record(
                &[app, component, namespace, process_status, topic, status],
                elapsed,
            );
        });
    }

    /// A bulk delivery from pub/sub `component` on `topic` was handled by the app.
    pub fn record_bulk_pubsub_ingress(&self, component: &str, topic: &str, elapsed: Duration) {
        self.with_component(|families, app, namespace| {
            families
                .component
                .bulk_pubsub_ingress
                .record(&[app, component, namespace, "", topic], elapsed);
        });
    }

    /// Entries of a bulk delivery ended with `process_status`. Like upstream's count
    /// view, this counts recordings (one per call with entries), not entries.
    pub fn record_bulk_pubsub_ingress_entries(
        &self,
        component: &str,
        topic: &str,
        process_status: &str,
        entries: u64,
    ) {
        if entries == 0 {
            return;
        }
        self.with_component(|families, app, namespace| {
            families
                .component
                .bulk_pubsub_ingress_events
                .with_label_values(&[app, component, namespace, process_status, topic])
                .inc();
        });
    }

    /// A message was published to pub/sub `component` on `topic`.
    pub fn record_pubsub_egress(
        &self,
        component: &str,
        topic: &str,
        succeeded: bool,
        elapsed: Duration,
    ) {
        self.with_component(|families, app, namespace| {
            families.component.pubsub_egress.record(
                &[app, component, namespace, bool_label(succeeded), topic],
                elapsed,
            );
        });
    }

    /// A bulk publish of `entries` messages to pub/sub `component` on `topic`.
    pub fn record_bulk_pubsub_egress(
        &self,
        component: &str,
        topic: &str,
        succeeded: bool,
        entries: u64,
        elapsed: Duration,
    ) {
        self.with_component(|families, app, namespace| {
            let labels = [app, component, namespace, bool_label(succeeded), topic];
            families
                .component
                .bulk_pubsub_egress
                .record(&labels, elapsed);
            if entries > 0 {
                // Upstream always labels these recordings successful.
                families
                    .component
                    .bulk_pubsub_egress_events
                    .with_label_values(&[app, component, namespace, "true", topic])
                    .inc();
            }
        });
    }

    /// An input binding event from `component` was handled by the app.
    pub fn record_input_binding(&self, component: &str, succeeded: bool, elapsed: Duration) {
        self.with_component(|families, app, namespace| {
            families
                .component
                .input_binding
                .record(&[app, component, namespace, bool_label(succeeded)], elapsed);
        });
    }

    /// A `kind` component named `component` ran `operation` (see [`operation`]).
    pub fn record_component_operation(
        &self,
        kind: OperationKind,
        component: &str,
        operation: &str,
        succeeded: bool,
        elapsed: Duration,
    ) {
        self.with_component(|families, app, namespace| {
            let family = match kind {
                OperationKind::OutputBinding => &families.component.output_binding,
                OperationKind::State => &families.component.state,
                OperationKind::Configuration => &families.component.configuration,
                OperationKind::Secret => &families.component.secret,
            };
            family.record(
                &[app, component, namespace, operation, bool_label(succeeded)],
                elapsed,
            );
        });
    }

    /// Conversation component `component` answered.
    pub fn record_conversation(&self, component: &str, succeeded: bool, elapsed: Duration) {
        self.with_component(|families, app, namespace| {
            families
                .component
                .conversation
                .record(&[app, component, namespace, bool_label(succeeded)], elapsed);
        });
    }

    /// Crypto component `component` ran `operation`.
    pub fn record_crypto(
        &self,
        component: &str,
        operation: &str,
        succeeded: bool,
        elapsed: Duration,
    ) {
        self.with_component(|families, app, namespace| {
            families.component.crypto.record(
                &[app, component, namespace, operation, bool_label(succeeded)],
                elapsed,
            );
        });
    }

    /// A job trigger (`operation`) was delivered to the app.
    pub fn record_job_triggered(&self, operation: &str, succeeded: bool, elapsed: Duration) {
        self.with_component(|families, app, namespace| {
            let count = if succeeded {
                &families.component.job_success
            } else {
                &families.component.job_failure
            };
            count.with_label_values(&[app, namespace, operation]).inc();
            if !elapsed.is_zero() {
                families
                    .component
                    .job_latency
                    .with_label_values(&[app, namespace, operation, bool_label(succeeded)])
                    .observe(fractional_millis(elapsed));
            }
        });
    }
}
