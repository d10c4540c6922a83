//! The state RPCs of the `Dapr` service: `GetState`, `GetBulkState`, `SaveState`,
//! `DeleteState`, `DeleteBulkState`, `ExecuteStateTransaction` and `QueryStateAlpha1`,
//! decoded into core calls and encoded back. Values travel as raw bytes, except that a
//! saved item whose metadata says `contentType: application/json` is stored as upstream
//! re-encodes JSON (see [`crate::go_json`]).

use dapr_components::state::{
    Concurrency, Consistency, DeleteRequest, GetRequest, SetRequest, TransactionOperation,
    TransactionRequest,
};
use dapr_proto::common::{StateItem, StateOptions, state_options};
use dapr_proto::runtime;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::go_json;
use crate::runtime::Runtime;
use crate::state::{OperationKind, Protocol, StateApi};

/// The metadata key and value that mark a saved value as JSON.
const CONTENT_TYPE_KEY: &str = "contentType";
const JSON_CONTENT_TYPE: &str = "application/json";

fn api(runtime: &Runtime) -> StateApi<'_> {
    StateApi::new(runtime, Protocol::Grpc)
}

fn consistency(value: state_options::StateConsistency) -> Consistency {
    match value {
        state_options::StateConsistency::ConsistencyEventual => Consistency::Eventual,
        state_options::StateConsistency::ConsistencyStrong => Consistency::Strong,
        state_options::StateConsistency::ConsistencyUnspecified => Consistency::Unspecified,
    }
}

fn concurrency(value: state_options::StateConcurrency) -> Concurrency {
    match value {
        state_options::StateConcurrency::ConcurrencyFirstWrite => Concurrency::FirstWrite,
        state_options::StateConcurrency::ConcurrencyLastWrite => Concurrency::LastWrite,
        state_options::StateConcurrency::ConcurrencyUnspecified => Concurrency::Unspecified,
    }
}

/// The options of an item, when it has any.
fn item_options(options: Option<&StateOptions>) -> (Concurrency, Consistency) {
    options.map_or(
        (Concurrency::Unspecified, Consistency::Unspecified),
        |options| {
            (
                concurrency(options.concurrency()),
                consistency(options.consistency()),
            )
        },
    )
}

fn delete_request(item: StateItem) -> DeleteRequest {
    let (concurrency, consistency) = item_options(item.options.as_ref());
    DeleteRequest {
        key: item.key,
        etag: item.etag.map(|etag| etag.value),
        metadata: item.metadata,
        concurrency,
        consistency,
    }
}

/// `GetState`: a missing key is an empty response.
pub async fn get_state(
    runtime: &Runtime,
    request: Request<runtime::GetStateRequest>,
) -> Result<Response<runtime::GetStateResponse>, Status> {
    let request = request.into_inner();
    let consistency = consistency(request.consistency());
    let store = api(runtime).store(&request.store_name)?;
    let found = store
        .get(GetRequest {
            key: request.key,
            metadata: request.metadata,
            consistency,
        })
        .await?;
    Ok(Response::new(runtime::GetStateResponse {
        data: found.data.to_vec(),
        etag: found.etag.unwrap_or_default(),
        metadata: found.metadata,
    }))
}

/// `GetBulkState`.
pub async fn get_bulk_state(
    runtime: &Runtime,
    request: Request<runtime::GetBulkStateRequest>,
) -> Result<Response<runtime::GetBulkStateResponse>, Status> {
    let request = request.into_inner();
    let store = api(runtime).store(&request.store_name)?;
    let parallelism = usize::try_from(request.parallelism).unwrap_or(0);
    let items = store
        .bulk_get(request.keys, request.metadata, parallelism)
        .await?;
    let items = items
        .into_iter()
        .map(|item| runtime::BulkStateItem {
            key: item.key,
            data: item.data.to_vec(),
            etag: item.etag.unwrap_or_default(),
            error: item.error.unwrap_or_default(),
            metadata: item.metadata,
        })
        .collect();
    Ok(Response::new(runtime::GetBulkStateResponse { items }))
}

