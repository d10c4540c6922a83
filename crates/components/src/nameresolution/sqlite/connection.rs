//! The resolver's side of opening the registry database: its connection-string rules
//! for [`crate::sqlite::connection`] (which parses and opens the way upstream's SQLite
//! components do: connection string options, busy timeout, WAL journal), and running
//! blocking SQLite work off the async runtime with a time limit.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, InterruptHandle};

use crate::sqlite::connection::{ConnectionRules, ConnectionTarget, MemoryDatabase, TxLockValues};

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum DatabaseError {
    /// SQLite reported an error.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The operation did not finish within its time limit and was interrupted.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The data found is not what this resolver expects.
    #[error("{0}")]
    Invalid(String),
    /// The blocking task running the operation panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

/// The resolver's connection-string rules: upstream's, with in-memory databases shared
/// by the whole process, any `_txlock` value accepted (only warned about) and messages
/// that speak of settings.
pub(super) const RULES: ConnectionRules = ConnectionRules {
    memory: MemoryDatabase::SharedCache,
    txlock: TxLockValues::Any,
    settings_noun: "setting",
};

/// One SQLite connection shared by the async side: each operation runs on the blocking
/// pool, one at a time, and is interrupted when it outlives its limit.
#[derive(Clone)]
pub(super) struct Database {
    connection: Arc<Mutex<Connection>>,
    interrupt: Arc<InterruptHandle>,
}

impl Database {
    /// Opens `target` on the blocking pool.
    pub async fn open(
        target: ConnectionTarget,
        busy_timeout: Duration,
        disable_wal: bool,
    ) -> Result<Self, DatabaseError> {
        let connection = target
            .open(busy_timeout, disable_wal)
            .await
            .map_err(|error| DatabaseError::Task(error.to_string()))??;
        Ok(Self {
            interrupt: Arc::new(connection.get_interrupt_handle()),
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` with the connection; after `limit` the statement in progress is
    /// interrupted and the call fails with [`DatabaseError::Timeout`].
    pub async fn run<T, F>(&self, limit: Duration, work: F) -> Result<T, DatabaseError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DatabaseError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        let task = tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut connection)
        });
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => Err(DatabaseError::Task(error.to_string())),
            Err(_) => {
                self.interrupt.interrupt();
                Err(DatabaseError::Timeout(limit))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_get_the_file_prefix() {
        let target = ConnectionTarget::parse("dapr-nr.db", RULES).unwrap();
        assert_eq!(target.uri, "file:dapr-nr.db");
        assert_eq!(target.path(), "dapr-nr.db");
        assert!(!target.in_memory);
        let target = ConnectionTarget::parse("file:/var/lib/nr.db?mode=rwc", RULES).unwrap();
        assert_eq!(target.uri, "file:/var/lib/nr.db?mode=rwc");
        assert_eq!(target.path(), "/var/lib/nr.db");
    }

    #[test]
    fn memory_databases_are_shared_in_process() {
        let target = ConnectionTarget::parse(":memory:", RULES).unwrap();
        assert!(target.in_memory);
        assert_eq!(target.uri, "file::memory:?cache=shared");
        let target = ConnectionTarget::parse("file::memory:?cache=private", RULES).unwrap();
        assert_eq!(target.uri, "file::memory:?cache=shared");
    }

    #[test]
    fn driver_options_are_taken_out_and_checked() {
        let target = ConnectionTarget::parse(
            "nr.db?_txlock=immediate&_pragma=synchronous(NORMAL)&mode=ro&mode=rw",
            RULES,
        )
        .unwrap();
        assert_eq!(target.uri, "file:nr.db?mode=ro");
        assert_eq!(target.pragmas, vec!["synchronous(NORMAL)".to_owned()]);
        assert!(target.read_only);
        let error = ConnectionTarget::parse("nr.db?_pragma=busy_timeout(10)", RULES).unwrap_err();
        assert_eq!(
            error,
            "found forbidden option '_pragma=busy_timeout' in the connection string: use the `busyTimeout` setting instead"
        );
        assert!(ConnectionTarget::parse("nr.db?_pragma=journal_mode(WAL)", RULES).is_err());
        let error = ConnectionTarget::parse("nr.db?_pragma=x;DROP TABLE hosts", RULES).unwrap_err();
        assert!(error.starts_with("invalid '_pragma' option"), "{error}");
        assert!(ConnectionTarget::parse("nr.db?mode=%zz", RULES).is_err());
    }

    #[tokio::test]
    async fn opened_files_use_wal_and_the_busy_timeout() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nr.db");
        let target = ConnectionTarget::parse(path.to_str().unwrap(), RULES).unwrap();
        let database = Database::open(target, Duration::from_millis(300), false)
            .await
            .unwrap();
        let (journal, busy): (String, i64) = database
            .run(Duration::from_secs(5), |connection| {
                let journal = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
                let busy = connection.query_row("PRAGMA busy_timeout", [], |row| row.get(0))?;
                Ok((journal, busy))
            })
            .await
            .unwrap();
        assert_eq!((journal.as_str(), busy), ("wal", 300));

        let target = ConnectionTarget::parse(
            &format!("{}?_pragma=synchronous(OFF)", path.display()),
            RULES,
        )
        .unwrap();
        let database = Database::open(target, Duration::ZERO, true).await.unwrap();
        let (journal, synchronous): (String, i64) = database
            .run(Duration::from_secs(5), |connection| {
                let journal = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
                let synchronous =
                    connection.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
                Ok((journal, synchronous))
            })
            .await
            .unwrap();
        assert_eq!((journal.as_str(), synchronous), ("delete", 0));
    }

    #[tokio::test]
    async fn slow_work_is_interrupted_at_the_limit() {
        let target = ConnectionTarget::parse(":memory:", RULES).unwrap();
        let database = Database::open(target, Duration::ZERO, false).await.unwrap();
        let error = database
            .run(Duration::from_millis(100), |connection| {
                let count: i64 = connection.query_row(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
                    [],
                    |row| row.get(0),
                )?;
                Ok(count)
            })
            .await
            .unwrap_err();
        assert!(matches!(error, DatabaseError::Timeout(_)), "{error}");
        // The interrupted statement released the connection: the next call works.
        let one: i64 = database
            .run(Duration::from_secs(5), |connection| {
                Ok(connection.query_row("SELECT 1", [], |row| row.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(one, 1);
    }
}
