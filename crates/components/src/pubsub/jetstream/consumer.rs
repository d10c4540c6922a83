//! The JetStream push consumer behind one subscription, set up as upstream's component
//! sets it up: the consumer configuration built from the component settings, and the
//! binding that reuses an existing durable consumer (checking that it fits, with the Go
//! client's rules and words) or creates one.

use async_nats::jetstream;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{Consumer, push};
use async_nats::jetstream::stream::ConsumerErrorKind;

use super::settings::{AckPolicy, DeliverPolicy, Settings};
use crate::pubsub::PubSubError;

/// The push consumer configuration for `topic`, delivering to `deliver_subject`.
pub(super) fn consumer_config(
    settings: &Settings,
    topic: &str,
    deliver_subject: String,
) -> Result<push::Config, PubSubError> {
    Ok(push::Config {
        deliver_subject,
        durable_name: settings.durable_name.clone(),
        deliver_group: settings.queue_group_name.clone(),
        deliver_policy: deliver_policy(settings)?,
        ack_policy: match settings.ack_policy {
            AckPolicy::Explicit => jetstream::consumer::AckPolicy::Explicit,
            AckPolicy::All => jetstream::consumer::AckPolicy::All,
            AckPolicy::None => jetstream::consumer::AckPolicy::None,
        },
        ack_wait: settings.ack_wait.unwrap_or_default(),
        max_deliver: settings.max_deliver,
        filter_subject: topic.to_owned(),
        rate_limit: settings.rate_limit,
        max_ack_pending: settings.max_ack_pending,
        flow_control: settings.flow_control,
        idle_heartbeat: settings.heartbeat.unwrap_or_default(),
        num_replicas: settings.replicas,
        memory_storage: settings.memory_storage,
        backoff: settings.back_off.clone(),
        ..Default::default()
    })
}

/// The consumer's deliver policy with its start sequence or time. The server rejects a
/// start option that does not go with the policy; so does this, with the server's words.
fn deliver_policy(settings: &Settings) -> Result<jetstream::consumer::DeliverPolicy, PubSubError> {
    use jetstream::consumer::DeliverPolicy as Nats;
    let (name, sequence, time) = (
        policy_name(settings.deliver_policy),
        settings.start_sequence,
        settings.start_time,
    );
    let reject = |what: &str| {
        Err(PubSubError::Backend(format!(
            "consumer delivery policy is deliver {name}, but optional start {what}"
        )))
    };
    match settings.deliver_policy {
        DeliverPolicy::Sequence => match (sequence, time) {
            (0, _) => reject("sequence is not set"),
            (_, Some(_)) => reject("time is also set"),
            (start_sequence, None) => Ok(Nats::ByStartSequence { start_sequence }),
        },
        DeliverPolicy::Time => match (sequence, time) {
            (_, None) => reject("time is not set"),
            (1.., _) => reject("sequence is also set"),
            (0, Some(seconds)) => {
                let nanos = i128::from(seconds) * 1_000_000_000;
                let start_time = async_nats::datetime::from_nanos(nanos).map_err(|error| {
                    PubSubError::Backend(format!("invalid startTime {seconds}: {error}"))
                })?;
                Ok(Nats::ByStartTime { start_time })
            }
        },
        DeliverPolicy::All | DeliverPolicy::Last | DeliverPolicy::New => match (sequence, time) {
            (1.., _) => reject("sequence is also set"),
            (_, Some(_)) => reject("time is also set"),
            (0, None) => Ok(match settings.deliver_policy {
                DeliverPolicy::Last => Nats::Last,
                DeliverPolicy::New => Nats::New,
                _ => Nats::All,
            }),
        },
    }
}

fn policy_name(policy: DeliverPolicy) -> &'static str {
    match policy {
        DeliverPolicy::All => "all",
        DeliverPolicy::Last => "last",
        DeliverPolicy::New => "new",
        DeliverPolicy::Sequence => "by start sequence",
        DeliverPolicy::Time => "by start time",
    }
}

