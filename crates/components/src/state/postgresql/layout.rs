//! What differs between the two on-store layouts, behind one shape: the SQL text of each
//! operation (built once per store from the table name), how a value becomes statement
//! parameters, how an ETag is checked before it reaches the database, and the schema
//! migrations. The operations in `store` are written once against this.
//!
//! Parameter positions every layout follows: `$1` is the key, then the layout's value
//! parameters, then the TTL in seconds (`0` for none), then the ETag when there is one.
//! Reads return `(data bytea, etag text, expiry unix seconds)`, bulk reads the key first.

use crate::state::{SetRequest, StateError};

use super::PostgresVersion;
use super::migrations::Migration;
use super::pool::Param;
use super::{v1, v2};

/// The SQL text of each operation for one state table.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    /// One live row by key.
    pub get: String,
    /// Live rows whose key is in `$1` (a text array).
    pub bulk_get: String,
    /// Insert or replace.
    pub upsert: String,
    /// Insert, or replace only an expired row (first-write without an ETag).
    pub insert_first_write: String,
    /// Replace a live row whose ETag matches.
    pub update_with_etag: String,
    /// Remove by key.
    pub delete: String,
    /// Remove by key when the ETag (`$2`) matches.
    pub delete_with_etag: String,
    /// Remove every expired row.
    pub delete_expired: String,
}

/// One version's layout.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    version: PostgresVersion,
    /// The statements for the configured table.
    pub statements: Statements,
}

impl Layout {
    /// The layout of `version` over `table`.
    pub(crate) fn new(version: PostgresVersion, table: &str) -> Self {
        let statements = match version {
            PostgresVersion::V1 => v1::statements(table),
            PostgresVersion::V2 => v2::statements(table),
        };
        Self {
            version,
            statements,
        }
    }

    /// The parameters that carry a request's value.
    pub(crate) fn value_params(&self, request: &SetRequest) -> Vec<Param> {
        match self.version {
            PostgresVersion::V1 => v1::value_params(request),
            PostgresVersion::V2 => v2::value_params(request),
        }
    }

    /// Checks an ETag's form and returns it as a parameter.
    pub(crate) fn etag_param(&self, etag: &str) -> Result<Param, StateError> {
        match self.version {
            PostgresVersion::V1 => v1::etag_param(etag),
            PostgresVersion::V2 => v2::etag_param(etag),
        }
    }

    /// The migrations that create and upgrade `table`, in order.
    pub(crate) fn migrations(version: PostgresVersion, table: &str) -> Vec<Migration> {
        match version {
            PostgresVersion::V1 => v1::migrations(table),
            PostgresVersion::V2 => v2::migrations(table),
        }
    }
}
