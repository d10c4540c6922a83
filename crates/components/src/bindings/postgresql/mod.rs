//! `bindings.postgresql`: an output binding that runs the SQL an app sends, as upstream's
//! binding (`bindings/postgres`) does, over the connection pool, TLS and connection
//! settings of `state.postgresql` (`connectionString` or `host`/`user`/..., `maxConns`,
//! `connectionMaxIdleTime`, `queryExecMode`, `timeout` for connecting).
//!
//! Operations (the SQL is the `sql` request metadata, its `$1`-style parameters the
//! optional `params` metadata, a JSON array: see module `params`):
//!
//! - `exec`: runs the statement and reports `rows-affected`; without parameters the SQL
//!   goes over the simple protocol, so it may hold several statements (the count is the
//!   last one's), as with pgx;
//! - `query`: answers the rows as a JSON array of arrays (see module `values`);
//! - `close`: closes the pool (and succeeds again once closed).
//!
//! Both answer upstream's metadata: `operation`, `sql`, `start-time` and `end-time`
//! (RFC 3339 UTC) and `duration` (Go duration text).
//!
//! A pooled connection on which the SQL may have opened a transaction (it mentions
//! `BEGIN` or `START`) is closed after the request instead of being reused, as pgxpool
//! drops connections left inside a transaction.

mod params;
mod values;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio_postgres::types::ToSql;

use crate::bindings::{BindingError, InvokeRequest, InvokeResponse, Operation, OutputBinding};
use crate::metadata::Properties;
use crate::state::StateError;
use crate::state::postgresql::metadata::{pool_options, timeout};
use crate::state::postgresql::pool::{Lease, Pool, describe};

use params::JsonParam;

/// Runs a statement and reports the rows it touched.
pub const EXEC: &str = "exec";
/// Runs a statement and answers its rows.
pub const QUERY: &str = "query";
/// Closes the binding's connections.
pub const CLOSE: &str = "close";
/// Request metadata holding the SQL.
pub const SQL_METADATA_KEY: &str = "sql";
/// Request metadata holding the JSON array of parameters.
pub const PARAMS_METADATA_KEY: &str = "params";
/// Response metadata: how many rows `exec` touched.
pub const ROWS_AFFECTED_METADATA_KEY: &str = "rows-affected";

/// A PostgreSQL database as an output binding.
pub struct PostgresBinding {
    pool: Pool,
    closed: AtomicBool,
}

impl std::fmt::Debug for PostgresBinding {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresBinding")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// Reads the settings, connects and pings the database within `timeout` (default 20s).
pub async fn open(properties: &Properties) -> Result<PostgresBinding, BindingError> {
    let options = pool_options(properties).map_err(invalid_metadata)?;
    let timeout = timeout(properties).map_err(invalid_metadata)?;
    let pool = Pool::new(options);
    let ping = async {
        let mut lease = pool.get().await?;
        lease.batch("SELECT 1").await
    };
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            return Err(BindingError::Backend(format!(
                "failed to ping the DB: {}",
                state_reason(error)
            )));
        }
        Err(_) => {
            return Err(BindingError::Backend(format!(
                "failed to ping the DB: no answer within {}",
                dapr_kit::duration::format(timeout)
            )));
        }
    }
    Ok(PostgresBinding {
        pool,
        closed: AtomicBool::new(false),
    })
}

fn invalid_metadata(error: StateError) -> BindingError {
    BindingError::InvalidMetadata(state_reason(error))
}

/// The reason a shared PostgreSQL helper gave, without the state store's prefixes.
fn state_reason(error: StateError) -> String {
    match error {
        StateError::InvalidMetadata(reason) | StateError::Backend(reason) => reason,
        other => other.to_string(),
    }
}