/// The consumer a subscription to `topic` delivers from: the durable consumer named by
/// `requested` when it exists and fits, else a new one made from `requested`.
pub(super) async fn bind(
    context: &jetstream::Context,
    stream: &str,
    topic: &str,
    requested: push::Config,
) -> Result<Consumer<push::Config>, PubSubError> {
    let durable = requested.durable_name.clone();
    if let Some(name) = &durable
        && let Some(existing) = existing(context, stream, name).await?
    {
        check_reusable(existing.cached_info(), &requested, stream, topic)?;
        return Ok(existing);
    }
    match context
        .create_consumer_on_stream(requested.clone(), stream)
        .await
    {
        Ok(created) => Ok(created),
        Err(error) => {
            // Another instance created the durable consumer meanwhile: use that one.
            let taken = matches!(
                error.kind(),
                ConsumerErrorKind::JetStream(reason)
                    if reason.error_code() == ErrorCode::CONSUMER_NAME_EXIST
                        || reason.error_code() == ErrorCode::CONSUMER_ALREADY_EXISTS
            );
            let Some(name) = durable.filter(|_| taken) else {
                return Err(PubSubError::backend(error));
            };
            let existing = existing(context, stream, &name)
                .await?
                .ok_or_else(|| PubSubError::backend(error))?;
            check_reusable(existing.cached_info(), &requested, stream, topic)?;
            Ok(existing)
        }
    }
}

/// The durable consumer `name` on `stream`, if there is one.
async fn existing(
    context: &jetstream::Context,
    stream: &str,
    name: &str,
) -> Result<Option<Consumer<push::Config>>, PubSubError> {
    match context.get_consumer_from_stream(name, stream).await {
        Ok(consumer) => Ok(Some(consumer)),
        Err(error) => match error.kind() {
            ConsumerErrorKind::JetStream(reason)
                if reason.error_code() == ErrorCode::CONSUMER_NOT_FOUND =>
            {
                Ok(None)
            }
            ConsumerErrorKind::InvalidConsumerType => Err(PubSubError::Backend(
                "nats: must use pull subscribe to bind to pull based consumer".to_owned(),
            )),
            _ => Err(PubSubError::backend(error)),
        },
    }
}

/// Whether an existing consumer can serve this subscription: every option the settings
/// ask for must match it, it must filter on the topic, and its deliver group must be
/// the subscription's queue group.
fn check_reusable(
    existing: &jetstream::consumer::Info,
    requested: &push::Config,
    stream: &str,
    topic: &str,
) -> Result<(), PubSubError> {
    if let Some(difference) = config_difference(&existing.config, requested) {
        tracing::debug!("consumer {} differs: {difference}", existing.name);
        return Err(PubSubError::Backend(format!(
            "nats: consumer name is already in use: creating consumer {:?} on stream {stream:?}",
            existing.name
        )));
    }
    let filter = &existing.config.filter_subject;
    if !filter.is_empty() && filter != topic {
        return Err(PubSubError::Backend(
            "nats: subject does not match consumer".to_owned(),
        ));
    }
    let problem = match (&existing.config.deliver_group, &requested.deliver_group) {
        (None, Some(_)) => Some(
            "cannot create a queue subscription for a consumer without a deliver group".to_owned(),
        ),
        (None, None) if existing.push_bound => {
            Some("consumer is already bound to a subscription".to_owned())
        }
        (Some(group), None) => Some(format!(
            "cannot create a subscription for a consumer with a deliver group {group:?}"
        )),
        (Some(group), Some(queue)) if group != queue => Some(format!(
            "cannot create a queue subscription {queue:?} for a consumer with a deliver \
             group {group:?}"
        )),
        _ => None,
    };
    problem.map_or(Ok(()), |problem| Err(PubSubError::Backend(problem)))
}

