//! The `pubsub.rabbitmq` component settings, read the way upstream reads them: names,
//! defaults, the deprecated `host` alias, the connection URI built from its parts, the TLS
//! material and the component-wide message time to live.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use lapin::ExchangeKind;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri, SASLMechanism};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::link::Endpoint;
use crate::metadata::{MetadataError, Properties, non_empty};
use crate::pubsub::{CONSUMER_ID_METADATA_KEY, PubSubError};

/// Upstream's prefix for the errors this component reports.
pub(super) const ERROR_PREFIX: &str = "rabbitmq pub/sub error:";
/// Seconds to wait before reconnecting, unless `reconnectWaitSeconds` says otherwise.
const DEFAULT_RECONNECT_WAIT: Duration = Duration::from_secs(3);
/// The connection heartbeat, unless `heartBeat` says otherwise.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// Characters escaped in the user name and password of a built URI.
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// How a subscription hands its messages to the app (upstream's `concurrencyMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Concurrency {
    /// One message at a time, in delivery order.
    Single,
    /// Every delivered message is handled at once (the default).
    Parallel,
}

/// The component's settings.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    /// `consumerID`: the first half of every queue name.
    pub consumer_id: String,
    /// Where to connect, with the heartbeat and SASL mechanism applied.
    pub uri: AMQPUri,
    /// Client certificates and extra roots, used with `amqps`.
    pub tls: OwnedTLSConfig,
    /// `clientName`: the connection name shown by the broker.
    pub client_name: Option<String>,
    /// `durable`: exchanges and queues survive a broker restart (default true).
    pub durable: bool,
    /// `enableDeadLetter`: refused messages go to `dlx-<queue>` / `dlq-<queue>`.
    pub enable_dead_letter: bool,
    /// `deletedWhenUnused`: exchanges and queues are auto-deleted (default true).
    pub delete_when_unused: bool,
    /// `autoAck`: the broker forgets a message once delivered.
    pub auto_ack: bool,
    /// `requeueInFailure`: a refused message goes back to the queue.
    pub requeue_in_failure: bool,
    /// `deliveryMode`: 2 is persistent, 0 and 1 transient.
    pub delivery_mode: u8,
    /// `prefetchCount`: unacknowledged deliveries per consumer (0 = unlimited).
    pub prefetch_count: u8,
    /// `reconnectWaitSeconds`: the pause before reconnecting.
    pub reconnect_wait: Duration,
    /// `maxLen`: `x-max-length` of queues and dead letter queues (when above 0).
    pub max_len: i64,
    /// `maxLenBytes`: `x-max-length-bytes` of queues and dead letter queues (when above 0).
    pub max_len_bytes: i64,
    /// `exchangeKind`: the kind of the topic exchanges (default fanout).
    pub exchange_kind: ExchangeKind,
    /// `publisherConfirm`: publishing waits for the broker's confirmation.
    pub publisher_confirm: bool,
    /// `concurrencyMode`.
    pub concurrency: Concurrency,
    /// `ttlInSeconds` (or `ttl`): the expiration of messages published without their own.
    pub default_ttl: Option<Duration>,
    /// `publishMessagePropertiesToMetadata`: AMQP properties become message metadata.
    pub properties_to_metadata: bool,
}

