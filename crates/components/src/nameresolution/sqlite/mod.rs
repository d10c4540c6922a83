//! The `sqlite` resolver: sidecars on one machine share a SQLite file in which each one
//! registers its internal gRPC address, renews the registration every
//! `updateInterval - timeout` (heartbeat) and deletes it on close. A lookup picks a random
//! live registration of the app id. Every `cleanupInterval` one process (whichever claims
//! the turn in the metadata table) deletes the dead registrations.
//!
//! The file layout and statements are upstream's (see [`schema`]); the file is opened in
//! WAL mode with a busy timeout so several processes can use it at once.

mod config;
mod connection;
mod schema;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::OptionalExtension;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

pub use config::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_CLEANUP_INTERVAL, DEFAULT_METADATA_TABLE_NAME,
    DEFAULT_TABLE_NAME, DEFAULT_TIMEOUT, DEFAULT_UPDATE_INTERVAL, SqliteConfig,
};
use connection::{Database, DatabaseError};
use schema::Statements;

use super::{Instance, NameResolver, ResolveError, ResolveRequest};
use crate::sqlite::connection::ConnectionTarget;

/// The component name in `spec.nameResolution.component`.
pub const COMPONENT: &str = "sqlite";

/// How long creating the schema may take (it waits for other processes doing the same).
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between heartbeat attempts after a database error.
const RENEW_RETRY_DELAY: Duration = Duration::from_millis(50);
/// How long one cleanup may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The `sqlite` resolver. Dropping it without [`NameResolver::close`] stops the
/// heartbeat but leaves the registration to expire, like a crashed process.
pub struct SqliteResolver {
    registry: Arc<Registry>,
    reader: Database,
    closed: AtomicBool,
    background: tokio::sync::Mutex<Option<Background>>,
}

/// This instance's registration and the connection that writes it.
struct Registry {
    config: SqliteConfig,
    statements: Statements,
    writer: Database,
    registration_id: String,
    address: String,
    app_id: String,
    namespace: String,
}

/// The heartbeat and cleanup tasks, stopped through `stop`.
struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SqliteResolver {
    /// Opens the database, creates the schema if needed, registers `instance` and starts
    /// the heartbeat and the periodic cleanup.
    pub async fn start(mut config: SqliteConfig, instance: Instance) -> Result<Self, ResolveError> {
        config.validate()?;
        instance.check_registrable(COMPONENT)?;
        let connection_string = &config.common.connection_string;
        let target =
            ConnectionTarget::parse(connection_string, connection::RULES).map_err(|reason| {
                ResolveError::InvalidConfiguration {
                    component: COMPONENT,
                    reason,
                }
            })?;
        if target.in_memory {
            tracing::warn!(
                "Configuring name resolution with an in-memory SQLite database. Service invocation across different apps will not work."
            );
        } else {
            tracing::info!(path = %target.path(), "Configuring SQLite name resolution");
        }
        let writer = Database::open(
            target.clone(),
            config.common.busy_timeout,
            config.common.disable_wal,
        )
        .await
        .map_err(|error| backend("failed to create connection", error))?;
        let reader = Database::open(
            target,
            config.common.busy_timeout,
            config.common.disable_wal,
        )
        .await
        .map_err(|error| backend("failed to create connection", error))?;

        let statements = Statements::new(
            &config.common.table_name,
            &config.common.metadata_table_name,
            config.update_interval.as_secs(),
        );
        let migration = statements.clone();
        writer
            .run(MIGRATION_TIMEOUT, move |connection| {
                migration.migrate(connection)
            })
            .await
            .map_err(|error| backend("failed to perform migrations", error))?;

        let registry = Arc::new(Registry {
            statements,
            writer,
            registration_id: uuid::Uuid::new_v4().to_string(),
            address: instance.internal_address(),
            app_id: instance.app_id,
            namespace: instance.namespace,
            config,
        });
        registry
            .register()
            .await
            .map_err(|error| backend("failed to register host", error))?;
        tracing::info!(app_id = %registry.app_id, address = %registry.address, "registered in SQLite name resolution");

        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(
            Arc::clone(&registry).renew_periodically(stopped.clone()),
        )];
        if let Some(interval) = registry.config.cleanup_interval {
            tasks.push(tokio::spawn(
                Arc::clone(&registry).clean_up_periodically(interval, stopped),
            ));
        }
        Ok(Self {
            registry,
            reader,
            closed: AtomicBool::new(false),
            background: tokio::sync::Mutex::new(Some(Background { stop, tasks })),
        })
    }
}

