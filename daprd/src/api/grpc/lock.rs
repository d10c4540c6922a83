//! `TryLockAlpha1` and `UnlockAlpha1` over gRPC, by the lock core.

use dapr_proto::runtime;
use tonic::{Request, Response, Status};

use crate::lock::{self, LockRequest};
use crate::runtime::Runtime;

/// `TryLockAlpha1`.
pub async fn try_lock(
    runtime: &Runtime,
    request: Request<runtime::TryLockRequest>,
) -> Result<Response<runtime::TryLockResponse>, Status> {
    let request = request.into_inner();
    let success = lock::try_lock(
        runtime,
        LockRequest {
            store_name: request.store_name,
            resource_id: request.resource_id,
            lock_owner: request.lock_owner,
            expiry_in_seconds: request.expiry_in_seconds,
        },
    )
    .await
    .map_err(|error| error.to_status())?;
    Ok(Response::new(runtime::TryLockResponse { success }))
}

/// `UnlockAlpha1`.
pub async fn unlock(
    runtime: &Runtime,
    request: Request<runtime::UnlockRequest>,
) -> Result<Response<runtime::UnlockResponse>, Status> {
    let request = request.into_inner();
    let status = lock::unlock(
        runtime,
        LockRequest {
            store_name: request.store_name,
            resource_id: request.resource_id,
            lock_owner: request.lock_owner,
            expiry_in_seconds: 0,
        },
    )
    .await
    .map_err(|error| error.to_status())?;
    Ok(Response::new(runtime::UnlockResponse {
        status: status as i32,
    }))
}
