//! `configuration.postgresql` (alias `configuration.postgres`): configuration items in a
//! table the operator creates (`key`, `value`, `version` text columns and a `metadata`
//! JSON column, upstream's documented layout), named by the `table` metadata, over the
//! connection settings of `state.postgresql`. When several rows share a key, the one with
//! the highest numeric version wins, as upstream.
//!
//! Subscriptions `LISTEN` on a channel (the `notifyChannel` metadata, or the
//! `pgNotifyChannel` request metadata) that the operator's trigger notifies with
//! upstream's payload, `{"data": {"key": ..., "value": ..., "version": ...,
//! "metadata": {...}}, ...}` (`row_to_json` of the changed row); each subscription has a
//! connection of its own and ignores notifications for keys it does not watch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::AbortHandle;
use tokio_postgres::Notification;

use super::{
    ConfigurationError, ConfigurationItem, ConfigurationStore, SubscribeRequest, UpdateEvent,
    UpdateHandler,
};
use crate::metadata::{Properties, non_empty};
use crate::state::StateError;
use crate::state::postgresql::metadata::{pool_options, timeout};
use crate::state::postgresql::pool::{Param, Pool};

/// Longest identifier PostgreSQL keeps.
const MAX_IDENTIFIER_LENGTH: usize = 64;
/// Request metadata naming the channel to listen on.
const NOTIFY_CHANNEL_REQUEST_METADATA: &str = "pgNotifyChannel";

/// The PostgreSQL configuration store.
pub struct PostgresConfiguration {
    pool: Pool,
    table: String,
    notify_channel: Option<String>,
    timeout: Duration,
    subscriptions: Mutex<HashMap<String, AbortHandle>>,
}

impl std::fmt::Debug for PostgresConfiguration {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresConfiguration")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// Whether `name` is a lowercase identifier upstream accepts for tables and channels.
fn valid_identifier(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '/' | '_'))
}

/// Whether `key` may be asked for.
fn valid_key(key: &str) -> bool {
    key.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '_'))
}

fn check_channel(channel: &str) -> Result<(), String> {
    if channel.len() > MAX_IDENTIFIER_LENGTH {
        return Err(format!(
            "notifyChannel name is too long - {channel:?}. max allowed length is {MAX_IDENTIFIER_LENGTH}"
        ));
    }
    if !valid_identifier(channel) {
        return Err(format!(
            "invalid notifyChannel name {channel:?}. non-alphanumerics or upper cased names are not supported"
        ));
    }
    Ok(())
}

fn invalid_metadata(error: StateError) -> ConfigurationError {
    match error {
        StateError::InvalidMetadata(reason) => ConfigurationError::InvalidMetadata(reason),
        other => ConfigurationError::InvalidMetadata(other.to_string()),
    }
}

fn backend(error: StateError) -> ConfigurationError {
    ConfigurationError::Backend(error.to_string())
}

/// Reads the settings, connects, and checks that the table exists, within `timeout`.
pub async fn open(properties: &Properties) -> Result<PostgresConfiguration, ConfigurationError> {
    let table = non_empty(properties, "table")
        .ok_or_else(|| {
            ConfigurationError::InvalidMetadata(
                "missing postgreSQL configuration table name".to_owned(),
            )
        })?
        .to_owned();
    if table.len() > MAX_IDENTIFIER_LENGTH {
        return Err(ConfigurationError::InvalidMetadata(format!(
            "table name is too long - tableName : '{table}'. max allowed field length is {MAX_IDENTIFIER_LENGTH}"
        )));
    }
    if !valid_identifier(&table) {
        return Err(ConfigurationError::InvalidMetadata(format!(
            "invalid table name '{table}'. non-alphanumerics or upper cased table names are not supported"
        )));
    }
    let notify_channel = non_empty(properties, "notifyChannel")
        .or_else(|| non_empty(properties, NOTIFY_CHANNEL_REQUEST_METADATA))
        .map(str::to_owned);
    if let Some(channel) = &notify_channel {
        check_channel(channel).map_err(ConfigurationError::InvalidMetadata)?;
    }
    let options = pool_options(properties).map_err(invalid_metadata)?;
    let timeout = timeout(properties).map_err(invalid_metadata)?;
    let pool = Pool::new(options);
    let exists = async {
        let mut lease = pool.get().await?;
        let rows = lease
            .query(
                "SELECT EXISTS (SELECT FROM pg_tables WHERE tablename = $1)",
                &[Param::Text(table.clone())],
            )
            .await?;
        Ok::<bool, StateError>(rows.first().is_some_and(|row| row.get::<_, bool>(0)))
    };
    match tokio::time::timeout(timeout, exists).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return Err(ConfigurationError::Backend(format!(
                "postgreSQL configuration table '{table}' does not exist"
            )));
        }
        Ok(Err(error)) => {
            return Err(ConfigurationError::Backend(format!(
                "PostgreSQL configuration store connection error: {error}"
            )));
        }
        Err(_) => {
            return Err(ConfigurationError::Backend(
                "PostgreSQL configuration store connection error: timed out".to_owned(),
            ));
        }
    }
    Ok(PostgresConfiguration {
        pool,
        table,
        notify_channel,
        timeout,
        subscriptions: Mutex::new(HashMap::new()),
    })
}

