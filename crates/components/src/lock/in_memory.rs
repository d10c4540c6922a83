//! `lock.in-memory`: locks held in the sidecar's memory, for development and tests. An
//! expired lock counts as free; expired entries are dropped when the resource is used.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{LockError, LockStore, TryLockRequest, UnlockRequest, UnlockStatus};

/// The in-memory lock store.
#[derive(Debug, Default)]
pub struct InMemoryLock {
    /// Resource id → (owner, when the lock expires).
    held: Mutex<HashMap<String, (String, Instant)>>,
}

#[async_trait::async_trait]
impl LockStore for InMemoryLock {
    async fn try_lock(&self, request: TryLockRequest) -> Result<bool, LockError> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, expires)) = held.get(&request.resource_id)
            && *expires > now
        {
            return Ok(false);
        }
        let expiry = Duration::from_secs(u64::try_from(request.expiry_in_seconds).unwrap_or(0));
        held.insert(request.resource_id, (request.lock_owner, now + expiry));
        Ok(true)
    }

    async fn unlock(&self, request: UnlockRequest) -> Result<UnlockStatus, LockError> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let status = match held.get(&request.resource_id) {
            Some((_, expires)) if *expires <= now => {
                held.remove(&request.resource_id);
                UnlockStatus::LockDoesNotExist
            }
            None => UnlockStatus::LockDoesNotExist,
            Some((owner, _)) if *owner != request.lock_owner => UnlockStatus::LockBelongsToOthers,
            Some(_) => {
                held.remove(&request.resource_id);
                UnlockStatus::Success
            }
        };
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn in_memory_locks_follow_the_lock_contract() {
        super::super::conformance::run(&super::InMemoryLock::default()).await;
    }
}
