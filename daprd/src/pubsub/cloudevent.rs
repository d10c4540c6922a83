//! The CloudEvents envelopes daprd publishes, as upstream builds them (`NewCloudEvent`,
//! components-contrib's `NewCloudEventsEnvelope`, `FromCloudEvent` and `ApplyMetadata`).
//!
//! A payload becomes `data` decoded from JSON (numbers keep their text) when its content
//! type is JSON, `data_base64` when it is binary or a protobuf CloudEvent, and text
//! otherwise. An `application/cloudevents+json` payload is the envelope itself: its
//! `topic` and `pubsubname` are set, missing trace, `time`, `source`, `type` and
//! `specversion` fields are filled, and `cloudevent.*` metadata is ignored. For other
//! payloads `cloudevent.id`, `source`, `type`, `subject`, `traceid`, `traceparent` and
//! `tracestate` metadata (names in any case) override the envelope's fields.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use base64::Engine;
use dapr_components::pubsub::Feature;

use super::content_type;
use crate::go_json::{DecodeError, GoValue, decode_precise, decode_precise_object};

/// The `type` of events daprd publishes.
pub const DEFAULT_TYPE: &str = "com.dapr.event.sent";
/// The CloudEvents version of the envelopes.
pub const SPEC_VERSION: &str = "1.0";
/// The `source` when none is given.
const DEFAULT_SOURCE: &str = "Dapr";
/// The `datacontenttype` when none is given.
const DEFAULT_DATA_CONTENT_TYPE: &str = "text/plain";
/// Publish metadata asking for a time to live (a Go duration or whole seconds).
const TTL_KEYS: [&str; 2] = ["ttl", "ttlInSeconds"];

/// A CloudEvent envelope: its fields by name.
pub type Envelope = BTreeMap<String, GoValue>;

/// What an envelope is built from.
#[derive(Debug, Clone, Copy)]
pub struct EventFacts<'a> {
    /// The publishing app's id (the default `source`).
    pub source: &'a str,
    /// The topic.
    pub topic: &'a str,
    /// The pub/sub component's name.
    pub pubsub: &'a str,
    /// The payload's content type (empty when the caller gave none).
    pub content_type: &'a str,
    /// The payload.
    pub data: &'a [u8],
    /// The W3C `traceparent` of the publishing call (empty without one).
    pub trace_parent: &'a str,
    /// The W3C `tracestate` of the publishing call.
    pub trace_state: &'a str,
}