/// A version as upstream compares them: its number, or -1 when it is not one.
fn numeric_version(version: &str) -> i64 {
    version.parse().unwrap_or(-1)
}

/// The `metadata` column (JSON text) as string pairs; other JSON is left out.
fn metadata_of(text: Option<&str>) -> HashMap<String, String> {
    let Some(Ok(Value::Object(fields))) = text.map(serde_json::from_str::<Value>) else {
        return HashMap::new();
    };
    fields
        .into_iter()
        .filter_map(|(name, value)| match value {
            Value::String(text) => Some((name, text)),
            _ => None,
        })
        .collect()
}

/// The item a notification carries, when it is upstream's payload.
fn notified_item(payload: &str) -> Option<(String, ConfigurationItem)> {
    let Ok(Value::Object(mut document)) = serde_json::from_str::<Value>(payload) else {
        return None;
    };
    let Some(Value::Object(row)) = document.remove("data") else {
        return None;
    };
    let mut key = None;
    let mut item = ConfigurationItem::default();
    for (name, value) in row {
        match (name.to_ascii_lowercase().as_str(), value) {
            ("key", Value::String(text)) => key = Some(text),
            ("value", Value::String(text)) => item.value = text,
            ("version", Value::String(text)) => item.version = text,
            ("metadata", Value::Object(fields)) => {
                item.metadata = fields
                    .into_iter()
                    .filter_map(|(name, value)| match value {
                        Value::String(text) => Some((name, text)),
                        _ => None,
                    })
                    .collect();
            }
            _ => {}
        }
    }
    key.map(|key| (key, item))
}

/// Hands the notifications for the watched `keys` (every key when empty) to `handler`.
async fn forward_notifications(
    _connection: tokio_postgres::Client,
    mut notifications: UnboundedReceiver<Notification>,
    keys: Vec<String>,
    id: String,
    handler: Arc<dyn UpdateHandler>,
) {
    while let Some(notification) = notifications.recv().await {
        let Some((key, item)) = notified_item(notification.payload()) else {
            tracing::info!(
                "unknown format of data received in notify event - '{}'",
                notification.payload()
            );
            continue;
        };
        if !keys.is_empty() && !keys.contains(&key) {
            tracing::debug!("ignoring notification for {key}");
            continue;
        }
        handler
            .update(UpdateEvent {
                id: id.clone(),
                items: BTreeMap::from([(key, item)]),
            })
            .await;
    }
}

