//! Opening the database as upstream's SQLite components do (connection string options,
//! busy timeout, WAL journal) and running blocking SQLite work off the async runtime.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::state::StateError;

/// A parsed `connectionString`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConnectionTarget {
    /// The `file:` URI SQLite opens, with the options SQLite itself understands.
    uri: String,
    /// `:memory:` or `file::memory:`: a database private to this component.
    pub in_memory: bool,
    /// `mode=ro` or `immutable=1`.
    read_only: bool,
    /// `_pragma=name(value)` options, run after opening.
    pragmas: Vec<String>,
    /// `_txlock`: how transactions begin (immediate unless set).
    pub txlock: TxLock,
}

/// How a transaction takes the database lock (`_txlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxLock {
    /// `BEGIN DEFERRED`: lock on the first write.
    Deferred,
    /// `BEGIN IMMEDIATE`: take the write lock at once (the default).
    Immediate,
    /// `BEGIN EXCLUSIVE`.
    Exclusive,
}

impl TxLock {
    /// The matching rusqlite behaviour.
    pub fn behavior(self) -> TransactionBehavior {
        match self {
            Self::Deferred => TransactionBehavior::Deferred,
            Self::Immediate => TransactionBehavior::Immediate,
            Self::Exclusive => TransactionBehavior::Exclusive,
        }
    }
}

impl ConnectionTarget {
    /// Parses a connection string as upstream does: a plain path gets the `file:` prefix,
    /// the first `mode`/`immutable` wins, `_txlock` picks how transactions begin, and
    /// `_pragma` options the `busyTimeout`/`disableWAL` settings own are refused.
    ///
    /// Unlike upstream, whose in-memory databases are one shared cache for the whole
    /// process, an in-memory database here belongs to its component alone.
    pub fn parse(connection_string: &str) -> Result<Self, String> {
        let lowercase = connection_string.to_lowercase();
        let in_memory = lowercase.starts_with(":memory:") || lowercase.starts_with("file::memory:");
        let (base, query) = connection_string
            .split_once('?')
            .unwrap_or((connection_string, ""));

        let mut options: Vec<(String, String)> = Vec::new();
        let mut pragmas = Vec::new();
        let mut txlock = TxLock::Immediate;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (key, value) = (unescape(key)?, unescape(value)?);
            match key.as_str() {
                "_pragma" => pragmas.push(check_pragma(&value)?),
                "_txlock" => txlock = parse_txlock(&value)?,
                "mode" | "immutable" if options.iter().any(|(existing, _)| *existing == key) => {}
                _ => options.push((key, value)),
            }
        }
        let read_only = options.iter().any(|(key, value)| {
            (key == "mode" && value == "ro") || (key == "immutable" && value == "1")
        });

        let mut uri = if lowercase.starts_with("file:") {
            base.to_owned()
        } else {
            format!("file:{base}")
        };
        if !options.is_empty() {
            let encoded: Vec<String> = options
                .iter()
                .map(|(key, value)| format!("{}={}", escape(key), escape(value)))
                .collect();
            uri.push('?');
            uri.push_str(&encoded.join("&"));
        }
        Ok(Self {
            uri,
            in_memory,
            read_only,
            pragmas,
            txlock,
        })
    }

    /// The file path part of the URI, for logs.
    pub fn path(&self) -> &str {
        let without_scheme = self.uri.strip_prefix("file:").unwrap_or(&self.uri);
        without_scheme.split('?').next().unwrap_or(without_scheme)
    }

    /// Opens a connection: busy timeout (zero waits not at all), journal mode (WAL unless
    /// disabled, read-only or in memory), then the connection string's pragmas. Blocking.
    pub fn open(&self, busy_timeout: Duration, disable_wal: bool) -> rusqlite::Result<Connection> {
        let connection = if self.in_memory {
            Connection::open_in_memory()?
        } else {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            Connection::open_with_flags(&self.uri, flags)?
        };
        connection.busy_timeout(busy_timeout)?;
        let journal_mode = if self.in_memory {
            "MEMORY"
        } else if disable_wal || self.read_only {
            "DELETE"
        } else {
            "WAL"
        };
        run_pragma(&connection, &format!("journal_mode = {journal_mode}"))?;
        for pragma in &self.pragmas {
            run_pragma(&connection, pragma)?;
        }
        Ok(connection)
    }
}

