//! Streaming subscriptions end to end inside one process: a tonic `Dapr` client opens
//! `SubscribeTopicEventsAlpha1` streams on the sidecar's gRPC API, events published
//! through the API on real `pubsub.in-memory` (and Redis Streams) brokers arrive on the
//! stream, and the client's SUCCESS, RETRY and DROP answers settle them, with inbound
//! retries, dead-letter topics, scopes, the metadata API, the client leaving, and
//! sidecar shutdown checked.

use std::collections::HashMap;
use std::time::Duration;

use dapr_kit::metrics::MetricsRegistry;
use dapr_proto::runtime::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType;
use dapr_proto::runtime::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType;
use dapr_proto::runtime::topic_event_response::TopicEventResponseStatus;
use dapr_proto::runtime::{
    self as rt, SubscribeTopicEventsRequestAlpha1, SubscribeTopicEventsRequestInitialAlpha1,
    SubscribeTopicEventsRequestProcessedAlpha1, SubscribeTopicEventsResponseAlpha1,
    TopicEventRequest, TopicEventResponse,
};
use tokio::sync::mpsc;

use crate::observability::metrics::{MetricsSettings, SidecarMetrics};
use crate::pubsub::delivery::test_app::RESOURCES;
use crate::secrets::SecretScopes;
use crate::test_support::{self, PublicApis};

/// How long a client waits for a message it expects.
const EXPECTED: Duration = Duration::from_secs(5);
/// How long a client listens to be sure nothing comes.
const QUIET: Duration = Duration::from_millis(300);

/// A sidecar serving the public APIs over `resources`.
struct Sidecar {
    apis: PublicApis,
    registry: MetricsRegistry,
}

async fn sidecar(resources: &str) -> Sidecar {
    let registry = MetricsRegistry::new();
    let metrics =
        SidecarMetrics::register(&registry, &MetricsSettings::new("myapp", "default")).unwrap();
    let resources =
        dapr_resources::loader::parse_str(std::path::Path::new("resources.yaml"), resources)
            .unwrap();
    let set = crate::components::load(
        &resources.components,
        test_support::load_context(&metrics),
        None,
    )
    .await
    .unwrap();
    let apis = test_support::serve_public_apis_with_resiliencies(
        test_support::default_config(),
        set,
        SecretScopes::default(),
        metrics,
        resources.resiliencies.clone(),
    )
    .await;
    Sidecar { apis, registry }
}

impl Sidecar {
    async fn publish(&self, pubsub: &str, topic: &str, data: &str) {
        self.apis
            .grpc
            .clone()
            .publish_event(rt::PublishEventRequest {
                pubsub_name: pubsub.into(),
                topic: topic.into(),
                data: data.as_bytes().to_vec(),
                data_content_type: "text/plain".into(),
                metadata: HashMap::new(),
            })
            .await
            .unwrap();
    }

    /// The subscriptions the metadata API lists, as (pubsub, topic, type).
    async fn listed(&self) -> Vec<(String, String, i32)> {
        let metadata = self
            .apis
            .grpc
            .clone()
            .get_metadata(rt::GetMetadataRequest {})
            .await
            .unwrap()
            .into_inner();
        metadata
            .subscriptions
            .into_iter()
            .map(|subscription| {
                (
                    subscription.pubsub_name,
                    subscription.topic,
                    subscription.r#type,
                )
            })
            .collect()
    }

