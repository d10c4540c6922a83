//! Upstream's connection-string rules for SQLite components, and opening a connection
//! by them. A plain path gets the `file:` prefix; `:memory:` and `file::memory:` mean an
//! in-memory database; `mode` and `immutable` keep their first value; `_txlock` says how
//! transactions begin; `_pragma=name(value)` options run after opening, except those the
//! `busyTimeout` and `disableWAL` settings own. Every connection gets the busy timeout
//! and a journal mode: WAL unless disabled, read-only or in memory.
//!
//! The two SQLite components differ on in-memory databases, `_txlock` values and the
//! wording of one message; each passes its own [`ConnectionRules`].

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::task::JoinError;

/// How a database file is opened: read-write, created if missing, `file:` URIs
/// understood, no SQLite-side mutex (each connection is used by one thread at a time).
const OPEN_FLAGS: OpenFlags = OpenFlags::SQLITE_OPEN_READ_WRITE
    .union(OpenFlags::SQLITE_OPEN_CREATE)
    .union(OpenFlags::SQLITE_OPEN_URI)
    .union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

/// Bytes that stay as they are in the rebuilt query: the unreserved URI characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// What one component does its own way when reading a connection string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionRules {
    /// What an in-memory connection string opens.
    pub memory: MemoryDatabase,
    /// Which `_txlock` values are accepted.
    pub txlock: TxLockValues,
    /// What the component calls its settings when it refuses a `_pragma` that one of
    /// them owns ("use the `busyTimeout` {settings_noun} instead").
    pub settings_noun: &'static str,
}

/// What an in-memory connection string (`:memory:`, `file::memory:`) opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemoryDatabase {
    /// Upstream's way: one database for the whole process. `cache=shared` replaces any
    /// `cache` option, so every connection opened from the string sees the same data.
    SharedCache,
    /// A database of its own for each connection; the string's options are not used.
    Private,
}

/// Which `_txlock` values a connection string may carry. Any value but `immediate` is
/// warned about, as upstream does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxLockValues {
    /// `deferred`, `immediate` or `exclusive`, in any case; anything else is refused.
    Known,
    /// Any value; one that is not known counts as `immediate`.
    Any,
}

/// How a transaction takes the database lock (`_txlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxLock {
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

/// A parsed `connectionString`: the URI SQLite opens plus the options applied after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectionTarget {
    /// The `file:` URI with the options SQLite itself understands.
    pub uri: String,
    /// `:memory:` or `file::memory:` (any case).
    pub in_memory: bool,
    /// What an in-memory database is, from the component's rules.
    pub memory: MemoryDatabase,
    /// `mode=ro` or `immutable=1`.
    pub read_only: bool,
    /// `_pragma=name(value)` options, run after opening.
    pub pragmas: Vec<String>,
    /// `_txlock`: how transactions begin (immediate unless set).
    pub txlock: TxLock,
}

impl ConnectionTarget {
    /// Parses a connection string as upstream does: a plain path gets the `file:` prefix,
    /// the first `mode`/`immutable` wins, `_txlock` picks how transactions begin, and
    /// `_pragma` options the `busyTimeout`/`disableWAL` settings own are refused. `rules`
    /// decide what an in-memory database is and which `_txlock` values pass.
    pub fn parse(connection_string: &str, rules: ConnectionRules) -> Result<Self, String> {
        let lowercase = connection_string.to_lowercase();
        let in_memory = lowercase.starts_with(":memory:") || lowercase.starts_with("file::memory:");
        let shared_cache = in_memory && rules.memory == MemoryDatabase::SharedCache;
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
                "_pragma" => pragmas.push(check_pragma(&value, rules.settings_noun)?),
                "_txlock" => txlock = parse_txlock(&value, rules.txlock)?,
                "mode" | "immutable" if options.iter().any(|(existing, _)| *existing == key) => {}
                "cache" if shared_cache => {}
                _ => options.push((key, value)),
            }
        }
        if shared_cache {
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
                .map(|(key, value)| format!("{}={}", escape(key), escape(value)))
                .collect();
            uri.push('?');
            uri.push_str(&encoded.join("&"));
        }
        Ok(Self {
            uri,
            in_memory,
            memory: rules.memory,
            read_only,
            pragmas,
            txlock,
        })
    }

    /// The file path part of the URI, for logs.
    pub fn path(&self) -> &str {
        // The URI starts with `file:` in some case: parse adds it or found it there.
        let without_scheme = self.uri.get("file:".len()..).unwrap_or(&self.uri);
        without_scheme.split('?').next().unwrap_or(without_scheme)
    }

    /// Opens a connection on tokio's blocking pool (see [`Self::connect`]); the outer
    /// error is the blocking task failing, the inner one SQLite's.
    pub async fn open(
        self,
        busy_timeout: Duration,
        disable_wal: bool,
    ) -> Result<rusqlite::Result<Connection>, JoinError> {
        tokio::task::spawn_blocking(move || self.connect(busy_timeout, disable_wal)).await
    }

    /// Opens a connection: busy timeout (zero waits not at all), journal mode (WAL unless
    /// disabled, read-only or in memory), then the connection string's pragmas. Blocking.
    fn connect(&self, busy_timeout: Duration, disable_wal: bool) -> rusqlite::Result<Connection> {
        let path = if self.in_memory && self.memory == MemoryDatabase::Private {
            ":memory:"
        } else {
            &self.uri
        };
        let connection = Connection::open_with_flags(path, OPEN_FLAGS)?;
        connection.busy_timeout(busy_timeout)?;
        let journal_mode = if self.in_memory {
            "MEMORY"
        } else if disable_wal || self.read_only {
            "DELETE"
        } else {
            "WAL"
        };
        // Switching a fresh file to WAL while another process does the same can report
        // SQLITE_BUSY without waiting on the busy handler; wait for it here instead.
        run_pragma_patiently(
            &connection,
            &format!("journal_mode = {journal_mode}"),
            busy_timeout,
        )?;
        for pragma in &self.pragmas {
            run_pragma(&connection, pragma)?;
        }
        Ok(connection)
    }
}

