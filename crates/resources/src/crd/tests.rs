use std::path::Path;

use super::*;

fn committed_crds_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/dapr/crds")
}

#[test]
fn committed_crds_are_up_to_date() {
    for file in crd_files().unwrap() {
        let path = committed_crds_dir().join(file.file_name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == file.contents,
            "{} is stale or missing: run `cargo xtask gen`",
            path.display()
        );
    }
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(crd_files().unwrap(), crd_files().unwrap());
}

#[test]
fn crds_name_the_kinds_like_upstream() {
    let crds = custom_resource_definitions().unwrap();
    let identities: Vec<_> = crds
        .iter()
        .map(|crd| {
            let names = &crd.spec.names;
            let versions: Vec<_> = crd
                .spec
                .versions
                .iter()
                .map(|version| (version.name.as_str(), version.served, version.storage))
                .collect();
            (
                crd.metadata.name.as_deref().unwrap(),
                crd.spec.group.as_str(),
                crd.spec.scope.as_str(),
                names.kind.as_str(),
                names.list_kind.as_deref().unwrap(),
                names.plural.as_str(),
                names.singular.as_deref().unwrap(),
                names.short_names.is_none()
                    && crd
                        .spec
                        .versions
                        .iter()
                        .all(|v| v.additional_printer_columns.is_none()),
                versions,
            )
        })
        .collect();
    assert_eq!(
        identities,
        [
            (
                "components.dapr.io",
                "dapr.io",
                "Namespaced",
                "Component",
                "ComponentList",
                "components",
                "component",
                true,
                vec![("v1alpha1", true, true)]
            ),
            (
                "configurations.dapr.io",
                "dapr.io",
                "Namespaced",
                "Configuration",
                "ConfigurationList",
                "configurations",
                "configuration",
                true,
                vec![("v1alpha1", true, true)]
            ),
            (
                "httpendpoints.dapr.io",
                "dapr.io",
                "Namespaced",
                "HTTPEndpoint",
                "HTTPEndpointList",
                "httpendpoints",
                "httpendpoint",
                true,
                vec![("v1alpha1", true, true)]
            ),
            (
                "resiliencies.dapr.io",
                "dapr.io",
                "Namespaced",
                "Resiliency",
                "ResiliencyList",
                "resiliencies",
                "resiliency",
                true,
                vec![("v1alpha1", true, true)]
            ),
            (
                "subscriptions.dapr.io",
                "dapr.io",
                "Namespaced",
                "Subscription",
                "SubscriptionList",
                "subscriptions",
                "subscription",
                true,
                vec![("v1alpha1", true, false), ("v2alpha1", true, true)]
            ),
        ]
    );
    for crd in &crds[..4] {
        assert!(crd.spec.conversion.is_none());
    }
    let conversion = crds[4].spec.conversion.as_ref().unwrap();
    assert_eq!(conversion.strategy, "Webhook");
    let webhook = conversion.webhook.as_ref().unwrap();
    let service = webhook
        .client_config
        .as_ref()
        .unwrap()
        .service
        .as_ref()
        .unwrap();
    assert_eq!(
        (
            service.name.as_str(),
            service.namespace.as_str(),
            service.path.as_deref()
        ),
        ("dapr-webhook", "replaceme", Some("/convert"))
    );
}

/// Checks the Kubernetes structural schema rules (and what this crate's
/// transform promises) on every node of `schema`, returning violations.
fn structural_violations(schema: &Value, path: &str, violations: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        violations.push(format!("{path}: not an object schema"));
        return;
    };
    for forbidden in [
        "$ref",
        "$defs",
        "definitions",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "nullable",
        "const",
        "title",
        CRD_REQUIRED,
    ] {
        if node.contains_key(forbidden) {
            violations.push(format!("{path}: has `{forbidden}`"));
        }
    }
    let kind = node.get("type").and_then(Value::as_str);
    let preserves_unknown =
        node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if kind.is_none() && !preserves_unknown {
        violations.push(format!("{path}: no `type`"));
    }
    if node.contains_key("properties") && node.contains_key("additionalProperties") {
        violations.push(format!(
            "{path}: both `properties` and `additionalProperties`"
        ));
    }
    if let Some(Value::Object(properties)) = node.get("properties") {
        if kind != Some("object") {
            violations.push(format!("{path}: `properties` on a non-object"));
        }
        for (name, property) in properties {
            structural_violations(property, &format!("{path}.{name}"), violations);
        }
        if let Some(Value::Array(required)) = node.get("required") {
            for name in required {
                if !name
                    .as_str()
                    .is_some_and(|name| properties.contains_key(name))
                {
                    violations.push(format!("{path}: required {name} is not a property"));
                }
            }
        }
    }
    if let Some(additional) = node.get("additionalProperties") {
        structural_violations(additional, &format!("{path}.*"), violations);
    }
    if let Some(items) = node.get("items") {
        if kind != Some("array") {
            violations.push(format!("{path}: `items` on a non-array"));
        }
        structural_violations(items, &format!("{path}[]"), violations);
    }
    if kind == Some("array") && !node.contains_key("items") {
        violations.push(format!("{path}: array without `items`"));
    }
}

