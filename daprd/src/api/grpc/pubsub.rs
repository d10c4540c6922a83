//! `PublishEvent`, `BulkPublishEvent` and `BulkPublishEventAlpha1` on the `Dapr` service:
//! decode, call the publish core, encode. A bulk publish the broker partly refused fails
//! with `ERR_PUBSUB_PUBLISH_MESSAGE`, as upstream (the failed entries are not returned).

use bytes::Bytes;
use dapr_proto::runtime;
use tonic::{Request, Response, Status};

use crate::observability::trace::TraceContext;
use crate::pubsub::{BulkEntry, BulkPublishError, Publisher};
use crate::runtime::Runtime;
use crate::state::Protocol;

/// `PublishEvent`: one message.
pub async fn publish_event(
    runtime: &Runtime,
    request: Request<runtime::PublishEventRequest>,
) -> Result<Response<()>, Status> {
    let trace = call_trace(&request);
    let request = request.into_inner();
    let publisher = Publisher::new(runtime, Protocol::Grpc, trace);
    let target = publisher.target(&request.pubsub_name, &request.topic, &request.metadata)?;
    publisher
        .publish(
            &target,
            Bytes::from(request.data),
            &request.data_content_type,
            request.metadata,
        )
        .await?;
    Ok(Response::new(()))
}

/// `BulkPublishEvent` (and its alpha name): several messages to one topic.
pub async fn bulk_publish_event(
    runtime: &Runtime,
    request: Request<runtime::BulkPublishRequest>,
) -> Result<Response<runtime::BulkPublishResponse>, Status> {
    let trace = call_trace(&request);
    let request = request.into_inner();
    let publisher = Publisher::new(runtime, Protocol::Grpc, trace);
    let target = publisher.target(&request.pubsub_name, &request.topic, &request.metadata)?;
    let raw = publisher.raw_payload(&target, &request.metadata)?;
    let entries = request
        .entries
        .into_iter()
        .map(|entry| BulkEntry {
            entry_id: entry.entry_id,
            event: Bytes::from(entry.event),
            content_type: entry.content_type,
            // An empty protobuf map is absent, as upstream sees it.
            metadata: (!entry.metadata.is_empty()).then_some(entry.metadata),
        })
        .collect();
    match publisher
        .bulk_publish(&target, raw, entries, &request.metadata)
        .await
    {
        Ok(()) => Ok(Response::new(runtime::BulkPublishResponse::default())),
        Err(BulkPublishError::Refused(error) | BulkPublishError::Partial { error, .. }) => {
            Err(error.into())
        }
    }
}

/// The call's trace: the server span's, else the caller's `traceparent`.
fn call_trace<T>(request: &Request<T>) -> Option<TraceContext> {
    request
        .extensions()
        .get::<TraceContext>()
        .cloned()
        .or_else(|| TraceContext::from_grpc_metadata(request.metadata().as_ref()))
}
