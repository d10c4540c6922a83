//! The cryptography API over HTTP:
//!
//! - `PUT /v1.0-alpha1/crypto/{name}/encrypt|decrypt`: the body is the data; options
//!   come in upstream's `dapr-*` headers; the answer is `application/octet-stream`. As
//!   upstream, the output is gathered before answering, so that a failure anywhere in the
//!   stream (a tampered last segment) is an error status (upstream's generic `ERROR` for
//!   failures past the header) and never a cut-off 200; the
//!   request body, and with it the answer, is bounded by `--max-body-size`. The gRPC
//!   streams are the way to process data of any size in fixed memory.
//! - `POST /v1.0-alpha1/subtlecrypto/{name}/{operation}`: the `Subtle*` requests as
//!   protojson (camelCase or proto names, bytes as standard or URL-safe base64, unknown
//!   fields ignored), answered as protojson with empty fields left out.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use base64::Engine as _;
use dapr_components::crypto::enc_v1::EncryptOptions;
use dapr_proto::runtime;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::ApiState;
use crate::crypto::errors::logged;
use crate::crypto::{self, stream, subtle};
use crate::error::ApiError;

const KEY_NAME_HEADER: &str = "dapr-key-name";
const KEY_WRAP_ALGORITHM_HEADER: &str = "dapr-key-wrap-algorithm";
const OMIT_DECRYPTION_KEY_NAME_HEADER: &str = "dapr-omit-decryption-key-name";
const DECRYPTION_KEY_NAME_HEADER: &str = "dapr-decryption-key-name";
const DATA_ENCRYPTION_CIPHER_HEADER: &str = "dapr-data-encryption-cipher";

/// The crypto routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1.0-alpha1/crypto/{name}/encrypt", put(encrypt))
        .route("/v1.0-alpha1/crypto/{name}/decrypt", put(decrypt))
        .route(
            "/v1.0-alpha1/subtlecrypto/{name}/getkey",
            post(|state: State<ApiState>, name: Path<String>, body: Bytes| {
                subtle(state, name, body, SubtleOperation::GetKey)
            }),
        )
        .route(
            "/v1.0-alpha1/subtlecrypto/{name}/encrypt",
            post(|state: State<ApiState>, name: Path<String>, body: Bytes| {
                subtle(state, name, body, SubtleOperation::Encrypt)
            }),
        )
        .route(
            "/v1.0-alpha1/subtlecrypto/{name}/decrypt",
            post(|state: State<ApiState>, name: Path<String>, body: Bytes| {
                subtle(state, name, body, SubtleOperation::Decrypt)
            }),
        )
        .route(
            "/v1.0-alpha1/subtlecrypto/{name}/wrapkey",
            post(|state: State<ApiState>, name: Path<String>, body: Bytes| {
                subtle(state, name, body, SubtleOperation::WrapKey)
            }),
        )
        .route(
            "/v1.0-alpha1/subtlecrypto/{name}/unwrapkey",
            post(|state: State<ApiState>, name: Path<String>, body: Bytes| {
                subtle(state, name, body, SubtleOperation::UnwrapKey)
            }),
        )
        .route(
            "/v1.0-alpha1/subtlecrypto/{name}/sign",
            post(|state: State<ApiState>, name: Path<String>, body: Bytes| {
                subtle(state, name, body, SubtleOperation::Sign)
            }),
        )
        .route(
            "/v1.0-alpha1/subtlecrypto/{name}/verify",
            post(|state: State<ApiState>, name: Path<String>, body: Bytes| {
                subtle(state, name, body, SubtleOperation::Verify)
            }),
        )
}

/// The `Subtle*` operation a route serves.
#[derive(Debug, Clone, Copy)]
enum SubtleOperation {
    GetKey,
    Encrypt,
    Decrypt,
    WrapKey,
    UnwrapKey,
    Sign,
    Verify,
}

/// A header's value as text; absent or not UTF-8 reads as empty.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// Whether a header says yes, as upstream's `IsTruthy` reads it.
fn header_truthy(headers: &HeaderMap, name: &str) -> bool {
    matches!(
        header_text(headers, name)
            .trim()
            .to_ascii_lowercase()
            .as_str(),
        "y" | "yes" | "true" | "t" | "on" | "1"
    )
}

fn missing_header(name: &str) -> ApiError {
    logged(ApiError::bad_request(format!("missing header '{name}'")))
}

