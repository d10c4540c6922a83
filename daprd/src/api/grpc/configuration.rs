//! The configuration API over gRPC, by the configuration core: `GetConfiguration`,
//! `SubscribeConfiguration` (a stream whose first message carries only the subscription
//! id, then one message per update; the subscription ends when the client goes away or
//! `UnsubscribeConfiguration` names it) and `UnsubscribeConfiguration`, each with its
//! alpha1 alias.

use std::sync::Arc;

use dapr_components::configuration::{ConfigurationItem, UpdateEvent, UpdateHandler};
use dapr_proto::{common, runtime};
use futures::StreamExt;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::configuration::{self, subscribe};
use crate::runtime::Runtime;

fn item_message(item: ConfigurationItem) -> common::ConfigurationItem {
    common::ConfigurationItem {
        value: item.value,
        version: item.version,
        metadata: item.metadata,
    }
}

/// `GetConfiguration`.
pub async fn get_configuration(
    runtime: &Runtime,
    request: Request<runtime::GetConfigurationRequest>,
) -> Result<Response<runtime::GetConfigurationResponse>, Status> {
    let request = request.into_inner();
    let items = configuration::get(
        runtime,
        &request.store_name,
        &request.keys,
        &request.metadata,
    )
    .await
    .map_err(|error| error.to_status())?;
    Ok(Response::new(runtime::GetConfigurationResponse {
        items: items
            .into_iter()
            .map(|(key, item)| (key, item_message(item)))
            .collect(),
    }))
}

/// Sends each update down a subscription stream.
struct StreamUpdates(UnboundedSender<runtime::SubscribeConfigurationResponse>);

#[async_trait::async_trait]
impl UpdateHandler for StreamUpdates {
    async fn update(&self, event: UpdateEvent) {
        let message = runtime::SubscribeConfigurationResponse {
            id: event.id,
            items: event
                .items
                .into_iter()
                .map(|(key, item)| (key, item_message(item)))
                .collect(),
        };
        // A closed stream is being unsubscribed; the update has no reader left.
        let _ = self.0.send(message);
    }
}

/// Ends a subscription when its stream is dropped: unsubscribes from the store.
struct StreamGuard {
    runtime: Arc<Runtime>,
    store: String,
    id: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let runtime = Arc::clone(&self.runtime);
        let store = std::mem::take(&mut self.store);
        let id = std::mem::take(&mut self.id);
        runtime.configuration_streams.forget(&id);
        tokio::spawn(async move {
            if let Err(reason) = subscribe::unsubscribe(&runtime, &store, &id).await {
                tracing::debug!("failed to unsubscribe to configuration request {id}: {reason}");
            }
        });
    }
}

/// `SubscribeConfiguration`.
pub async fn subscribe_configuration(
    runtime: &Arc<Runtime>,
    request: Request<runtime::SubscribeConfigurationRequest>,
) -> Result<Response<BoxStream<runtime::SubscribeConfigurationResponse>>, Status> {
    let request = request.into_inner();
    let mut keys = request.keys;
    keys.sort();
    let (sender, receiver) = unbounded_channel();
    let id = subscribe::subscribe(
        runtime,
        &request.store_name,
        keys,
        request.metadata,
        Arc::new(StreamUpdates(sender)),
    )
    .await
    .map_err(|error| error.to_status())?;
    let mut stopped = runtime.configuration_streams.register(&id);
    let guard = StreamGuard {
        runtime: Arc::clone(runtime),
        store: request.store_name,
        id: id.clone(),
    };
    let first = runtime::SubscribeConfigurationResponse {
        id,
        items: Default::default(),
    };
    let stop = async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    };
    let stream = futures::stream::once(async { first })
        .chain(futures::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|message| (message, receiver)) },
        ))
        .take_until(Box::pin(stop))
        .map(move |message| {
            let _alive = &guard;
            Ok(message)
        });
    Ok(Response::new(stream.boxed()))
}

/// `UnsubscribeConfiguration`: ends the stream of subscription `id`.
pub fn unsubscribe_configuration(
    runtime: &Runtime,
    request: Request<runtime::UnsubscribeConfigurationRequest>,
) -> Response<runtime::UnsubscribeConfigurationResponse> {
    let id = request.into_inner().id;
    if runtime.configuration_streams.stop(&id) {
        tracing::warn!(
            "Unsubscribing using UnsubscribeConfiguration is deprecated. Disconnect from the SubscribeConfiguration RPC instead."
        );
        return Response::new(runtime::UnsubscribeConfigurationResponse {
            ok: true,
            message: String::new(),
        });
    }
    Response::new(runtime::UnsubscribeConfigurationResponse {
        ok: false,
        message: format!(
            "failed to unsubscribe to configuration request {id}: subscription does not exist"
        ),
    })
}
