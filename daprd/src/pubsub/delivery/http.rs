//! Delivery to an HTTP app: `POST /<route>` with the event as
//! `application/cloudevents+json` and the message metadata as headers. A 2xx answer is
//! read as `{"status": "SUCCESS"|"RETRY"|"DROP"}` (an empty or unreadable body, or an
//! empty status, is success; an unknown status is retried); 404 drops the event; any
//! other status, or an app that cannot be reached, retries it.

use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;

use super::event::ReceivedEvent;
use super::outcome::Outcome;
use crate::channel::AppChannel;
use crate::invoke::InvokeRequest;
use crate::observability::metrics::SidecarMetrics;

/// The content type of delivered events.
const CLOUD_EVENT_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Delivers `event` to `path` of the app and classifies the answer.
pub async fn deliver(
    channel: &AppChannel,
    metrics: &SidecarMetrics,
    pubsub: &str,
    event: &ReceivedEvent,
    path: &str,
) -> Outcome {
    let mut headers = HeaderMap::new();
    for (key, value) in &event.metadata {
        if key.eq_ignore_ascii_case("content-length") || key.eq_ignore_ascii_case("content-type") {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    if !headers.contains_key("traceparent")
        && let Some(parent) = event.trace_parent()
        && let Ok(value) = HeaderValue::from_str(parent)
    {
        headers.insert("traceparent", value);
    }
    let request = InvokeRequest {
        method: path.trim_start_matches('/').to_owned(),
        http_verb: Some(Method::POST),
        query: String::new(),
        headers,
        content_type: Some(CLOUD_EVENT_CONTENT_TYPE.to_owned()),
        data_type_url: None,
        body: Body::from(event.body.clone()),
    };
    let started = Instant::now();
    let record = |process: &str, status: &str| {
        metrics.record_pubsub_ingress(pubsub, &event.topic, process, status, started.elapsed());
    };
    let response = match channel.invoke(request).await {
        Ok(response) => response,
        Err(error) => {
            record("retry", "");
            return Outcome::Retry(format!(
                "error returned from app channel while sending pub/sub event to app: {error}"
            ));
        }
    };
    let status = response.status;
    let body = match response.body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            record("retry", "");
            return Outcome::Retry(format!("error reading the app's answer: {error}"));
        }
    };
    if status.is_success() {
        return match app_status(&body).as_deref() {
            None | Some("") | Some("SUCCESS") => {
                record("success", "");
                Outcome::Success
            }
            Some("RETRY") => {
                record("retry", "");
                Outcome::Retry(format!(
                    "RETRY status returned from app while processing pub/sub event {}",
                    event.id()
                ))
            }
            Some("DROP") => {
                record("drop", "success");
                tracing::warn!(
                    "DROP status returned from app while processing pub/sub event {}",
                    event.id()
                );
                Outcome::Dropped { dead_letter: true }
            }
            Some(other) => {
                record("retry", "");
                Outcome::Retry(format!(
                    "unknown status returned from app while processing pub/sub event {}, status: {other}",
                    event.id()
                ))
            }
        };
    }
    let text = String::from_utf8_lossy(&body);
    if status == StatusCode::NOT_FOUND {
        tracing::error!(
            "non-retriable error returned from app while processing pub/sub event {}: {text}. status code returned: {}",
            event.id(),
            status.as_u16()
        );
        record("drop", "");
        return Outcome::Dropped { dead_letter: true };
    }
    let reason = format!(
        "retriable error returned from app while processing pub/sub event {}, topic: {}, body: {text}. status code returned: {}",
        event.id(),
        event.field("topic"),
        status.as_u16()
    );
    tracing::warn!("{reason}");
    record("retry", "");
    Outcome::Retry(reason)
}

/// The `status` of a 2xx answer as Go's decoder reads it (first JSON value, the field
/// name in any case); `None` when the body is empty or not such an object.
fn app_status(body: &[u8]) -> Option<String> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    let serde_json::Value::Object(fields) = values.next()?.ok()? else {
        return None;
    };
    fields
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("status"))
        .map(|(_, value)| value.as_str().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_statuses_are_read_as_go_reads_them() {
        assert_eq!(app_status(b""), None);
        assert_eq!(app_status(b"not json"), None);
        assert_eq!(app_status(b"{}"), None);
        assert_eq!(
            app_status(br#"{"status":"RETRY"}"#).as_deref(),
            Some("RETRY")
        );
        assert_eq!(
            app_status(br#"{"Status":"DROP"} trailing"#).as_deref(),
            Some("DROP")
        );
        assert_eq!(app_status(br#"{"status":""}"#).as_deref(), Some(""));
    }
}
