//! `SubscribeTopicEventsAlpha1` on the `Dapr` service: hands the client's stream to the
//! streaming-subscription core and returns the core's messages as the response stream.

use std::sync::Arc;

use dapr_proto::runtime;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::pubsub::streaming;
use crate::runtime::Runtime;

/// `SubscribeTopicEventsAlpha1`: a streaming subscription.
pub async fn subscribe_topic_events(
    runtime: &Arc<Runtime>,
    request: Request<Streaming<runtime::SubscribeTopicEventsRequestAlpha1>>,
) -> Result<Response<BoxStream<runtime::SubscribeTopicEventsResponseAlpha1>>, Status> {
    let responses = streaming::open(runtime.clone(), request.into_inner()).await?;
    Ok(Response::new(Box::pin(responses)))
}