/// The first option the settings ask for (a policy, or a non-zero or enabled value) that
/// the existing consumer does not have.
fn config_difference(
    existing: &jetstream::consumer::Config,
    requested: &push::Config,
) -> Option<String> {
    let differs = |name: &str, wanted: &dyn std::fmt::Debug, found: &dyn std::fmt::Debug| {
        Some(format!(
            "configuration requests {name} to be {wanted:?}, but consumer's value is {found:?}"
        ))
    };
    if requested.deliver_policy != existing.deliver_policy {
        return differs(
            "deliver policy",
            &requested.deliver_policy,
            &existing.deliver_policy,
        );
    }
    if requested.ack_policy != existing.ack_policy {
        return differs("ack policy", &requested.ack_policy, &existing.ack_policy);
    }
    if !requested.ack_wait.is_zero() && requested.ack_wait != existing.ack_wait {
        return differs("ack wait", &requested.ack_wait, &existing.ack_wait);
    }
    if requested.max_deliver > 0 && requested.max_deliver != existing.max_deliver {
        return differs("max deliver", &requested.max_deliver, &existing.max_deliver);
    }
    if requested.rate_limit > 0 && requested.rate_limit != existing.rate_limit {
        return differs("rate limit", &requested.rate_limit, &existing.rate_limit);
    }
    if requested.max_ack_pending > 0 && requested.max_ack_pending != existing.max_ack_pending {
        return differs(
            "max ack pending",
            &requested.max_ack_pending,
            &existing.max_ack_pending,
        );
    }
    if requested.flow_control && !existing.flow_control {
        return differs("flow control", &true, &false);
    }
    if !requested.idle_heartbeat.is_zero() && requested.idle_heartbeat != existing.idle_heartbeat {
        return differs(
            "heartbeat",
            &requested.idle_heartbeat,
            &existing.idle_heartbeat,
        );
    }
    if requested.num_replicas > 0 && requested.num_replicas != existing.num_replicas {
        return differs("replicas", &requested.num_replicas, &existing.num_replicas);
    }
    if requested.memory_storage && !existing.memory_storage {
        return differs("memory storage", &true, &false);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Properties;
    use serde_json::json;
    use std::time::Duration;

    fn settings(value: serde_json::Value) -> Settings {
        Settings::from_properties(&Properties::from_json(&value).unwrap()).unwrap()
    }

    #[test]
    fn the_consumer_carries_every_setting() {
        let settings = settings(json!({
            "natsURL": "nats://localhost:4222",
            "durableName": "orders",
            "queueGroupName": "workers",
            "ackWait": "2s",
            "maxDeliver": 5,
            "backOff": "1s,2s",
            "maxAckPending": 10,
            "replicas": 1,
            "memoryStorage": true,
            "rateLimit": 1000,
            "heartbeat": "5s",
            "flowControl": true,
            "ackPolicy": "all",
            "deliverPolicy": "new",
        }));
        let config = consumer_config(&settings, "orders.created", "_INBOX.x".into()).unwrap();
        assert_eq!(config.deliver_subject, "_INBOX.x");
        assert_eq!(config.durable_name.as_deref(), Some("orders"));
        assert_eq!(config.deliver_group.as_deref(), Some("workers"));
        assert_eq!(config.filter_subject, "orders.created");
        assert_eq!(config.ack_wait, Duration::from_secs(2));
        assert_eq!(config.max_deliver, 5);
        assert_eq!(
            config.backoff,
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(config.max_ack_pending, 10);
        assert_eq!(config.num_replicas, 1);
        assert!(config.memory_storage);
        assert_eq!(config.rate_limit, 1000);
        assert_eq!(config.idle_heartbeat, Duration::from_secs(5));
        assert!(config.flow_control);
        assert_eq!(config.ack_policy, jetstream::consumer::AckPolicy::All);
        assert_eq!(
            config.deliver_policy,
            jetstream::consumer::DeliverPolicy::New
        );
    }

    #[test]
    fn start_options_must_match_the_deliver_policy() {
        let url = "nats://localhost:4222";
        let config = |value| consumer_config(&settings(value), "t", "_INBOX.x".into());
        let by_sequence = config(json!({"natsURL": url, "deliverPolicy": "sequence",
            "startSequence": 7}))
        .unwrap();
        assert_eq!(
            by_sequence.deliver_policy,
            jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: 7 }
        );
        let by_time = config(json!({"natsURL": url, "deliverPolicy": "time",
            "startTime": 1_629_328_511}))
        .unwrap();
        assert!(matches!(
            by_time.deliver_policy,
            jetstream::consumer::DeliverPolicy::ByStartTime { start_time }
                if start_time.unix_timestamp() == 1_629_328_511
        ));
        let error = config(json!({"natsURL": url, "startSequence": 1})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "consumer delivery policy is deliver all, but optional start sequence is also set"
        );
        let error = config(json!({"natsURL": url, "deliverPolicy": "sequence"})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "consumer delivery policy is deliver by start sequence, but optional start \
             sequence is not set"
        );
        let error = config(json!({"natsURL": url, "deliverPolicy": "time"})).unwrap_err();
        assert!(error.to_string().contains("start time is not set"));
    }
}