impl PostgresBinding {
    fn close_pool(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.pool.close();
        }
    }

    async fn lease(&self) -> Result<Lease<'_>, BindingError> {
        self.pool.get().await.map_err(|error| {
            if self.closed.load(Ordering::SeqCst) {
                BindingError::Closed
            } else {
                BindingError::Backend(state_reason(error))
            }
        })
    }

    async fn exec(&self, sql: &str, params: &[serde_json::Value]) -> Result<u64, BindingError> {
        let mut lease = self.lease().await?;
        let result = if params.is_empty() {
            lease.batch_counted(sql).await
        } else {
            let params: Vec<JsonParam<'_>> = params.iter().map(JsonParam).collect();
            lease.execute_inferred(sql, &refs(&params)).await
        };
        release(&mut lease, sql);
        result.map_err(query_failed)
    }

    async fn query(&self, sql: &str, params: &[serde_json::Value]) -> Result<String, BindingError> {
        let mut lease = self.lease().await?;
        let params: Vec<JsonParam<'_>> = params.iter().map(JsonParam).collect();
        let result = lease.query_inferred(sql, &refs(&params)).await;
        release(&mut lease, sql);
        let rows = result.map_err(query_failed)?;
        values::render_rows(&rows).map_err(BindingError::backend)
    }
}

fn refs<'a>(params: &'a [JsonParam<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| param as &(dyn ToSql + Sync))
        .collect()
}

fn query_failed(error: tokio_postgres::Error) -> BindingError {
    BindingError::Backend(format!("error executing query: {}", describe(&error)))
}

/// Closes the lease's connection instead of pooling it when the SQL may have opened a
/// transaction.
fn release(lease: &mut Lease<'_>, sql: &str) {
    if may_open_transaction(sql) {
        tracing::debug!(
            "closing a postgresql connection the binding's SQL may have left in a transaction"
        );
        lease.discard();
    }
}

/// Whether `sql` has the word `BEGIN` or `START` in it (any case).
fn may_open_transaction(sql: &str) -> bool {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .any(|word| word.eq_ignore_ascii_case("begin") || word.eq_ignore_ascii_case("start"))
}

/// The request's `params` metadata: absent or empty means none.
fn parse_params(
    metadata: &HashMap<String, String>,
) -> Result<Vec<serde_json::Value>, BindingError> {
    match metadata
        .get(PARAMS_METADATA_KEY)
        .filter(|text| !text.is_empty())
    {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|error| {
            BindingError::InvalidRequest(format!(
                "invalid metadata property {PARAMS_METADATA_KEY}: failed to unserialize into an array: {error}"
            ))
        }),
    }
}

/// Go's `time.RFC3339Nano` rendering of a moment, in UTC.
fn rfc3339_nano(at: jiff::Timestamp) -> String {
    values::go_time(&at.to_zoned(jiff::tz::TimeZone::UTC)).unwrap_or_else(|_| at.to_string())
}

#[async_trait::async_trait]
impl OutputBinding for PostgresBinding {
    fn operations(&self) -> Vec<Operation> {
        [EXEC, QUERY, CLOSE].map(str::to_owned).to_vec()
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, BindingError> {
        if request.operation == CLOSE {
            self.close_pool();
            return Ok(InvokeResponse::default());
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(BindingError::Closed);
        }
        let sql = request
            .metadata
            .get(SQL_METADATA_KEY)
            .filter(|sql| !sql.is_empty())
            .ok_or_else(|| {
                BindingError::InvalidRequest(format!(
                    "required metadata not set: {SQL_METADATA_KEY}"
                ))
            })?;
        let params = parse_params(&request.metadata)?;

        let started_at = jiff::Timestamp::now();
        let started = Instant::now();
        let mut response = InvokeResponse::default();
        match request.operation.as_str() {
            EXEC => {
                let rows = self.exec(sql, &params).await?;
                response
                    .metadata
                    .insert(ROWS_AFFECTED_METADATA_KEY.to_owned(), rows.to_string());
            }
            QUERY => {
                response.data = self.query(sql, &params).await?.into();
            }
            _ => return Err(BindingError::UnsupportedOperation(request.operation)),
        }
        let elapsed = started.elapsed();
        let ended_at = jiff::Timestamp::now();
        response.metadata.extend([
            ("operation".to_owned(), request.operation.clone()),
            (SQL_METADATA_KEY.to_owned(), sql.clone()),
            ("start-time".to_owned(), rfc3339_nano(started_at)),
            ("end-time".to_owned(), rfc3339_nano(ended_at)),
            ("duration".to_owned(), dapr_kit::duration::format(elapsed)),
        ]);
        Ok(response)
    }

    async fn close(&self) -> Result<(), BindingError> {
        self.close_pool();
        Ok(())
    }
}