/// The envelope for `facts`, with `metadata`'s `cloudevent.*` overrides; fails only for
/// a CloudEvent payload that is not a JSON object.
pub fn new_cloud_event(
    facts: &EventFacts<'_>,
    metadata: Option<&HashMap<String, String>>,
) -> Result<Envelope, DecodeError> {
    if content_type::is_cloud_event(facts.content_type) {
        return from_cloud_event(facts);
    }
    let over = |field: &str| override_value(metadata, field);
    let trace_id = over("traceid").unwrap_or(facts.trace_parent);
    let trace_parent = over("traceparent")
        .filter(|parent| !parent.is_empty())
        .unwrap_or(trace_id);
    let id = over("id")
        .filter(|id| !id.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let source = non_empty_or(over("source").unwrap_or(facts.source), DEFAULT_SOURCE);
    let event_type = non_empty_or(over("type").unwrap_or_default(), DEFAULT_TYPE);
    let data_content_type = non_empty_or(facts.content_type, DEFAULT_DATA_CONTENT_TYPE);
    let (data_field, data) = envelope_data(data_content_type, facts.data);

    let mut envelope = Envelope::new();
    let mut set = |field: &str, value: GoValue| {
        envelope.insert(field.to_owned(), value);
    };
    set("id", GoValue::text(id));
    set("specversion", GoValue::text(SPEC_VERSION));
    set("datacontenttype", GoValue::text(data_content_type));
    set("source", GoValue::text(source));
    set("type", GoValue::text(event_type));
    set("topic", GoValue::text(facts.topic));
    set("pubsubname", GoValue::text(facts.pubsub));
    set("traceid", GoValue::text(trace_parent));
    set("traceparent", GoValue::text(trace_parent));
    set(
        "tracestate",
        GoValue::text(over("tracestate").unwrap_or(facts.trace_state)),
    );
    set("time", GoValue::text(rfc3339(SystemTime::now())));
    set(data_field, data);
    if let Some(subject) = over("subject").filter(|subject| !subject.is_empty()) {
        set("subject", GoValue::text(subject));
    }
    Ok(envelope)
}

/// Sets `expiration` from `ttl`/`ttlInSeconds` metadata when the broker does not expire
/// messages itself; an invalid TTL is ignored here (the broker reports it).
pub fn apply_metadata(
    envelope: &mut Envelope,
    features: &[Feature],
    metadata: Option<&HashMap<String, String>>,
) {
    if features.contains(&Feature::MessageTtl) {
        return;
    }
    let Some(ttl) = metadata.and_then(ttl) else {
        return;
    };
    let now = SystemTime::now();
    let expiration = now.checked_add(ttl).unwrap_or(now);
    envelope.insert("expiration".to_owned(), GoValue::text(rfc3339(expiration)));
}

/// An existing CloudEvent, completed.
fn from_cloud_event(facts: &EventFacts<'_>) -> Result<Envelope, DecodeError> {
    let mut envelope = decode_precise_object(facts.data)?;
    envelope
        .entry("time".to_owned())
        .or_insert_with(|| GoValue::text(rfc3339(SystemTime::now())));
    if !envelope.contains_key("traceid") {
        envelope.insert("traceid".to_owned(), GoValue::text(facts.trace_parent));
        envelope.insert("traceparent".to_owned(), GoValue::text(facts.trace_parent));
    }
    envelope
        .entry("tracestate".to_owned())
        .or_insert_with(|| GoValue::text(facts.trace_state));
    envelope.insert("topic".to_owned(), GoValue::text(facts.topic));
    envelope.insert("pubsubname".to_owned(), GoValue::text(facts.pubsub));
    for (field, default) in [
        ("source", DEFAULT_SOURCE),
        ("type", DEFAULT_TYPE),
        ("specversion", SPEC_VERSION),
    ] {
        // Upstream fills fields that are missing or JSON null.
        if matches!(envelope.get(field), None | Some(GoValue::Null)) {
            envelope.insert(field.to_owned(), GoValue::text(default));
        }
    }
    Ok(envelope)
}

/// The data field's name and value for a payload of `content_type`.
fn envelope_data(content_type: &str, data: &[u8]) -> (&'static str, GoValue) {
    if content_type::is_json(content_type) {
        if let Ok(value) = decode_precise(data) {
            return ("data", value);
        }
    } else if content_type::is_binary(content_type)
        || content_type::is_cloud_event_protobuf(content_type)
    {
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        return ("data_base64", GoValue::text(encoded));
    }
    ("data", GoValue::text(String::from_utf8_lossy(data)))
}

/// The `cloudevent.<field>` override: the key in exactly that case, else in any case.
fn override_value<'a>(
    metadata: Option<&'a HashMap<String, String>>,
    field: &str,
) -> Option<&'a str> {
    let metadata = metadata?;
    let key = format!("cloudevent.{field}");
    metadata
        .get(&key)
        .or_else(|| {
            metadata
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&key))
                .map(|(_, value)| value)
        })
        .map(String::as_str)
}

fn non_empty_or<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() { default } else { value }
}

/// The TTL a publish asks for, read as upstream's `TryGetTTL` does: a Go duration, else
/// a whole number of seconds above zero; a negative duration counts as zero.
fn ttl(metadata: &HashMap<String, String>) -> Option<Duration> {
    let value = TTL_KEYS.iter().find_map(|key| {
        metadata
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
    })?;
    if value.is_empty() {
        return None;
    }
    match dapr_kit::duration::parse(value) {
        Ok(duration) => Some(duration),
        Err(dapr_kit::duration::DurationError::Negative(_)) => Some(Duration::ZERO),
        Err(_) => match value.parse::<i64>() {
            // Go's durations stop at i64::MAX nanoseconds.
            Ok(seconds) if seconds > 0 => Some(
                Duration::from_secs(seconds.unsigned_abs())
                    .min(Duration::from_nanos(i64::MAX.unsigned_abs())),
            ),
            _ => None,
        },
    }
}

/// `at` in RFC 3339 with seconds, in UTC.
fn rfc3339(at: SystemTime) -> String {
    dapr_components::state::format_expire_time(at)
}
