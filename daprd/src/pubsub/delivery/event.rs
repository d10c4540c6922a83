//! A broker's message turned into the event the app receives, as upstream prepares it:
//! the message is a CloudEvent (JSON) unless the subscription asks for `rawPayload`, in
//! which case a CloudEvent is made around it (`data_base64`, a fresh id); a binary
//! message (`application/octet-stream`) gets its CloudEvent from `ce_*` metadata. Trace
//! fields missing from the event are taken from the message's metadata. HTTP apps receive
//! the message's bytes as they are (or the made CloudEvent); the parsed event drives
//! routing, expiry and the gRPC request.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use bytes::Bytes;
use dapr_components::pubsub::Message;
use serde_json::{Map, Value};

use crate::go_json::{GoValue, encode_go_value};
use crate::pubsub::cloudevent::{DEFAULT_TYPE, SPEC_VERSION};

/// The metadata key naming the pub/sub component on delivered messages.
pub const PUBSUB_NAME_KEY: &str = "pubsubName";
/// The metadata key carrying the message's content type.
const CONTENT_TYPE_KEY: &str = "content-type";
/// The content type assumed when a message has none.
const DEFAULT_CONTENT_TYPE: &str = "application/json";
/// The metadata prefix of a binary-mode CloudEvent's attributes.
const BINARY_ATTRIBUTE_PREFIX: &str = "ce_";
/// The subscription metadata asking for raw payloads.
pub const RAW_PAYLOAD_KEY: &str = "rawPayload";
/// Trace fields an event may carry.
const TRACE_ID: &str = "traceid";
const TRACE_PARENT: &str = "traceparent";
const TRACE_STATE: &str = "tracestate";

/// An event ready for the app.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// The CloudEvent (always a JSON object).
    pub cloud_event: Value,
    /// The bytes an HTTP app receives.
    pub body: Bytes,
    /// The message's metadata (with `pubsubName` and `content-type`), sent to the app
    /// as headers or gRPC metadata.
    pub metadata: HashMap<String, String>,
    /// The app's topic (namespace prefix removed).
    pub topic: String,
}

impl ReceivedEvent {
    /// A string field of the CloudEvent, or `""`.
    pub fn field(&self, name: &str) -> &str {
        self.cloud_event
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The event's id, for logs.
    pub fn id(&self) -> &str {
        self.field("id")
    }

    /// The W3C trace context the event carries (`traceparent`, else `traceid`).
    pub fn trace_parent(&self) -> Option<&str> {
        [TRACE_PARENT, TRACE_ID]
            .iter()
            .find_map(|key| self.cloud_event.get(*key).and_then(Value::as_str))
            .filter(|value| !value.is_empty())
    }
}

/// Why a message cannot be made into an event (the message goes to the dead-letter topic
/// or back to the broker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The subscription's `rawPayload` metadata is not a boolean.
    #[error("error deserializing pubsub metadata: {0}")]
    Metadata(String),
    /// The message is not a JSON CloudEvent.
    #[error("error deserializing cloud event in pubsub {pubsub} and topic {topic}: {reason}")]
    Decode {
        /// The component.
        pubsub: String,
        /// The topic.
        topic: String,
        /// The decoder's complaint.
        reason: String,
    },
}

/// Reads a subscription's `rawPayload` metadata as Go's `strconv.ParseBool` does.
pub fn raw_payload(metadata: &BTreeMap<String, String>) -> Result<bool, EventError> {
    let Some(value) = metadata
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(RAW_PAYLOAD_KEY))
        .map(|(_, value)| value.as_str())
    else {
        return Ok(false);
    };
    match value {
        "" => Ok(false),
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(EventError::Metadata(format!(
            "strconv.ParseBool: parsing \"{other}\": invalid syntax"
        ))),
    }
}

