//! The public gRPC API (`dapr.proto.runtime.v1.Dapr`). Methods this build serves are
//! implemented here by calling the core; the rest answer `Unimplemented` (generated
//! defaults), as upstream does for APIs it does not serve.

mod bindings;
mod configuration;
mod crypto;
pub mod invoke;
mod lock;
mod message_limit;
pub mod proxy;
mod proxy_resiliency;
mod pubsub;
mod secrets;
mod size_status;
mod state;
mod subscribe;

use std::sync::Arc;

use dapr_proto::runtime;
use dapr_proto::runtime::dapr_server::{Dapr, DaprServer};
use tonic::{Request, Response, Status};

use crate::api::middleware;
use crate::observability::api_log::GrpcApiLogLayer;
use crate::observability::metrics::GrpcServerMetricsLayer;
use crate::observability::trace::GrpcServerTraceLayer;
use crate::runtime::Runtime;

/// The `Dapr` service.
#[derive(Debug, Clone)]
pub struct DaprApi {
    runtime: Arc<Runtime>,
}

#[tonic::async_trait]
impl Dapr for DaprApi {
    async fn invoke_service(
        &self,
        request: Request<runtime::InvokeServiceRequest>,
    ) -> Result<Response<dapr_proto::common::InvokeResponse>, Status> {
        invoke::invoke_service(&self.runtime.invoker, request).await
    }

    async fn get_metadata(
        &self,
        _request: Request<runtime::GetMetadataRequest>,
    ) -> Result<Response<runtime::GetMetadataResponse>, Status> {
        Ok(Response::new(self.runtime.metadata.get()))
    }

