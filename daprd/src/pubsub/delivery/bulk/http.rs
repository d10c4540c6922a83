//! Bulk delivery to an HTTP app: `POST /<route>` of the JSON envelope
//! `{"entries":[...],"id","metadata","pubsubname","topic","type":"com.dapr.event.sent.bulk"}`
//! (written as upstream's Go writes it), each entry `{"entryId","event","metadata",
//! "contentType"}` with the CloudEvent as `event` (for raw payloads the payload's base64
//! text, as upstream sends it). A 2xx answer is read as `{"statuses":[{"entryId",
//! "status"}]}`: per entry `SUCCESS`, `DROP`, or anything else (an empty status too)
//! retried, and an entry without a status is retried; a 2xx answer that cannot be read
//! retries every entry. 404 drops every entry (without dead-lettering, as upstream);
//! any other status, or an app that cannot be reached, retries every entry.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::Value;

use super::super::event::PUBSUB_NAME_KEY;
use super::super::outcome::Outcome;
use super::{Answer, BULK_EVENT_TYPE, Request, outcomes};
use crate::channel::AppChannel;
use crate::go_json::{encode_value, write_string, write_string_map};
use crate::invoke::InvokeRequest;

/// The content type of the envelope.
const JSON_CONTENT_TYPE: &str = "application/json";
/// An entry's content type when a CloudEvent's message has none.
const CLOUD_EVENT_CONTENT_TYPE: &str = "application/cloudevents+json";
/// An entry's content type when a raw payload's message has none.
const RAW_CONTENT_TYPE: &str = "application/octet-stream";

/// Delivers the entries of `request` to the app; each entry's outcome and the time the
/// app took.
pub(super) async fn deliver(
    channel: &AppChannel,
    request: &Request<'_>,
) -> (Vec<Outcome>, Duration) {
    let every = |outcome: Outcome| vec![outcome; request.entries.len()];
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(request.pubsub) {
        headers.insert("pubsubname", value);
    }
    let invoke = InvokeRequest {
        method: request.path.trim_start_matches('/').to_owned(),
        http_verb: Some(Method::POST),
        query: String::new(),
        headers,
        content_type: Some(JSON_CONTENT_TYPE.to_owned()),
        data_type_url: None,
        body: Body::from(envelope(request, &uuid::Uuid::new_v4().to_string())),
    };
    let started = Instant::now();
    let response = match channel.invoke(invoke).await {
        Ok(response) => response,
        Err(error) => {
            let reason =
                format!("error from app channel while sending pub/sub event to app: {error}");
            return (every(Outcome::Retry(reason)), started.elapsed());
        }
    };
    let status = response.status;
    let body = response.body.collect().await.map(|body| body.to_bytes());
    let elapsed = started.elapsed();
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            let reason = format!("error reading the app's answer: {error}");
            return (every(Outcome::Retry(reason)), elapsed);
        }
    };
    if status.is_success() {
        return match app_statuses(&body) {
            Ok(answers) => (outcomes(request.entries, answers), elapsed),
            Err(error) => {
                let reason =
                    format!("failed unmarshalling app response for bulk subscribe: {error}");
                (every(Outcome::Retry(reason)), elapsed)
            }
        };
    }
    if status == StatusCode::NOT_FOUND {
        tracing::error!(
            "Non-retriable error returned from app while processing bulk pub/sub event. status code returned: {}",
            status.as_u16()
        );
        return (every(Outcome::Dropped { dead_letter: false }), elapsed);
    }
    let reason = format!(
        "Retriable error returned from app while processing bulk pub/sub event, topic: {}. status code returned: {}",
        request.topic,
        status.as_u16()
    );
    tracing::warn!("{reason}");
    (every(Outcome::Retry(reason)), elapsed)
}

