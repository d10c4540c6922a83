//! The one AMQP connection and channel a component instance shares between publishing
//! and all its subscriptions, and upstream's reconnect rule: whoever sees the channel
//! fail waits `reconnectWaitSeconds` and reconnects, unless someone already did (each
//! connection has a number; a reconnect asked for an older number is stale).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Mutex, MutexGuard};

use super::settings::Settings;

/// Why an operation on the shared channel failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum LinkError {
    /// There is no open channel (a reconnect failed or has not happened yet).
    #[error("channel not initialized")]
    NotConnected,
    /// The component was closed.
    #[error("component is closed")]
    Closed,
    /// The broker or the connection reported an error.
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
}

/// The connection, its channel and what has been declared on it.
#[derive(Default)]
pub(super) struct State {
    connection: Option<Connection>,
    channel: Option<Channel>,
    /// Bumped by every successful (re)connect.
    count: u64,
    /// Exchanges declared on this connection.
    declared: HashSet<String>,
}

impl State {
    /// The open channel, if any.
    pub(super) fn channel(&self) -> Option<Channel> {
        self.channel.clone()
    }

    /// The number of the current connection.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// Declares an exchange once per connection.
    pub(super) async fn ensure_exchange(
        &mut self,
        channel: &Channel,
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
    ) -> Result<(), LinkError> {
        if self.declared.contains(name) {
            return Ok(());
        }
        tracing::debug!("rabbitmq pub/sub: declaring exchange '{name}' of kind '{kind:?}'");
        channel
            .exchange_declare(
                name.into(),
                kind,
                ExchangeDeclareOptions {
                    durable,
                    auto_delete,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        self.declared.insert(name.to_owned());
        Ok(())
    }

    /// Closes the channel and the connection and forgets what was declared.
    async fn reset(&mut self) {
        self.declared.clear();
        if let Some(channel) = self.channel.take()
            && channel.status().connected()
            && let Err(error) = channel.close(200, "OK".into()).await
        {
            tracing::debug!("rabbitmq pub/sub: closing the channel failed: {error}");
        }
        if let Some(connection) = self.connection.take()
            && connection.status().connected()
            && let Err(error) = connection.close(200, "OK".into()).await
        {
            tracing::debug!("rabbitmq pub/sub: closing the connection failed: {error}");
        }
    }
}

/// The shared connection of one component instance.
pub(super) struct Link {
    settings: Arc<Settings>,
    state: Mutex<State>,
    closed: AtomicBool,
}

impl Link {
    /// Connects for the first time.
    pub(super) async fn open(settings: Arc<Settings>) -> Result<Self, LinkError> {
        let link = Self {
            settings,
            state: Mutex::new(State::default()),
            closed: AtomicBool::new(false),
        };
        link.reconnect(0).await?;
        Ok(link)
    }

    /// The connection state, locked.
    pub(super) async fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().await
    }

    /// Whether [`Link::close`] was called.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Replaces the connection numbered `count`; does nothing when it was already
    /// replaced.
    pub(super) async fn reconnect(&self, count: u64) -> Result<(), LinkError> {
        let mut state = self.state.lock().await;
        if self.is_closed() {
            return Err(LinkError::Closed);
        }
        if count != state.count {
            tracing::info!("rabbitmq pub/sub: stale reconnect attempt");
            return Ok(());
        }
        state.reset().await;
        let (connection, channel) = self.dial().await?;
        state.connection = Some(connection);
        state.channel = Some(channel);
        state.count += 1;
        tracing::info!(
            "rabbitmq pub/sub: connected with connectionCount={}",
            state.count
        );
        Ok(())
    }

    async fn dial(&self) -> Result<(Connection, Channel), LinkError> {
        let mut properties = ConnectionProperties::default();
        if let Some(name) = &self.settings.client_name {
            properties = properties.with_connection_name(name.as_str().into());
        }
        let connection = Connection::connect_uri_with_config(
            self.settings.uri.clone(),
            properties,
            self.settings.tls.clone(),
            lapin::runtime::default_runtime()?,
        )
        .await?;
        let channel = match self.open_channel(&connection).await {
            Ok(channel) => channel,
            Err(error) => {
                let _ = connection.close(200, "OK".into()).await;
                return Err(error);
            }
        };
        Ok((connection, channel))
    }

    async fn open_channel(&self, connection: &Connection) -> Result<Channel, LinkError> {
        let channel = connection.create_channel().await?;
        if self.settings.publisher_confirm {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        Ok(channel)
    }

    /// Whether the connection is up.
    pub(super) async fn is_connected(&self) -> bool {
        let state = self.state.lock().await;
        state
            .channel
            .as_ref()
            .is_some_and(|channel| channel.status().connected())
    }

    /// Stops reconnecting and closes the connection.
    pub(super) async fn close(&self) {
        let mut state = self.state.lock().await;
        self.closed.store(true, Ordering::SeqCst);
        state.reset().await;
    }
}

/// Whether a failure means the channel or connection is gone and must be replaced
/// (upstream reconnects when there is no channel or it is no longer open).
pub(super) fn must_reconnect(channel: Option<&Channel>, error: &LinkError) -> bool {
    let Some(channel) = channel else {
        return true;
    };
    if !channel.status().connected() {
        return true;
    }
    match error {
        LinkError::NotConnected => true,
        LinkError::Closed => false,
        LinkError::Amqp(error) => matches!(
            error.kind(),
            lapin::ErrorKind::InvalidChannelState(..)
                | lapin::ErrorKind::InvalidConnectionState(_)
                | lapin::ErrorKind::IOError(_)
                | lapin::ErrorKind::MissingHeartbeatError
        ),
    }
}
