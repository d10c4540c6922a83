//! Distributed locks: the contract every `lock.*` component implements (upstream's
//! `lock.Store`) and the built-in stores.
//!
//! A lock is a resource id held by one owner until it is unlocked by that owner or its
//! expiry passes. daprd hands stores the resource id already prefixed
//! (`lock||<app id>||<resource>` by default) and checks the request first (non-empty
//! resource and owner, positive expiry).

mod catalog;
#[cfg(test)]
mod conformance;
pub mod in_memory;
pub mod redis;

pub use catalog::{LOCK_TYPES, OpenError, open};

/// A failed lock operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// The component's metadata is wrong; the component cannot start.
    #[error("{0}")]
    InvalidMetadata(String),
    /// The store failed or could not be reached.
    #[error("{0}")]
    Backend(String),
}

/// Acquire a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryLockRequest {
    /// The (prefixed) resource id.
    pub resource_id: String,
    /// Who asks for it.
    pub lock_owner: String,
    /// How long the lock is held at most, in seconds (positive).
    pub expiry_in_seconds: i32,
}

/// Release a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockRequest {
    /// The (prefixed) resource id.
    pub resource_id: String,
    /// Who releases it.
    pub lock_owner: String,
}

/// What an unlock did (upstream's statuses and numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockStatus {
    /// The lock was held by the owner and is released.
    Success = 0,
    /// Nobody holds the lock.
    LockDoesNotExist = 1,
    /// Someone else holds the lock; it stays held.
    LockBelongsToOthers = 2,
    /// The store failed.
    InternalError = 3,
}

/// A lock store component.
#[async_trait::async_trait]
pub trait LockStore: Send + Sync {
    /// Takes the lock for `lock_owner` if nobody holds it; `Ok(false)` when it is held.
    async fn try_lock(&self, request: TryLockRequest) -> Result<bool, LockError>;

    /// Releases the lock if `lock_owner` holds it.
    async fn unlock(&self, request: UnlockRequest) -> Result<UnlockStatus, LockError>;

    /// Releases connections.
    async fn close(&self) -> Result<(), LockError> {
        Ok(())
    }
}
