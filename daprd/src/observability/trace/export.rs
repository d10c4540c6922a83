//! Span export: the exporters `spec.tracing` asks for (stdout, Zipkin, OTLP over gRPC or
//! HTTP/protobuf) and the batching task that feeds them on the Tokio runtime.
//!
//! Ended, sampled spans go through a bounded channel (full means dropped, like upstream's
//! queue) to one task that exports a batch when it holds 512 spans, every 5 seconds, or
//! on an explicit flush.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dapr_resources::configuration::{OtelSpec, TracingSpec, ZipkinSpec};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry::Context;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use rustls::RootCertStore;
use tokio::sync::{mpsc, oneshot};

use super::TracingError;
use super::zipkin::ZipkinExporter;
use crate::outbound_tls;

/// Spans waiting for export before new ones are dropped.
const QUEUE_CAPACITY: usize = 2048;
/// Most spans in one export call.
const MAX_BATCH: usize = 512;
/// Longest a span waits for its batch.
const BATCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one export request when the Configuration sets none.
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Where upstream's stdout exporter logs.
const STDOUT_TARGET: &str = "dapr.runtime.trace";

/// One configured destination.
#[derive(Debug)]
enum Exporter {
    Stdout,
    Zipkin(ZipkinExporter),
    Otlp(opentelemetry_otlp::SpanExporter),
}

impl Exporter {
    fn name(&self) -> &'static str {
        match self {
            Exporter::Stdout => "stdout",
            Exporter::Zipkin(_) => "zipkin",
            Exporter::Otlp(_) => "otlp",
        }
    }

    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            Exporter::Stdout => {
                batch.iter().for_each(log_span);
                Ok(())
            }
            Exporter::Zipkin(exporter) => exporter.export(&batch).await,
            Exporter::Otlp(exporter) => exporter.export(batch).await,
        }
    }

    fn shutdown(&self) {
        let outcome = match self {
            Exporter::Stdout => Ok(()),
            Exporter::Zipkin(_) => Ok(()),
            Exporter::Otlp(exporter) => exporter.shutdown(),
        };
        if let Err(error) = outcome {
            tracing::debug!(
                exporter = self.name(),
                "span exporter shutdown failed: {error}"
            );
        }
    }
}

/// Upstream's stdout exporter line: name, trace id, parent/span ids, times, events.
fn log_span(span: &SpanData) {
    let unix = |time: SystemTime| {
        time.duration_since(UNIX_EPOCH)
            .map(|since| format!("{:.6}", since.as_secs_f64()))
            .unwrap_or_default()
    };
    let events: Vec<&str> = span
        .events
        .iter()
        .map(|event| event.name.as_ref())
        .collect();
    tracing::info!(
        target: STDOUT_TARGET,
        "[{}] Trace: {} Span: {}/{} Time: [{} ->  {}] Annotations: {:?}",
        span.name,
        span.span_context.trace_id(),
        span.parent_span_id,
        span.span_context.span_id(),
        unix(span.start_time),
        unix(span.end_time),
        events,
    );
}

/// The exporters `spec` configures, told about `resource` (the service name). Secure
/// collectors are verified against the root certificates `roots` returns (called only
/// when one is configured).
pub(super) fn exporters_for(
    spec: &TracingSpec,
    resource: &Resource,
    roots: &dyn Fn() -> RootCertStore,
) -> Result<Vec<ExporterHandle>, TracingError> {
    let mut exporters = Vec::new();
    if spec.stdout == Some(true) {
        exporters.push(ExporterHandle(Exporter::Stdout));
    }
    if let Some(zipkin) = spec
        .zipkin
        .as_ref()
        .filter(|z| !z.endpoint_address.is_empty())
    {
        let exporter = zipkin_exporter(zipkin, resource, roots)?;
        exporters.push(ExporterHandle(Exporter::Zipkin(exporter)));
    }
    if let Some(otel) = spec
        .otel
        .as_ref()
        .filter(|otel| !otel.endpoint_address.is_empty() && !otel.protocol.is_empty())
    {
        let mut exporter = otlp_exporter(otel, roots)?;
        exporter.set_resource(resource);
        exporters.push(ExporterHandle(Exporter::Otlp(exporter)));
    }
    Ok(exporters)
}

