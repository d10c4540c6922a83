//! Export to Zipkin: spans as the Zipkin v2 JSON list, POSTed to the collector URL
//! (`spec.tracing.zipkin.endpointAddress`, e.g. `http://localhost:9411/api/v2/spans`).
//!
//! Each span carries its ids (`traceId`, `id`, `parentId`), `name`, `kind`, `timestamp`
//! and `duration` in microseconds, the service as `localEndpoint.serviceName`, its
//! attributes as `tags` (with `otel.status_code` and `error` for failed spans) and its
//! events as `annotations`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_http::HttpClient;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{Map, Value, json};

/// Posts span batches to a Zipkin collector.
#[derive(Debug)]
pub(super) struct ZipkinExporter {
    client: HyperClient<HttpsConnector<HttpConnector>>,
    endpoint: http::Uri,
    service_name: String,
}

impl ZipkinExporter {
    /// An exporter posting to `endpoint` with `client`, naming spans' service after the
    /// resource's `service.name`.
    pub(super) fn new(
        client: HyperClient<HttpsConnector<HttpConnector>>,
        endpoint: http::Uri,
        resource: &Resource,
    ) -> Self {
        let service_name = resource
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .map(|name| name.as_str().into_owned())
            .unwrap_or_default();
        ZipkinExporter {
            client,
            endpoint,
            service_name,
        }
    }

    /// Sends `batch` in one request; any non-2xx answer is an error.
    pub(super) async fn export(&self, batch: &[SpanData]) -> OTelSdkResult {
        let spans: Vec<Value> = batch
            .iter()
            .map(|span| zipkin_span(span, &self.service_name))
            .collect();
        let body = serde_json::to_vec(&spans)
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(body))
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        let response = self
            .client
            .send_bytes(request)
            .await
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(format!(
                "zipkin collector answered {}",
                response.status()
            )))
        }
    }
}

fn micros_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// One span in Zipkin v2 JSON.
fn zipkin_span(span: &SpanData, service_name: &str) -> Value {
    let mut object = Map::new();
    object.insert(
        "traceId".into(),
        json!(span.span_context.trace_id().to_string()),
    );
    object.insert("id".into(), json!(span.span_context.span_id().to_string()));
    if span.parent_span_id != SpanId::INVALID {
        object.insert("parentId".into(), json!(span.parent_span_id.to_string()));
    }
    object.insert("name".into(), json!(span.name));
    let kind = match span.span_kind {
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Server => Some("SERVER"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal => None,
    };
    if let Some(kind) = kind {
        object.insert("kind".into(), json!(kind));
    }
    let start = micros_since_epoch(span.start_time);
    let end = micros_since_epoch(span.end_time);
    object.insert("timestamp".into(), json!(start));
    object.insert("duration".into(), json!(end.saturating_sub(start).max(1)));
    object.insert(
        "localEndpoint".into(),
        json!({ "serviceName": service_name }),
    );

    let mut tags = Map::new();
    for attribute in &span.attributes {
        tags.insert(
            attribute.key.as_str().to_string(),
            json!(attribute.value.as_str()),
        );
    }
    match &span.status {
        Status::Error { description } => {
            tags.insert("otel.status_code".into(), json!("ERROR"));
            tags.insert("error".into(), json!(description));
        }
        Status::Ok => {
            tags.insert("otel.status_code".into(), json!("OK"));
        }
        Status::Unset => {}
    }
    tags.insert(
        "otel.scope.name".into(),
        json!(span.instrumentation_scope.name()),
    );
    object.insert("tags".into(), Value::Object(tags));

    let annotations: Vec<Value> = span
        .events
        .iter()
        .map(|event| {
            json!({
                "timestamp": micros_since_epoch(event.timestamp),
                "value": event.name,
            })
        })
        .collect();
    if !annotations.is_empty() {
        object.insert("annotations".into(), Value::Array(annotations));
    }
    Value::Object(object)
}