/// Prepares `message` of `topic` (the app's name for it) from component `pubsub`.
pub fn receive(
    mut message: Message,
    topic: &str,
    pubsub: &str,
    raw: bool,
) -> Result<ReceivedEvent, EventError> {
    if let Some(content_type) = message.content_type.take() {
        message
            .metadata
            .insert(CONTENT_TYPE_KEY.to_owned(), content_type);
    }
    let content_type = message
        .metadata
        .get(CONTENT_TYPE_KEY)
        .cloned()
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
    message
        .metadata
        .insert(PUBSUB_NAME_KEY.to_owned(), pubsub.to_owned());

    let (cloud_event, body) = if raw {
        let mut fields = BTreeMap::from([
            (
                "id".to_owned(),
                GoValue::text(uuid::Uuid::new_v4().to_string()),
            ),
            ("specversion".to_owned(), GoValue::text(SPEC_VERSION)),
            (
                "datacontenttype".to_owned(),
                GoValue::text("application/octet-stream"),
            ),
            ("source".to_owned(), GoValue::text("Dapr")),
            ("type".to_owned(), GoValue::text(DEFAULT_TYPE)),
            ("topic".to_owned(), GoValue::text(topic)),
            ("pubsubname".to_owned(), GoValue::text(pubsub)),
            (
                "data_base64".to_owned(),
                GoValue::text(base64::engine::general_purpose::STANDARD.encode(&message.data)),
            ),
        ]);
        if let Some(trace_id) = message.metadata.get(TRACE_ID) {
            fields.insert(TRACE_ID.to_owned(), GoValue::text(trace_id));
        }
        if let Some(parent) = message.metadata.get(TRACE_PARENT) {
            fields.insert(TRACE_PARENT.to_owned(), GoValue::text(parent));
            fields.insert(TRACE_ID.to_owned(), GoValue::text(parent));
        }
        if let Some(state) = message.metadata.get(TRACE_STATE) {
            fields.insert(TRACE_STATE.to_owned(), GoValue::text(state));
        }
        let body = Bytes::from(encode_go_value(&GoValue::Object(fields)));
        let cloud_event = match serde_json::from_slice(&body) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        (cloud_event, body)
    } else if crate::pubsub::content_type::is_binary(&content_type) {
        let mut cloud_event = Map::new();
        for (key, value) in &message.metadata {
            let lowered = key.to_ascii_lowercase();
            if let Some(attribute) = lowered.strip_prefix(BINARY_ATTRIBUTE_PREFIX) {
                cloud_event.insert(attribute.to_owned(), Value::String(value.clone()));
            }
        }
        // Go marshals a byte slice as base64 text.
        cloud_event.insert(
            "data".to_owned(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(&message.data)),
        );
        cloud_event.insert(
            "datacontenttype".to_owned(),
            Value::String(content_type.clone()),
        );
        (cloud_event, message.data.clone())
    } else {
        let mut cloud_event = match serde_json::from_slice::<Value>(&message.data) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(EventError::Decode {
                    pubsub: pubsub.to_owned(),
                    topic: topic.to_owned(),
                    reason: format!(
                        "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                        json_kind(&other)
                    ),
                });
            }
            Err(error) => {
                return Err(EventError::Decode {
                    pubsub: pubsub.to_owned(),
                    topic: topic.to_owned(),
                    reason: error.to_string(),
                });
            }
        };
        if !cloud_event.contains_key(TRACE_ID)
            && let Some(trace_id) = message.metadata.get(TRACE_ID)
        {
            cloud_event.insert(TRACE_ID.to_owned(), Value::String(trace_id.clone()));
        }
        if !cloud_event.contains_key(TRACE_PARENT)
            && let Some(parent) = message.metadata.get(TRACE_PARENT)
        {
            cloud_event.insert(TRACE_PARENT.to_owned(), Value::String(parent.clone()));
            cloud_event.insert(TRACE_ID.to_owned(), Value::String(parent.clone()));
        }
        if !cloud_event.contains_key(TRACE_STATE)
            && let Some(state) = message.metadata.get(TRACE_STATE)
        {
            cloud_event.insert(TRACE_STATE.to_owned(), Value::String(state.clone()));
        }
        (cloud_event, message.data.clone())
    };
    Ok(ReceivedEvent {
        cloud_event: Value::Object(cloud_event),
        body,
        metadata: message.metadata,
        topic: topic.to_owned(),
    })
}

/// Go's name for a JSON value's kind in unmarshal errors.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(data: &str) -> Message {
        Message {
            topic: "orders".into(),
            data: Bytes::from(data.to_owned()),
            metadata: HashMap::new(),
            content_type: None,
        }
    }

    #[test]
    fn cloud_events_pass_through_with_trace_fallbacks() {
        let mut incoming = message(r#"{"id":"1","data":{"n":1},"type":"t"}"#);
        incoming
            .metadata
            .insert("traceparent".into(), "00-abc-def-01".into());
        let event = receive(incoming, "orders", "bus", false).unwrap();
        assert_eq!(event.body, r#"{"id":"1","data":{"n":1},"type":"t"}"#);
        assert_eq!(event.id(), "1");
        assert_eq!(event.trace_parent(), Some("00-abc-def-01"));
        assert_eq!(event.cloud_event["traceid"], "00-abc-def-01");
        assert_eq!(event.metadata[PUBSUB_NAME_KEY], "bus");
    }

    #[test]
    fn raw_payloads_are_wrapped_in_a_fresh_cloud_event() {
        let event = receive(message("not json"), "orders", "bus", true).unwrap();
        let body: Value = serde_json::from_slice(&event.body).unwrap();
        assert_eq!(body["data_base64"], "bm90IGpzb24=");
        assert_eq!(body["datacontenttype"], "application/octet-stream");
        assert_eq!(body["topic"], "orders");
        assert_eq!(body["pubsubname"], "bus");
        assert_eq!(body["source"], "Dapr");
        assert_eq!(body["specversion"], "1.0");
        assert!(!event.id().is_empty());
    }

    #[test]
    fn messages_that_are_not_cloud_events_are_refused() {
        let error = receive(message("[1]"), "orders", "bus", false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "error deserializing cloud event in pubsub bus and topic orders: json: cannot \
             unmarshal array into Go value of type map[string]interface {}"
        );
        assert!(receive(message("{"), "orders", "bus", false).is_err());
    }

    #[test]
    fn binary_messages_take_their_attributes_from_metadata() {
        let mut incoming = message("\u{1}\u{2}");
        incoming.content_type = Some("application/octet-stream".into());
        incoming.metadata.insert("ce_id".into(), "7".into());
        incoming.metadata.insert("Ce_Type".into(), "bin".into());
        let event = receive(incoming, "orders", "bus", false).unwrap();
        assert_eq!(event.id(), "7");
        assert_eq!(event.field("type"), "bin");
        assert_eq!(event.field("data"), "AQI=");
        assert_eq!(event.body.as_ref(), b"\x01\x02");
        assert_eq!(event.metadata["content-type"], "application/octet-stream");
    }

    #[test]
    fn raw_payload_metadata_is_a_go_boolean() {
        let mut metadata = BTreeMap::new();
        assert!(!raw_payload(&metadata).unwrap());
        metadata.insert("rawPayload".into(), "True".into());
        assert!(raw_payload(&metadata).unwrap());
        metadata.insert("rawPayload".into(), "yes".into());
        assert!(raw_payload(&metadata).is_err());
    }
}