/// The envelope of `request` with batch id `id`, as Go's `json.Marshal` writes it.
fn envelope(request: &Request<'_>, id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"entries\":[");
    for (index, entry) in request.entries.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"entryId\":");
        write_string(&mut out, &entry.id);
        out.extend_from_slice(b",\"event\":");
        let default_content_type = if request.raw {
            let data = base64::engine::general_purpose::STANDARD.encode(&entry.original.data);
            write_string(&mut out, &data);
            RAW_CONTENT_TYPE
        } else {
            out.extend_from_slice(&encode_value(&entry.event.cloud_event));
            CLOUD_EVENT_CONTENT_TYPE
        };
        out.extend_from_slice(b",\"metadata\":");
        write_string_map(&mut out, entry.original.metadata.iter());
        out.extend_from_slice(b",\"contentType\":");
        let content_type = entry
            .original
            .content_type
            .as_deref()
            .filter(|content_type| !content_type.is_empty())
            .unwrap_or(default_content_type);
        write_string(&mut out, content_type);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"id\":");
    write_string(&mut out, id);
    out.extend_from_slice(b",\"metadata\":");
    let metadata = [(PUBSUB_NAME_KEY.to_owned(), request.pubsub.to_owned())];
    write_string_map(&mut out, metadata.iter().map(|(key, value)| (key, value)));
    out.extend_from_slice(b",\"pubsubname\":");
    write_string(&mut out, request.pubsub);
    out.extend_from_slice(b",\"topic\":");
    write_string(&mut out, request.topic);
    out.extend_from_slice(b",\"type\":");
    write_string(&mut out, BULK_EVENT_TYPE);
    out.push(b'}');
    out
}

/// The per-entry statuses of a 2xx answer as Go decodes `{"statuses":[{"entryId",
/// "status"}]}`: the first JSON value, field names in any case, unknown fields ignored,
/// `null` wherever a value may be absent; anything else is an error.
fn app_statuses(body: &[u8]) -> Result<Vec<(String, Answer)>, String> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let document = match values.next() {
        Some(Ok(document)) => document,
        Some(Err(error)) => return Err(error.to_string()),
        None => return Err("EOF".to_owned()),
    };
    let statuses = match &document {
        Value::Null => None,
        Value::Object(fields) => field(fields, "statuses"),
        other => return Err(mismatch(other, "contribpubsub.AppBulkResponse")),
    };
    let items = match statuses {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(mismatch(other, "[]contribpubsub.AppBulkResponseEntry")),
    };
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        let fields = match item {
            Value::Null => continue,
            Value::Object(fields) => fields,
            other => return Err(mismatch(other, "contribpubsub.AppBulkResponseEntry")),
        };
        let text = |name: &str| match field(fields, name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(text)) => Ok(text.clone()),
            Some(other) => Err(mismatch(other, "string")),
        };
        let id = text("entryId")?;
        let answer = match text("status")?.as_str() {
            "SUCCESS" => Answer::Success,
            "DROP" => Answer::Drop,
            "RETRY" | "" => Answer::Retry,
            other => Answer::Unknown(other.to_owned()),
        };
        answers.push((id, answer));
    }
    Ok(answers)
}