impl Settings {
    /// Reads and checks the settings.
    pub(super) fn from_properties(properties: &Properties) -> Result<Self, PubSubError> {
        let connection_string = match non_empty(properties, "connectionString") {
            Some(text) => Some(text),
            None => {
                let host = non_empty(properties, "host");
                if host.is_some() {
                    tracing::warn!(
                        "[DEPRECATION NOTICE] The 'host' argument is deprecated. Use 'connectionString' or individual connection arguments instead"
                    );
                }
                host
            }
        };
        let mut protocol = "amqp".to_owned();
        if let Some(text) = connection_string {
            protocol = parse_uri(text)?.0;
        }
        if let Some(wanted) = non_empty(properties, "protocol") {
            if connection_string.is_some() && wanted != protocol {
                return Err(invalid(format!(
                    "protocol does not match connection string, protocol: {wanted}, connection string scheme: {protocol}"
                )));
            }
            protocol = wanted.to_owned();
        }
        let text = match connection_string {
            Some(text) => text.to_owned(),
            None => built_uri(properties, &protocol),
        };
        let (_, mut uri) = parse_uri(&text)?;

        let delivery_mode = number(properties, "deliveryMode")?.unwrap_or(0);
        if delivery_mode > 2 {
            return Err(invalid(
                "invalid RabbitMQ delivery mode, accepted values are between 0 and 2",
            ));
        }
        let exchange_kind = match non_empty(properties, "exchangeKind").unwrap_or("fanout") {
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "direct" => ExchangeKind::Direct,
            "headers" => ExchangeKind::Headers,
            other => return Err(invalid(format!("invalid RabbitMQ exchange kind {other}"))),
        };
        let ttl_text = non_empty(properties, "ttl").or(non_empty(properties, "ttlInSeconds"));
        let default_ttl = parse_ttl(ttl_text).map_err(|reason| {
            invalid(format!("parse RabbitMQ ttl metadata with error: {reason}"))
        })?;
        let tls = tls_config(properties)?;
        let sasl_external = flag(properties, "saslExternal")?.unwrap_or(false);
        if sasl_external && (tls.cert_chain.is_none() || tls.identity.is_none()) {
            return Err(PubSubError::InvalidMetadata(
                "saslExternal can only be set to true, when all these properties are set: caCert, clientCert, clientKey".to_owned(),
            ));
        }
        let concurrency = match non_empty(properties, "concurrencyMode") {
            None | Some("parallel") => Concurrency::Parallel,
            Some("single") => Concurrency::Single,
            Some(other) => {
                return Err(PubSubError::InvalidMetadata(format!(
                    "invalid concurrencyMode {other}"
                )));
            }
        };
        let heartbeat = duration(properties, "heartBeat")?.unwrap_or(DEFAULT_HEARTBEAT);
        uri.query.heartbeat = Some(u16::try_from(heartbeat.as_secs()).unwrap_or(u16::MAX));
        if sasl_external && uri.scheme == AMQPScheme::AMQPS {
            uri.query.auth_mechanism = Some(SASLMechanism::External);
        }

        Ok(Self {
            consumer_id: non_empty(properties, CONSUMER_ID_METADATA_KEY)
                .unwrap_or_default()
                .to_owned(),
            uri,
            tls,
            client_name: non_empty(properties, "clientName").map(str::to_owned),
            durable: flag(properties, "durable")?.unwrap_or(true),
            enable_dead_letter: flag(properties, "enableDeadLetter")?.unwrap_or(false),
            delete_when_unused: flag(properties, "deletedWhenUnused")?.unwrap_or(true),
            auto_ack: flag(properties, "autoAck")?.unwrap_or(false),
            requeue_in_failure: flag(properties, "requeueInFailure")?.unwrap_or(false),
            delivery_mode,
            prefetch_count: number(properties, "prefetchCount")?.unwrap_or(0),
            reconnect_wait: duration(properties, "reconnectWaitSeconds")?
                .unwrap_or(DEFAULT_RECONNECT_WAIT),
            max_len: number(properties, "maxLen")?.unwrap_or(0),
            max_len_bytes: number(properties, "maxLenBytes")?.unwrap_or(0),
            exchange_kind,
            publisher_confirm: flag(properties, "publisherConfirm")?.unwrap_or(false),
            concurrency,
            default_ttl,
            properties_to_metadata: flag(properties, "publishMessagePropertiesToMetadata")?
                .unwrap_or(false),
        })
    }
}

impl Settings {
    /// Where and how the shared connection connects.
    pub(super) fn endpoint(&self) -> Endpoint {
        Endpoint {
            uri: self.uri.clone(),
            tls: self.tls.clone(),
            connection_name: self.client_name.clone(),
            publisher_confirm: self.publisher_confirm,
        }
    }
}

/// The time to live a publish asks for in `ttl` or `ttlInSeconds` (any case).
pub(crate) fn message_ttl(metadata: &HashMap<String, String>) -> Result<Option<Duration>, String> {
    let text = ["ttl", "ttlInSeconds"].iter().find_map(|key| {
        metadata
            .iter()
            .find(|(name, value)| name.eq_ignore_ascii_case(key) && !value.trim().is_empty())
            .map(|(_, value)| value.trim())
    });
    parse_ttl(text)
}