#[test]
fn schemas_are_structural_and_survive_the_kubernetes_model() {
    for crd in custom_resource_definitions().unwrap() {
        for version in &crd.spec.versions {
            let schema = version
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap();
            let json = serde_json::to_value(schema).unwrap();
            let mut violations = Vec::new();
            structural_violations(
                &json,
                &format!("{}/{}", crd.spec.names.kind, version.name),
                &mut violations,
            );
            assert!(violations.is_empty(), "{violations:#?}");
            let root = json.as_object().unwrap();
            assert_eq!(
                root["properties"]["metadata"],
                serde_json::json!({"type": "object", "description": root["properties"]["metadata"]["description"]})
            );
            assert!(
                root.get("required").is_none(),
                "root of {} requires fields",
                crd.spec.names.kind
            );
        }
    }
    // Nothing the generator wrote was dropped by the conversion to the
    // Kubernetes schema type.
    let raw = structural_schema_json::<crate::Configuration>();
    let converted =
        serde_json::to_value(structural_schema::<crate::Configuration>("Configuration").unwrap())
            .unwrap();
    assert_eq!(raw, converted);
}

#[test]
fn schemas_keep_upstream_requirements_and_free_form_values() {
    let crds = custom_resource_definitions().unwrap();
    let schema = |index: usize, version: usize| {
        serde_json::to_value(
            crds[index].spec.versions[version]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap()
    };
    let component = schema(0, 0);
    let spec = &component["properties"]["spec"];
    assert_eq!(
        spec["required"],
        serde_json::json!(["metadata", "type", "version"])
    );
    let entry = &spec["properties"]["metadata"]["items"];
    assert_eq!(
        entry["properties"]["value"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert!(entry["properties"]["value"].get("type").is_none());

    let configuration = schema(1, 0);
    let spec = &configuration["properties"]["spec"]["properties"];
    assert_eq!(
        spec["metric"]["default"],
        serde_json::json!({"enabled": true})
    );
    assert_eq!(spec["metric"]["required"], serde_json::json!(["enabled"]));
    assert_eq!(
        spec["mtls"]["required"],
        serde_json::json!(["controlPlaneTrustDomain", "enabled", "sentryAddress"])
    );
    assert_eq!(
        spec["nameResolution"]["required"],
        serde_json::json!(["component", "configuration", "version"])
    );
    assert_eq!(
        spec["nameResolution"]["properties"]["configuration"]["type"],
        "object"
    );
    assert_eq!(
        spec["tracing"]["properties"]["otel"]["required"],
        serde_json::json!(["endpointAddress", "isSecure", "protocol"])
    );

    let endpoint = schema(2, 0);
    let tls = &endpoint["properties"]["spec"]["properties"]["clientTLS"]["properties"];
    assert_eq!(tls["renegotiation"]["default"], "Never");
    assert_eq!(
        tls["renegotiation"]["enum"],
        serde_json::json!(["Never", "OnceAsClient", "FreelyAsClient"])
    );

    let resiliency = schema(3, 0);
    let retry = &resiliency["properties"]["spec"]["properties"]["policies"]["properties"]["retries"]
        ["additionalProperties"];
    assert_eq!(
        retry["properties"]["maxRetries"],
        serde_json::json!({"type": "integer", "description": retry["properties"]["maxRetries"]["description"]})
    );

    let v2 = schema(4, 1);
    assert_eq!(
        v2["properties"]["spec"]["required"],
        serde_json::json!(["pubsubname", "routes", "topic"])
    );
    assert_eq!(
        v2["properties"]["spec"]["properties"]["routes"]["properties"]["rules"]["items"]["required"],
        serde_json::json!(["match", "path"])
    );
    let v1 = schema(4, 0);
    assert_eq!(
        v1["properties"]["spec"]["required"],
        serde_json::json!(["pubsubname", "route", "topic"])
    );
}
