//! The AMQP properties of a published message, as upstream's binding sets them: persistent,
//! `text/plain` unless `contentType` says otherwise, every request metadata entry as a
//! string header, the expiration from `ttl`/`ttlInSeconds`, the `priority` (clamped to
//! 0..=255) and the `messageID`, `correlationID` and `type` properties.

use std::collections::HashMap;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};

use crate::bindings::BindingError;
use crate::pubsub::rabbitmq::lookup;
use crate::pubsub::rabbitmq::settings::message_ttl;

/// AMQP's persistent delivery mode.
const PERSISTENT: u8 = 2;
/// Request metadata naming the message's priority.
const PRIORITY_KEY: &str = "priority";

/// The properties for a message published with `metadata`.
pub(super) fn properties(
    metadata: &HashMap<String, String>,
) -> Result<BasicProperties, BindingError> {
    let mut headers = FieldTable::default();
    for (name, value) in metadata {
        headers.insert(
            name.as_str().into(),
            AMQPValue::LongString(value.as_str().into()),
        );
    }
    let mut properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type("text/plain".into())
        .with_headers(headers);
    let ttl = message_ttl(metadata)
        .map_err(|reason| BindingError::InvalidRequest(format!("failed to get TTL: {reason}")))?;
    if let Some(ttl) = ttl {
        // RabbitMQ takes the expiration in milliseconds.
        properties = properties.with_expiration(ttl.as_millis().to_string().into());
    }
    if let Some(text) = metadata.get(PRIORITY_KEY).filter(|text| !text.is_empty()) {
        let priority = text.parse::<i64>().map_err(|_| {
            BindingError::InvalidRequest(format!(
                "{PRIORITY_KEY} value must be a valid integer: actual is '{text}'"
            ))
        })?;
        properties =
            properties.with_priority(u8::try_from(priority.clamp(0, 255)).unwrap_or(u8::MAX));
    }
    if let Some(value) = lookup(metadata, "contentType") {
        properties = properties.with_content_type(value.into());
    }
    if let Some(value) = lookup(metadata, "messageID") {
        properties = properties.with_message_id(value.into());
    }
    if let Some(value) = lookup(metadata, "correlationID") {
        properties = properties.with_correlation_id(value.into());
    }
    if let Some(value) = lookup(metadata, "type") {
        properties = properties.with_type(value.into());
    }
    Ok(properties)
}
