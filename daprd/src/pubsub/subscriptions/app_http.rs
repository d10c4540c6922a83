//! Programmatic subscriptions of an HTTP app: `GET /dapr/subscribe`. A 200 carries a JSON
//! array of subscriptions, each with a `v1` `route` or `v2` `routes` (`rules` then
//! `default`, which wins over `route`); a 404 means none; any other status is logged and
//! means none. An entry left without any route is dropped with a warning.
//!
//! The document is read as upstream's Go decoder reads it: only the first JSON value
//! counts, an empty body or `null` is no subscriptions, field names match
//! case-insensitively, unknown fields are ignored, `null` leaves a field empty, and a
//! value of the wrong type fails the whole document.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use super::{BulkSubscribe, DiscoveryError, Rule, Subscription, SubscriptionType, with_retries};
use crate::channel::AppChannel;
use crate::invoke::InvokeRequest;

/// The app's method listing its subscriptions.
const SUBSCRIBE_METHOD: &str = "dapr/subscribe";
/// Header naming the calling app, as upstream sends it.
const APP_ID_HEADER: &str = "dapr-app-id";

/// Calls `GET /dapr/subscribe` (retrying failed calls) and reads the reply.
pub(super) async fn list(
    channel: &AppChannel,
    app_id: &str,
) -> Result<Vec<Subscription>, DiscoveryError> {
    let (status, body) = with_retries(|| call(channel, app_id)).await?;
    match status {
        StatusCode::OK => {
            let subscriptions = parse_app_document(&body).map_err(DiscoveryError::Document)?;
            tracing::debug!("app responded with subscriptions {subscriptions:?}");
            Ok(subscriptions)
        }
        StatusCode::NOT_FOUND => {
            tracing::debug!("user app did not subscribe to any topic");
            Ok(Vec::new())
        }
        other => {
            tracing::error!(
                "app returned http status code {} from subscription endpoint",
                other.as_u16()
            );
            Ok(Vec::new())
        }
    }
}

/// One call: the status and the whole body.
async fn call(
    channel: &AppChannel,
    app_id: &str,
) -> Result<(StatusCode, bytes::Bytes), DiscoveryError> {
    let mut headers = HeaderMap::new();
    if !app_id.is_empty()
        && let Ok(value) = HeaderValue::from_str(app_id)
    {
        headers.insert(APP_ID_HEADER, value);
    }
    let request = InvokeRequest {
        method: SUBSCRIBE_METHOD.to_string(),
        http_verb: Some(Method::GET),
        query: String::new(),
        headers,
        content_type: Some("application/json".to_string()),
        data_type_url: None,
        body: Body::empty(),
    };
    let response = channel.invoke(request).await?;
    let body = response
        .body
        .collect()
        .await
        .map_err(|error| DiscoveryError::App(error.to_string()))?
        .to_bytes();
    Ok((response.status, body))
}

/// The subscriptions of a `/dapr/subscribe` document (entries without any route dropped).
pub fn parse_app_document(document: &[u8]) -> Result<Vec<Subscription>, String> {
    let mut values = serde_json::Deserializer::from_slice(document).into_iter::<Value>();
    let entries = match values.next() {
        None => return Ok(Vec::new()),
        Some(Err(error)) => return Err(error.to_string()),
        Some(Ok(Value::Null)) => return Ok(Vec::new()),
        Some(Ok(Value::Array(entries))) => entries,
        Some(Ok(other)) => return Err(type_error(&other, "[]pubsub.SubscriptionJSON")),
    };
    let mut subscriptions = Vec::with_capacity(entries.len());
    for entry in &entries {
        let subscription = match entry {
            Value::Object(fields) => parse_entry(fields)?,
            Value::Null => parse_entry(&Map::new())?,
            other => return Err(type_error(other, "pubsub.SubscriptionJSON")),
        };
        if subscription.rules.is_empty() {
            tracing::warn!(
                "topic {} has an empty routes. removing from subscriptions list",
                subscription.topic
            );
            continue;
        }
        subscriptions.push(subscription);
    }
    Ok(subscriptions)
}

/// One entry of the document.
fn parse_entry(fields: &Map<String, Value>) -> Result<Subscription, String> {
    let routes = field(fields, "routes");
    let empty = Map::new();
    let routes = match routes {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(routes)) => routes,
        Some(other) => return Err(type_error(other, "pubsub.RoutesJSON")),
    };
    let mut rules = Vec::new();
    match field(routes, "rules") {
        None | Some(Value::Null) => {}
        Some(Value::Array(entries)) => {
            for entry in entries {
                match entry {
                    Value::Object(rule) => {
                        rules.push(Rule::new(&string(rule, "match")?, &string(rule, "path")?))
                    }
                    Value::Null => {}
                    other => return Err(type_error(other, "pubsub.RuleJSON")),
                }
            }
        }
        Some(other) => return Err(type_error(other, "[]*pubsub.RuleJSON")),
    }
    let default = string(routes, "default")?;
    let route = string(fields, "route")?;
    if !default.is_empty() {
        rules.push(Rule::default_route(&default));
    } else if !route.is_empty() {
        rules.push(Rule::default_route(&route));
    }
    let metadata = match field(fields, "metadata") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(entries)) => entries
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                Value::Null => Ok((key.clone(), String::new())),
                other => Err(type_error(other, "string")),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(type_error(other, "map[string]string")),
    };
    let bulk = match field(fields, "bulkSubscribe") {
        None | Some(Value::Null) => BulkSubscribe::default(),
        Some(Value::Object(bulk)) => BulkSubscribe {
            enabled: match field(bulk, "enabled") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(enabled)) => *enabled,
                Some(other) => return Err(type_error(other, "bool")),
            },
            max_messages_count: int32(bulk, "maxMessagesCount")?,
            max_await_duration_ms: int32(bulk, "maxAwaitDurationMs")?,
        },
        Some(other) => return Err(type_error(other, "pubsub.BulkSubscribeJSON")),
    };
    Ok(Subscription {
        pubsub_name: string(fields, "pubsubname")?,
        topic: string(fields, "topic")?,
        metadata,
        rules,
        dead_letter_topic: string(fields, "deadLetterTopic")?,
        bulk_subscribe: Some(bulk),
        scopes: Vec::new(),
        kind: SubscriptionType::Programmatic,
    })
}

/// The field `name`, matched exactly or else ignoring ASCII case, as Go matches fields.
fn field<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).or_else(|| {
        fields
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// A string field; absent or `null` is empty.
fn string(fields: &Map<String, Value>, name: &str) -> Result<String, String> {
    match field(fields, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(type_error(other, "string")),
    }
}

/// A 32-bit integer field; absent or `null` is 0.
fn int32(fields: &Map<String, Value>, name: &str) -> Result<i32, String> {
    match field(fields, name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(number)) => number
            .as_i64()
            .and_then(|number| i32::try_from(number).ok())
            .ok_or_else(|| {
                format!("json: cannot unmarshal number {number} into Go value of type int32")
            }),
        Some(other) => Err(type_error(other, "int32")),
    }
}

/// Go's wording for a JSON value of the wrong type.
fn type_error(value: &Value, go_type: &str) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("json: cannot unmarshal {kind} into Go value of type {go_type}")
}
