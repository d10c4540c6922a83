//! The internal API other sidecars call (`dapr.proto.internals.v1.ServiceInvocation`,
//! served on `--dapr-internal-grpc-port`): `CallLocal` and `CallLocalStream` check the call
//! against the access control policies, hand it to this sidecar's app channel and send
//! back the app's status, headers, trailers and body. The actor methods keep the generated
//! `Unimplemented` answers.

use crate::observability::metrics::GrpcServerMetricsLayer;
use crate::observability::trace::GrpcServerTraceLayer;
use std::sync::Arc;

use axum::body::Body;
use dapr_proto::internals::service_invocation_server::{
    ServiceInvocation, ServiceInvocationServer,
};
use dapr_proto::internals::{
    InternalInvokeRequest, InternalInvokeRequestStream, InternalInvokeResponse,
    InternalInvokeResponseStream,
};
use futures::StreamExt;
use http_body_util::BodyExt;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::acl::{AccessControl, CallerIdentity};
use crate::channel::AppChannel;
use crate::invoke::app_call::{AppCallMeter, CalleeProtocol};
use crate::invoke::target::normalize_method;
use crate::invoke::{InvokeRequest, InvokeResponse, Invoker, stream};

/// The `ServiceInvocation` service of one sidecar.
#[derive(Debug, Clone)]
pub struct InternalService {
    invoker: Arc<Invoker>,
    access_control: Option<Arc<AccessControl>>,
}

impl InternalService {
    /// The service, calling the app channel of `invoker`.
    pub fn new(invoker: Arc<Invoker>) -> Self {
        Self {
            invoker,
            access_control: None,
        }
    }

    /// Checks every call against `access_control`.
    pub fn with_access_control(mut self, access_control: Option<Arc<AccessControl>>) -> Self {
        self.access_control = access_control;
        self
    }

    /// The tonic server to add to the internal gRPC server's routes.
    pub fn into_server(self) -> ServiceInvocationServer<Self> {
        ServiceInvocationServer::new(self)
    }

    fn channel(&self) -> Result<&AppChannel, Status> {
        self.invoker
            .app_channel()
            .ok_or_else(|| Status::internal("app channel is not initialized"))
    }

    /// Checks the method and, once access control allows the call, calls the app,
    /// recording the call in the invocation metrics (a refused call is not counted, as
    /// upstream); channel failures become `Internal`.
    async fn call_app(
        &self,
        channel: &AppChannel,
        mut request: InvokeRequest,
    ) -> Result<InvokeResponse, Status> {
        request.method = normalize_method(&request.method)
            .map_err(|reason| Status::invalid_argument(format!("invalid method: {reason}")))?;
        if let Some(access_control) = &self.access_control {
            let caller = CallerIdentity::of_internal_call(&request.headers);
            let verb = request.http_verb.as_ref().map(axum::http::Method::as_str);
            access_control.authorize(caller.as_ref(), &request.method, verb)?;
        }
        let caller = request
            .headers
            .get("dapr-caller-app-id")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let metrics = self.invoker.metrics();
        metrics.record_invocation_request_received(&caller);
        let meter = AppCallMeter::start(&request, CalleeProtocol::of(channel.app().protocol));
        let reply = self.call_channel(channel, request).await;
        meter.finish(metrics, reply.as_ref().ok());
        let status = match &reply {
            Ok(response) => response.status_label(),
            Err(status) => status.code() as i32,
        };
        metrics.record_invocation_response_sent(&caller, status);
        reply
    }

    /// Calls the app; channel failures become `Internal`.
    async fn call_channel(
        &self,
        channel: &AppChannel,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, Status> {
        channel
            .invoke(request)
            .await
            .map_err(|err| Status::internal(format!("error invoking app channel: {}", err.message)))
    }
}

#[tonic::async_trait]
impl ServiceInvocation for InternalService {
    async fn call_local(
        &self,
        request: Request<InternalInvokeRequest>,
    ) -> Result<Response<InternalInvokeResponse>, Status> {
        let channel = self.channel()?;
        let mut head = request.into_inner();
        let data = head
            .message
            .as_mut()
            .and_then(|message| message.data.take())
            .map(|any| any.value)
            .unwrap_or_default();
        let request = stream::request_from_head(head, Body::from(data)).ok_or_else(|| {
            Status::invalid_argument("parsing InternalInvokeRequest error: field Message is nil")
        })?;
        let response = self.call_app(channel, request).await?;
        let mut reply = stream::response_head(&response);
        let data = response
            .body
            .collect()
            .await
            .map_err(|err| Status::internal(format!("failed to read response data: {err}")))?
            .to_bytes();
        if let Some(message) = reply.message.as_mut() {
            message.data = Some(prost_types::Any {
                type_url: String::new(),
                value: data.to_vec(),
            });
        }
        Ok(Response::new(reply))
    }

    async fn call_local_stream(
        &self,
        request: Request<Streaming<InternalInvokeRequestStream>>,
    ) -> Result<Response<BoxStream<InternalInvokeResponseStream>>, Status> {
        let channel = self.channel()?;
        let request = stream::incoming_request(request.into_inner()).await?;
        let response = self.call_app(channel, request).await?;
        Ok(Response::new(stream::outgoing_response(response).boxed()))
    }
}

/// The internal server's routes: `ServiceInvocation`, and gRPC calls proxied from other
/// sidecars to this app (any other service), within the message size limit; traced and
/// measured.
pub fn router(runtime: &std::sync::Arc<crate::runtime::Runtime>) -> axum::Router {
    let limit = usize::try_from(runtime.config.max_body_size).unwrap_or(usize::MAX);
    let service = InternalService::new(runtime.invoker.clone())
        .with_access_control(runtime.access_control.clone())
        .into_server()
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let proxy = crate::api::grpc::proxy::GrpcProxy::new(
        runtime.invoker.clone(),
        runtime.config.app_api_token.clone(),
        limit,
    )
    .with_access_control(runtime.access_control.clone());
    tonic::service::Routes::new(service)
        .into_axum_router()
        .fallback_service(proxy.router())
        .layer(GrpcServerMetricsLayer::new(runtime.metrics.clone()))
        .layer(GrpcServerTraceLayer::new(runtime.tracing.clone()))
}
