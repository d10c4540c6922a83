//! The state API over HTTP, as upstream serves it:
//!
//! - `POST|PUT /v1.0/state/{storeName}`: save an array of items (204);
//! - `GET /v1.0/state/{storeName}/{key}`: the stored bytes (200, `ETag` and `metadata.*`
//!   headers) or 204 for a missing key; `consistency` and `metadata.*` query parameters;
//! - `DELETE /v1.0/state/{storeName}/{key}`: `If-Match` carries the ETag (204);
//! - `POST|PUT /v1.0/state/{storeName}/bulk`: values of many keys;
//! - `POST|PUT /v1.0/state/{storeName}/transaction`: upserts and deletes, atomically;
//! - `POST|PUT /v1.0-alpha1/state/{storeName}/query`: the alpha1 query (204 when nothing
//!   matches).
//!
//! Path parameters are one segment each, percent-decoded with `+` as a space (as upstream
//! unescapes them); `GET`/`DELETE` on `.../bulk` and `.../transaction` address the keys
//! `bulk` and `transaction`, as upstream's router falls back to the key route. JSON values
//! are stored and returned as [`crate::go_json`] describes. Request bodies are read
//! up to their first JSON value, as Go's decoder does.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dapr_components::state::{
    BulkGetItem, DeleteRequest, GetRequest, QueryResponse, SetRequest, TransactionOperation,
    TransactionRequest,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ApiState, METADATA_PREFIX, read_whole, request_metadata};
use crate::error::ApiError;
use crate::go_json::{encode_value, write_data, write_string, write_string_map};
use crate::state::{OperationKind, Protocol, StateApi, errors, options};

/// The state routes (the caller applies the shared state and middleware).
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1.0/state/{storeName}", post(save).put(save))
        .route(
            "/v1.0/state/{storeName}/bulk",
            post(bulk_get)
                .put(bulk_get)
                .get(get_state)
                .delete(delete_state),
        )
        .route(
            "/v1.0/state/{storeName}/transaction",
            post(transaction)
                .put(transaction)
                .get(get_state)
                .delete(delete_state),
        )
        .route(
            "/v1.0/state/{storeName}/{key}",
            get(get_state).delete(delete_state),
        )
        .route(
            "/v1.0-alpha1/state/{storeName}/query",
            post(query).put(query),
        )
}

/// The decoded path: the store, and the key (the segment after the store: the `key`
/// parameter, or `bulk`/`transaction` on those routes). Read from the raw path, as
/// upstream's router matches the escaped path when it has escapes.
struct StatePath {
    store: String,
    key: String,
}

impl<S: Send + Sync> FromRequestParts<S> for StatePath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        // `/{version}/state/{storeName}[/{key}...]`
        let mut segments = parts.uri.path().split('/').skip(3);
        let store = unescape(segments.next().unwrap_or_default())
            .map_err(|reason| bad_parameter("storeName", &reason))?;
        let key = unescape(segments.next().unwrap_or_default())
            .map_err(|reason| bad_parameter("key", &reason))?;
        Ok(Self { store, key })
    }
}

/// Decodes a path parameter as Go's `url.QueryUnescape` does, or says why it cannot.
fn unescape(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'+' => decoded.push(b' '),
            b'%' => {
                let digits = bytes
                    .get(index + 1..index + 3)
                    .filter(|digits| digits.iter().all(u8::is_ascii_hexdigit));
                let value = digits
                    .and_then(|digits| std::str::from_utf8(digits).ok())
                    .and_then(|digits| u8::from_str_radix(digits, 16).ok());
                let Some(value) = value else {
                    let end = (index + 3).min(bytes.len());
                    let escape = String::from_utf8_lossy(&bytes[index..end]);
                    return Err(format!("invalid URL escape {escape:?}"));
                };
                decoded.push(value);
                index += 2;
            }
            other => decoded.push(other),
        }
        index += 1;
    }
    String::from_utf8(decoded).map_err(|_| "invalid UTF-8".to_owned())
}