    async fn set_metadata(
        &self,
        request: Request<runtime::SetMetadataRequest>,
    ) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        self.runtime.metadata.set(&request.key, request.value);
        Ok(Response::new(()))
    }

    async fn get_state(
        &self,
        request: Request<runtime::GetStateRequest>,
    ) -> Result<Response<runtime::GetStateResponse>, Status> {
        state::get_state(&self.runtime, request).await
    }

    async fn get_bulk_state(
        &self,
        request: Request<runtime::GetBulkStateRequest>,
    ) -> Result<Response<runtime::GetBulkStateResponse>, Status> {
        state::get_bulk_state(&self.runtime, request).await
    }

    async fn save_state(
        &self,
        request: Request<runtime::SaveStateRequest>,
    ) -> Result<Response<()>, Status> {
        state::save_state(&self.runtime, request).await
    }

    async fn query_state_alpha1(
        &self,
        request: Request<runtime::QueryStateRequest>,
    ) -> Result<Response<runtime::QueryStateResponse>, Status> {
        state::query_state(&self.runtime, request).await
    }

    async fn delete_state(
        &self,
        request: Request<runtime::DeleteStateRequest>,
    ) -> Result<Response<()>, Status> {
        state::delete_state(&self.runtime, request).await
    }

    async fn delete_bulk_state(
        &self,
        request: Request<runtime::DeleteBulkStateRequest>,
    ) -> Result<Response<()>, Status> {
        state::delete_bulk_state(&self.runtime, request).await
    }

    async fn execute_state_transaction(
        &self,
        request: Request<runtime::ExecuteStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        state::execute_state_transaction(&self.runtime, request).await
    }

    async fn get_secret(
        &self,
        request: Request<runtime::GetSecretRequest>,
    ) -> Result<Response<runtime::GetSecretResponse>, Status> {
        secrets::get_secret(&self.runtime, request).await
    }

    async fn get_bulk_secret(
        &self,
        request: Request<runtime::GetBulkSecretRequest>,
    ) -> Result<Response<runtime::GetBulkSecretResponse>, Status> {
        secrets::get_bulk_secret(&self.runtime, request).await
    }

    async fn publish_event(
        &self,
        request: Request<runtime::PublishEventRequest>,
    ) -> Result<Response<()>, Status> {
        pubsub::publish_event(&self.runtime, request).await
    }

    async fn bulk_publish_event(
        &self,
        request: Request<runtime::BulkPublishRequest>,
    ) -> Result<Response<runtime::BulkPublishResponse>, Status> {
        pubsub::bulk_publish_event(&self.runtime, request).await
    }

    async fn bulk_publish_event_alpha1(
        &self,
        request: Request<runtime::BulkPublishRequest>,
    ) -> Result<Response<runtime::BulkPublishResponse>, Status> {
        pubsub::bulk_publish_event(&self.runtime, request).await
    }

    async fn subscribe_topic_events_alpha1(
        &self,
        request: Request<tonic::Streaming<runtime::SubscribeTopicEventsRequestAlpha1>>,
    ) -> Result<
        Response<tonic::codegen::BoxStream<runtime::SubscribeTopicEventsResponseAlpha1>>,
        Status,
    > {
        subscribe::subscribe_topic_events(&self.runtime, request).await
    }

    async fn invoke_binding(
        &self,
        request: Request<runtime::InvokeBindingRequest>,
    ) -> Result<Response<runtime::InvokeBindingResponse>, Status> {
        bindings::invoke_binding(&self.runtime, request).await
    }

    async fn get_configuration(
        &self,
        request: Request<runtime::GetConfigurationRequest>,
    ) -> Result<Response<runtime::GetConfigurationResponse>, Status> {
        configuration::get_configuration(&self.runtime, request).await
    }

    async fn get_configuration_alpha1(
        &self,
        request: Request<runtime::GetConfigurationRequest>,
    ) -> Result<Response<runtime::GetConfigurationResponse>, Status> {
        configuration::get_configuration(&self.runtime, request).await
    }

    async fn subscribe_configuration(
        &self,
        request: Request<runtime::SubscribeConfigurationRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<runtime::SubscribeConfigurationResponse>>, Status>
    {
        configuration::subscribe_configuration(&self.runtime, request).await
    }

    async fn subscribe_configuration_alpha1(
        &self,
        request: Request<runtime::SubscribeConfigurationRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<runtime::SubscribeConfigurationResponse>>, Status>
    {
        configuration::subscribe_configuration(&self.runtime, request).await
    }

    async fn unsubscribe_configuration(
        &self,
        request: Request<runtime::UnsubscribeConfigurationRequest>,
    ) -> Result<Response<runtime::UnsubscribeConfigurationResponse>, Status> {
        Ok(configuration::unsubscribe_configuration(
            &self.runtime,
            request,
        ))
    }

    async fn unsubscribe_configuration_alpha1(
        &self,
        request: Request<runtime::UnsubscribeConfigurationRequest>,
    ) -> Result<Response<runtime::UnsubscribeConfigurationResponse>, Status> {
        Ok(configuration::unsubscribe_configuration(
            &self.runtime,
            request,
        ))
    }

    async fn try_lock_alpha1(
        &self,
        request: Request<runtime::TryLockRequest>,
    ) -> Result<Response<runtime::TryLockResponse>, Status> {
        lock::try_lock(&self.runtime, request).await
    }

    async fn unlock_alpha1(
        &self,
        request: Request<runtime::UnlockRequest>,
    ) -> Result<Response<runtime::UnlockResponse>, Status> {
        lock::unlock(&self.runtime, request).await
    }

    async fn encrypt_alpha1(
        &self,
        request: Request<tonic::Streaming<runtime::EncryptRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<runtime::EncryptResponse>>, Status> {
        crypto::encrypt(&self.runtime, request).await
    }

    async fn decrypt_alpha1(
        &self,
        request: Request<tonic::Streaming<runtime::DecryptRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<runtime::DecryptResponse>>, Status> {
        crypto::decrypt(&self.runtime, request).await
    }

    async fn subtle_get_key_alpha1(
        &self,
        request: Request<runtime::SubtleGetKeyRequest>,
    ) -> Result<Response<runtime::SubtleGetKeyResponse>, Status> {
        crypto::unary(crate::crypto::subtle::get_key(
            &self.runtime,
            request.into_inner(),
        ))
        .await
    }

    async fn subtle_encrypt_alpha1(
        &self,
        request: Request<runtime::SubtleEncryptRequest>,
    ) -> Result<Response<runtime::SubtleEncryptResponse>, Status> {
        crypto::unary(crate::crypto::subtle::encrypt(
            &self.runtime,
            request.into_inner(),
        ))
        .await
    }

    async fn subtle_decrypt_alpha1(
        &self,
        request: Request<runtime::SubtleDecryptRequest>,
    ) -> Result<Response<runtime::SubtleDecryptResponse>, Status> {
        crypto::unary(crate::crypto::subtle::decrypt(
            &self.runtime,
            request.into_inner(),
        ))
        .await
    }

    async fn subtle_wrap_key_alpha1(
        &self,
        request: Request<runtime::SubtleWrapKeyRequest>,
    ) -> Result<Response<runtime::SubtleWrapKeyResponse>, Status> {
        crypto::unary(crate::crypto::subtle::wrap_key(
            &self.runtime,
            request.into_inner(),
        ))
        .await
    }

    async fn subtle_unwrap_key_alpha1(
        &self,
        request: Request<runtime::SubtleUnwrapKeyRequest>,
    ) -> Result<Response<runtime::SubtleUnwrapKeyResponse>, Status> {
        crypto::unary(crate::crypto::subtle::unwrap_key(
            &self.runtime,
            request.into_inner(),
        ))
        .await
    }

    async fn subtle_sign_alpha1(
        &self,
        request: Request<runtime::SubtleSignRequest>,
    ) -> Result<Response<runtime::SubtleSignResponse>, Status> {
        crypto::unary(crate::crypto::subtle::sign(
            &self.runtime,
            request.into_inner(),
        ))
        .await
    }

    async fn subtle_verify_alpha1(
        &self,
        request: Request<runtime::SubtleVerifyRequest>,
    ) -> Result<Response<runtime::SubtleVerifyResponse>, Status> {
        crypto::unary(crate::crypto::subtle::verify(
            &self.runtime,
            request.into_inner(),
        ))
        .await
    }

    async fn shutdown(
        &self,
        request: Request<runtime::ShutdownRequest>,
    ) -> Result<Response<()>, Status> {
        self.runtime.request_shutdown(request.metadata().as_ref());
        Ok(Response::new(()))
    }
}

/// The public gRPC server's routes: the `Dapr` service, and any other service proxied to
/// the app named by `dapr-app-id`; with the API-token check and message size limits.
pub fn router(runtime: Arc<Runtime>) -> axum::Router {
    let token = runtime.config.api_token.clone();
    let api_access = runtime.api_access.clone();
    let observed = runtime.clone();
    let limit = usize::try_from(runtime.config.max_body_size).unwrap_or(usize::MAX);
    let proxy = proxy::GrpcProxy::new(
        runtime.invoker.clone(),
        runtime.config.app_api_token.clone(),
        limit,
    );
    let dapr = DaprServer::new(DaprApi { runtime })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let router = tonic::service::Routes::new(dapr)
        .into_axum_router()
        .fallback_service(proxy.router())
        .layer(axum::middleware::from_fn_with_state(
            api_access,
            crate::api::api_access::grpc_layer,
        ))
        .layer(axum::middleware::from_fn(size_status::grpc_go_size_status))
        .layer(axum::middleware::from_fn_with_state(
            token,
            middleware::require_api_token_grpc,
        ));
    let router = if observed.api_logging.is_some() {
        router.layer(GrpcApiLogLayer::new())
    } else {
        router
    };
    router
        .layer(GrpcServerMetricsLayer::new(observed.metrics.clone()))
        .layer(GrpcServerTraceLayer::new(observed.tracing.clone()))
}
