//! Opening the registry database the way upstream's SQLite components do (connection
//! string options, busy timeout, WAL journal) and running blocking SQLite work off the
//! async runtime with a time limit.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, InterruptHandle, OpenFlags};

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

/// A parsed `connectionString`: the URI SQLite opens plus the options applied after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConnectionTarget {
    /// `file:` URI with the options SQLite itself understands.
    pub uri: String,
    /// `:memory:` or `file::memory:`: the registry lives in this process only.
    pub in_memory: bool,
    /// `mode=ro` or `immutable=1`.
    read_only: bool,
    /// `_pragma=name(value)` options, run after opening.
    pragmas: Vec<String>,
}

impl ConnectionTarget {
    /// Parses a connection string as upstream does: adds the `file:` prefix, forces
    /// `cache=shared` for in-memory databases, keeps the first `mode`/`immutable`, and
    /// rejects `_pragma` options that the `busyTimeout`/`disableWAL` settings own.
    pub fn parse(connection_string: &str) -> Result<Self, String> {
        let lowercase = connection_string.to_lowercase();
        let in_memory = lowercase.starts_with(":memory:") || lowercase.starts_with("file::memory:");
        let (base, query) = match connection_string.split_once('?') {
            Some((base, query)) => (base, query),
            None => (connection_string, ""),
        };

        let mut options: Vec<(String, String)> = Vec::new();
        let mut pragmas = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (key, value) = (query_unescape(key)?, query_unescape(value)?);
            match key.as_str() {
                "_pragma" => pragmas.push(check_pragma(&value)?),
                "_txlock" => {
                    if !value.eq_ignore_ascii_case("immediate") {
                        tracing::warn!(
                            "Database connection is being created with a _txlock different from the recommended value 'immediate'"
                        );
                    }
                }
                "mode" | "immutable" if options.iter().any(|(existing, _)| *existing == key) => {}
                "cache" if in_memory => {}
                _ => options.push((key, value)),
            }
        }
        if in_memory {
            options.push(("cache".to_owned(), "shared".to_owned()));
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
                .map(|(key, value)| format!("{}={}", query_escape(key), query_escape(value)))
                .collect();
            uri.push('?');
            uri.push_str(&encoded.join("&"));
        }
        Ok(Self {
            uri,
            in_memory,
            read_only,
            pragmas,
        })
    }

    /// The file path part of the URI, for logs.
    pub fn path(&self) -> &str {
        let without_scheme = &self.uri["file:".len()..];
        without_scheme.split('?').next().unwrap_or(without_scheme)
    }

    /// Opens a connection: busy timeout, journal mode (WAL unless disabled, read-only or
    /// in memory), then the connection string's pragmas. Blocking.
    pub fn open(&self, busy_timeout: Duration, disable_wal: bool) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.uri, flags)?;
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

/// Accepts `name` or `name(value)` with a plain value, refusing the pragmas the
/// component's own settings control (upstream's rule).
fn check_pragma(pragma: &str) -> Result<String, String> {
    let lowercase = pragma.to_lowercase();
    for (forbidden, setting) in [
        ("busy_timeout", "use the `busyTimeout` setting instead"),
        ("journal_mode", "use the `disableWAL` setting instead"),
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
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    let argument_ok = argument.is_some_and(|argument| {
        argument
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
    });
    if name_ok && argument_ok {
        Ok(pragma.to_owned())
    } else {
        Err(format!(
            "invalid '_pragma' option {pragma:?} in the connection string: expected name or name(value)"
        ))
    }
}

/// Decodes `%XX` escapes and `+` (as Go's `url.ParseQuery` does).
fn query_unescape(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| {
                        format!("invalid escape in connection string option {text:?}")
                    })?;
                decoded.push(hex);
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
fn query_escape(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

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
        let connection =
            tokio::task::spawn_blocking(move || target.open(busy_timeout, disable_wal))
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
        let target = ConnectionTarget::parse("dapr-nr.db").unwrap();
        assert_eq!(target.uri, "file:dapr-nr.db");
        assert_eq!(target.path(), "dapr-nr.db");
        assert!(!target.in_memory);
        let target = ConnectionTarget::parse("file:/var/lib/nr.db?mode=rwc").unwrap();
        assert_eq!(target.uri, "file:/var/lib/nr.db?mode=rwc");
        assert_eq!(target.path(), "/var/lib/nr.db");
    }

    #[test]
    fn memory_databases_are_shared_in_process() {
        let target = ConnectionTarget::parse(":memory:").unwrap();
        assert!(target.in_memory);
        assert_eq!(target.uri, "file::memory:?cache=shared");
        let target = ConnectionTarget::parse("file::memory:?cache=private").unwrap();
        assert_eq!(target.uri, "file::memory:?cache=shared");
    }

    #[test]
    fn driver_options_are_taken_out_and_checked() {
        let target = ConnectionTarget::parse(
            "nr.db?_txlock=immediate&_pragma=synchronous(NORMAL)&mode=ro&mode=rw",
        )
        .unwrap();
        assert_eq!(target.uri, "file:nr.db?mode=ro");
        assert_eq!(target.pragmas, vec!["synchronous(NORMAL)".to_owned()]);
        assert!(target.read_only);
        let error = ConnectionTarget::parse("nr.db?_pragma=busy_timeout(10)").unwrap_err();
        assert_eq!(
            error,
            "found forbidden option '_pragma=busy_timeout' in the connection string: use the `busyTimeout` setting instead"
        );
        assert!(ConnectionTarget::parse("nr.db?_pragma=journal_mode(WAL)").is_err());
        let error = ConnectionTarget::parse("nr.db?_pragma=x;DROP TABLE hosts").unwrap_err();
        assert!(error.starts_with("invalid '_pragma' option"), "{error}");
        assert!(ConnectionTarget::parse("nr.db?mode=%zz").is_err());
    }

    #[tokio::test]
    async fn opened_files_use_wal_and_the_busy_timeout() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nr.db");
        let target = ConnectionTarget::parse(path.to_str().unwrap()).unwrap();
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

        let target =
            ConnectionTarget::parse(&format!("{}?_pragma=synchronous(OFF)", path.display()))
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
        let target = ConnectionTarget::parse(":memory:").unwrap();
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
