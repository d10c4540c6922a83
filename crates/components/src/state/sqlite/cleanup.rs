//! The periodic removal of expired rows. Every process sharing the file runs it; the
//! `last-cleanup` row in the metadata table lets only one of them do the work per
//! interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::connection::Database;
use super::schema::Statements;

/// How long a cleanup may wait for the connection.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(600);

/// Starts deleting expired rows every `interval`; abort the handle to stop.
pub(super) fn spawn(
    database: Database,
    statements: Arc<Statements>,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!("Schedule expired data clean up every {interval:?}");
        let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let statements = Arc::clone(&statements);
            let result = database
                .run(CLEANUP_TIMEOUT, move |connection| {
                    statements.cleanup(connection, interval)
                })
                .await;
            match result {
                Ok(Some(removed)) => tracing::info!("Removed {removed} expired rows"),
                Ok(None) => tracing::debug!("Last cleanup was performed too recently"),
                Err(error) => tracing::error!("Error removing expired data: {error}"),
            }
        }
    })
}