#[async_trait::async_trait]
impl NameResolver for SqliteResolver {
    fn component(&self) -> &'static str {
        COMPONENT
    }

    async fn resolve(&self, request: &ResolveRequest) -> Result<String, ResolveError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ResolveError::Closed {
                component: COMPONENT,
            });
        }
        let query = self.registry.statements.resolve.clone();
        let app_id = request.app_id.clone();
        let address = self
            .reader
            .run(self.registry.config.common.timeout, move |connection| {
                // Cached: parsing the statement for every lookup showed in profiles of
                // service invocation.
                Ok(connection
                    .prepare_cached(&query)?
                    .query_row([&app_id], |row| row.get::<_, String>(0))
                    .optional()?)
            })
            .await
            .map_err(|error| ResolveError::Lookup {
                app_id: request.app_id.clone(),
                reason: error.to_string(),
            })?;
        address.ok_or_else(|| ResolveError::NoHost {
            app_id: request.app_id.clone(),
        })
    }

    async fn close(&self) -> Result<(), ResolveError> {
        let mut background = self.background.lock().await;
        let Some(Background { stop, tasks }) = background.take() else {
            return Ok(());
        };
        self.closed.store(true, Ordering::Release);
        // Let a heartbeat in progress finish so it cannot re-create the row afterwards.
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
        let removed = self
            .registry
            .deregister()
            .await
            .map_err(|error| backend("failed to unregister host", error))?;
        if removed == 0 {
            return Err(ResolveError::Backend {
                component: COMPONENT,
                reason: "failed to unregister host: no row deleted".to_owned(),
            });
        }
        tracing::info!(app_id = %self.registry.app_id, "deregistered from SQLite name resolution");
        Ok(())
    }
}

impl Registry {
    /// Inserts this instance, taking over any row with the same address.
    async fn register(&self) -> Result<(), DatabaseError> {
        let statement = self.statements.register.clone();
        let values = [
            self.registration_id.clone(),
            self.address.clone(),
            self.app_id.clone(),
            self.namespace.clone(),
        ];
        self.writer
            .run(self.config.common.timeout, move |connection| {
                connection.execute(&statement, values)?;
                Ok(())
            })
            .await
    }

    /// Refreshes `last_update`, retrying database errors until `timeout`. Returns whether
    /// the row still existed.
    async fn renew(&self) -> Result<bool, DatabaseError> {
        let deadline = Instant::now() + self.config.common.timeout;
        loop {
            let statement = self.statements.renew.clone();
            let values = [self.registration_id.clone(), self.address.clone()];
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self
                .writer
                .run(remaining, move |connection| {
                    Ok(connection.execute(&statement, values)?)
                })
                .await
            {
                Ok(changed) => return Ok(changed > 0),
                Err(error) if Instant::now() + RENEW_RETRY_DELAY < deadline => {
                    tracing::debug!(%error, "retrying the name resolution heartbeat");
                    tokio::time::sleep(RENEW_RETRY_DELAY).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Removes this instance's row; returns how many rows went.
    async fn deregister(&self) -> Result<usize, DatabaseError> {
        let statement = self.statements.deregister.clone();
        let values = [self.registration_id.clone(), self.address.clone()];
        self.writer
            .run(self.config.common.timeout, move |connection| {
                Ok(connection.execute(&statement, values)?)
            })
            .await
    }

    /// Deletes dead registrations if no process did so within the cleanup interval.
    /// Returns how many rows were deleted, or `None` when it was not this process's turn.
    async fn clean_up(&self, interval: Duration) -> Result<Option<usize>, DatabaseError> {
        let claim = self.statements.claim_cleanup.clone();
        let delete = self.statements.delete_expired.clone();
        // Timestamps have whole seconds: allow one second of slack, as upstream allows a
        // little for the ticker's jitter.
        let min_age_seconds = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX) - 1;
        self.writer
            .run(CLEANUP_TIMEOUT, move |connection| {
                if connection.execute(&claim, [min_age_seconds])? == 0 {
                    return Ok(None);
                }
                Ok(Some(connection.execute(&delete, [])?))
            })
            .await
    }

    async fn renew_periodically(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let period = self.config.heartbeat_interval();
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::debug!(
            ?period,
            "renewing the name resolution registration in the background"
        );
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            match self.renew().await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(
                        app_id = %self.app_id,
                        address = %self.address,
                        "host registration lost (removed or taken over by another host); registering again"
                    );
                    if let Err(error) = self.register().await {
                        tracing::error!(%error, "failed to register host again");
                    }
                }
                Err(error) => tracing::error!(%error, "Failed to update host registration"),
            }
        }
    }

    async fn clean_up_periodically(
        self: Arc<Self>,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(
            ?interval,
            "scheduling cleanup of expired name resolution entries"
        );
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            match self.clean_up(interval).await {
                Ok(Some(removed)) => {
                    tracing::info!(removed, "removed expired name resolution entries")
                }
                Ok(None) => {
                    tracing::debug!("last name resolution cleanup was performed too recently")
                }
                Err(error) => {
                    tracing::error!(%error, "error removing expired name resolution entries")
                }
            }
        }
    }
}

fn backend(action: &str, error: DatabaseError) -> ResolveError {
    ResolveError::Backend {
        component: COMPONENT,
        reason: format!("{action}: {error}"),
    }
}