/// `SaveState`.
pub async fn save_state(
    runtime: &Runtime,
    request: Request<runtime::SaveStateRequest>,
) -> Result<Response<()>, Status> {
    let request = request.into_inner();
    let store = api(runtime).store(&request.store_name)?;
    let mut items = Vec::with_capacity(request.states.len());
    for item in request.states {
        let (concurrency, consistency) = item_options(item.options.as_ref());
        let value =
            if item.metadata.get(CONTENT_TYPE_KEY).map(String::as_str) == Some(JSON_CONTENT_TYPE) {
                go_json::normalize(&item.value).map_err(|error| {
                    ApiError::new(
                        "ERR_MALFORMED_REQUEST",
                        error.to_string(),
                        axum::http::StatusCode::BAD_REQUEST,
                        tonic::Code::Unknown,
                    )
                })?
            } else {
                item.value
            };
        items.push(SetRequest {
            key: item.key,
            value: value.into(),
            etag: item.etag.map(|etag| etag.value),
            metadata: item.metadata,
            concurrency,
            consistency,
            content_type: None,
        });
    }
    store.save(items).await?;
    Ok(Response::new(()))
}

/// `DeleteState`.
pub async fn delete_state(
    runtime: &Runtime,
    request: Request<runtime::DeleteStateRequest>,
) -> Result<Response<()>, Status> {
    let request = request.into_inner();
    let store = api(runtime).store(&request.store_name)?;
    let (concurrency, consistency) = item_options(request.options.as_ref());
    store
        .delete(DeleteRequest {
            key: request.key,
            etag: request.etag.map(|etag| etag.value),
            metadata: request.metadata,
            concurrency,
            consistency,
        })
        .await?;
    Ok(Response::new(()))
}

/// `DeleteBulkState`.
pub async fn delete_bulk_state(
    runtime: &Runtime,
    request: Request<runtime::DeleteBulkStateRequest>,
) -> Result<Response<()>, Status> {
    let request = request.into_inner();
    let store = api(runtime).store(&request.store_name)?;
    store
        .bulk_delete(request.states.into_iter().map(delete_request).collect())
        .await?;
    Ok(Response::new(()))
}

/// `ExecuteStateTransaction`: upsert values are stored as given.
pub async fn execute_state_transaction(
    runtime: &Runtime,
    request: Request<runtime::ExecuteStateTransactionRequest>,
) -> Result<Response<()>, Status> {
    let request = request.into_inner();
    let store = api(runtime).transactional_store(&request.store_name)?;
    let mut operations = Vec::with_capacity(request.operations.len());
    for operation in request.operations {
        let kind = store.operation_kind(&operation.operation_type)?;
        let item = operation.request.unwrap_or_default();
        operations.push(match kind {
            OperationKind::Upsert => {
                let (concurrency, consistency) = item_options(item.options.as_ref());
                TransactionOperation::Upsert(SetRequest {
                    key: item.key,
                    value: item.value.into(),
                    etag: item.etag.map(|etag| etag.value),
                    metadata: item.metadata,
                    concurrency,
                    consistency,
                    content_type: None,
                })
            }
            OperationKind::Delete => TransactionOperation::Delete(delete_request(item)),
        });
    }
    store
        .transact(TransactionRequest {
            operations,
            metadata: request.metadata,
        })
        .await?;
    Ok(Response::new(()))
}

/// `QueryStateAlpha1`: nothing matching is an empty response (no token, no metadata).
pub async fn query_state(
    runtime: &Runtime,
    request: Request<runtime::QueryStateRequest>,
) -> Result<Response<runtime::QueryStateResponse>, Status> {
    let request = request.into_inner();
    let store = api(runtime).query_store(&request.store_name)?;
    let response = store
        .query(request.query.as_bytes(), request.metadata)
        .await?;
    if response.results.is_empty() {
        return Ok(Response::new(runtime::QueryStateResponse::default()));
    }
    Ok(Response::new(runtime::QueryStateResponse {
        results: response
            .results
            .into_iter()
            .map(|item| runtime::QueryStateItem {
                key: item.key,
                data: item.data.to_vec(),
                etag: item.etag.unwrap_or_default(),
                error: item.error.unwrap_or_default(),
            })
            .collect(),
        token: response.token,
        metadata: response.metadata,
    }))
}
