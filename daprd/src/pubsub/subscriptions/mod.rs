//! The app's pub/sub subscriptions, as upstream knows them: declarative `Subscription`
//! resources (in this app's scope) and the programmatic ones the app reports at start
//! (`GET /dapr/subscribe` for HTTP apps, `AppCallback/ListTopicSubscriptions` for gRPC
//! apps). Both become one [`Subscription`] model; [`merge`] combines them the way upstream
//! lists them, and [`Subscription::to_metadata`] renders one for the metadata API.
//!
//! Routing rules keep their match expression as text: the CEL expressions are evaluated
//! when messages are delivered, not here.

mod app_grpc;
mod app_http;
mod declarative;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use dapr_kit::backoff::ExponentialBackoff;
use dapr_proto::runtime;

use crate::channel::AppChannel;
use crate::error::ApiError;

pub use app_http::parse_app_document;
pub use declarative::declarative;

/// How a subscription came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionType {
    /// From a `Subscription` resource.
    Declarative,
    /// Reported by the app at start.
    Programmatic,
    /// Opened by the app on a stream (`SubscribeTopicEventsAlpha1`).
    Streaming,
}

impl SubscriptionType {
    /// The metadata API's enum value.
    fn to_proto(self) -> runtime::PubsubSubscriptionType {
        match self {
            SubscriptionType::Declarative => runtime::PubsubSubscriptionType::Declarative,
            SubscriptionType::Programmatic => runtime::PubsubSubscriptionType::Programmatic,
            SubscriptionType::Streaming => runtime::PubsubSubscriptionType::Streaming,
        }
    }
}

/// One routing rule: messages matching `match_expression` go to `path`. An empty
/// expression always matches (the default route, always last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// The CEL expression, trimmed; empty for the default route.
    pub match_expression: String,
    /// The app path (HTTP) or the path passed to the app (gRPC).
    pub path: String,
}

impl Rule {
    /// A rule from an app or a resource, with the expression trimmed as upstream does.
    fn new(match_expression: &str, path: &str) -> Self {
        Self {
            match_expression: match_expression.trim().to_string(),
            path: path.to_string(),
        }
    }

    /// The default route: no expression.
    fn default_route(path: &str) -> Self {
        Self {
            match_expression: String::new(),
            path: path.to_string(),
        }
    }
}

/// Bulk delivery settings of a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkSubscribe {
    /// Deliver messages in batches.
    pub enabled: bool,
    /// Largest batch; 0 uses the component's default.
    pub max_messages_count: i32,
    /// Longest wait for a batch, in milliseconds; 0 uses the default.
    pub max_await_duration_ms: i32,
}

/// One subscription of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The pub/sub component's name.
    pub pubsub_name: String,
    /// The topic.
    pub topic: String,
    /// Subscription metadata passed to the component.
    pub metadata: BTreeMap<String, String>,
    /// Routing rules in order, the default route (if any) last.
    pub rules: Vec<Rule>,
    /// Topic receiving messages the app failed to process; empty for none.
    pub dead_letter_topic: String,
    /// Bulk delivery settings; `None` when a gRPC app sent none.
    pub bulk_subscribe: Option<BulkSubscribe>,
    /// App ids of a declarative subscription's `scopes` (empty: every app).
    pub scopes: Vec<String>,
    /// Declarative or programmatic.
    pub kind: SubscriptionType,
}

impl Subscription {
    /// The metadata API's view of the subscription.
    pub fn to_metadata(&self) -> runtime::PubsubSubscription {
        runtime::PubsubSubscription {
            pubsub_name: self.pubsub_name.clone(),
            topic: self.topic.clone(),
            metadata: self.metadata.clone().into_iter().collect(),
            rules: Some(runtime::PubsubSubscriptionRules {
                rules: self
                    .rules
                    .iter()
                    .map(|rule| runtime::PubsubSubscriptionRule {
                        r#match: rule.match_expression.clone(),
                        path: rule.path.clone(),
                    })
                    .collect(),
            }),
            dead_letter_topic: self.dead_letter_topic.clone(),
            r#type: self.kind.to_proto() as i32,
        }
    }
}

/// The app's subscriptions as upstream lists them: declarative ones in order (the first
/// for a pub/sub and topic wins), then programmatic ones, each replacing an earlier entry
/// for the same pub/sub and topic in place or else appended.
pub fn merge(declarative: &[Subscription], programmatic: &[Subscription]) -> Vec<Subscription> {
    let mut merged: Vec<Subscription> = Vec::new();
    let mut taken: HashMap<(String, String), usize> = HashMap::new();
    for subscription in declarative {
        let key = (subscription.pubsub_name.clone(), subscription.topic.clone());
        if let std::collections::hash_map::Entry::Vacant(slot) = taken.entry(key) {
            slot.insert(merged.len());
            merged.push(subscription.clone());
        }
    }
    for subscription in programmatic {
        let key = (subscription.pubsub_name.clone(), subscription.topic.clone());
        match taken.get(&key) {
            Some(&index) => merged[index] = subscription.clone(),
            None => {
                taken.insert(key, merged.len());
                merged.push(subscription.clone());
            }
        }
    }
    merged
}

/// Why the app's subscriptions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The app could not be called (after upstream's initialization retries).
    #[error("error getting topic list from app: {0}")]
    App(String),
    /// The app's `/dapr/subscribe` document is not valid.
    #[error("error getting topics from app: {0}")]
    Document(String),
}

impl From<ApiError> for DiscoveryError {
    fn from(error: ApiError) -> Self {
        DiscoveryError::App(error.to_string())
    }
}

/// Asks the app for its subscriptions, over HTTP or gRPC as the channel speaks.
/// `api_token` is `APP_API_TOKEN`, sent to gRPC apps (the HTTP channel adds it itself).
pub async fn discover(
    channel: &AppChannel,
    app_id: &str,
    api_token: Option<&str>,
) -> Result<Vec<Subscription>, DiscoveryError> {
    let subscriptions = match channel.grpc_transport() {
        Some(transport) => app_grpc::list(transport, api_token).await?,
        None => app_http::list(channel, app_id).await?,
    };
    let mut topics: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for subscription in &subscriptions {
        topics
            .entry(&subscription.pubsub_name)
            .or_default()
            .push(&subscription.topic);
    }
    for (pubsub, topics) in topics {
        tracing::info!(
            "app is subscribed to the following topics: [{}] through pubsub={pubsub}",
            topics.join(" ")
        );
    }
    Ok(subscriptions)
}

/// Upstream's built-in initialization retry policy: 3 retries, exponential from 500 ms,
/// each wait at most 1 s, 10 s in all.
fn initialization_retries() -> ExponentialBackoff {
    ExponentialBackoff {
        initial_interval: Duration::from_millis(500),
        randomization_factor: 0.5,
        multiplier: 1.5,
        max_interval: Duration::from_secs(1),
        max_elapsed_time: Some(Duration::from_secs(10)),
        max_retries: Some(3),
    }
}

/// Runs `attempt` until it succeeds or [`initialization_retries`] give up.
async fn with_retries<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delays = initialization_retries().delays();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => match delays.next() {
                Some(delay) => {
                    tracing::debug!("retrying the app's subscription list in {delay:?}: {error}");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(error),
            },
        }
    }
}