/// The request body as the stream's input.
fn body_input(body: Body) -> stream::Input {
    body.into_data_stream()
        .map_err(|error| error.to_string())
        .boxed()
}

/// Gathers the output and answers it as `application/octet-stream`.
async fn octet_stream(output: stream::Output) -> Result<Response, ApiError> {
    let chunks: Vec<Bytes> = output
        .try_collect()
        .await
        .map_err(crate::crypto::errors::stream_broken)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(chunks.concat()),
    )
        .into_response())
}

/// `PUT /v1.0-alpha1/crypto/{name}/encrypt`.
async fn encrypt(
    State(runtime): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let handle = crypto::provider(&runtime, &name)?;
    let key_name = header_text(&headers, KEY_NAME_HEADER);
    if key_name.is_empty() {
        return Err(missing_header(KEY_NAME_HEADER));
    }
    let algorithm = header_text(&headers, KEY_WRAP_ALGORITHM_HEADER);
    if algorithm.is_empty() {
        return Err(missing_header(KEY_WRAP_ALGORITHM_HEADER));
    }
    let cipher = header_text(&headers, DATA_ENCRYPTION_CIPHER_HEADER);
    let options = EncryptOptions {
        key_name: key_name.to_owned(),
        algorithm: algorithm.to_owned(),
        decryption_key_name: header_text(&headers, DECRYPTION_KEY_NAME_HEADER).to_owned(),
        omit_decryption_key_name: header_truthy(&headers, OMIT_DECRYPTION_KEY_NAME_HEADER),
        cipher: (!cipher.is_empty()).then(|| cipher.to_owned()),
    };
    octet_stream(
        stream::encrypt(
            handle.clone(),
            crypto::outbound_policy(&runtime, &handle),
            options,
            body_input(body),
        )
        .await?,
    )
    .await
}

/// `PUT /v1.0-alpha1/crypto/{name}/decrypt`.
async fn decrypt(
    State(runtime): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let handle = crypto::provider(&runtime, &name)?;
    let key_name = header_text(&headers, KEY_NAME_HEADER);
    octet_stream(
        stream::decrypt(
            handle.clone(),
            crypto::outbound_policy(&runtime, &handle),
            key_name,
            body_input(body),
        )
        .await?,
    )
    .await
}

/// Every field any `Subtle*` request has, read as protojson reads them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SubtleBody {
    name: String,
    #[serde(deserialize_with = "key_format")]
    format: i32,
    algorithm: String,
    #[serde(alias = "key_name", rename = "keyName")]
    key_name: String,
    #[serde(deserialize_with = "proto_bytes")]
    plaintext: Vec<u8>,
    #[serde(deserialize_with = "proto_bytes")]
    ciphertext: Vec<u8>,
    #[serde(deserialize_with = "proto_bytes")]
    nonce: Vec<u8>,
    #[serde(deserialize_with = "proto_bytes")]
    tag: Vec<u8>,
    #[serde(
        alias = "associated_data",
        rename = "associatedData",
        deserialize_with = "proto_bytes"
    )]
    associated_data: Vec<u8>,
    #[serde(
        alias = "plaintext_key",
        rename = "plaintextKey",
        deserialize_with = "proto_bytes"
    )]
    plaintext_key: Vec<u8>,
    #[serde(
        alias = "wrapped_key",
        rename = "wrappedKey",
        deserialize_with = "proto_bytes"
    )]
    wrapped_key: Vec<u8>,
    #[serde(deserialize_with = "proto_bytes")]
    digest: Vec<u8>,
    #[serde(deserialize_with = "proto_bytes")]
    signature: Vec<u8>,
}

/// A `bytes` field as protojson accepts it: standard or URL-safe base64, padded or not.
fn proto_bytes<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(Vec::new());
    };
    let unpadded = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
        .map_err(|error| serde::de::Error::custom(format!("invalid base64 value: {error}")))
}

/// The `format` enum as protojson accepts it: its name or its number.
fn key_format<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let format = match &value {
        Value::Null => Some(0),
        Value::String(name) => runtime::subtle_get_key_request::KeyFormat::from_str_name(name)
            .map(|format| format as i32),
        Value::Number(number) => number.as_i64().and_then(|n| i32::try_from(n).ok()),
        _ => None,
    };
    format
        .ok_or_else(|| serde::de::Error::custom(format!("invalid value for enum format: {value}")))
}

