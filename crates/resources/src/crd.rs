//! CustomResourceDefinitions for every kind, generated from the Rust types.
//!
//! Schemas are made structural (as the API server requires): subschemas are
//! inlined (no `$ref`), optional fields are plain (no `anyOf` with `null`,
//! no `nullable`), and free-form values carry
//! `x-kubernetes-preserve-unknown-fields`. Output is deterministic.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceValidation,
    JSONSchemaProps, ServiceReference, WebhookClientConfig, WebhookConversion,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::generate::SchemaSettings;
use schemars::transform::{Transform, transform_subschemas};
use schemars::{JsonSchema, Schema};
use serde_json::Value;

use crate::resource::GROUP;
use crate::{Component, Configuration, HttpEndpoint, Resiliency, subscription};

/// Name of the Service fronting the webhook that converts Subscriptions
/// between versions (upstream's `dapr-webhook`, served by the operator).
pub const CONVERSION_WEBHOOK_SERVICE: &str = "dapr-webhook";
/// Path of the conversion webhook on that Service.
pub const CONVERSION_WEBHOOK_PATH: &str = "/convert";
/// Namespace placeholder of the conversion webhook Service; the operator
/// replaces it (and sets `caBundle`) once installed, as upstream does.
pub const CONVERSION_WEBHOOK_NAMESPACE_PLACEHOLDER: &str = "replaceme";

/// Failure to build a CRD; only possible through a bug in this crate (a
/// resource type whose schema does not fit the Kubernetes model).
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The generated schema is not a valid Kubernetes schema object.
    #[error("schema of {kind} does not convert to a Kubernetes schema: {source}")]
    Schema {
        /// Kind whose schema failed.
        kind: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The CRD could not be rendered as YAML.
    #[error("cannot render {file_name} as YAML: {source}")]
    Yaml {
        /// File being rendered.
        file_name: &'static str,
        /// Why.
        #[source]
        source: serde_yaml::Error,
    },
}

/// One generated CRD manifest and the file name it is committed under in
/// `charts/dapr/crds/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdFile {
    /// File name, e.g. `components.yaml`.
    pub file_name: &'static str,
    /// YAML document, starting with a "generated" comment.
    pub contents: String,
}

/// The CRDs of every kind: Component, Configuration, HTTPEndpoint,
/// Resiliency and Subscription (both versions, `v2alpha1` stored, converted
/// by the operator's webhook).
pub fn custom_resource_definitions() -> Result<Vec<CustomResourceDefinition>, CrdError> {
    Ok(vec![
        single_version_crd::<Component>("Component", "components", "component")?,
        single_version_crd::<Configuration>("Configuration", "configurations", "configuration")?,
        single_version_crd::<HttpEndpoint>("HTTPEndpoint", "httpendpoints", "httpendpoint")?,
        single_version_crd::<Resiliency>("Resiliency", "resiliencies", "resiliency")?,
        subscription_crd()?,
    ])
}

/// The CRD manifests as the files committed under `charts/dapr/crds/`
/// (`cargo xtask gen` writes them).
pub fn crd_files() -> Result<Vec<CrdFile>, CrdError> {
    let file_names = [
        "components.yaml",
        "configuration.yaml",
        "httpendpoints.yaml",
        "resiliency.yaml",
        "subscription.yaml",
    ];
    let crds = custom_resource_definitions()?;
    file_names
        .into_iter()
        .zip(crds)
        .map(|(file_name, crd)| {
            let yaml = serde_yaml::to_string(&crd)
                .map_err(|source| CrdError::Yaml { file_name, source })?;
            Ok(CrdFile {
                file_name,
                contents: format!(
                    "# Generated from crates/resources by `cargo xtask gen`; do not edit.\n---\n{yaml}"
                ),
            })
        })
        .collect()
}

fn single_version_crd<K>(
    kind: &'static str,
    plural: &str,
    singular: &str,
) -> Result<CustomResourceDefinition, CrdError>
where
    K: JsonSchema + kube::Resource<DynamicType = ()>,
{
    let version = K::version(&()).into_owned();
    Ok(crd(
        kind,
        plural,
        singular,
        vec![crd_version::<K>(kind, &version, true)?],
        None,
    ))
}

fn subscription_crd() -> Result<CustomResourceDefinition, CrdError> {
    let kind = "Subscription";
    let conversion = CustomResourceConversion {
        strategy: "Webhook".to_owned(),
        webhook: Some(WebhookConversion {
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    name: CONVERSION_WEBHOOK_SERVICE.to_owned(),
                    namespace: CONVERSION_WEBHOOK_NAMESPACE_PLACEHOLDER.to_owned(),
                    path: Some(CONVERSION_WEBHOOK_PATH.to_owned()),
                    port: None,
                }),
                ..Default::default()
            }),
            conversion_review_versions: vec!["v1".to_owned(), "v2alpha1".to_owned()],
        }),
    };
    Ok(crd(
        kind,
        "subscriptions",
        "subscription",
        vec![
            crd_version::<subscription::v1alpha1::Subscription>(kind, "v1alpha1", false)?,
            crd_version::<subscription::v2alpha1::Subscription>(kind, "v2alpha1", true)?,
        ],
        Some(conversion),
    ))
}