/// A field by name, matched exactly first and then in any case, as Go does.
fn field<'a>(fields: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).or_else(|| {
        fields
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// Go's complaint about a JSON value of the wrong kind.
fn mismatch(value: &Value, go_type: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::delivery::bulk::Entry;
    use crate::pubsub::delivery::event::receive;
    use bytes::Bytes;
    use dapr_components::pubsub::Message;
    use std::collections::HashMap;

    fn entry(id: &str, data: &str, content_type: Option<&str>, raw: bool) -> Entry {
        let original = Message {
            topic: "orders".into(),
            data: Bytes::from(data.to_owned()),
            metadata: HashMap::from([("k".to_owned(), "v".to_owned())]),
            content_type: content_type.map(str::to_owned),
        };
        Entry {
            id: id.to_owned(),
            event: receive(original.clone(), "orders", "bus", raw).unwrap(),
            original,
        }
    }

    #[test]
    fn envelopes_are_written_as_upstream_writes_them() {
        let first = entry("1", r#"{"id":"a","data":{"n":1.0,"s":"<"}}"#, None, false);
        let second = entry("2", r#"{"id":"b"}"#, Some("application/json"), false);
        let entries = [&first, &second];
        let request = Request {
            pubsub: "bus",
            topic: "orders",
            path: "/orders",
            raw: false,
            entries: &entries,
        };
        let written = String::from_utf8(envelope(&request, "batch")).unwrap();
        assert_eq!(
            written,
            concat!(
                r#"{"entries":[{"entryId":"1","event":{"data":{"n":1,"s":"\u003c"},"id":"a"},"#,
                r#""metadata":{"k":"v"},"contentType":"application/cloudevents+json"},"#,
                r#"{"entryId":"2","event":{"id":"b"},"metadata":{"k":"v"},"#,
                r#""contentType":"application/json"}],"id":"batch","#,
                r#""metadata":{"pubsubName":"bus"},"pubsubname":"bus","topic":"orders","#,
                r#""type":"com.dapr.event.sent.bulk"}"#
            )
        );
    }

    #[test]
    fn raw_entries_carry_the_payload_as_base64() {
        let raw = entry("1", "plain", None, true);
        let entries = [&raw];
        let request = Request {
            pubsub: "bus",
            topic: "orders",
            path: "/orders",
            raw: true,
            entries: &entries,
        };
        let written: Value = serde_json::from_slice(&envelope(&request, "batch")).unwrap();
        assert_eq!(written["entries"][0]["event"], "cGxhaW4=");
        assert_eq!(
            written["entries"][0]["contentType"],
            "application/octet-stream"
        );
    }

    #[test]
    fn statuses_are_read_as_go_reads_them() {
        let answers = app_statuses(
            br#"{"Statuses":[{"entryId":"1","status":"SUCCESS"},{"EntryID":"2","status":"DROP"},
            {"entryId":"3","status":""},{"entryId":"4","status":"MAYBE"},null,
            {"entryId":"5","status":"RETRY","extra":1}]} trailing"#,
        )
        .unwrap();
        assert_eq!(
            answers,
            [
                ("1".to_owned(), Answer::Success),
                ("2".to_owned(), Answer::Drop),
                ("3".to_owned(), Answer::Retry),
                ("4".to_owned(), Answer::Unknown("MAYBE".to_owned())),
                ("5".to_owned(), Answer::Retry),
            ]
        );
        assert_eq!(app_statuses(b"null").unwrap(), []);
        assert_eq!(app_statuses(b"{}").unwrap(), []);
        assert!(app_statuses(b"").is_err());
        assert!(app_statuses(b"not json").is_err());
        assert!(app_statuses(br#"{"statuses":{}}"#).is_err());
        assert!(app_statuses(br#"{"statuses":[{"entryId":1}]}"#).is_err());
        assert_eq!(
            app_statuses(b"[]").unwrap_err(),
            "json: cannot unmarshal array into Go value of type contribpubsub.AppBulkResponse"
        );
    }

    #[test]
    fn entries_without_a_known_answer_are_retried() {
        let first = entry("1", r#"{"id":"a"}"#, None, false);
        let second = entry("2", r#"{"id":"b"}"#, None, false);
        let third = entry("3", r#"{"id":"c"}"#, None, false);
        let outcomes = outcomes(
            &[&first, &second, &third],
            [
                ("1".to_owned(), Answer::Retry),
                ("1".to_owned(), Answer::Success),
                ("2".to_owned(), Answer::Drop),
                ("9".to_owned(), Answer::Success),
            ],
        );
        assert_eq!(outcomes[0], Outcome::Success);
        assert_eq!(outcomes[1], Outcome::Dropped { dead_letter: true });
        assert!(
            matches!(&outcomes[2], Outcome::Retry(reason) if reason.contains("response not received"))
        );
    }
}
