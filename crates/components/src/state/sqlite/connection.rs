//! The store's side of opening its database: its connection-string rules for
//! [`crate::sqlite::connection`] (which parses and opens as upstream's SQLite components
//! do: connection string options, busy timeout, WAL journal), and running blocking
//! SQLite work off the async runtime.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::sqlite::connection::{ConnectionRules, ConnectionTarget, MemoryDatabase, TxLockValues};
use crate::state::StateError;

/// The store's connection-string rules: upstream's, except that an in-memory database
/// belongs to this store alone (each connection gets its own and the store holds one;
/// upstream's is one shared cache for the whole process). `_txlock` must be a known
/// value, and messages speak of metadata properties.
pub(super) const RULES: ConnectionRules = ConnectionRules {
    memory: MemoryDatabase::Private,
    txlock: TxLockValues::Known,
    settings_noun: "metadata property",
};

/// One SQLite connection shared by the async side: operations run on the blocking pool,
/// one at a time. An operation that cannot start before its time limit fails without
/// touching the database, so a reported timeout never hides a write that happened later;
/// one that has started runs to completion (lock waits inside it are bounded by the
/// busy timeout).
#[derive(Clone)]
pub(super) struct Database {
    connection: Arc<Mutex<Connection>>,
}

impl Database {
    /// Opens `target` on the blocking pool.
    pub async fn open(
        target: ConnectionTarget,
        busy_timeout: Duration,
        disable_wal: bool,
    ) -> Result<Self, StateError> {
        let connection = target
            .open(busy_timeout, disable_wal)
            .await
            .map_err(task_failed)?
            .map_err(|error| {
                StateError::Backend(format!("failed to create connection: {error}"))
            })?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` with the connection if it can start within `limit`.
    pub async fn run<T, F>(&self, limit: Duration, work: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StateError> + Send + 'static,
    {
        let deadline = Instant::now() + limit;
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            if Instant::now() >= deadline {
                return Err(StateError::Backend(format!(
                    "timed out after {limit:?} waiting for the database connection"
                )));
            }
            work(&mut connection)
        })
        .await
        .map_err(task_failed)?
    }
}

fn task_failed(error: tokio::task::JoinError) -> StateError {
    StateError::Backend(format!("database task failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::connection::TxLock;

    #[test]
    fn plain_paths_get_the_file_prefix() {
        let target = ConnectionTarget::parse("dapr-state.db", RULES).unwrap();
        assert_eq!(target.uri, "file:dapr-state.db");
        assert_eq!(target.path(), "dapr-state.db");
        assert!(!target.in_memory);
        let target = ConnectionTarget::parse("file:/var/lib/state.db?mode=rwc", RULES).unwrap();
        assert_eq!(target.uri, "file:/var/lib/state.db?mode=rwc");
        assert_eq!(target.path(), "/var/lib/state.db");
    }

    #[test]
    fn memory_databases_are_recognised() {
        assert!(
            ConnectionTarget::parse(":memory:", RULES)
                .unwrap()
                .in_memory
        );
        assert!(
            ConnectionTarget::parse("FILE::memory:?cache=shared", RULES)
                .unwrap()
                .in_memory
        );
        assert!(
            !ConnectionTarget::parse("memory.db", RULES)
                .unwrap()
                .in_memory
        );
    }

    #[test]
    fn driver_options_are_taken_out_and_checked() {
        let target = ConnectionTarget::parse("s.db?_txlock=EXCLUSIVE&_pragma=synchronous(NORMAL)&mode=ro&mode=rw&_pragma=cache_size%28-2000%29", RULES)
        .unwrap();
        assert_eq!(target.uri, "file:s.db?mode=ro");
        assert_eq!(
            target.pragmas,
            vec![
                "synchronous(NORMAL)".to_owned(),
                "cache_size(-2000)".to_owned()
            ]
        );
        assert!(target.read_only);
        assert_eq!(target.txlock, TxLock::Exclusive);
        assert_eq!(
            ConnectionTarget::parse("s.db", RULES).unwrap().txlock,
            TxLock::Immediate
        );
        let error = ConnectionTarget::parse("s.db?_pragma=busy_timeout(10)", RULES).unwrap_err();
        assert_eq!(
            error,
            "found forbidden option '_pragma=busy_timeout' in the connection string: use the `busyTimeout` metadata property instead"
        );
        assert!(ConnectionTarget::parse("s.db?_pragma=journal_mode(WAL)", RULES).is_err());
        assert!(ConnectionTarget::parse("s.db?_pragma=foreign_keys(1)", RULES).is_err());
        let error = ConnectionTarget::parse("s.db?_pragma=x;DROP TABLE state", RULES).unwrap_err();
        assert!(error.starts_with("invalid '_pragma' option"), "{error}");
        assert!(ConnectionTarget::parse("s.db?mode=%zz", RULES).is_err());
        assert!(ConnectionTarget::parse("s.db?_txlock=later", RULES).is_err());
    }

    #[tokio::test]
    async fn files_open_in_wal_mode_with_the_busy_timeout_and_pragmas() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.db");
        let target = ConnectionTarget::parse(
            &format!("{}?_pragma=synchronous(OFF)", path.display()),
            RULES,
        )
        .unwrap();
        let database = Database::open(target, Duration::from_millis(300), false)
            .await
            .unwrap();
        let (journal, busy, synchronous) = database
            .run(Duration::from_secs(5), |connection| {
                let read = |pragma: &str| -> rusqlite::Result<String> {
                    connection.query_row(&format!("PRAGMA {pragma}"), [], |row| {
                        row.get::<_, rusqlite::types::Value>(0)
                            .map(|value| match value {
                                rusqlite::types::Value::Text(text) => text,
                                rusqlite::types::Value::Integer(number) => number.to_string(),
                                other => format!("{other:?}"),
                            })
                    })
                };
                let backend = StateError::backend;
                Ok((
                    read("journal_mode").map_err(backend)?,
                    read("busy_timeout").map_err(backend)?,
                    read("synchronous").map_err(backend)?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            (journal.as_str(), busy.as_str(), synchronous.as_str()),
            ("wal", "300", "0")
        );

        let target = ConnectionTarget::parse(path.to_str().unwrap(), RULES).unwrap();
        let database = Database::open(target, Duration::ZERO, true).await.unwrap();
        let journal: String = database
            .run(Duration::from_secs(5), |connection| {
                connection
                    .query_row("PRAGMA journal_mode", [], |row| row.get(0))
                    .map_err(StateError::backend)
            })
            .await
            .unwrap();
        assert_eq!(journal, "delete");
    }

    #[tokio::test]
    async fn work_that_cannot_start_in_time_does_not_run() {
        let target = ConnectionTarget::parse(":memory:", RULES).unwrap();
        let database = Database::open(target, Duration::ZERO, false).await.unwrap();
        let busy = database.clone();
        let holder = tokio::spawn(async move {
            busy.run(Duration::from_secs(5), |_| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let error = database
            .run(Duration::from_millis(100), move |_| {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(error.to_string().contains("timed out"), "{error}");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        holder.await.unwrap().unwrap();
    }
}