fn crd(
    kind: &str,
    plural: &str,
    singular: &str,
    versions: Vec<CustomResourceDefinitionVersion>,
    conversion: Option<CustomResourceConversion>,
) -> CustomResourceDefinition {
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{plural}.{GROUP}")),
            labels: Some([("app.kubernetes.io/part-of".to_owned(), "dapr".to_owned())].into()),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.to_owned(),
            names: CustomResourceDefinitionNames {
                kind: kind.to_owned(),
                list_kind: Some(format!("{kind}List")),
                plural: plural.to_owned(),
                singular: Some(singular.to_owned()),
                ..Default::default()
            },
            scope: "Namespaced".to_owned(),
            versions,
            conversion,
            ..Default::default()
        },
        status: None,
    }
}

fn crd_version<K: JsonSchema>(
    kind: &'static str,
    version: &str,
    storage: bool,
) -> Result<CustomResourceDefinitionVersion, CrdError> {
    Ok(CustomResourceDefinitionVersion {
        name: version.to_owned(),
        served: true,
        storage,
        schema: Some(CustomResourceValidation {
            open_api_v3_schema: Some(structural_schema::<K>(kind)?),
        }),
        ..Default::default()
    })
}

/// The schema of `K` in structural form, as a Kubernetes schema object.
fn structural_schema<K: JsonSchema>(kind: &'static str) -> Result<JSONSchemaProps, CrdError> {
    serde_json::from_value(structural_schema_json::<K>())
        .map_err(|source| CrdError::Schema { kind, source })
}

/// The schema of `K` in structural form, as JSON.
fn structural_schema_json<K: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
            settings.transforms = vec![Box::new(Structural)];
        })
        .into_generator();
    generator.into_root_schema_for::<K>().to_value()
}

/// Schema extension marking a field the CRD requires although decoding a
/// file lets it default (serde's `default` hides it from schemars' `required`).
const CRD_REQUIRED: &str = "x-crd-required";

/// Rewrites schemars output into Kubernetes structural form.
#[derive(Debug, Clone)]
struct Structural;

impl Transform for Structural {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(object) = schema.as_object_mut() else {
            return;
        };
        object.remove("title");
        object.remove("$defs");

        let marked_required: Vec<Value> = match object.get_mut("properties") {
            Some(Value::Object(properties)) => properties
                .iter_mut()
                .filter_map(|(name, property)| {
                    let marker = property.as_object_mut()?.remove(CRD_REQUIRED)?;
                    (marker == true).then(|| Value::String(name.clone()))
                })
                .collect(),
            _ => Vec::new(),
        };
        if !marked_required.is_empty()
            && let Value::Array(required) = object
                .entry("required")
                .or_insert_with(|| Value::Array(Vec::new()))
        {
            required.extend(marked_required);
        }
        // Sorted, like upstream's generated CRDs.
        if let Some(Value::Array(required)) = object.get_mut("required") {
            required.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            required.dedup();
        }

        // `type: [T, "null"]` (an optional scalar) becomes `type: T`.
        if let Some(Value::Array(types)) = object.get_mut("type") {
            types.retain(|kind| kind != "null");
            if types.len() == 1 {
                let only = types.remove(0);
                object.insert("type".to_owned(), only);
            }
        }
        // Integers are `i64` where upstream has Go's `int`, which its CRDs
        // leave without a format.
        if object.get("format").is_some_and(|format| format == "int64") {
            object.remove("format");
        }
        if let Some(Value::Array(values)) = object.get_mut("enum") {
            values.retain(|value| !value.is_null());
        }

        // `anyOf: [S, {type: null}]` (an optional object) becomes S, keeping
        // the outer description when there is one.
        let lone_branch = match object.get("anyOf") {
            Some(Value::Array(branches)) if branches.len() == 2 => {
                let mut non_null = branches.iter().filter(|branch| !is_null_schema(branch));
                match (non_null.next(), non_null.next()) {
                    (Some(branch), None) => branch.as_object().cloned(),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(branch) = lone_branch {
            object.remove("anyOf");
            for (key, value) in branch {
                object.entry(key).or_insert(value);
            }
        }
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").is_some_and(|kind| kind == "null")
}

#[cfg(test)]
mod tests;
