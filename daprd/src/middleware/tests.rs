//! Pipelines over loaded middleware components: order of stages on the way in and out,
//! a stage answering for the rest, handlers without a component skipped.

use std::sync::Arc;

use axum::body::Body;
use http_body_util::BodyExt;

use super::Pipeline;
use crate::components::Components;
use crate::observability::metrics::SidecarMetrics;
use crate::test_support;

async fn components(yaml: &str) -> Arc<Components> {
    let set = test_support::load_yaml(yaml, &SidecarMetrics::disabled()).await;
    Arc::new(Components::new(set))
}

fn spec(handlers: &[(&str, &str)]) -> dapr_resources::configuration::PipelineSpec {
    dapr_resources::configuration::PipelineSpec {
        handlers: handlers
            .iter()
            .map(|(name, type_)| dapr_resources::configuration::HandlerSpec {
                name: (*name).to_owned(),
                type_: (*type_).to_owned(),
                ..Default::default()
            })
            .collect(),
    }
}

const COMPONENTS: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: upper}
spec:
  type: middleware.http.uppercase
  version: v1
  metadata:
  - {name: direction, value: both}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: checker}
spec:
  type: middleware.http.routerchecker
  version: v1
  metadata:
  - {name: rule, value: '^/ok'}
";

async fn text(body: Body) -> String {
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn requests_pass_stages_in_order_and_responses_return_through_them() {
    let components = components(COMPONENTS).await;
    let pipeline = Pipeline::new(
        "server",
        Some(&spec(&[
            ("upper", "middleware.http.uppercase"),
            ("checker", "middleware.http.routerchecker"),
            ("missing", "middleware.http.ratelimit"),
            ("upper", "middleware.http.ratelimit"),
        ])),
        components,
    )
    .unwrap();
    let request = http::Request::builder()
        .uri("/ok/path")
        .body(Body::from("body"))
        .unwrap();
    let response: Result<_, std::convert::Infallible> = pipeline
        .run(request, |request| async move {
            let seen = text(request.into_body()).await;
            Ok(http::Response::new(Body::from(format!("app saw {seen}"))))
        })
        .await;
    assert_eq!(text(response.unwrap().into_body()).await, "APP SAW BODY");

    // The checker answers: the app is not called; the uppercase stage before it still
    // sees the response.
    let request = http::Request::builder()
        .uri("/other")
        .body(Body::empty())
        .unwrap();
    let response: Result<_, std::convert::Infallible> = pipeline
        .run(request, |_| async { panic!("the app must not be called") })
        .await;
    let response = response.unwrap();
    assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(text(response.into_body()).await, "INVALID ROUTER");
}

#[tokio::test]
async fn empty_pipelines_are_none() {
    let components = components(COMPONENTS).await;
    assert!(Pipeline::new("server", None, components.clone()).is_none());
    assert!(Pipeline::new("server", Some(&spec(&[])), components).is_none());
}
