//! The periodic deletion of expired rows (`cleanupInterval`), coordinated like upstream's
//! through a `last-cleanup` row in the metadata table: a run first moves that row's
//! timestamp forward, which succeeds only if the previous run (by any process, this
//! one or upstream daprd) is at least one interval old, and deletes only then.

use std::sync::Arc;
use std::time::Duration;

use crate::state::StateError;

use super::pool::{Param, Pool};

/// What a cleanup run needs.
pub(crate) struct Cleanup {
    /// The connections.
    pub pool: Arc<Pool>,
    /// Claims the run (`$1`: the metadata key, `$2`: the minimum age in milliseconds).
    pub claim_sql: String,
    /// Deletes the expired rows.
    pub delete_sql: String,
    /// The metadata-table key of the last run's time.
    pub key: String,
    /// The configured interval.
    pub interval: Duration,
    /// Bound on one run.
    pub timeout: Duration,
}

impl Cleanup {
    /// Prepares the statements for a state table and metadata table.
    pub(crate) fn new(
        pool: Arc<Pool>,
        metadata_table: &str,
        delete_sql: String,
        key: String,
        interval: Duration,
    ) -> Self {
        let claim_sql = format!(
            "INSERT INTO {metadata_table} AS m (key, value) VALUES ($1::text, now()::text) \
             ON CONFLICT (key) DO UPDATE SET value = now()::text \
             WHERE (EXTRACT('epoch' FROM now() - m.value::timestamp with time zone) * 1000)::bigint > $2::bigint"
        );
        Self {
            pool,
            claim_sql,
            delete_sql,
            key,
            interval,
            // Deleting many rows can be slow: as upstream, allow ten minutes.
            timeout: Duration::from_secs(600),
        }
    }

    /// Deletes expired rows unless a run happened less than an interval ago; returns how
    /// many rows were deleted.
    pub(crate) async fn run_once(&self) -> Result<u64, StateError> {
        let work = async {
            let mut lease = self.pool.get().await?;
            // Upstream leaves 100 ms of slack so a run on schedule is not refused.
            let min_age_ms = i64::try_from(self.interval.as_millis())
                .unwrap_or(i64::MAX)
                .saturating_sub(100);
            let claimed = lease
                .execute(
                    &self.claim_sql,
                    &[Param::Text(self.key.clone()), Param::Int8(min_age_ms)],
                )
                .await
                .map_err(|error| {
                    StateError::Backend(format!("error updating last cleanup time: {error}"))
                })?;
            if claimed == 0 {
                tracing::debug!("last cleanup of expired state was performed too recently");
                return Ok(0);
            }
            lease.execute(&self.delete_sql, &[]).await
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| StateError::Backend("cleanup of expired state timed out".into()))?
    }

    /// Runs the cleanup every interval until the returned task is dropped.
    pub(crate) fn spawn(self: Arc<Self>) -> CleanupTask {
        let handle = tokio::spawn(async move {
            tracing::info!(interval = ?self.interval, "scheduling cleanup of expired state");
            let start = tokio::time::Instant::now() + self.interval;
            let mut ticker = tokio::time::interval_at(start, self.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match self.run_once().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "removed expired state rows"),
                    Err(error) => tracing::error!(%error, "error removing expired state"),
                }
            }
        });
        CleanupTask(handle)
    }
}

/// The background cleanup; stops when dropped.
pub(crate) struct CleanupTask(tokio::task::JoinHandle<()>);

impl Drop for CleanupTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
