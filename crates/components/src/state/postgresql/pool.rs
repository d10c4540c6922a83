//! A small connection pool over `tokio-postgres`: at most `max` connections, idle ones
//! reused (and dropped after the configured idle time), new ones opened with or without
//! TLS as module `tls` plans (trying the next attempt when one fails, as pgx does), and
//! one way to run a statement whatever `queryExecMode` asks for: with parameters of
//! declared types (the state store's own SQL) or of types the server infers (the SQL
//! apps send through `bindings.postgresql`).
//!
//! [`Pool::listener`] opens a connection outside the pool whose server notifications
//! (`LISTEN`/`NOTIFY`) are handed over on a channel.
//!
//! A leased connection goes back to the pool only when it is known to be in a clean
//! state: no statement in flight (the caller's future was not dropped half-way) and no
//! open transaction. Anything else is closed, so a cancelled request never leaks a
//! half-finished transaction into the next one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{
    AsyncMessage, Client, Config, NoTls, Notification, Row, SimpleQueryMessage, Socket, Statement,
};

use super::tls::{Attempt, Tls};
use crate::state::StateError;

/// How statements are sent (upstream's `queryExecMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ExecMode {
    /// Prepare each distinct statement once per connection and reuse it
    /// (`cache_statement`, `cache_describe`; the default).
    #[default]
    Cached,
    /// Prepare, run and close a statement every time (`describe_exec`).
    Prepare,
    /// Send statements unnamed with explicit parameter types, one round trip and no
    /// server-side statement left behind (`exec`, `simple_protocol`): what connection
    /// poolers such as PgBouncer need.
    Unnamed,
}

impl ExecMode {
    /// Reads upstream's names; `None` for an unknown one.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "" | "cache_statement" | "cache_describe" => Some(Self::Cached),
            "describe_exec" => Some(Self::Prepare),
            "exec" | "simple_protocol" => Some(Self::Unnamed),
            _ => None,
        }
    }
}

/// A statement parameter. Every SQL text casts its parameters explicitly (`$2::text`), so
/// the type each variant declares is the type the server expects in every mode.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    /// `text`.
    Text(String),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// `boolean`.
    Bool(bool),
    /// `bigint`.
    Int8(i64),
    /// `text[]`.
    TextArray(Vec<String>),
}

impl Param {
    fn pg_type(&self) -> Type {
        match self {
            Self::Text(_) => Type::TEXT,
            Self::Bytes(_) => Type::BYTEA,
            Self::Bool(_) => Type::BOOL,
            Self::Int8(_) => Type::INT8,
            Self::TextArray(_) => Type::TEXT_ARRAY,
        }
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Text(value) => value.to_sql_checked(ty, out),
            Self::Bytes(value) => value.to_sql_checked(ty, out),
            Self::Bool(value) => value.to_sql_checked(ty, out),
            Self::Int8(value) => value.to_sql_checked(ty, out),
            Self::TextArray(value) => value.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each variant checks the server's type itself in `to_sql`.
        true
    }

    to_sql_checked!();
}

/// Upper bound on cached statements per connection (query API texts vary).
const STATEMENT_CACHE_LIMIT: usize = 128;

/// Pool settings.
#[derive(Debug, Clone)]
pub(crate) struct PoolOptions {
    /// Where and how to connect.
    pub config: Config,
    /// Whether and how to use TLS.
    pub tls: Tls,
    /// Most connections open at once.
    pub max_conns: usize,
    /// Idle connections older than this are closed instead of reused.
    pub max_idle_time: Option<Duration>,
    /// How statements are sent.
    pub exec_mode: ExecMode,
}

/// The pool.
pub(crate) struct Pool {
    options: PoolOptions,
    idle: Mutex<Vec<(Conn, Instant)>>,
    slots: Semaphore,
}

struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Pool {
    /// A pool that connects lazily.
    pub(crate) fn new(options: PoolOptions) -> Self {
        let slots = Semaphore::new(options.max_conns.max(1));
        Self {
            options,
            idle: Mutex::new(Vec::new()),
            slots,
        }
    }

    /// Leases a connection, waiting for a free slot and connecting if no idle one is left.
    pub(crate) async fn get(&self) -> Result<Lease<'_>, StateError> {
        let slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| StateError::Backend("the state store is closed".into()))?;
        let reusable = self.take_idle();
        let conn = match reusable {
            Some(conn) => conn,
            None => Conn {
                client: self.connect(None).await?,
                statements: HashMap::new(),
            },
        };
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            clean: true,
            in_transaction: false,
            _slot: slot,
        })
    }

    /// Closes idle connections and refuses new leases.
    pub(crate) fn close(&self) {
        self.slots.close();
        self.lock_idle().clear();
    }

    /// The most recently used healthy idle connection; stale and broken ones are closed.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.lock_idle();
        if let Some(limit) = self.options.max_idle_time {
            idle.retain(|(_, since)| since.elapsed() <= limit);
        }
        while let Some((conn, _)) = idle.pop() {
            if !conn.client.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(Conn, Instant)>> {
        // A panic while holding this lock cannot leave the list inconsistent.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a connection, making the TLS plan's attempts in order until one succeeds or
    /// the server refuses the credentials, the database or the privilege to connect
    /// (which another attempt would not change).
    async fn connect(
        &self,
        notifications: Option<&UnboundedSender<Notification>>,
    ) -> Result<Client, StateError> {
        let attempts = self.options.tls.attempts();
        let mut failures = Vec::new();
        for attempt in attempts {
            let error = match self.connect_once(attempt, notifications).await {
                Ok(client) => return Ok(client),
                Err(error) => error,
            };
            tracing::debug!(%attempt, error = %describe(&error), "postgresql connection attempt failed");
            let fatal = error.code().is_some_and(|code| {
                [
                    SqlState::INVALID_PASSWORD,
                    SqlState::INVALID_CATALOG_NAME,
                    SqlState::INSUFFICIENT_PRIVILEGE,
                ]
                .contains(code)
            });
            let mut failure = describe(&error);
            if rejected_certificate(&error) {
                failure.push_str(
                    " (the server's certificate is not trusted: check sslrootcert, and the host name with sslmode=verify-full)",
                );
            }
            failures.push((attempt, failure));
            if fatal {
                break;
            }
        }
        let reason = match failures.as_slice() {
            [(_, only)] => only.clone(),
            all => all
                .iter()
                .map(|(attempt, failure)| format!("{attempt}: {failure}"))
                .collect::<Vec<_>>()
                .join("; "),
        };
        Err(StateError::Backend(format!(
            "failed to connect to the database: {reason}"
        )))
    }

    async fn connect_once(
        &self,
        attempt: &Attempt,
        notifications: Option<&UnboundedSender<Notification>>,
    ) -> Result<Client, tokio_postgres::Error> {
        match attempt {
            Attempt::Tls { mode, connector } => {
                let mut config = self.options.config.clone();
                config.ssl_mode(*mode);
                spawn_connection(&config, connector.clone(), notifications.cloned()).await
            }
            Attempt::Plain => {
                spawn_connection(&self.options.config, NoTls, notifications.cloned()).await
            }
        }
    }

    /// A connection of its own (not counted by the pool) and the notifications the
    /// server sends it; the channel closes when the connection ends.
    pub(crate) async fn listener(
        &self,
    ) -> Result<(Client, UnboundedReceiver<Notification>), StateError> {
        let (sender, receiver) = unbounded_channel();
        let client = self.connect(Some(&sender)).await?;
        Ok((client, receiver))
    }
}

/// Whether the TLS handshake failed because the server's certificate was rejected.
fn rejected_certificate(error: &tokio_postgres::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::get_ref)
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)))
}

/// Connects and drives the connection on its own task, handing server notifications to
/// `notifications` when given.
async fn spawn_connection<T>(
    config: &Config,
    tls: T,
    notifications: Option<UnboundedSender<Notification>>,
) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        loop {
            match futures::future::poll_fn(|context| connection.poll_message(context)).await {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if let Some(sender) = &notifications {
                        // A listener that went away needs no more notifications.
                        let _ = sender.send(notification);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::debug!(error = %describe(&error), "postgresql connection ended");
                    break;
                }
                None => break,
            }
        }
    });
    Ok(client)
}

/// A leased connection, returned to the pool when dropped (if it is clean).
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    clean: bool,
    in_transaction: bool,
    _slot: SemaphorePermit<'a>,
}

