//! The one error type of the test kit.

use std::path::PathBuf;
use std::time::Duration;

use crate::process::ProcessExit;

/// Everything that can go wrong while starting, probing or talking to a test process.
///
/// Messages say what failed and, when a server was involved, end with the tail of its log
/// so a failing test explains itself.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A system program (a backing server or a helper tool) is not installed.
    #[error(
        "`{program}` not found: install the Debian package `{package}` (apt-get install {package})"
    )]
    MissingProgram {
        /// The program that was looked for.
        program: String,
        /// The Debian package that ships it.
        package: String,
    },

    /// One of our own binaries is not in the cargo target directory.
    #[error(
        "binary `{name}` not found (looked in {searched}): run `cargo build --bins` (cargo xtask test does)"
    )]
    MissingBinary {
        /// The binary name, e.g. `daprd`.
        name: String,
        /// The directories that were searched, for the message.
        searched: String,
    },

    /// The Python interpreter of the Dapr SDK virtualenv is missing.
    #[error(
        "Python interpreter of the Dapr SDK venv not found at {path}: run `cargo xtask test`, which creates it (or set DAPR_SDK_PYTHON)"
    )]
    MissingSdkPython {
        /// Where the interpreter was expected.
        path: PathBuf,
    },

    /// A local I/O operation (temp dirs, files, spawning) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A server process exited before it answered its readiness probe.
    #[error("{name} exited ({exit}) before it became ready; last log lines:\n{log_tail}")]
    ExitedEarly {
        /// The server's name.
        name: String,
        /// How it exited.
        exit: ProcessExit,
        /// The last lines of its log.
        log_tail: String,
    },

    /// A server did not answer its readiness probe in time.
    #[error(
        "{name} was not ready within {timeout:?} (last probe: {last_probe}); last log lines:\n{log_tail}"
    )]
    NotReady {
        /// The server's name.
        name: String,
        /// The bound that passed.
        timeout: Duration,
        /// What the last probe attempt reported.
        last_probe: String,
        /// The last lines of its log.
        log_tail: String,
    },

    /// Waiting for something (a process exit, a script) took longer than allowed.
    #[error("{what} did not finish within {timeout:?}{details}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound that passed.
        timeout: Duration,
        /// Extra context (log tail, partial output), empty or starting with a separator.
        details: String,
    },

    /// A helper command (initdb, a signal, a Python script) failed.
    #[error("`{command}` failed ({status}): {output}")]
    CommandFailed {
        /// The command line, for the message.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr (or stdout) tail.
        output: String,
    },

    /// An HTTP request could not be sent or its response not read.
    #[error("HTTP {method} {url} failed: {reason}")]
    Http {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A protobuf descriptor set could not be produced or decoded.
    #[error("descriptor set from {origin}: {reason}")]
    Descriptors {
        /// Where the descriptors came from (a file, a directory, a script).
        origin: String,
        /// What went wrong.
        reason: String,
    },
}

impl TestkitError {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result alias used throughout the kit.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
