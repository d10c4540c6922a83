//! Process shutdown coordination: one owner side ([`Shutdown`]) that starts shutdown, any
//! number of waiters ([`ShutdownSignal`]), OS signal wiring, and a bounded drain.
//!
//! As upstream does, the first SIGTERM/SIGINT starts a graceful shutdown and a second one
//! ends the process immediately with exit code 1.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The owner side of shutdown: `trigger()` starts it. Clones share the same state.
#[derive(Debug, Clone)]
pub struct Shutdown {
    started: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A shutdown that has not started.
    pub fn new() -> Self {
        let (started, _) = watch::channel(false);
        Shutdown {
            started: Arc::new(started),
        }
    }

    /// Starts shutdown; calling it again has no further effect.
    pub fn trigger(&self) {
        self.started
            .send_if_modified(|started| !std::mem::replace(started, true));
    }

    /// A waiter that resolves once shutdown has started.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            started: Arc::clone(&self.started),
        }
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.started.borrow()
    }
}

/// The waiting side of shutdown; cheap to clone and hand to every task.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    started: Arc<watch::Sender<bool>>,
}

impl ShutdownSignal {
    /// Resolves once shutdown has started, immediately if it already had.
    pub async fn wait(&self) {
        let mut receiver = self.started.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait; the only
        // way out of `wait_for` is the flag becoming true.
        let _ = receiver.wait_for(|started| *started).await;
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.started.borrow()
    }
}

/// Starts `shutdown` on the first SIGTERM or SIGINT (logging which), and exits the process
/// with code 1 on a second one. Must be called inside a Tokio runtime; errors when the
/// signal handlers cannot be installed.
pub fn trigger_on_os_signals(shutdown: &Shutdown) -> std::io::Result<()> {
    let mut signals = OsSignals::install()?;
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let Some(name) = signals.next().await else {
            return;
        };
        tracing::info!("Received signal '{name}'; beginning shutdown");
        shutdown.trigger();
        if let Some(name) = signals.next().await {
            tracing::warn!("Received signal '{name}' during shutdown; exiting immediately");
            std::process::exit(1);
        }
    });
    Ok(())
}

/// The termination signals this platform delivers.
#[cfg(unix)]
struct OsSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl OsSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(OsSignals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// The next signal's name as Go prints it, or `None` once signals can no longer arrive.
    async fn next(&mut self) -> Option<&'static str> {
        tokio::select! {
            Some(()) = self.terminate.recv() => Some("terminated"),
            Some(()) = self.interrupt.recv() => Some("interrupt"),
            else => None,
        }
    }
}

/// The termination signals this platform delivers.
#[cfg(not(unix))]
struct OsSignals;

#[cfg(not(unix))]
impl OsSignals {
    fn install() -> std::io::Result<Self> {
        Ok(OsSignals)
    }

    /// The next Ctrl-C, or `None` once it can no longer be received.
    async fn next(&mut self) -> Option<&'static str> {
        tokio::signal::ctrl_c().await.ok().map(|()| "interrupt")
    }
}

/// The drain after shutdown did not finish within its grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shutdown did not finish within the grace period of {}", crate::duration::format(*.grace))]
pub struct GraceExceeded {
    /// The grace period that ran out.
    pub grace: Duration,
}

/// Runs `tasks` (typically the joined server futures, after shutdown was triggered) for at
/// most `grace`; their output, or [`GraceExceeded`] if they were still running.
pub async fn drain_within<F: Future>(
    grace: Duration,
    tasks: F,
) -> Result<F::Output, GraceExceeded> {
    tokio::time::timeout(grace, tasks)
        .await
        .map_err(|_| GraceExceeded { grace })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_resolves_when_triggered_after_waiting_starts() {
        let shutdown = Shutdown::new();
        let signal = shutdown.signal();
        assert!(!signal.is_triggered());
        let waiter = tokio::spawn(async move { signal.wait().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());

        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("waiter resolves")
            .unwrap();
        assert!(shutdown.is_triggered());
    }

    #[tokio::test]
    async fn wait_resolves_when_triggered_before_waiting() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        shutdown.trigger();
        let signal = shutdown.signal();
        assert!(signal.is_triggered());
        tokio::time::timeout(Duration::from_secs(5), signal.wait())
            .await
            .expect("already triggered");
        // Waiting twice on the same signal, and on a clone, both resolve.
        signal.wait().await;
        signal.clone().wait().await;
    }

    #[tokio::test]
    async fn signal_outlives_the_owner() {
        let shutdown = Shutdown::new();
        let signal = shutdown.signal();
        let clone = shutdown.clone();
        drop(shutdown);
        assert!(!signal.is_triggered());
        clone.trigger();
        signal.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn drain_within_returns_output_in_time() {
        let output = drain_within(Duration::from_secs(5), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            7
        })
        .await;
        assert_eq!(output, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_within_times_out() {
        let started = tokio::time::Instant::now();
        let output = drain_within(
            Duration::from_secs(2),
            tokio::time::sleep(Duration::from_secs(60)),
        )
        .await;
        let error = output.unwrap_err();
        assert_eq!(error.grace, Duration::from_secs(2));
        assert_eq!(
            error.to_string(),
            "shutdown did not finish within the grace period of 2s"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sigterm_triggers_shutdown() {
        let shutdown = Shutdown::new();
        trigger_on_os_signals(&shutdown).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(5), shutdown.signal().wait())
            .await
            .expect("SIGTERM starts shutdown");
    }
}
