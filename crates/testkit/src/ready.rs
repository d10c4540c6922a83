//! Waiting, with a bound, until a guarded process answers a readiness probe.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Result, TestkitError};
use crate::process::{GuardedProcess, PANIC_LOG_LINES};

/// How long one probe attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between failed attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Runs `probe` until it succeeds, the process exits (error with its log tail) or `timeout`
/// passes (error with the last probe failure and the log tail).
///
/// A probe returns `Err(description)` while the server is not ready yet.
pub async fn wait_until_ready<P, F>(
    process: &GuardedProcess,
    timeout: Duration,
    mut probe: P,
) -> Result<()>
where
    P: FnMut() -> F,
    F: Future<Output = std::result::Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(exit) = process.exited() {
            return Err(exited_early(process, exit));
        }
        let last_probe = match tokio::time::timeout(ATTEMPT_TIMEOUT, probe()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(reason)) => reason,
            Err(_) => format!("probe attempt timed out after {ATTEMPT_TIMEOUT:?}"),
        };
        if Instant::now() >= deadline {
            if let Some(exit) = process.exited() {
                return Err(exited_early(process, exit));
            }
            return Err(TestkitError::NotReady {
                name: process.name().to_owned(),
                timeout,
                last_probe,
                log_tail: process.log_tail(PANIC_LOG_LINES),
            });
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

fn exited_early(process: &GuardedProcess, exit: crate::process::ProcessExit) -> TestkitError {
    TestkitError::ExitedEarly {
        name: process.name().to_owned(),
        exit,
        log_tail: process.log_tail(PANIC_LOG_LINES),
    }
}

/// Whether a failed start looks like a lost race for a "free" port (see [`crate::ports`]),
/// so that starting again with fresh ports is worthwhile.
pub fn lost_port_race(error: &TestkitError) -> bool {
    match error {
        TestkitError::ExitedEarly { log_tail, .. } => {
            let log = log_tail.to_ascii_lowercase();
            log.contains("address already in use") || log.contains("eaddrinuse")
        }
        _ => false,
    }
}

/// Runs `start` up to three times while it fails because a chosen port was taken meanwhile.
pub async fn retry_port_races<T, S, F>(mut start: S) -> Result<T>
where
    S: FnMut() -> F,
    F: Future<Output = Result<T>>,
{
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    loop {
        match start().await {
            Err(error) if attempt < ATTEMPTS && lost_port_race(&error) => {
                tracing::warn!(%error, attempt, "port taken meanwhile; starting again with new ports");
                attempt += 1;
            }
            other => return other,
        }
    }
}