/// Runs a pragma like [`run_pragma`], trying again while the database is busy or
/// locked, for at most `patience`.
fn run_pragma_patiently(
    connection: &Connection,
    pragma: &str,
    patience: Duration,
) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match run_pragma(connection, pragma) {
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if matches!(
                    failure.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            outcome => return outcome,
        }
    }
}

/// Runs a pragma, reading (and discarding) whatever rows it returns.
fn run_pragma(connection: &Connection, pragma: &str) -> rusqlite::Result<()> {
    let mut statement = connection.prepare(&format!("PRAGMA {pragma}"))?;
    let mut rows = statement.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// `deferred`, `immediate` or `exclusive`, any case, and with [`TxLockValues::Any`]
/// anything else as `immediate`. Upstream warns about anything but `immediate`, which
/// several writers need to avoid deadlocks on lock upgrades.
fn parse_txlock(value: &str, accepted: TxLockValues) -> Result<TxLock, String> {
    let txlock = match value.to_lowercase().as_str() {
        "immediate" => return Ok(TxLock::Immediate),
        "deferred" => TxLock::Deferred,
        "exclusive" => TxLock::Exclusive,
        _ if accepted == TxLockValues::Any => TxLock::Immediate,
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
fn check_pragma(pragma: &str, settings_noun: &str) -> Result<String, String> {
    let lowercase = pragma.to_lowercase();
    for (forbidden, setting) in [
        ("busy_timeout", Some("busyTimeout")),
        ("journal_mode", Some("disableWAL")),
        ("foreign_keys", None),
    ] {
        if lowercase.starts_with(forbidden) {
            let advice = match setting {
                Some(setting) => format!("use the `{setting}` {settings_noun} instead"),
                None => "it cannot be changed".to_owned(),
            };
            return Err(format!(
                "found forbidden option '_pragma={forbidden}' in the connection string: {advice}"
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

/// Decodes `%XX` escapes and `+` as Go's `url.ParseQuery` does, refusing a broken escape.
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
    utf8_percent_encode(text, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ConnectionRules = ConnectionRules {
        memory: MemoryDatabase::Private,
        txlock: TxLockValues::Known,
        settings_noun: "setting",
    };

    #[test]
    fn options_are_re_encoded_for_sqlite() {
        let target = ConnectionTarget::parse("a b.db?vfs=unix%2Ddot&x=a+b%2F%7e", RULES).unwrap();
        assert_eq!(target.uri, "file:a b.db?vfs=unix-dot&x=a%20b%2F~");
        assert_eq!(target.path(), "a b.db");
        let target = ConnectionTarget::parse("FILE:Data.db?mode=ro", RULES).unwrap();
        assert_eq!(target.uri, "FILE:Data.db?mode=ro");
        assert_eq!(target.path(), "Data.db");
        assert!(ConnectionTarget::parse("a.db?x=%ff", RULES).is_err());
    }

    #[test]
    fn txlock_values_follow_the_rules() {
        let parse = |txlock| {
            ConnectionTarget::parse("a.db?_txlock=later", ConnectionRules { txlock, ..RULES })
                .map(|target| target.txlock)
        };
        assert_eq!(parse(TxLockValues::Any), Ok(TxLock::Immediate));
        assert_eq!(
            parse(TxLockValues::Known),
            Err("unknown _txlock \"later\" in the connection string".to_owned())
        );
        let target = ConnectionTarget::parse("a.db?_txlock=Deferred", RULES).unwrap();
        assert_eq!(target.txlock, TxLock::Deferred);
    }

    #[test]
    fn in_memory_databases_follow_the_rules() {
        let shared = ConnectionRules {
            memory: MemoryDatabase::SharedCache,
            ..RULES
        };
        let target = ConnectionTarget::parse(":memory:?cache=private&mode=rw", shared).unwrap();
        assert_eq!(target.uri, "file::memory:?mode=rw&cache=shared");
        let target = ConnectionTarget::parse(":memory:?cache=private", RULES).unwrap();
        assert_eq!(target.uri, "file::memory:?cache=private");
        assert_eq!(target.memory, MemoryDatabase::Private);
    }

    #[tokio::test]
    async fn private_memory_databases_are_not_shared_and_shared_ones_are() {
        // Shared in-memory databases are one per process: use a table no other test uses.
        let probe = |connection: &Connection| -> i64 {
            connection
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'connection_rules_probe'",
                    [],
                    |row| row.get(0),
                )
                .unwrap()
        };
        for (memory, seen_by_second) in [
            (MemoryDatabase::Private, 0),
            (MemoryDatabase::SharedCache, 1),
        ] {
            let rules = ConnectionRules { memory, ..RULES };
            let target = ConnectionTarget::parse(":memory:", rules).unwrap();
            let first = target.clone().open(Duration::ZERO, false).await;
            let first = first.unwrap().unwrap();
            first
                .execute_batch("CREATE TABLE IF NOT EXISTS connection_rules_probe (x)")
                .unwrap();
            let second = target.open(Duration::ZERO, false).await.unwrap().unwrap();
            assert_eq!(probe(&second), seen_by_second, "{memory:?}");
            let journal: String = second
                .query_row("PRAGMA journal_mode", [], |row| row.get(0))
                .unwrap();
            assert_eq!(journal, "memory");
        }
    }
}
