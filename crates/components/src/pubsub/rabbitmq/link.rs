//! The one AMQP connection and channel a component instance shares between publishing
//! and all its subscriptions, and upstream's reconnect rule: whoever sees the channel
//! fail waits `reconnectWaitSeconds` and reconnects, unless someone already did (each
//! connection has a number; a reconnect asked for an older number is stale). The
//! `bindings.rabbitmq` component connects through it too.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Mutex, MutexGuard};

/// Why an operation on the shared channel failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
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
pub(crate) struct State {
    connection: Option<Connection>,
    channel: Option<Channel>,
    /// Bumped by every successful (re)connect.
    count: u64,
    /// Exchanges declared on this connection.
    declared: HashSet<String>,
}

impl State {
    /// The open channel, if any.
    pub(crate) fn channel(&self) -> Option<Channel> {
        self.channel.clone()
    }

    /// The number of the current connection.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Declares an exchange once per connection.
    pub(crate) async fn ensure_exchange(
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
        tracing::debug!("rabbitmq: declaring exchange '{name}' of kind '{kind:?}'");
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
            tracing::debug!("rabbitmq: closing the channel failed: {error}");
        }
        if let Some(connection) = self.connection.take()
            && connection.status().connected()
            && let Err(error) = connection.close(200, "OK".into()).await
        {
            tracing::debug!("rabbitmq: closing the connection failed: {error}");
        }
    }
}

/// Where and how a [`Link`] connects.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The broker's URI, with the heartbeat and SASL mechanism applied.
    pub uri: AMQPUri,
    /// Client certificates and extra roots, used with `amqps`.
    pub tls: OwnedTLSConfig,
    /// The connection name shown by the broker.
    pub connection_name: Option<String>,
    /// Whether the channel is put in confirm mode.
    pub publisher_confirm: bool,
}

/// The shared connection of one component instance.
pub(crate) struct Link {
    endpoint: Endpoint,
    state: Mutex<State>,
    closed: AtomicBool,
}

impl Link {
    /// Connects for the first time.
    pub(crate) async fn open(endpoint: Endpoint) -> Result<Self, LinkError> {
        let link = Self {
            endpoint,
            state: Mutex::new(State::default()),
            closed: AtomicBool::new(false),
        };
        link.reconnect(0).await?;
        Ok(link)
    }

    /// The connection state, locked.
    pub(crate) async fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().await
    }

    /// Whether [`Link::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Replaces the connection numbered `count`; does nothing when it was already
    /// replaced.
    pub(crate) async fn reconnect(&self, count: u64) -> Result<(), LinkError> {
        let mut state = self.state.lock().await;
        if self.is_closed() {
            return Err(LinkError::Closed);
        }
        if count != state.count {
            tracing::info!("rabbitmq: stale reconnect attempt");
            return Ok(());
        }
        state.reset().await;
        let (connection, channel) = self.dial().await?;
        state.connection = Some(connection);
        state.channel = Some(channel);
        state.count += 1;
        tracing::info!("rabbitmq: connected with connectionCount={}", state.count);
        Ok(())
    }

    async fn dial(&self) -> Result<(Connection, Channel), LinkError> {
        let mut properties = ConnectionProperties::default();
        if let Some(name) = &self.endpoint.connection_name {
            properties = properties.with_connection_name(name.as_str().into());
        }
        let connection = Connection::connect_uri_with_config(
            self.endpoint.uri.clone(),
            properties,
            self.endpoint.tls.clone(),
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
        if self.endpoint.publisher_confirm {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        Ok(channel)
    }

    /// Whether the connection is up.
    pub(crate) async fn is_connected(&self) -> bool {
        let state = self.state.lock().await;
        state
            .channel
            .as_ref()
            .is_some_and(|channel| channel.status().connected())
    }

    /// Stops reconnecting and closes the connection.
    pub(crate) async fn close(&self) {
        let mut state = self.state.lock().await;
        self.closed.store(true, Ordering::SeqCst);
        state.reset().await;
    }
}

/// Whether a failure means the channel or connection is gone and must be replaced
/// (upstream reconnects when there is no channel or it is no longer open).
pub(crate) fn must_reconnect(channel: Option<&Channel>, error: &LinkError) -> bool {
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