/// Upstream's plain-text 400 for a path parameter that cannot be unescaped.
fn bad_parameter(name: &str, reason: &str) -> Response {
    let body = format!("failed to unescape request parameter {name:?}. Error: {reason}\n");
    (
        StatusCode::BAD_REQUEST,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The query parameters, first value of each name winning as in Go's `URL.Query().Get`.
fn query_parameters(uri: &Uri) -> HashMap<String, String> {
    let pairs = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .unwrap_or_default();
    let mut parameters = HashMap::new();
    for (name, value) in pairs {
        parameters.entry(name).or_insert(value);
    }
    parameters
}

/// `own` metadata with the query's metadata laid over it.
fn merged(
    own: Option<HashMap<String, String>>,
    query: &HashMap<String, String>,
) -> HashMap<String, String> {
    let mut metadata = own.unwrap_or_default();
    metadata.extend(
        query
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    metadata
}

/// Reads a JSON request body; a body that breaks off or outgrows `--max-body-size` is a
/// malformed request, as upstream's JSON decoder reports its read error.
async fn read_json_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    read_whole(body).await.map_err(|reason| {
        ApiError::new(
            "ERR_MALFORMED_REQUEST",
            reason,
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
        )
    })
}

/// Decodes the first JSON value of a body (an empty body is Go's `EOF`).
fn decode_first<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    match serde_json::Deserializer::from_slice(body)
        .into_iter::<T>()
        .next()
    {
        Some(Ok(value)) => Ok(value),
        Some(Err(error)) => Err(error.to_string()),
        None => Err("EOF".to_owned()),
    }
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn json_response(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// One item of a save, or the request of a transaction operation (upstream's
/// `state.SetRequest`/`DeleteRequest` JSON).
#[derive(Debug, Default, Deserialize)]
struct ItemBody {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    metadata: Option<HashMap<String, String>>,
    #[serde(default)]
    options: Option<OptionsBody>,
    #[serde(default, rename = "contentType")]
    content_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct OptionsBody {
    #[serde(default)]
    concurrency: Option<String>,
    #[serde(default)]
    consistency: Option<String>,
}

impl ItemBody {
    fn option_words(&self) -> (&str, &str) {
        let options = self.options.as_ref();
        (
            options
                .and_then(|options| options.concurrency.as_deref())
                .unwrap_or_default(),
            options
                .and_then(|options| options.consistency.as_deref())
                .unwrap_or_default(),
        )
    }
}

/// `POST|PUT /v1.0/state/{storeName}`.
async fn save(
    State(runtime): State<ApiState>,
    path: StatePath,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let store = StateApi::new(&runtime, Protocol::Http).store(&path.store)?;
    let body = read_json_body(body).await?;
    let items = decode_first::<Option<Vec<ItemBody>>>(&body)
        .map_err(|reason| {
            ApiError::new(
                "ERR_MALFORMED_REQUEST",
                reason,
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
            )
        })?
        .unwrap_or_default();
    if items.is_empty() {
        return Ok(no_content());
    }
    let metadata = request_metadata(query_parameters(&uri));
    let mut requests = Vec::with_capacity(items.len());
    for item in items {
        let (concurrency, consistency) = item.option_words();
        let invalid = |error| errors::save_failed(store.name(), &error, Protocol::Http);
        let concurrency = options::concurrency(concurrency).map_err(invalid)?;
        let consistency = options::consistency(consistency).map_err(invalid)?;
        requests.push(SetRequest {
            key: item.key.unwrap_or_default(),
            value: encode_value(&item.value).into(),
            etag: item.etag,
            metadata: merged(item.metadata, &metadata),
            concurrency,
            consistency,
            content_type: item.content_type,
        });
    }
    store.save(requests).await?;
    Ok(no_content())
}

/// `GET /v1.0/state/{storeName}/{key}`.
async fn get_state(
    State(runtime): State<ApiState>,
    path: StatePath,
    uri: Uri,
) -> Result<Response, ApiError> {
    let store = StateApi::new(&runtime, Protocol::Http).store(&path.store)?;
    let parameters = query_parameters(&uri);
    let consistency = parameters
        .get("consistency")
        .and_then(|word| options::consistency(word).ok())
        .unwrap_or_default();
    let found = store
        .get(GetRequest {
            key: path.key,
            metadata: request_metadata(parameters.clone()),
            consistency,
        })
        .await?;
    if found.is_missing() {
        return Ok(no_content());
    }
    let mut response = (StatusCode::OK, found.data).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(etag) = found
        .etag
        .and_then(|etag| HeaderValue::from_str(&etag).ok())
    {
        headers.insert(header::ETAG, etag);
    }
    for (name, value) in &found.metadata {
        let name = HeaderName::from_bytes(format!("{METADATA_PREFIX}{name}").as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

/// `DELETE /v1.0/state/{storeName}/{key}`.
async fn delete_state(
    State(runtime): State<ApiState>,
    path: StatePath,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = StateApi::new(&runtime, Protocol::Http).store(&path.store)?;
    let parameters = query_parameters(&uri);
    let word = |name: &str| parameters.get(name).map(String::as_str).unwrap_or_default();
    let invalid = |error| errors::delete_failed(&path.key, &error, Protocol::Http);
    let concurrency = options::concurrency(word("concurrency")).map_err(invalid)?;
    let consistency = options::consistency(word("consistency")).map_err(invalid)?;
    let etag = headers
        .get(header::IF_MATCH)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    store
        .delete(DeleteRequest {
            key: path.key,
            etag,
            metadata: request_metadata(parameters.clone()),
            concurrency,
            consistency,
        })
        .await?;
    Ok(no_content())
}

/// The body of a bulk get (upstream's `BulkGetRequest`).
#[derive(Debug, Default, Deserialize)]
struct BulkGetBody {
    #[serde(default)]
    keys: Option<Vec<String>>,
    #[serde(default)]
    parallelism: Option<i64>,
    #[serde(default)]
    metadata: Option<HashMap<String, String>>,
}

/// `POST|PUT /v1.0/state/{storeName}/bulk`: `[{"key", "data", "etag", "metadata"}]`, or
/// `{"key", "error"}` for a key that could not be read.
async fn bulk_get(
    State(runtime): State<ApiState>,
    path: StatePath,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let store = StateApi::new(&runtime, Protocol::Http).store(&path.store)?;
    let body = read_json_body(body).await?;
    let request = decode_first::<Option<BulkGetBody>>(&body)
        .map_err(ApiError::malformed_request)?
        .unwrap_or_default();
    let metadata = merged(request.metadata, &request_metadata(query_parameters(&uri)));
    let parallelism = request
        .parallelism
        .and_then(|parallelism| usize::try_from(parallelism).ok())
        .unwrap_or(0);
    let items = store
        .bulk_get(request.keys.unwrap_or_default(), metadata, parallelism)
        .await?;
    Ok(json_response(bulk_get_body(&items)))
}

fn bulk_get_body(items: &[BulkGetItem]) -> Vec<u8> {
    let mut out = vec![b'['];
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"key":"#);
        write_string(&mut out, &item.key);
        match item.error.as_deref().filter(|error| !error.is_empty()) {
            Some(error) => {
                out.extend_from_slice(br#","error":"#);
                write_string(&mut out, error);
            }
            None => {
                if !item.data.is_empty() {
                    out.extend_from_slice(br#","data":"#);
                    write_data(&mut out, &item.data);
                }
                if let Some(etag) = &item.etag {
                    out.extend_from_slice(br#","etag":"#);
                    write_string(&mut out, etag);
                }
                if !item.metadata.is_empty() {
                    out.extend_from_slice(br#","metadata":"#);
                    write_string_map(&mut out, item.metadata.iter());
                }
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]\n");
    out
}

/// The body of a transaction.
#[derive(Debug, Default, Deserialize)]
struct TransactionBody {
    #[serde(default)]
    operations: Option<Vec<OperationBody>>,
    #[serde(default)]
    metadata: Option<HashMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct OperationBody {
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    request: Value,
}

/// `POST|PUT /v1.0/state/{storeName}/transaction`. As upstream, each operation's metadata
/// gets the query's `metadata.*` parameters (not the body's `metadata`), and operation
/// options are passed on unchecked.
async fn transaction(
    State(runtime): State<ApiState>,
    path: StatePath,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let store = StateApi::new(&runtime, Protocol::Http).transactional_store(&path.store)?;
    let body = read_json_body(body).await?;
    let request = decode_first::<Option<TransactionBody>>(&body)
        .map_err(ApiError::malformed_request)?
        .unwrap_or_default();
    let operations = request.operations.unwrap_or_default();
    if operations.is_empty() {
        return Ok(no_content());
    }
    let query_metadata = request_metadata(query_parameters(&uri));
    let mut parsed = Vec::with_capacity(operations.len());
    for operation in operations {
        let kind = store.operation_kind(operation.operation.as_deref().unwrap_or_default())?;
        let item: ItemBody = match operation.request {
            Value::Null => ItemBody::default(),
            request => serde_json::from_value(request).map_err(ApiError::malformed_request)?,
        };
        let (concurrency, consistency) = item.option_words();
        let concurrency = options::concurrency(concurrency).unwrap_or_default();
        let consistency = options::consistency(consistency).unwrap_or_default();
        let key = item.key.unwrap_or_default();
        let metadata = merged(item.metadata, &query_metadata);
        parsed.push(match kind {
            OperationKind::Upsert => TransactionOperation::Upsert(SetRequest {
                key,
                value: encode_value(&item.value).into(),
                etag: item.etag,
                metadata,
                concurrency,
                consistency,
                content_type: item.content_type,
            }),
            OperationKind::Delete => TransactionOperation::Delete(DeleteRequest {
                key,
                etag: item.etag,
                metadata,
                concurrency,
                consistency,
            }),
        });
    }
    store
        .transact(TransactionRequest {
            operations: parsed,
            metadata: merged(request.metadata, &query_metadata),
        })
        .await?;
    Ok(no_content())
}

/// `POST|PUT /v1.0-alpha1/state/{storeName}/query`: `{"results": [{"key", "data", "etag"}],
/// "token", "metadata"}`, or 204 when nothing matched.
async fn query(
    State(runtime): State<ApiState>,
    path: StatePath,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_json_body(body).await?;
    let store = StateApi::new(&runtime, Protocol::Http).query_store(&path.store)?;
    let response = store
        .query(&body, request_metadata(query_parameters(&uri)))
        .await?;
    if response.results.is_empty() {
        return Ok(no_content());
    }
    Ok(json_response(query_body(&response)))
}

fn query_body(response: &QueryResponse) -> Vec<u8> {
    let mut out = br#"{"results":["#.to_vec();
    for (index, item) in response.results.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"key":"#);
        write_string(&mut out, &item.key);
        out.extend_from_slice(br#","data":"#);
        write_data(&mut out, &item.data);
        if let Some(etag) = item.etag.as_deref().filter(|etag| !etag.is_empty()) {
            out.extend_from_slice(br#","etag":"#);
            write_string(&mut out, etag);
        }
        if let Some(error) = item.error.as_deref().filter(|error| !error.is_empty()) {
            out.extend_from_slice(br#","error":"#);
            write_string(&mut out, error);
        }
        out.push(b'}');
    }
    out.push(b']');
    if !response.token.is_empty() {
        out.extend_from_slice(br#","token":"#);
        write_string(&mut out, &response.token);
    }
    if !response.metadata.is_empty() {
        out.extend_from_slice(br#","metadata":"#);
        write_string_map(&mut out, response.metadata.iter());
    }
    out.extend_from_slice(b"}\n");
    out
}
