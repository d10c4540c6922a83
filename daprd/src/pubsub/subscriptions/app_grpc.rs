//! Programmatic subscriptions of a gRPC app: `AppCallback/ListTopicSubscriptions`. An app
//! that does not implement it (`Unimplemented`) has none; other failures are retried and
//! then reported. A subscription without routes, or with neither rules nor a default,
//! gets one rule with an empty path, as upstream gives gRPC apps a default route.

use dapr_proto::runtime;
use dapr_proto::runtime::app_callback_client::AppCallbackClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use super::{BulkSubscribe, DiscoveryError, Rule, Subscription, SubscriptionType, with_retries};
use crate::api::middleware::API_TOKEN_HEADER;

/// Calls `ListTopicSubscriptions` over `transport` (retrying failures).
pub(super) async fn list(
    transport: Channel,
    api_token: Option<&str>,
) -> Result<Vec<Subscription>, DiscoveryError> {
    let token = api_token
        .map(AsciiMetadataValue::try_from)
        .transpose()
        .map_err(|error| DiscoveryError::App(error.to_string()))?;
    let response = with_retries(|| call(transport.clone(), token.clone()))
        .await
        .map_err(|status| DiscoveryError::App(status.to_string()))?;
    if response.subscriptions.is_empty() {
        tracing::debug!("user app did not subscribe to any topic");
    }
    Ok(from_response(response))
}

/// One call; `Unimplemented` is an empty answer.
async fn call(
    transport: Channel,
    token: Option<AsciiMetadataValue>,
) -> Result<runtime::ListTopicSubscriptionsResponse, tonic::Status> {
    let mut request = tonic::Request::new(());
    if let Some(token) = token {
        request.metadata_mut().insert(API_TOKEN_HEADER, token);
    }
    match AppCallbackClient::new(transport)
        .list_topic_subscriptions(request)
        .await
    {
        Ok(response) => Ok(response.into_inner()),
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            tracing::info!(
                "pubsub subscriptions: gRPC app does not implement ListTopicSubscriptions"
            );
            Ok(runtime::ListTopicSubscriptionsResponse::default())
        }
        Err(status) => Err(status),
    }
}

/// The subscriptions of a `ListTopicSubscriptions` answer.
pub(super) fn from_response(
    response: runtime::ListTopicSubscriptionsResponse,
) -> Vec<Subscription> {
    response
        .subscriptions
        .into_iter()
        .map(|subscription| Subscription {
            pubsub_name: subscription.pubsub_name,
            topic: subscription.topic,
            metadata: subscription.metadata.into_iter().collect(),
            rules: rules(subscription.routes.as_ref()),
            dead_letter_topic: subscription.dead_letter_topic,
            bulk_subscribe: subscription.bulk_subscribe.map(|bulk| BulkSubscribe {
                enabled: bulk.enabled,
                max_messages_count: bulk.max_messages_count,
                max_await_duration_ms: bulk.max_await_duration_ms,
            }),
            scopes: Vec::new(),
            kind: SubscriptionType::Programmatic,
        })
        .collect()
}

/// The rules, then the default route; one empty-path rule when that leaves none.
fn rules(routes: Option<&runtime::TopicRoutes>) -> Vec<Rule> {
    let Some(routes) = routes else {
        return vec![Rule::default_route("")];
    };
    let mut rules: Vec<Rule> = routes
        .rules
        .iter()
        .map(|rule| Rule::new(&rule.r#match, &rule.path))
        .collect();
    if !routes.default.is_empty() {
        rules.push(Rule::default_route(&routes.default));
    }
    if rules.is_empty() {
        rules.push(Rule::default_route(""));
    }
    rules
}