/// A configured exporter (opaque outside this module).
#[derive(Debug)]
pub(super) struct ExporterHandle(Exporter);

/// A connector for `http` and `https` collectors speaking `version`, verifying servers
/// against `roots` (an empty store for clear-text collectors, so no system certificates
/// are loaded for them).
fn collector_connector(
    exporter: &'static str,
    roots: &dyn Fn() -> RootCertStore,
    version: HttpVersion,
) -> Result<HttpsConnector<HttpConnector>, TracingError> {
    let config = outbound_tls::verified_client_builder(roots())
        .map_err(|error| TracingError::Exporter {
            exporter,
            reason: error.to_string(),
        })?
        .with_no_client_auth();
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    Ok(match version {
        HttpVersion::Http1 => builder.enable_http1().build(),
        HttpVersion::Http2 => builder.enable_http2().build(),
    })
}

/// Which HTTP version a collector speaks.
#[derive(Debug, Clone, Copy)]
enum HttpVersion {
    Http1,
    Http2,
}

fn zipkin_exporter(
    spec: &ZipkinSpec,
    resource: &Resource,
    roots: &dyn Fn() -> RootCertStore,
) -> Result<ZipkinExporter, TracingError> {
    let endpoint = spec.endpoint_address.trim();
    let uri: http::Uri =
        endpoint
            .parse()
            .map_err(|error: http::uri::InvalidUri| TracingError::Exporter {
                exporter: "zipkin",
                reason: format!("invalid endpoint {endpoint:?}: {error}"),
            })?;
    let roots = if uri.scheme_str() == Some("https") {
        roots
    } else {
        &RootCertStore::empty
    };
    let connector = collector_connector("zipkin", roots, HttpVersion::Http1)?;
    let client = HyperClient::new(connector, DEFAULT_EXPORT_TIMEOUT, None);
    Ok(ZipkinExporter::new(client, uri, resource))
}

fn otlp_exporter(
    spec: &OtelSpec,
    roots: &dyn Fn() -> RootCertStore,
) -> Result<opentelemetry_otlp::SpanExporter, TracingError> {
    let protocol = spec.protocol.as_str();
    if protocol != "http" && protocol != "grpc" {
        return Err(TracingError::Protocol(protocol.to_string()));
    }
    let address = spec.endpoint_address.trim();
    // Upstream: TLS unless `isSecure: false`; an explicit scheme in the address wins.
    let secure = if address.starts_with("https://") {
        true
    } else if address.starts_with("http://") {
        false
    } else {
        spec.is_secure.unwrap_or(true)
    };
    let address = address
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let scheme = if secure { "https" } else { "http" };
    let timeout = match &spec.timeout {
        Some(text) => dapr_kit::duration::parse(text).map_err(|error| TracingError::Timeout {
            value: text.clone(),
            reason: error.to_string(),
        })?,
        None => DEFAULT_EXPORT_TIMEOUT,
    };
    let headers: HashMap<String, String> = spec
        .headers
        .iter()
        .map(|header| {
            let value = header
                .value
                .as_ref()
                .map(|v| v.to_plain_string())
                .unwrap_or_default();
            (header.name.clone(), value)
        })
        .collect();
    let version = if protocol == "grpc" {
        HttpVersion::Http2
    } else {
        HttpVersion::Http1
    };
    let roots = if secure { roots } else { &RootCertStore::empty };
    let connector = collector_connector("otel", roots, version)?;
    let built = if protocol == "grpc" {
        let mut metadata = tonic::metadata::MetadataMap::new();
        for (name, value) in &headers {
            let name =
                tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes());
            let value = tonic::metadata::MetadataValue::try_from(value.as_str());
            if let (Ok(name), Ok(value)) = (name, value) {
                metadata.insert(name, value);
            }
        }
        let endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|error| TracingError::Exporter {
                exporter: "otel",
                reason: format!("invalid endpoint {address:?}: {error}"),
            })?
            .timeout(timeout);
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_channel(endpoint.connect_with_connector_lazy(connector))
            .with_timeout(timeout)
            .with_metadata(metadata)
            .build()
    } else {
        let url = if address.contains('/') {
            format!("{scheme}://{address}")
        } else {
            format!("{scheme}://{address}/v1/traces")
        };
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(HyperClient::new(connector, timeout, None))
            .with_endpoint(url)
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(timeout)
            .with_headers(headers)
            .build()
    };
    built.map_err(|error| TracingError::Exporter {
        exporter: "otel",
        reason: error.to_string(),
    })
}