    /// Waits (bounded) until the metadata API lists `count` subscriptions.
    async fn wait_listed(&self, count: usize) -> Vec<(String, String, i32)> {
        for _ in 0..100 {
            let listed = self.listed().await;
            if listed.len() == count {
                return listed;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.listed().await
    }

    /// Opens a stream whose first message is `first`.
    async fn open(
        &self,
        first: SubscribeTopicEventsRequestAlpha1,
    ) -> Result<Client, tonic::Status> {
        let (requests, mut outgoing) = mpsc::unbounded_channel();
        requests.send(first).unwrap();
        let outgoing = futures::stream::poll_fn(move |context| outgoing.poll_recv(context));
        let responses = self
            .apis
            .grpc
            .clone()
            .subscribe_topic_events_alpha1(outgoing)
            .await?
            .into_inner();
        Ok(Client {
            requests,
            responses,
        })
    }

    /// Subscribes to `topic` of `pubsub` and checks the confirmation.
    async fn subscribe(
        &self,
        pubsub: &str,
        topic: &str,
        dead_letter_topic: Option<&str>,
    ) -> Client {
        let mut client = self
            .open(initial(pubsub, topic, dead_letter_topic))
            .await
            .unwrap();
        let confirmation = client.next().await.unwrap().unwrap();
        assert!(matches!(
            confirmation.subscribe_topic_events_response_type,
            Some(SubscribeTopicEventsResponseType::InitialResponse(_))
        ));
        client
    }
}

fn initial(
    pubsub: &str,
    topic: &str,
    dead_letter_topic: Option<&str>,
) -> SubscribeTopicEventsRequestAlpha1 {
    SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(SubscribeTopicEventsRequestType::InitialRequest(
            SubscribeTopicEventsRequestInitialAlpha1 {
                pubsub_name: pubsub.into(),
                topic: topic.into(),
                metadata: HashMap::new(),
                dead_letter_topic: dead_letter_topic.map(str::to_owned),
            },
        )),
    }
}

fn processed(id: &str, status: TopicEventResponseStatus) -> SubscribeTopicEventsRequestAlpha1 {
    SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(SubscribeTopicEventsRequestType::EventProcessed(
            SubscribeTopicEventsRequestProcessedAlpha1 {
                id: id.into(),
                status: Some(TopicEventResponse {
                    status: status as i32,
                }),
            },
        )),
    }
}

/// The client side of one stream.
struct Client {
    requests: mpsc::UnboundedSender<SubscribeTopicEventsRequestAlpha1>,
    responses: tonic::Streaming<SubscribeTopicEventsResponseAlpha1>,
}

impl Client {
    /// The next message (bounded wait): `Ok(None)` when the stream ended cleanly.
    async fn next(&mut self) -> Result<Option<SubscribeTopicEventsResponseAlpha1>, tonic::Status> {
        tokio::time::timeout(EXPECTED, self.responses.message())
            .await
            .expect("the sidecar answers in time")
    }

