//! State transactions: upserts and deletes applied atomically by the store's `transact`.

use std::time::Instant;

use dapr_components::state::{TransactionOperation, TransactionRequest};

use super::{Store, errors};
use crate::error::ApiError;
use crate::observability::metrics::operation;

/// What a transaction operation does (upstream's `operation`/`operationType` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// `upsert`: create or replace a value.
    Upsert,
    /// `delete`: remove a value.
    Delete,
}

impl Store<'_> {
    /// Reads an operation word; anything but `upsert` and `delete` is refused.
    pub fn operation_kind(&self, word: &str) -> Result<OperationKind, ApiError> {
        match word {
            "upsert" => Ok(OperationKind::Upsert),
            "delete" => Ok(OperationKind::Delete),
            other => Err(errors::unsupported_operation(other, self.protocol)),
        }
    }

    /// Applies the operations (with the app's keys) all or none; a store failure, ETag
    /// failures included, is `ERR_STATE_TRANSACTION`.
    pub async fn transact(&self, mut request: TransactionRequest) -> Result<(), ApiError> {
        if request.operations.is_empty() {
            return Ok(());
        }
        for operation in &mut request.operations {
            let key = match operation {
                TransactionOperation::Upsert(set) => &mut set.key,
                TransactionOperation::Delete(delete) => &mut delete.key,
            };
            *key = self.stored_key(key)?;
        }
        let started = Instant::now();
        let store = &self.handle.store;
        let result = self
            .policy()
            .call(request, |request| store.transact(request))
            .await;
        self.record(operation::TRANSACTION, result.is_ok(), started);
        result.map_err(|error| errors::transaction_failed(&error, self.protocol))
    }
}
