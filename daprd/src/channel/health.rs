//! App health checks (`--enable-app-health-check`): probe the app on an interval; after
//! `threshold` consecutive failures it is unhealthy, one success makes it healthy again.
//! With checks enabled the app starts unhealthy until its first successful probe; with
//! them disabled it is always healthy.

use crate::config::AppHealthConfig;

use dapr_kit::shutdown::ShutdownSignal;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// Whether the app is healthy, shared by everything that must not call a sick app
/// (invocation, subscriptions, input bindings). Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppHealth {
    receiver: watch::Receiver<bool>,
}

impl AppHealth {
    /// The current verdict.
    pub fn is_healthy(&self) -> bool {
        *self.receiver.borrow()
    }

    /// A receiver that sees every change of the verdict (`true` = healthy).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.receiver.clone()
    }
}

/// The writing side of [`AppHealth`], owned by the channel.
#[derive(Debug)]
pub(super) struct HealthReporter {
    sender: watch::Sender<bool>,
}

impl HealthReporter {
    /// A reporter starting from `healthy`, and the view of it.
    pub(super) fn new(healthy: bool) -> (Self, AppHealth) {
        let (sender, receiver) = watch::channel(healthy);
        (Self { sender }, AppHealth { receiver })
    }

    /// Probes with `probe` every `config.interval` (the first one at once) until
    /// `shutdown`, applying the threshold and logging each transition.
    pub(super) async fn run<F, Fut>(
        &self,
        config: &AppHealthConfig,
        probe: F,
        shutdown: ShutdownSignal,
    ) where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        tracing::info!("App health probes starting");
        // Unhealthy until the first successful probe.
        let mut failures = config.threshold;
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let outcome = tokio::select! {
                _ = shutdown.wait() => break,
                outcome = async {
                    ticker.tick().await;
                    probe().await
                } => outcome,
            };
            match outcome {
                Ok(()) => {
                    if failures >= config.threshold {
                        tracing::info!("App entered healthy status");
                        self.sender.send_replace(true);
                    }
                    failures = 0;
                }
                Err(reason) => {
                    tracing::debug!("App health probe failed: {reason}");
                    failures = failures.saturating_add(1);
                    if failures == config.threshold {
                        tracing::warn!("App entered un-healthy status: {reason}");
                        self.sender.send_replace(false);
                    }
                }
            }
        }
        tracing::info!("App health probes stopping");
    }
}
