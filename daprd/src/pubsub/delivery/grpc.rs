//! Delivery to a gRPC app: `AppCallback/OnTopicEvent` with the CloudEvent's fields, the
//! data decoded as upstream does (`data_base64` decoded; text data as its bytes; JSON
//! data re-encoded), the other CloudEvent fields as `extensions`, and the message
//! metadata as gRPC metadata. `SUCCESS` acknowledges, `RETRY` or an unknown status
//! retries, `DROP` drops; an app without `OnTopicEvent` (`Unimplemented`) drops the event
//! without dead-lettering it; any other error retries.

use std::time::Instant;

use base64::Engine;
use dapr_proto::runtime::app_callback_client::AppCallbackClient;
use dapr_proto::runtime::{TopicEventRequest, topic_event_response::TopicEventResponseStatus};
use serde_json::Value;
use tonic::metadata::{AsciiMetadataValue, MetadataKey};
use tonic::transport::Channel;

use super::event::ReceivedEvent;
use super::outcome::Outcome;
use crate::api::middleware::API_TOKEN_HEADER;
use crate::go_json::encode_value;
use crate::observability::metrics::SidecarMetrics;
use crate::pubsub::content_type;

/// CloudEvent fields that have their own `TopicEventRequest` field.
const ENVELOPE_FIELDS: [&str; 7] = [
    "id",
    "source",
    "datacontenttype",
    "type",
    "specversion",
    "data",
    "data_base64",
];

/// Delivers `event` to the app's `OnTopicEvent` with `path` and classifies the answer.
pub async fn deliver(
    transport: Channel,
    api_token: Option<&str>,
    metrics: &SidecarMetrics,
    pubsub: &str,
    event: &ReceivedEvent,
    path: &str,
) -> Outcome {
    let started = Instant::now();
    let record = |process: &str, status: &str| {
        metrics.record_pubsub_ingress(pubsub, &event.topic, process, status, started.elapsed());
    };
    let envelope = match envelope(event, pubsub, path) {
        Ok(envelope) => envelope,
        Err(reason) => {
            record("retry", "");
            return Outcome::Retry(format!(
                "error returned from app while processing pub/sub event: {reason}"
            ));
        }
    };
    let mut request = tonic::Request::new(envelope);
    for (key, value) in &event.metadata {
        if key.eq_ignore_ascii_case("content-type") || key.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes()),
            AsciiMetadataValue::try_from(value.as_str()),
        ) {
            request.metadata_mut().append(key, value);
        }
    }
    if let Some(parent) = event.trace_parent()
        && !request.metadata().contains_key("traceparent")
        && let Ok(value) = AsciiMetadataValue::try_from(parent)
    {
        request.metadata_mut().insert("traceparent", value);
    }
    if let Some(token) = api_token
        && let Ok(value) = AsciiMetadataValue::try_from(token)
    {
        request.metadata_mut().insert(API_TOKEN_HEADER, value);
    }
    match AppCallbackClient::new(transport)
        .on_topic_event(request)
        .await
    {
        Ok(response) => match TopicEventResponseStatus::try_from(response.into_inner().status) {
            Ok(TopicEventResponseStatus::Success) => {
                record("success", "");
                Outcome::Success
            }
            Ok(TopicEventResponseStatus::Drop) => {
                tracing::warn!(
                    "DROP status returned from app while processing pub/sub event {}",
                    event.id()
                );
                record("drop", "success");
                Outcome::Dropped { dead_letter: true }
            }
            Ok(TopicEventResponseStatus::Retry) => {
                record("retry", "");
                Outcome::Retry(format!(
                    "RETRY status returned from app while processing pub/sub event {}",
                    event.id()
                ))
            }
            Err(unknown) => {
                record("retry", "");
                Outcome::Retry(format!(
                    "unknown status returned from app while processing pub/sub event {}, status: {}",
                    event.id(),
                    unknown.0
                ))
            }
        },
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            tracing::warn!(
                "non-retriable error returned from app while processing pub/sub event {}: {status}",
                event.id()
            );
            record("drop", "");
            Outcome::Dropped { dead_letter: false }
        }
        Err(status) => {
            record("retry", "");
            Outcome::Retry(format!(
                "error returned from app while processing pub/sub event {}: {status}",
                event.id()
            ))
        }
    }
}