impl Lease<'_> {
    /// Runs a statement and returns its rows.
    pub(crate) async fn query(
        &mut self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<Row>, StateError> {
        self.clean = false;
        let result = self.run_query(sql, &typed(params)).await;
        self.clean = true;
        result.map_err(|error| StateError::Backend(describe(&error)))
    }

    /// Runs a statement and returns how many rows it touched.
    pub(crate) async fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, StateError> {
        self.clean = false;
        let result = self.run_execute(sql, &typed(params)).await;
        self.clean = true;
        result.map_err(|error| StateError::Backend(describe(&error)))
    }

    /// Runs a statement whose parameter types the server infers from the SQL text (the
    /// unnamed mode declares them `unknown`), keeping the driver's error.
    pub(crate) async fn query_inferred(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.clean = false;
        let result = self.run_query(sql, &inferred(params)).await;
        self.clean = true;
        result
    }

    /// Like [`Lease::query_inferred`], returning how many rows the statement touched.
    pub(crate) async fn execute_inferred(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.clean = false;
        let result = self.run_execute(sql, &inferred(params)).await;
        self.clean = true;
        result
    }

    /// Runs parameterless SQL text, possibly several statements, with the simple protocol
    /// and returns the row count of the last one, keeping the driver's error.
    pub(crate) async fn batch_counted(&mut self, sql: &str) -> Result<u64, tokio_postgres::Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(0);
        };
        self.clean = false;
        let result = conn.client.simple_query(sql).await;
        self.clean = true;
        Ok(result?
            .iter()
            .rev()
            .find_map(|message| match message {
                SimpleQueryMessage::CommandComplete(rows) => Some(*rows),
                _ => None,
            })
            .unwrap_or(0))
    }

    /// Closes the connection now instead of returning it to the pool (after SQL that may
    /// have left a transaction open); later calls on this lease do nothing.
    pub(crate) fn discard(&mut self) {
        self.conn = None;
    }

    /// Runs parameterless SQL text, possibly several statements, with the simple protocol.
    pub(crate) async fn batch(&mut self, sql: &str) -> Result<(), StateError> {
        self.batch_checked(sql)
            .await
            .map_err(|error| StateError::Backend(describe(&error)))
    }

    /// Like [`Lease::batch`], keeping the driver's error (and its SQLSTATE).
    pub(crate) async fn batch_checked(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        self.clean = false;
        let result = conn.client.batch_execute(sql).await;
        self.clean = true;
        result
    }

    /// Starts a transaction; until [`Lease::commit`] or [`Lease::rollback`] the
    /// connection is closed rather than reused if the lease is dropped.
    pub(crate) async fn begin(&mut self) -> Result<(), StateError> {
        self.in_transaction = true;
        self.batch("BEGIN").await
    }

    /// Commits the open transaction.
    pub(crate) async fn commit(&mut self) -> Result<(), StateError> {
        self.batch("COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }

    /// Rolls the open transaction back.
    pub(crate) async fn rollback(&mut self) -> Result<(), StateError> {
        self.batch("ROLLBACK").await?;
        self.in_transaction = false;
        Ok(())
    }

    async fn run_query(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let mode = self.pool.options.exec_mode;
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Vec::new());
        };
        match mode {
            ExecMode::Cached => {
                let statement = conn.statement(sql).await?;
                let result = conn.client.query(&statement, &untyped(params)).await;
                conn.forget_on_error(sql, result)
            }
            ExecMode::Prepare => conn.client.query(sql, &untyped(params)).await,
            ExecMode::Unnamed => conn.client.query_typed(sql, params).await,
        }
    }

    async fn run_execute(
        &mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<u64, tokio_postgres::Error> {
        let mode = self.pool.options.exec_mode;
        let Some(conn) = self.conn.as_mut() else {
            return Ok(0);
        };
        match mode {
            ExecMode::Cached => {
                let statement = conn.statement(sql).await?;
                let result = conn.client.execute(&statement, &untyped(params)).await;
                conn.forget_on_error(sql, result)
            }
            ExecMode::Prepare => conn.client.execute(sql, &untyped(params)).await,
            ExecMode::Unnamed => conn.client.execute_typed(sql, params).await,
        }
    }
}

impl Conn {
    async fn statement(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        if self.statements.len() >= STATEMENT_CACHE_LIMIT {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Drops a cached statement that failed, so a statement invalidated by a schema
    /// change is prepared again next time (as pgx does).
    fn forget_on_error<T>(
        &mut self,
        sql: &str,
        result: Result<T, tokio_postgres::Error>,
    ) -> Result<T, tokio_postgres::Error> {
        if result.is_err() {
            self.statements.remove(sql);
        }
        result
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.clean
            && !self.in_transaction
            && !conn.client.is_closed()
            && !self.pool.slots.is_closed()
        {
            self.pool.lock_idle().push((conn, Instant::now()));
        }
    }
}

fn untyped<'a>(params: &[(&'a (dyn ToSql + Sync), Type)]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|(param, _)| *param).collect()
}

fn typed(params: &[Param]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|param| (param as &(dyn ToSql + Sync), param.pg_type()))
        .collect()
}

fn inferred<'a>(params: &[&'a (dyn ToSql + Sync)]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().map(|param| (*param, Type::UNKNOWN)).collect()
}

/// A driver error with the server's own message when there is one.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}