    /// The next event.
    async fn event(&mut self) -> TopicEventRequest {
        let message = self.next().await.unwrap().expect("an event");
        match message.subscribe_topic_events_response_type {
            Some(SubscribeTopicEventsResponseType::EventMessage(event)) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Answers the event `id` with `status`.
    fn answer(&self, id: &str, status: TopicEventResponseStatus) {
        self.requests.send(processed(id, status)).unwrap();
    }

    /// Asserts that nothing arrives for a while.
    async fn quiet(&mut self) {
        if let Ok(message) = tokio::time::timeout(QUIET, self.responses.message()).await {
            panic!("expected nothing, got {message:?}");
        }
    }
}

const STREAMING: i32 = rt::PubsubSubscriptionType::Streaming as i32;

#[tokio::test]
async fn events_flow_over_the_stream_and_success_settles_them() {
    let sidecar = sidecar(RESOURCES).await;
    let mut client = sidecar.subscribe("bus", "orders", None).await;
    let metadata = sidecar
        .apis
        .grpc
        .clone()
        .get_metadata(rt::GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.subscriptions.len(), 1);
    let listed = &metadata.subscriptions[0];
    assert_eq!(
        (listed.pubsub_name.as_str(), listed.topic.as_str()),
        ("bus", "orders")
    );
    assert_eq!(listed.r#type, STREAMING);
    let rules = &listed.rules.as_ref().unwrap().rules;
    assert_eq!(rules.len(), 1);
    assert_eq!(
        (rules[0].r#match.as_str(), rules[0].path.as_str()),
        ("", "/")
    );

    sidecar.publish("bus", "orders", "one").await;
    let event = client.event().await;
    assert!(!event.id.is_empty());
    assert_eq!(event.data, b"one");
    assert_eq!(event.data_content_type, "text/plain");
    assert_eq!(event.topic, "orders");
    assert_eq!(event.pubsub_name, "bus");
    assert_eq!(event.path, "/");
    assert_eq!(event.source, "myapp");
    assert_eq!(event.spec_version, "1.0");
    client.answer(&event.id, TopicEventResponseStatus::Success);

    // The in-memory broker hands over one event at a time: the next one arrives once
    // the first is settled.
    sidecar.publish("bus", "orders", "two").await;
    let second = client.event().await;
    assert_eq!(second.data, b"two");
    client.answer(&second.id, TopicEventResponseStatus::Success);
    client.quiet().await;

    let text = sidecar.registry.encode_text();
    assert!(
        text.lines().any(
            |line| line.starts_with("dapr_component_pubsub_ingress_count{")
                && line.contains("process_status=\"success\"")
                && line.contains("topic=\"orders\"")
                && line.ends_with(" 2")
        ),
        "{text}"
    );
}

#[tokio::test]
async fn several_streams_may_share_a_topic_and_each_gets_every_event() {
    let sidecar = sidecar(RESOURCES).await;
    let mut first = sidecar.subscribe("bus", "orders", None).await;
    let mut second = sidecar.subscribe("bus", "orders", None).await;
    let listed = sidecar.listed().await;
    assert_eq!(
        listed,
        [
            ("bus".to_owned(), "orders".to_owned(), STREAMING),
            ("bus".to_owned(), "orders".to_owned(), STREAMING)
        ]
    );
    sidecar.publish("bus", "orders", "both").await;
    for client in [&mut first, &mut second] {
        let event = client.event().await;
        assert_eq!(event.data, b"both");
        client.answer(&event.id, TopicEventResponseStatus::Success);
    }
    drop(first);
    assert_eq!(sidecar.wait_listed(1).await.len(), 1);
    sidecar.publish("bus", "orders", "one left").await;
    assert_eq!(second.event().await.data, b"one left");
}

#[tokio::test]
async fn retried_events_are_redelivered_by_policy_then_dead_lettered() {
    let sidecar = sidecar(RESOURCES).await;
    let mut orders = sidecar.subscribe("bus", "orders", Some("dead")).await;
    let mut dead = sidecar.subscribe("bus", "dead", None).await;
    sidecar.publish("bus", "orders", "poison").await;
    let mut ids = Vec::new();
    // One attempt and three retries, then the dead-letter topic.
    for _ in 0..4 {
        let event = orders.event().await;
        assert_eq!(event.data, b"poison");
        orders.answer(&event.id, TopicEventResponseStatus::Retry);
        ids.push(event.id);
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let dead_lettered = dead.event().await;
    assert_eq!(dead_lettered.data, b"poison");
    assert_eq!(dead_lettered.topic, "dead");
    assert_eq!(dead_lettered.id, ids[0]);
    dead.answer(&dead_lettered.id, TopicEventResponseStatus::Success);
    orders.quiet().await;
    dead.quiet().await;
}

#[tokio::test]
async fn dropped_events_go_to_the_dead_letter_topic_without_retries() {
    let sidecar = sidecar(RESOURCES).await;
    let mut orders = sidecar.subscribe("bus", "orders", Some("dead")).await;
    let mut dead = sidecar.subscribe("bus", "dead", None).await;
    sidecar.publish("bus", "orders", "unwanted").await;
    let event = orders.event().await;
    orders.answer(&event.id, TopicEventResponseStatus::Drop);
    let dead_lettered = dead.event().await;
    assert_eq!(dead_lettered.data, b"unwanted");
    dead.answer(&dead_lettered.id, TopicEventResponseStatus::Success);
    orders.quiet().await;
    dead.quiet().await;
    let text = sidecar.registry.encode_text();
    assert!(
        text.lines().any(
            |line| line.starts_with("dapr_component_pubsub_ingress_count{")
                && line.contains("process_status=\"drop\"")
                && line.contains("topic=\"orders\"")
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_leaving_unsubscribes_without_settling_its_events() {
    let sidecar = sidecar(RESOURCES).await;
    let mut orders = sidecar.subscribe("bus", "orders", Some("dead")).await;
    let mut dead = sidecar.subscribe("bus", "dead", None).await;
    sidecar.publish("bus", "orders", "unanswered").await;
    let event = orders.event().await;
    assert_eq!(event.data, b"unanswered");
    drop(orders);
    let listed = sidecar.wait_listed(1).await;
    assert_eq!(listed, [("bus".to_owned(), "dead".to_owned(), STREAMING)]);
    // Not answered, so neither acknowledged nor dead-lettered.
    dead.quiet().await;
    // Later events are not dead-lettered either.
    sidecar.publish("bus", "orders", "later").await;
    dead.quiet().await;
    // A new stream receives new events.
    let mut again = sidecar.subscribe("bus", "orders", None).await;
    sidecar.publish("bus", "orders", "again").await;
    assert_eq!(again.event().await.data, b"again");
}

#[tokio::test]
async fn events_left_unanswered_are_redelivered_by_the_broker() {
    let redis = dapr_testkit::servers::Redis::start().await.unwrap();
    let resources = format!(
        r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: streams}}
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - {{name: redisHost, value: "{}"}}
  - {{name: processingTimeout, value: "500ms"}}
  - {{name: redeliverInterval, value: "100ms"}}
"#,
        redis.host()
    );
    let sidecar = sidecar(&resources).await;
    let mut first = sidecar.subscribe("streams", "orders", None).await;
    sidecar.publish("streams", "orders", "keep me").await;
    let event = first.event().await;
    assert_eq!(event.data, b"keep me");
    drop(first);
    assert!(sidecar.wait_listed(0).await.is_empty());
    let mut second = sidecar.subscribe("streams", "orders", None).await;
    let redelivered = second.event().await;
    assert_eq!(redelivered.data, b"keep me");
    assert_eq!(redelivered.id, event.id);
    second.answer(&redelivered.id, TopicEventResponseStatus::Success);
    second.quiet().await;
}

/// Opens a stream with `first` and returns the error it ends with.
async fn refused(sidecar: &Sidecar, first: SubscribeTopicEventsRequestAlpha1) -> tonic::Status {
    match sidecar.open(first).await {
        Err(status) => status,
        Ok(mut client) => match client.next().await {
            Err(status) => status,
            Ok(message) => panic!("expected an error, got {message:?}"),
        },
    }
}

#[tokio::test]
async fn invalid_initial_requests_are_refused_with_upstreams_errors() {
    let sidecar = sidecar(RESOURCES).await;
    let status = refused(&sidecar, processed("1", TopicEventResponseStatus::Success)).await;
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(status.message(), "initial request is required");

    let status = refused(&sidecar, initial("", "orders", None)).await;
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(status.message(), "pubsubName is required");

    let status = refused(&sidecar, initial("bus", "", None)).await;
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(status.message(), "topic is required");

    let status = refused(&sidecar, initial("notexist", "orders", None)).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "pubsub notexist is not found");
    assert!(String::from_utf8_lossy(status.details()).contains("DAPR_PUBSUB_NOT_FOUND"));

    let status = refused(&sidecar, initial("scoped", "closed", None)).await;
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(
        status.message(),
        "failed to create subscription for scoped: subscription to topic 'closed' on pubsub \
         'scoped' is not allowed"
    );
    sidecar.subscribe("scoped", "open", None).await;

    // Only the allowed stream is listed: refused ones never were.
    assert_eq!(
        sidecar.listed().await,
        [("scoped".to_owned(), "open".to_owned(), STREAMING)]
    );
}

#[tokio::test]
async fn a_second_initial_request_ends_the_stream() {
    let sidecar = sidecar(RESOURCES).await;
    let mut client = sidecar.subscribe("bus", "orders", None).await;
    client
        .requests
        .send(initial("bus", "orders", None))
        .unwrap();
    let status = client.next().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(status.message(), "duplicate initial request received");
    assert!(sidecar.wait_listed(0).await.is_empty());
}

#[tokio::test]
async fn shutdown_ends_streams_once_sent_events_are_answered() {
    let sidecar = sidecar(RESOURCES).await;
    let mut client = sidecar.subscribe("bus", "orders", None).await;
    sidecar.publish("bus", "orders", "in flight").await;
    let event = client.event().await;
    sidecar.apis.runtime.shutdown.trigger();
    // The stream waits for the answer to the event it sent.
    client.quiet().await;
    client.answer(&event.id, TopicEventResponseStatus::Success);
    let status = client.next().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(status.message(), "stream closed");
    assert!(sidecar.wait_listed(0).await.is_empty());
    let text = sidecar.registry.encode_text();
    assert!(
        text.lines().any(
            |line| line.starts_with("dapr_component_pubsub_ingress_count{")
                && line.contains("process_status=\"success\"")
        ),
        "{text}"
    );
    // New streams are refused while the sidecar shuts down.
    let status = refused(&sidecar, initial("bus", "orders", None)).await;
    assert_eq!(status.message(), "api server closed");
}