impl PostgresConfiguration {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, AbortHandle>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl ConfigurationStore for PostgresConfiguration {
    async fn get(
        &self,
        keys: &[String],
        _metadata: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, ConfigurationItem>, ConfigurationError> {
        if let Some(key) = keys.iter().find(|key| !valid_key(key)) {
            return Err(ConfigurationError::Backend(format!(
                "invalid key : '{key}'"
            )));
        }
        let table = &self.table;
        let columns = "key, value, version, metadata::text";
        let mut lease = self.pool.get().await.map_err(backend)?;
        let rows = if keys.is_empty() {
            lease
                .query(&format!("SELECT {columns} FROM {table}"), &[])
                .await
        } else {
            lease
                .query(
                    &format!("SELECT {columns} FROM {table} WHERE key = ANY($1)"),
                    &[Param::TextArray(keys.to_vec())],
                )
                .await
        }
        .map_err(|error| {
            ConfigurationError::Backend(format!("error in querying configuration store: '{error}'"))
        })?;
        let mut items: BTreeMap<String, ConfigurationItem> = BTreeMap::new();
        for row in rows {
            let key: String = row.try_get(0).map_err(|error| {
                ConfigurationError::Backend(format!(
                    "error in reading data from configuration store: '{error}'"
                ))
            })?;
            let item = ConfigurationItem {
                value: row
                    .try_get::<_, Option<String>>(1)
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                version: row
                    .try_get::<_, Option<String>>(2)
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                metadata: metadata_of(row.try_get::<_, Option<&str>>(3).ok().flatten()),
            };
            let newer = items
                .get(&key)
                .is_none_or(|kept| numeric_version(&item.version) > numeric_version(&kept.version));
            if newer {
                items.insert(key, item);
            }
        }
        Ok(items)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn UpdateHandler>,
    ) -> Result<String, ConfigurationError> {
        let channel = self
            .notify_channel
            .clone()
            .or_else(|| {
                request
                    .metadata
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(NOTIFY_CHANNEL_REQUEST_METADATA))
                    .map(|(_, value)| value.clone())
            })
            .filter(|channel| !channel.is_empty())
            .ok_or_else(|| {
                ConfigurationError::Backend(format!(
                    "unable to subscribe to {:?}. notifyChannel must be set in component metadata or request metadata",
                    self.table
                ))
            })?;
        check_channel(&channel).map_err(ConfigurationError::Backend)?;
        let listen = async {
            let (client, notifications) = self.pool.listener().await?;
            client
                .batch_execute(&format!("LISTEN {channel}"))
                .await
                .map_err(|error| {
                    StateError::Backend(format!("error listening to channel: {error}"))
                })?;
            Ok::<_, StateError>((client, notifications))
        };
        let (client, notifications) = tokio::time::timeout(self.timeout, listen)
            .await
            .map_err(|_| {
                ConfigurationError::Backend("error listening to channel: timed out".into())
            })?
            .map_err(backend)?;
        let id = uuid::Uuid::new_v4().to_string();
        let task = tokio::spawn(forward_notifications(
            client,
            notifications,
            request.keys,
            id.clone(),
            handler,
        ));
        self.running().insert(id.clone(), task.abort_handle());
        Ok(id)
    }

    async fn unsubscribe(&self, id: &str) -> Result<(), ConfigurationError> {
        // Dropping the subscription's connection ends its LISTEN.
        match self.running().remove(id) {
            Some(task) => {
                task.abort();
                Ok(())
            }
            None => Err(ConfigurationError::Backend(format!(
                "unable to find subscription with ID : {id}"
            ))),
        }
    }