/// Runs a pragma, reading (and discarding) whatever rows it returns.
fn run_pragma(connection: &Connection, pragma: &str) -> rusqlite::Result<()> {
    let mut statement = connection.prepare(&format!("PRAGMA {pragma}"))?;
    let mut rows = statement.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// `deferred`, `immediate` or `exclusive`, any case; upstream warns about anything but
/// `immediate`, which several writers need to avoid deadlocks on lock upgrades.
fn parse_txlock(value: &str) -> Result<TxLock, String> {
    let txlock = match value.to_lowercase().as_str() {
        "immediate" => return Ok(TxLock::Immediate),
        "deferred" => TxLock::Deferred,
        "exclusive" => TxLock::Exclusive,
        _ => {
            return Err(format!(
                "unknown _txlock {value:?} in the connection string"
            ));
        }
    };
    tracing::warn!(
        "Database connection is being created with a _txlock different from the recommended value 'immediate'"
    );
    Ok(txlock)
}

/// Accepts `name` or `name(value)` with a plain value, refusing the pragmas the
/// component's own settings control (upstream's rule).
fn check_pragma(pragma: &str) -> Result<String, String> {
    let lowercase = pragma.to_lowercase();
    for (forbidden, setting) in [
        (
            "busy_timeout",
            "use the `busyTimeout` metadata property instead",
        ),
        (
            "journal_mode",
            "use the `disableWAL` metadata property instead",
        ),
        ("foreign_keys", "it cannot be changed"),
    ] {
        if lowercase.starts_with(forbidden) {
            return Err(format!(
                "found forbidden option '_pragma={forbidden}' in the connection string: {setting}"
            ));
        }
    }
    let (name, argument) = match pragma.split_once('(') {
        Some((name, rest)) => (name, rest.strip_suffix(')')),
        None => (pragma, Some("")),
    };
    let plain = |text: &str, extra: &[u8]| {
        text.bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || extra.contains(&byte))
    };
    if !name.is_empty() && plain(name, &[]) && argument.is_some_and(|arg| plain(arg, b"-.")) {
        Ok(pragma.to_owned())
    } else {
        Err(format!(
            "invalid '_pragma' option {pragma:?} in the connection string: expected name or name(value)"
        ))
    }
}

/// Decodes `%XX` escapes and `+` as Go's `url.ParseQuery` does.
fn unescape(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'%' => {
                let escaped = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| {
                        format!("invalid escape in connection string option {text:?}")
                    })?;
                decoded.push(escaped);
                index += 3;
            }
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded)
        .map_err(|_| format!("connection string option {text:?} is not UTF-8"))
}

/// Percent-encodes everything but unreserved URI characters.
fn escape(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

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
        let connection =
            tokio::task::spawn_blocking(move || target.open(busy_timeout, disable_wal))
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

    #[test]
    fn plain_paths_get_the_file_prefix() {
        let target = ConnectionTarget::parse("dapr-state.db").unwrap();
        assert_eq!(target.uri, "file:dapr-state.db");
        assert_eq!(target.path(), "dapr-state.db");
        assert!(!target.in_memory);
        let target = ConnectionTarget::parse("file:/var/lib/state.db?mode=rwc").unwrap();
        assert_eq!(target.uri, "file:/var/lib/state.db?mode=rwc");
        assert_eq!(target.path(), "/var/lib/state.db");
    }

    #[test]
    fn memory_databases_are_recognised() {
        assert!(ConnectionTarget::parse(":memory:").unwrap().in_memory);
        assert!(
            ConnectionTarget::parse("FILE::memory:?cache=shared")
                .unwrap()
                .in_memory
        );
        assert!(!ConnectionTarget::parse("memory.db").unwrap().in_memory);
    }

    #[test]
    fn driver_options_are_taken_out_and_checked() {
        let target = ConnectionTarget::parse(
            "s.db?_txlock=EXCLUSIVE&_pragma=synchronous(NORMAL)&mode=ro&mode=rw&_pragma=cache_size%28-2000%29",
        )
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
            ConnectionTarget::parse("s.db").unwrap().txlock,
            TxLock::Immediate
        );
        let error = ConnectionTarget::parse("s.db?_pragma=busy_timeout(10)").unwrap_err();
        assert_eq!(
            error,
            "found forbidden option '_pragma=busy_timeout' in the connection string: use the `busyTimeout` metadata property instead"
        );
        assert!(ConnectionTarget::parse("s.db?_pragma=journal_mode(WAL)").is_err());
        assert!(ConnectionTarget::parse("s.db?_pragma=foreign_keys(1)").is_err());
        let error = ConnectionTarget::parse("s.db?_pragma=x;DROP TABLE state").unwrap_err();
        assert!(error.starts_with("invalid '_pragma' option"), "{error}");
        assert!(ConnectionTarget::parse("s.db?mode=%zz").is_err());
        assert!(ConnectionTarget::parse("s.db?_txlock=later").is_err());
    }

    #[tokio::test]
    async fn files_open_in_wal_mode_with_the_busy_timeout_and_pragmas() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.db");
        let target =
            ConnectionTarget::parse(&format!("{}?_pragma=synchronous(OFF)", path.display()))
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

        let target = ConnectionTarget::parse(path.to_str().unwrap()).unwrap();
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
        let target = ConnectionTarget::parse(":memory:").unwrap();
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