/// What the export task is asked to do.
#[derive(Debug)]
enum Command {
    Export(Box<SpanData>),
    Flush(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// The span processor the provider calls: hands sampled spans to the export task.
#[derive(Debug)]
pub(super) struct ChannelProcessor {
    sender: mpsc::Sender<Command>,
}

impl SpanProcessor for ChannelProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            // A full queue drops the span rather than blocking the request.
            let _ = self.sender.try_send(Command::Export(Box::new(span)));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Talks to the export task.
#[derive(Debug, Clone)]
pub(super) struct ExportControl {
    sender: mpsc::Sender<Command>,
}

impl ExportControl {
    /// Waits until every span ended before this call has been exported.
    pub(super) async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        if self.sender.send(Command::Flush(done)).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// Exports what is queued, shuts the exporters down and stops the task.
    pub(super) async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.sender.send(Command::Shutdown(done)).await.is_ok() {
            let _ = finished.await;
        }
    }
}

/// Spawns the export task on the current Tokio runtime.
pub(super) fn spawn(exporters: Vec<ExporterHandle>) -> (ChannelProcessor, ExportControl) {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    let exporters = exporters.into_iter().map(|handle| handle.0).collect();
    tokio::spawn(run(receiver, exporters));
    (
        ChannelProcessor {
            sender: sender.clone(),
        },
        ExportControl { sender },
    )
}

async fn run(mut receiver: mpsc::Receiver<Command>, exporters: Vec<Exporter>) {
    let mut batch: Vec<SpanData> = Vec::new();
    let mut ticker = tokio::time::interval(BATCH_TIMEOUT);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = receiver.recv() => match command {
                Some(Command::Export(span)) => {
                    batch.push(*span);
                    if batch.len() >= MAX_BATCH {
                        export(&exporters, std::mem::take(&mut batch)).await;
                    }
                }
                Some(Command::Flush(done)) => {
                    export(&exporters, std::mem::take(&mut batch)).await;
                    let _ = done.send(());
                }
                Some(Command::Shutdown(done)) => {
                    export(&exporters, std::mem::take(&mut batch)).await;
                    exporters.iter().for_each(Exporter::shutdown);
                    let _ = done.send(());
                    return;
                }
                None => {
                    export(&exporters, std::mem::take(&mut batch)).await;
                    exporters.iter().for_each(Exporter::shutdown);
                    return;
                }
            },
            _ = ticker.tick() => {
                if !batch.is_empty() {
                    export(&exporters, std::mem::take(&mut batch)).await;
                }
            }
        }
    }
}

async fn export(exporters: &[Exporter], batch: Vec<SpanData>) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len();
    for exporter in exporters {
        if let Err(error) = exporter.export(batch.clone()).await {
            tracing::warn!(
                target: "dapr.runtime.diagnostics",
                exporter = exporter.name(),
                spans = count,
                "failed to export spans: {error}"
            );
        }
    }
}
