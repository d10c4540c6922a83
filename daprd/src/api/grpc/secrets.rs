//! `GetSecret` and `GetBulkSecret` on the `Dapr` service: decode, call the secrets core,
//! encode; failures become the core's gRPC statuses.

use dapr_proto::runtime;
use tonic::{Request, Response, Status};

use crate::runtime::Runtime;
use crate::secrets;

/// `GetSecret`: one secret's values by name.
pub async fn get_secret(
    runtime: &Runtime,
    request: Request<runtime::GetSecretRequest>,
) -> Result<Response<runtime::GetSecretResponse>, Status> {
    let request = request.into_inner();
    let secret = secrets::get_secret(
        runtime,
        &request.store_name,
        &request.key,
        &request.metadata,
    )
    .await?;
    Ok(Response::new(runtime::GetSecretResponse {
        data: secret.into_iter().collect(),
    }))
}

/// `GetBulkSecret`: every secret the app may read, by name.
pub async fn get_bulk_secret(
    runtime: &Runtime,
    request: Request<runtime::GetBulkSecretRequest>,
) -> Result<Response<runtime::GetBulkSecretResponse>, Status> {
    let request = request.into_inner();
    let secrets = secrets::bulk_get_secret(runtime, &request.store_name, &request.metadata).await?;
    Ok(Response::new(runtime::GetBulkSecretResponse {
        data: secrets
            .into_iter()
            .map(|(name, values)| {
                let secrets = values.into_iter().collect();
                (name, runtime::SecretResponse { secrets })
            })
            .collect(),
    }))
}