/// A protojson answer: the fields that are not empty.
#[derive(Default)]
struct ProtoJson(Map<String, Value>);

impl ProtoJson {
    fn text(mut self, name: &str, value: String) -> Self {
        if !value.is_empty() {
            self.0.insert(name.to_owned(), Value::String(value));
        }
        self
    }

    fn bytes(self, name: &str, value: &[u8]) -> Self {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        self.text(name, encoded)
    }

    fn flag(mut self, name: &str, value: bool) -> Self {
        if value {
            self.0.insert(name.to_owned(), Value::Bool(true));
        }
        self
    }

    fn into_response(self) -> Response {
        axum::Json(Value::Object(self.0)).into_response()
    }
}

/// `POST /v1.0-alpha1/subtlecrypto/{name}/<operation>`.
async fn subtle(
    State(runtime): State<ApiState>,
    Path(component_name): Path<String>,
    body: Bytes,
    operation: SubtleOperation,
) -> Result<Response, ApiError> {
    let body: SubtleBody = if body.iter().all(u8::is_ascii_whitespace) {
        SubtleBody::default()
    } else {
        serde_json::from_slice(&body).map_err(ApiError::malformed_request)?
    };
    let answer = match operation {
        SubtleOperation::GetKey => {
            let response = subtle::get_key(
                &runtime,
                runtime::SubtleGetKeyRequest {
                    component_name,
                    name: body.name,
                    format: body.format,
                },
            )
            .await?;
            ProtoJson::default()
                .text("name", response.name)
                .text("publicKey", response.public_key)
        }
        SubtleOperation::Encrypt => {
            let response = subtle::encrypt(
                &runtime,
                runtime::SubtleEncryptRequest {
                    component_name,
                    plaintext: body.plaintext,
                    algorithm: body.algorithm,
                    key_name: body.key_name,
                    nonce: body.nonce,
                    associated_data: body.associated_data,
                },
            )
            .await?;
            ProtoJson::default()
                .bytes("ciphertext", &response.ciphertext)
                .bytes("tag", &response.tag)
        }
        SubtleOperation::Decrypt => {
            let response = subtle::decrypt(
                &runtime,
                runtime::SubtleDecryptRequest {
                    component_name,
                    ciphertext: body.ciphertext,
                    algorithm: body.algorithm,
                    key_name: body.key_name,
                    nonce: body.nonce,
                    tag: body.tag,
                    associated_data: body.associated_data,
                },
            )
            .await?;
            ProtoJson::default().bytes("plaintext", &response.plaintext)
        }
        SubtleOperation::WrapKey => {
            let response = subtle::wrap_key(
                &runtime,
                runtime::SubtleWrapKeyRequest {
                    component_name,
                    plaintext_key: body.plaintext_key,
                    algorithm: body.algorithm,
                    key_name: body.key_name,
                    nonce: body.nonce,
                    associated_data: body.associated_data,
                },
            )
            .await?;
            ProtoJson::default()
                .bytes("wrappedKey", &response.wrapped_key)
                .bytes("tag", &response.tag)
        }
        SubtleOperation::UnwrapKey => {
            let response = subtle::unwrap_key(
                &runtime,
                runtime::SubtleUnwrapKeyRequest {
                    component_name,
                    wrapped_key: body.wrapped_key,
                    algorithm: body.algorithm,
                    key_name: body.key_name,
                    nonce: body.nonce,
                    tag: body.tag,
                    associated_data: body.associated_data,
                },
            )
            .await?;
            ProtoJson::default().bytes("plaintextKey", &response.plaintext_key)
        }
        SubtleOperation::Sign => {
            let response = subtle::sign(
                &runtime,
                runtime::SubtleSignRequest {
                    component_name,
                    digest: body.digest,
                    algorithm: body.algorithm,
                    key_name: body.key_name,
                },
            )
            .await?;
            ProtoJson::default().bytes("signature", &response.signature)
        }
        SubtleOperation::Verify => {
            let response = subtle::verify(
                &runtime,
                runtime::SubtleVerifyRequest {
                    component_name,
                    digest: body.digest,
                    algorithm: body.algorithm,
                    key_name: body.key_name,
                    signature: body.signature,
                },
            )
            .await?;
            ProtoJson::default().flag("valid", response.valid)
        }
    };
    Ok(answer.into_response())
}
