//! Resiliency resources as the sidecar applies them so far: the retry policy a
//! component's `inbound` target names, which governs pub/sub redelivery by daprd. Policy
//! text is read as upstream reads it: `constant` waits `duration` (default 5s) between
//! attempts, `exponential` grows from 500 ms by 1.5x with jitter up to `maxInterval`
//! (default 60s); `maxRetries` -1 (the default) retries forever, 0 never.

use dapr_kit::backoff::{BackoffPolicy, ConstantBackoff, ExponentialBackoff};
use dapr_resources::loader::Loaded;
use dapr_resources::resiliency::{Resiliency, Retry};

/// A retry policy that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResiliencyError {
    /// A target names a retry policy that no resource defines.
    #[error(
        "resiliency {resource}: retry policy {policy} referenced by component {component} is not defined"
    )]
    UnknownPolicy {
        /// The resource naming it.
        resource: String,
        /// The missing policy's name.
        policy: String,
        /// The component target.
        component: String,
    },
    /// A field of a retry policy is invalid.
    #[error("resiliency {resource}: retry policy {policy}: invalid {field} {value:?}")]
    InvalidField {
        /// The resource.
        resource: String,
        /// The policy.
        policy: String,
        /// The field (`policy`, `duration`, `maxInterval`).
        field: &'static str,
        /// Its text.
        value: String,
    },
}

/// The retry policy of `component`'s inbound target, from the first resource that names
/// one; `Ok(None)` when none does.
pub fn component_inbound_retry(
    resources: &[Loaded<Resiliency>],
    component: &str,
) -> Result<Option<BackoffPolicy>, ResiliencyError> {
    for loaded in resources {
        let resource = &loaded.resource;
        let Some(target) = resource.spec.targets.components.get(component) else {
            continue;
        };
        let name = &target.inbound.retry;
        if name.is_empty() {
            continue;
        }
        let Some(retry) = resource.spec.policies.retries.get(name) else {
            return Err(ResiliencyError::UnknownPolicy {
                resource: resource.metadata.name.clone().unwrap_or_default(),
                policy: name.clone(),
                component: component.to_owned(),
            });
        };
        return backoff(retry)
            .map(Some)
            .map_err(|(field, value)| ResiliencyError::InvalidField {
                resource: resource.metadata.name.clone().unwrap_or_default(),
                policy: name.clone(),
                field,
                value,
            });
    }
    Ok(None)
}

/// The delays of one retry policy; `Err` names the bad field and its text.
fn backoff(retry: &Retry) -> Result<BackoffPolicy, (&'static str, String)> {
    let max_retries = match retry.max_retries {
        None => None,
        Some(count) if count < 0 => None,
        Some(count) => Some(count.unsigned_abs()),
    };
    let duration = |field: &'static str, text: &str| {
        dapr_kit::duration::parse(text).map_err(|_| (field, text.to_owned()))
    };
    match retry.policy.to_ascii_lowercase().as_str() {
        "" | "constant" => {
            let mut constant = ConstantBackoff {
                max_retries,
                ..ConstantBackoff::default()
            };
            if !retry.duration.is_empty() {
                constant.interval = duration("duration", &retry.duration)?;
            }
            Ok(BackoffPolicy::Constant(constant))
        }
        "exponential" => {
            let mut exponential = ExponentialBackoff {
                max_retries,
                max_elapsed_time: None,
                ..ExponentialBackoff::default()
            };
            if !retry.max_interval.is_empty() {
                exponential.max_interval = duration("maxInterval", &retry.max_interval)?;
            }
            Ok(BackoffPolicy::Exponential(exponential))
        }
        _ => Err(("policy", retry.policy.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn resources(yaml: &str) -> Vec<Loaded<Resiliency>> {
        dapr_resources::loader::parse_str(std::path::Path::new("resiliency.yaml"), yaml)
            .unwrap()
            .resiliencies
    }

    #[test]
    fn inbound_retry_policies_are_found_by_component() {
        let loaded = resources(
            r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: res}
spec:
  policies:
    retries:
      three: {policy: constant, duration: 10ms, maxRetries: 3}
      grow: {policy: exponential, maxInterval: 2s}
  targets:
    components:
      bus: {inbound: {retry: three}}
      other: {outbound: {retry: grow}}
"#,
        );
        let policy = component_inbound_retry(&loaded, "bus").unwrap().unwrap();
        let delays: Vec<Duration> = policy.delays().collect();
        assert_eq!(delays, vec![Duration::from_millis(10); 3]);
        assert_eq!(component_inbound_retry(&loaded, "other").unwrap(), None);
        assert_eq!(component_inbound_retry(&loaded, "missing").unwrap(), None);
    }

    #[test]
    fn bad_policies_are_reported() {
        let loaded = resources(
            r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: res}
spec:
  policies:
    retries:
      bad: {policy: constant, duration: soon}
  targets:
    components:
      bus: {inbound: {retry: bad}}
      lost: {inbound: {retry: nowhere}}
"#,
        );
        assert_eq!(
            component_inbound_retry(&loaded, "bus")
                .unwrap_err()
                .to_string(),
            "resiliency res: retry policy bad: invalid duration \"soon\""
        );
        assert!(matches!(
            component_inbound_retry(&loaded, "lost"),
            Err(ResiliencyError::UnknownPolicy { .. })
        ));
    }
}
