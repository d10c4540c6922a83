//! Bulk delivery to a gRPC app: `AppCallback/OnBulkTopicEvent`, or the older
//! `AppCallbackAlpha/OnBulkTopicEventAlpha1` when the app does not implement it. Each
//! entry carries its CloudEvent as a `TopicEventCERequest` (fields as single delivery
//! builds them) or, for raw payloads, the payload bytes; an entry whose CloudEvent
//! cannot be turned into one is retried without being sent. Per entry `SUCCESS`
//! acknowledges, `DROP` drops, `RETRY` or an unknown status retries, and an entry without
//! a status is retried; an app implementing neither method drops every entry (without
//! dead-lettering, as single delivery does), any other error retries every entry.

use std::time::{Duration, Instant};

use dapr_proto::runtime::app_callback_alpha_client::AppCallbackAlphaClient;
use dapr_proto::runtime::app_callback_client::AppCallbackClient;
use dapr_proto::runtime::topic_event_bulk_request_entry::Event;
use dapr_proto::runtime::topic_event_response::TopicEventResponseStatus;
use dapr_proto::runtime::{
    TopicEventBulkRequest, TopicEventBulkRequestEntry, TopicEventBulkResponse, TopicEventCeRequest,
};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use super::super::event::PUBSUB_NAME_KEY;
use super::super::grpc::envelope;
use super::super::outcome::Outcome;
use super::{Answer, BULK_EVENT_TYPE, Entry, Request, outcomes};
use crate::api::middleware::API_TOKEN_HEADER;

/// Delivers the entries of `request` to the app; each entry's outcome and the time the
/// app took.
pub(super) async fn deliver(
    transport: Channel,
    api_token: Option<&str>,
    request: &Request<'_>,
) -> (Vec<Outcome>, Duration) {
    let mut results: Vec<Option<Outcome>> = vec![None; request.entries.len()];
    let mut sent: Vec<&Entry> = Vec::with_capacity(request.entries.len());
    let mut sent_at: Vec<usize> = Vec::with_capacity(request.entries.len());
    let mut items = Vec::with_capacity(request.entries.len());
    for (index, entry) in request.entries.iter().enumerate() {
        match item(entry, request) {
            Ok(item) => {
                items.push(item);
                sent.push(entry);
                sent_at.push(index);
            }
            Err(reason) => results[index] = Some(Outcome::Retry(reason)),
        }
    }
    let started = Instant::now();
    if !items.is_empty() {
        let bulk = TopicEventBulkRequest {
            id: uuid::Uuid::new_v4().to_string(),
            entries: items,
            metadata: [(PUBSUB_NAME_KEY.to_owned(), request.pubsub.to_owned())].into(),
            topic: request.topic.to_owned(),
            pubsub_name: request.pubsub.to_owned(),
            r#type: BULK_EVENT_TYPE.to_owned(),
            path: request.path.to_owned(),
        };
        let answered = call(transport, api_token, request.pubsub, bulk).await;
        let outcomes = match answered {
            Ok(response) => outcomes(
                &sent,
                response.statuses.into_iter().map(|status| {
                    let answer = match TopicEventResponseStatus::try_from(status.status) {
                        Ok(TopicEventResponseStatus::Success) => Answer::Success,
                        Ok(TopicEventResponseStatus::Retry) => Answer::Retry,
                        Ok(TopicEventResponseStatus::Drop) => Answer::Drop,
                        Err(unknown) => Answer::Unknown(unknown.0.to_string()),
                    };
                    (status.entry_id, answer)
                }),
            ),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                tracing::warn!(
                    "non-retriable error returned from app while processing bulk pub/sub event: {status}"
                );
                vec![Outcome::Dropped { dead_letter: false }; sent.len()]
            }
            Err(status) => {
                let reason = format!(
                    "error returned from app while processing bulk pub/sub event: {status}"
                );
                tracing::debug!("{reason}");
                vec![Outcome::Retry(reason); sent.len()]
            }
        };
        for (index, outcome) in sent_at.into_iter().zip(outcomes) {
            results[index] = Some(outcome);
        }
    }
    let elapsed = started.elapsed();
    let outcomes = results
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| Outcome::Retry("not delivered".to_owned())))
        .collect();
    (outcomes, elapsed)
}

/// Calls `OnBulkTopicEvent`, falling back to `OnBulkTopicEventAlpha1` when the app does
/// not implement it.
async fn call(
    transport: Channel,
    api_token: Option<&str>,
    pubsub: &str,
    bulk: TopicEventBulkRequest,
) -> Result<TopicEventBulkResponse, tonic::Status> {
    let request = |bulk: TopicEventBulkRequest| {
        let mut request = tonic::Request::new(bulk);
        if let Ok(value) = AsciiMetadataValue::try_from(pubsub) {
            request.metadata_mut().insert("pubsubname", value);
        }
        if let Some(token) = api_token
            && let Ok(value) = AsciiMetadataValue::try_from(token)
        {
            request.metadata_mut().insert(API_TOKEN_HEADER, value);
        }
        request
    };
    match AppCallbackClient::new(transport.clone())
        .on_bulk_topic_event(request(bulk.clone()))
        .await
    {
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            tracing::warn!(
                "falling back to OnBulkTopicEventAlpha1 due to unimplemented error: {status}"
            );
            // Upstream keeps calling the deprecated alpha method for older SDKs.
            #[allow(deprecated)]
            let answered = AppCallbackAlphaClient::new(transport)
                .on_bulk_topic_event_alpha1(request(bulk))
                .await;
            answered.map(tonic::Response::into_inner)
        }
        answered => answered.map(tonic::Response::into_inner),
    }
}

/// The request entry of `entry`.
fn item(entry: &Entry, request: &Request<'_>) -> Result<TopicEventBulkRequestEntry, String> {
    let event = if request.raw {
        Event::Bytes(entry.original.data.to_vec())
    } else {
        let single = envelope(&entry.event, request.pubsub, request.path)?;
        Event::CloudEvent(TopicEventCeRequest {
            id: single.id,
            source: single.source,
            r#type: single.r#type,
            spec_version: single.spec_version,
            data_content_type: single.data_content_type,
            data: single.data,
            extensions: single.extensions,
        })
    };
    Ok(TopicEventBulkRequestEntry {
        entry_id: entry.id.clone(),
        event: Some(event),
        content_type: entry.original.content_type.clone().unwrap_or_default(),
        metadata: entry
            .original
            .metadata
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    })
}
