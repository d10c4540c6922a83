//! The behaviour every lock store must show, run against each store: exclusive
//! ownership, owner-only release, upstream's unlock statuses, and expiry freeing the
//! lock.

use std::time::Duration;

use super::{LockStore, TryLockRequest, UnlockRequest, UnlockStatus};

fn lock(resource: &str, owner: &str, expiry: i32) -> TryLockRequest {
    TryLockRequest {
        resource_id: resource.to_owned(),
        lock_owner: owner.to_owned(),
        expiry_in_seconds: expiry,
    }
}

fn unlock(resource: &str, owner: &str) -> UnlockRequest {
    UnlockRequest {
        resource_id: resource.to_owned(),
        lock_owner: owner.to_owned(),
    }
}

/// Runs the suite on `store` (resource ids start with a fresh uuid, so a shared server
/// is fine).
pub async fn run(store: &dyn LockStore) {
    let id = uuid::Uuid::new_v4();
    let resource = format!("lock||app||{id}");
    assert!(store.try_lock(lock(&resource, "a", 10)).await.unwrap());
    assert!(!store.try_lock(lock(&resource, "b", 10)).await.unwrap());
    assert!(!store.try_lock(lock(&resource, "a", 10)).await.unwrap());
    assert_eq!(
        store.unlock(unlock(&resource, "b")).await.unwrap(),
        UnlockStatus::LockBelongsToOthers
    );
    assert_eq!(
        store.unlock(unlock(&resource, "a")).await.unwrap(),
        UnlockStatus::Success
    );
    assert_eq!(
        store.unlock(unlock(&resource, "a")).await.unwrap(),
        UnlockStatus::LockDoesNotExist
    );
    assert!(store.try_lock(lock(&resource, "b", 10)).await.unwrap());

    // An expired lock is free again, and nobody can release it.
    let expiring = format!("lock||app||{id}-expiring");
    assert!(store.try_lock(lock(&expiring, "a", 1)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(
        store.unlock(unlock(&expiring, "a")).await.unwrap(),
        UnlockStatus::LockDoesNotExist
    );
    assert!(store.try_lock(lock(&expiring, "b", 10)).await.unwrap());
}