/// A time to live as upstream reads it: Go duration text, or else a whole number of
/// seconds above zero. Unset is `None`.
pub(crate) fn parse_ttl(text: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(text) = text else {
        return Ok(None);
    };
    if let Ok(duration) = dapr_kit::duration::parse(text) {
        return Ok(Some(duration));
    }
    if text.starts_with('-') && dapr_kit::duration::parse(&text[1..]).is_ok() {
        // A negative duration means "already expired", as upstream clamps it to zero.
        return Ok(Some(Duration::ZERO));
    }
    match text.parse::<i64>() {
        Ok(seconds) if seconds > 0 => Ok(Some(Duration::from_secs(seconds.unsigned_abs()))),
        Ok(seconds) => Err(format!(
            "ttl value must be higher than zero: actual is '{seconds}'"
        )),
        Err(_) => Err(format!(
            "ttl value must be a valid integer: actual is '{text}'"
        )),
    }
}

/// The scheme and parsed form of an AMQP URI.
fn parse_uri(text: &str) -> Result<(String, AMQPUri), PubSubError> {
    let scheme = text.split_once("://").map(|(scheme, _)| scheme);
    match (scheme, AMQPUri::from_str(text)) {
        (Some(scheme @ ("amqp" | "amqps")), Ok(uri)) => Ok((scheme.to_owned(), uri)),
        (_, Err(reason)) => Err(invalid(format!("invalid connection string, err: {reason}"))),
        _ => Err(invalid(
            "invalid connection string, err: AMQP scheme must be either 'amqp://' or 'amqps://'",
        )),
    }
}

/// `protocol://[username[:password]@]hostname` from the separate settings.
fn built_uri(properties: &Properties, protocol: &str) -> String {
    let hostname = non_empty(properties, "hostname").unwrap_or("localhost");
    let username = non_empty(properties, "username");
    let password = non_empty(properties, "password");
    let userinfo = match (username, password) {
        (Some(user), Some(password)) => format!(
            "{}:{}@",
            utf8_percent_encode(user, USERINFO),
            utf8_percent_encode(password, USERINFO)
        ),
        (Some(user), None) => format!("{}@", utf8_percent_encode(user, USERINFO)),
        _ => String::new(),
    };
    format!("{protocol}://{userinfo}{hostname}")
}

/// `caCert`, `clientCert` and `clientKey`, each of which must hold a PEM block.
fn tls_config(properties: &Properties) -> Result<OwnedTLSConfig, PubSubError> {
    let pem = |name: &str| -> Result<Option<String>, PubSubError> {
        match non_empty(properties, name) {
            None => Ok(None),
            Some(text) if text.contains("-----BEGIN ") && text.contains("-----END ") => {
                Ok(Some(text.to_owned()))
            }
            Some(_) => Err(invalid(format!(
                "invalid TLS configuration: invalid {name}"
            ))),
        }
    };
    let cert_chain = pem("caCert")?;
    let identity = match (pem("clientCert")?, pem("clientKey")?) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: cert.into_bytes(),
            key: key.into_bytes(),
        }),
        _ => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

fn number<T: FromStr>(properties: &Properties, name: &str) -> Result<Option<T>, PubSubError>
where
    T::Err: std::fmt::Display,
{
    non_empty(properties, name)
        .map(|text| {
            text.parse::<T>().map_err(|reason| {
                metadata_error(MetadataError::InvalidValue {
                    key: name.to_owned(),
                    reason: reason.to_string(),
                })
            })
        })
        .transpose()
}

fn flag(properties: &Properties, name: &str) -> Result<Option<bool>, PubSubError> {
    properties.bool(name, &[]).map_err(metadata_error)
}

fn duration(properties: &Properties, name: &str) -> Result<Option<Duration>, PubSubError> {
    properties.duration(name, &[]).map_err(metadata_error)
}

fn metadata_error(error: MetadataError) -> PubSubError {
    PubSubError::InvalidMetadata(error.to_string())
}

fn invalid(reason: impl std::fmt::Display) -> PubSubError {
    PubSubError::InvalidMetadata(format!("{ERROR_PREFIX} {reason}"))
}