    async fn close(&self) -> Result<(), ConfigurationError> {
        for (_, task) in self.running().drain() {
            task.abort();
        }
        self.pool.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use dapr_testkit::Postgres;

    use super::*;

    /// Upstream's documented table and notification trigger, on channel `config`.
    const SETUP: &str = "
        CREATE TABLE configtable (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL, VERSION VARCHAR NOT NULL, METADATA JSON);
        CREATE OR REPLACE FUNCTION notify_event() RETURNS TRIGGER AS $$
            DECLARE
                data json;
                notification json;
            BEGIN
                IF (TG_OP = 'DELETE') THEN
                    data = row_to_json(OLD);
                ELSE
                    data = row_to_json(NEW);
                END IF;
                notification = json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', data);
                PERFORM pg_notify('config', notification::text);
                RETURN NULL;
            END;
        $$ LANGUAGE plpgsql;
        CREATE TRIGGER config AFTER INSERT OR UPDATE OR DELETE ON configtable
            FOR EACH ROW EXECUTE PROCEDURE notify_event();
    ";

    fn properties(server: &Postgres, extra: serde_json::Value) -> Properties {
        let mut document = serde_json::json!({
            "connectionString": server.connection_string(),
            "table": "configtable",
        });
        if let (Some(fields), serde_json::Value::Object(extra)) = (document.as_object_mut(), extra)
        {
            fields.extend(extra);
        }
        Properties::from_json(&document).unwrap()
    }

    async fn sql(store: &PostgresConfiguration, text: &str) {
        let mut lease = store.pool.get().await.unwrap();
        lease.batch(text).await.unwrap();
    }

    struct Collector(tokio::sync::mpsc::UnboundedSender<UpdateEvent>);

    #[async_trait::async_trait]
    impl UpdateHandler for Collector {
        async fn update(&self, event: UpdateEvent) {
            let _ = self.0.send(event);
        }
    }

    async fn next(updates: &mut tokio::sync::mpsc::UnboundedReceiver<UpdateEvent>) -> UpdateEvent {
        tokio::time::timeout(Duration::from_secs(10), updates.recv())
            .await
            .expect("no update in time")
            .unwrap()
    }

    #[tokio::test]
    async fn items_are_read_and_changes_arrive_through_listen_notify() {
        let server = Postgres::start().await.unwrap();
        let missing = open(&properties(&server, serde_json::json!({})))
            .await
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "postgreSQL configuration table 'configtable' does not exist"
        );
        // The operator creates the table and trigger (upstream's documented setup).
        {
            let pool =
                Pool::new(pool_options(&properties(&server, serde_json::json!({}))).unwrap());
            let mut lease = pool.get().await.unwrap();
            lease.batch(SETUP).await.unwrap();
        }
        let store = open(&properties(&server, serde_json::json!({})))
            .await
            .unwrap();
        sql(
            &store,
            "INSERT INTO configtable VALUES ('color', 'blue', '1', '{\"team\": \"web\"}'), \
             ('color', 'green', '2', NULL), ('size', 'large', 'x', NULL)",
        )
        .await;
        let items = store
            .get(&["color".into(), "nothing".into()], &HashMap::new())
            .await
            .unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items["color"].value, "green", "the highest version wins");
        assert_eq!(items["color"].version, "2");
        let all = store.get(&[], &HashMap::new()).await.unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["color", "size"]);
        assert_eq!(
            store
                .get(&["bad key;".into()], &HashMap::new())
                .await
                .unwrap_err()
                .to_string(),
            "invalid key : 'bad key;'"
        );

        // Subscribing needs a channel.
        let (sender, mut updates) = tokio::sync::mpsc::unbounded_channel();
        let refused = store
            .subscribe(
                SubscribeRequest::default(),
                Arc::new(Collector(sender.clone())),
            )
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("notifyChannel must be set"),
            "{refused}"
        );
        let request = SubscribeRequest {
            keys: vec!["color".into()],
            metadata: HashMap::from([("pgNotifyChannel".into(), "config".into())]),
        };
        let id = store
            .subscribe(request, Arc::new(Collector(sender)))
            .await
            .unwrap();
        sql(
            &store,
            "UPDATE configtable SET value = 'ignored' WHERE key = 'size'",
        )
        .await;
        sql(
            &store,
            "INSERT INTO configtable VALUES ('color', 'red', '3', '{\"team\": \"api\"}')",
        )
        .await;
        let update = next(&mut updates).await;
        assert_eq!(update.id, id);
        assert_eq!(update.items.len(), 1);
        let color = &update.items["color"];
        assert_eq!((color.value.as_str(), color.version.as_str()), ("red", "3"));
        assert_eq!(color.metadata["team"], "api");

        store.unsubscribe(&id).await.unwrap();
        assert!(
            store
                .unsubscribe(&id)
                .await
                .unwrap_err()
                .to_string()
                .contains(&id)
        );
        sql(
            &store,
            "UPDATE configtable SET value = 'late' WHERE key = 'color'",
        )
        .await;
        let late = tokio::time::timeout(Duration::from_millis(300), updates.recv()).await;
        assert!(!matches!(late, Ok(Some(_))), "{late:?}");
    }

    #[test]
    fn bad_metadata_is_refused_as_upstream_words_it() {
        let cases = [
            (
                serde_json::json!({}),
                "missing postgreSQL configuration table name",
            ),
            (
                serde_json::json!({"table": "Config"}),
                "invalid table name 'Config'. non-alphanumerics or upper cased table names are not supported",
            ),
            (
                serde_json::json!({"table": "config", "notifyChannel": "Bad-Name"}),
                "invalid notifyChannel name \"Bad-Name\". non-alphanumerics or upper cased names are not supported",
            ),
        ];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for (metadata, expected) in cases {
            let properties = Properties::from_json(&metadata).unwrap();
            let error = runtime.block_on(open(&properties)).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }
}