/// The `TopicEventRequest` for `event`.
pub fn envelope(
    event: &ReceivedEvent,
    pubsub: &str,
    path: &str,
) -> Result<TopicEventRequest, String> {
    let content_type = event.field("datacontenttype").to_owned();
    let data = match (
        event.cloud_event.get("data_base64"),
        event.cloud_event.get("data"),
    ) {
        (Some(Value::String(encoded)), _) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| {
                format!("unable to base64 decode cloudEvent field data_base64: {error}")
            })?,
        (Some(Value::Null) | None, Some(data)) if !data.is_null() => {
            if content_type::is_string(&content_type) {
                match data {
                    Value::String(text) => text.clone().into_bytes(),
                    _ => return Err("unexpected data in cloud event envelope".to_owned()),
                }
            } else if content_type::is_json(&content_type)
                || content_type::is_cloud_event(&content_type)
            {
                encode_value(data)
            } else {
                Vec::new()
            }
        }
        (Some(Value::Null) | None, _) => Vec::new(),
        (Some(_), _) => return Err("unexpected data in cloud event envelope".to_owned()),
    };
    let extensions = event
        .cloud_event
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| !ENVELOPE_FIELDS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), to_proto_value(value)))
        .collect();
    Ok(TopicEventRequest {
        id: event.field("id").to_owned(),
        source: event.field("source").to_owned(),
        r#type: event.field("type").to_owned(),
        spec_version: event.field("specversion").to_owned(),
        data_content_type: content_type,
        data,
        topic: event.topic.clone(),
        pubsub_name: event
            .metadata
            .get(super::event::PUBSUB_NAME_KEY)
            .cloned()
            .unwrap_or_else(|| pubsub.to_owned()),
        path: path.to_owned(),
        extensions: Some(prost_types::Struct { fields: extensions }),
    })
}

/// A JSON value as a protobuf `Value` (numbers become doubles, as in `Struct`).
pub fn to_proto_value(value: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(flag) => Kind::BoolValue(*flag),
        Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or_default()),
        Value::String(text) => Kind::StringValue(text.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(to_proto_value).collect(),
        }),
        Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields
                .iter()
                .map(|(key, item)| (key.clone(), to_proto_value(item)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::delivery::event::receive;
    use dapr_components::pubsub::Message;

    fn event(body: &str) -> ReceivedEvent {
        let message = Message {
            topic: "orders".into(),
            data: bytes::Bytes::from(body.to_owned()),
            ..Message::default()
        };
        receive(message, "orders", "bus", false).unwrap()
    }

    #[test]
    fn envelopes_carry_the_cloud_event_fields_and_decoded_data() {
        let request = envelope(
            &event(
                r#"{"id":"1","source":"app","type":"t","specversion":"1.0","datacontenttype":"application/json","data":{"b":1.0,"a":"<"},"traceid":"x","custom":7}"#,
            ),
            "bus",
            "/orders",
        )
        .unwrap();
        assert_eq!(request.id, "1");
        assert_eq!(request.source, "app");
        assert_eq!(request.data, br#"{"a":"\u003c","b":1}"#);
        assert_eq!(request.pubsub_name, "bus");
        assert_eq!(request.path, "/orders");
        let extensions = request.extensions.unwrap().fields;
        assert!(extensions.contains_key("traceid"));
        assert!(extensions.contains_key("custom"));
        assert!(!extensions.contains_key("data"));
        assert!(!extensions.contains_key("id"));
    }

    #[test]
    fn text_and_base64_data_become_bytes() {
        let text = envelope(
            &event(r#"{"id":"1","datacontenttype":"text/plain","data":"hi"}"#),
            "bus",
            "",
        )
        .unwrap();
        assert_eq!(text.data, b"hi");
        let binary = envelope(&event(r#"{"id":"1","data_base64":"AQI="}"#), "bus", "").unwrap();
        assert_eq!(binary.data, [1, 2]);
        assert!(envelope(&event(r#"{"id":"1","data_base64":"%%"}"#), "bus", "").is_err());
        assert!(
            envelope(
                &event(r#"{"id":"1","datacontenttype":"text/plain","data":{"a":1}}"#),
                "bus",
                ""
            )
            .is_err()
        );
    }
}
