//! Building blocks shared by several kinds: name/value metadata entries,
//! secret references, free-form values and client TLS settings.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::serde_support::{is_default, null_as_default};

/// One `name`/`value` entry, as found in component metadata and endpoint headers.
///
/// The value comes from exactly one place: inline (`value`), a secret store
/// (`secretKeyRef`) or an environment variable of the sidecar (`envRef`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameValuePair {
    /// Name of the entry.
    pub name: String,
    /// Inline value: any YAML/JSON scalar, list or object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<DynamicValue>,
    /// Secret holding the value, read through the resource's secret store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// Environment variable of the sidecar process holding the value.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub env_ref: String,
}

/// Reference to one entry of a secret in a secret store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the secret.
    pub name: String,
    /// Key inside the secret; when empty, the secret name is used as the key.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub key: String,
}

/// A value of any JSON shape (string, number, boolean, list, object or null),
/// kept exactly as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DynamicValue(pub serde_json::Value);

impl DynamicValue {
    /// The value as the text a component receives: strings as-is, anything
    /// else as its compact JSON rendering (`10`, `true`, `{"a":1}`).
    pub fn to_plain_string(&self) -> String {
        match &self.0 {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
}

impl JsonSchema for DynamicValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DynamicValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Free-form value of any JSON type.",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

/// Names the secret store used to resolve `secretKeyRef`s of a resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreAuth {
    /// Name of a secret store component.
    pub secret_store: String,
}

/// Client TLS material for outgoing connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// CA bundle used to verify the server (PEM).
    #[serde(rename = "rootCA", default, skip_serializing_if = "Option::is_none")]
    pub root_ca: Option<TlsDocument>,
    /// Client certificate chain (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<TlsDocument>,
    /// Private key of the client certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<TlsDocument>,
    /// Whether the server may ask for TLS renegotiation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Never"))]
    pub renegotiation: Option<Renegotiation>,
}

/// A TLS document given inline or read from a secret store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsDocument {
    /// The document itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<DynamicValue>,
    /// Secret holding the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// TLS renegotiation policy of a client connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Renegotiation {
    /// Renegotiation is refused.
    #[default]
    Never,
    /// The server may renegotiate once per connection.
    OnceAsClient,
    /// The server may renegotiate any number of times.
    FreelyAsClient,
}

// Written by hand: a derived schema would turn the documented variants into a
// `oneOf`, which structural CRD schemas do not allow.
impl JsonSchema for Renegotiation {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Renegotiation".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "TLS renegotiation policy of a client connection.",
            "type": "string",
            "enum": ["Never", "OnceAsClient", "FreelyAsClient"]
        })
    }
}
