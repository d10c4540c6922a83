use std::collections::BTreeMap;

use kube::Resource;
use serde_json::json;

use crate::common::DynamicValue;
use crate::component::ComponentSpec;
use crate::subscription::{BulkSubscribe, v1alpha1, v2alpha1};
use crate::{Component, Configuration, DaprResource, HttpEndpoint, Resiliency};

#[test]
fn kinds_identify_as_dapr_custom_resources() {
    let identity = |kind: &str, api_version: &str, plural: &str, url: String| {
        (
            kind.to_owned(),
            api_version.to_owned(),
            plural.to_owned(),
            url,
        )
    };
    assert_eq!(
        identity(
            &Component::kind(&()),
            &Component::api_version(&()),
            &Component::plural(&()),
            Component::url_path(&(), Some("ns"))
        ),
        identity(
            "Component",
            "dapr.io/v1alpha1",
            "components",
            "/apis/dapr.io/v1alpha1/namespaces/ns/components".into()
        )
    );
    assert_eq!(Configuration::plural(&()), "configurations");
    assert_eq!(Resiliency::plural(&()), "resiliencies");
    assert_eq!(HttpEndpoint::kind(&()), "HTTPEndpoint");
    assert_eq!(HttpEndpoint::plural(&()), "httpendpoints");
    assert_eq!(v1alpha1::Subscription::api_version(&()), "dapr.io/v1alpha1");
    assert_eq!(v2alpha1::Subscription::api_version(&()), "dapr.io/v2alpha1");
    assert_eq!(v2alpha1::Subscription::plural(&()), "subscriptions");
}

#[test]
fn new_resources_carry_their_type_meta_and_serialize_like_upstream() {
    let component = Component::new(
        "statestore",
        ComponentSpec {
            type_: "state.in-memory".into(),
            version: "v1".into(),
            ..Default::default()
        },
    );
    assert_eq!(component.name(), "statestore");
    assert_eq!(
        serde_json::to_value(&component).unwrap(),
        json!({
            "apiVersion": "dapr.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "statestore"},
            "spec": {"type": "state.in-memory", "version": "v1"}
        })
    );
    assert_eq!(Configuration::default().kind, "Configuration");
    assert!(Configuration::default().is_in_scope("anyone"));
}

#[test]
fn scopes_restrict_apps() {
    let mut component = Component::default();
    assert!(component.is_in_scope("a"));
    component.scopes = vec!["a".into(), "b".into()];
    assert!(component.is_in_scope("b"));
    assert!(!component.is_in_scope("c"));
}

#[test]
fn dynamic_values_render_as_components_expect() {
    let render = |value| DynamicValue(value).to_plain_string();
    assert_eq!(render(json!("text")), "text");
    assert_eq!(render(json!(42)), "42");
    assert_eq!(render(json!(1.5)), "1.5");
    assert_eq!(render(json!(false)), "false");
    assert_eq!(render(json!(["a", 1])), r#"["a",1]"#);
    assert_eq!(render(json!(null)), "null");
}

#[test]
fn subscriptions_convert_between_versions() {
    let mut old = v1alpha1::Subscription::new(
        "orders",
        v1alpha1::SubscriptionSpec {
            topic: "orders".into(),
            pubsubname: "pubsub".into(),
            metadata: BTreeMap::from([("rawPayload".into(), "true".into())]),
            route: "/orders".into(),
            bulk_subscribe: BulkSubscribe {
                enabled: true,
                max_messages_count: 10,
                max_await_duration_ms: 5,
            },
            dead_letter_topic: "dead".into(),
        },
    );
    old.scopes = vec!["app".into()];

    let new = v2alpha1::Subscription::from(old.clone());
    assert_eq!(new.api_version, "dapr.io/v2alpha1");
    assert_eq!(new.spec.routes.default, "/orders");
    assert!(new.spec.routes.rules.is_empty());
    assert_eq!(new.spec.bulk_subscribe, old.spec.bulk_subscribe);
    assert_eq!(new.scopes, ["app"]);
    assert_eq!(v1alpha1::Subscription::from(new.clone()), old);

    let mut with_rules = new;
    with_rules.spec.routes.rules.push(v2alpha1::Rule {
        match_expression: "event.type == \"a\"".into(),
        path: "/a".into(),
    });
    assert_eq!(
        v1alpha1::Subscription::from(with_rules).spec.route,
        "/orders"
    );
}
