//! The `bindings.rabbitmq` settings, read the way upstream's binding reads them: `host`
//! (an `amqp://` or `amqps://` URI) and `queueName` are required; `durable`,
//! `deleteWhenUnused`, `exclusive` and `externalSasl` (or `saslExternal`) are lenient
//! booleans (anything not truthy is false); `prefetchCount` (default 0, no limit),
//! `maxPriority` (above 255 means 255), `ttl`/`ttlInSeconds` (the queue's message time to
//! live), `reconnectWaitInSeconds` (default 5 s) and the PEM texts `caCert`, `clientCert`
//! and `clientKey`.

use std::str::FromStr;
use std::time::Duration;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPScheme, AMQPUri, SASLMechanism};

use crate::bindings::BindingError;
use crate::bindings::settings::{invalid, non_empty, pem, truthy};
use crate::metadata::Properties;
use crate::pubsub::rabbitmq::link::Endpoint;
use crate::pubsub::rabbitmq::settings::parse_ttl;

/// The pause before reconnecting, unless `reconnectWaitInSeconds` says otherwise.
const DEFAULT_RECONNECT_WAIT: Duration = Duration::from_secs(5);
/// The connection heartbeat unless the URI sets one (upstream's client default).
const DEFAULT_HEARTBEAT: u16 = 10;

/// The binding's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to connect (`host`), with the heartbeat and SASL mechanism applied.
    pub uri: AMQPUri,
    /// Client certificate and extra roots (`caCert`, `clientCert`, `clientKey`).
    pub tls: OwnedTLSConfig,
    /// The queue published to and read from (`queueName`).
    pub queue_name: String,
    /// Whether the queue survives a broker restart (`durable`, default false).
    pub durable: bool,
    /// Whether the queue goes once its last consumer leaves (`deleteWhenUnused`).
    pub delete_when_unused: bool,
    /// Whether the queue belongs to this connection only (`exclusive`).
    pub exclusive: bool,
    /// Unacknowledged deliveries on the channel (`prefetchCount`, 0 = no limit).
    pub prefetch_count: u16,
    /// The queue's `x-max-priority` (`maxPriority`); unset means no priorities.
    pub max_priority: Option<u8>,
    /// The queue's `x-message-ttl` (`ttl`, alias `ttlInSeconds`).
    pub default_ttl: Option<Duration>,
    /// The pause before reconnecting (`reconnectWaitInSeconds`, default 5 s).
    pub reconnect_wait: Duration,
}

impl Settings {
    /// Reads and checks the settings.
    pub fn parse(properties: &Properties) -> Result<Self, BindingError> {
        let host = non_empty(properties, "host").ok_or_else(|| invalid("missing host address"))?;
        let mut uri = parse_uri(host)?;
        let queue_name =
            non_empty(properties, "queueName").ok_or_else(|| invalid("missing queue Name"))?;
        let max_priority = non_empty(properties, "maxPriority")
            .map(|text| {
                text.parse::<u64>()
                    .map(|priority| u8::try_from(priority).unwrap_or(u8::MAX))
                    .map_err(|error| invalid(format!("can't parse maxPriority field: {error}")))
            })
            .transpose()?;
        let prefetch_count = match non_empty(properties, "prefetchCount") {
            None => 0,
            Some(text) => text.parse::<u16>().map_err(|error| {
                invalid(format!(
                    "failed to decode metadata: invalid prefetchCount {text:?}: {error}"
                ))
            })?,
        };
        let reconnect_wait = properties
            .duration("reconnectWaitInSeconds", &[])
            .map_err(|error| invalid(format!("failed to decode metadata: {error}")))?
            .unwrap_or(DEFAULT_RECONNECT_WAIT);
        let default_ttl =
            parse_ttl(non_empty(properties, "ttl").or(non_empty(properties, "ttlInSeconds")))
                .map_err(|reason| invalid(format!("failed to parse TTL: {reason}")))?;
        let ca_cert = pem(properties, "caCert", "invalid ca certificate")?;
        let client_cert = pem(properties, "clientCert", "invalid client certificate")?;
        let client_key = pem(properties, "clientKey", "invalid client certificate key")?;
        // Upstream authenticates with the client certificate only when all three are set.
        let external_sasl = ca_cert.is_some()
            && client_cert.is_some()
            && client_key.is_some()
            && (truthy(properties, "externalSasl") || truthy(properties, "saslExternal"));
        if external_sasl && uri.scheme == AMQPScheme::AMQPS {
            uri.query.auth_mechanism = Some(SASLMechanism::External);
        }
        let identity = match (client_cert, client_key) {
            (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
                pem: cert.into_bytes(),
                key: key.into_bytes(),
            }),
            _ => None,
        };
        Ok(Self {
            uri,
            tls: OwnedTLSConfig {
                identity,
                cert_chain: ca_cert,
            },
            queue_name: queue_name.to_owned(),
            durable: truthy(properties, "durable"),
            delete_when_unused: truthy(properties, "deleteWhenUnused"),
            exclusive: truthy(properties, "exclusive"),
            prefetch_count,
            max_priority,
            default_ttl,
            reconnect_wait,
        })
    }

    /// Where and how the connection connects.
    pub(crate) fn endpoint(&self) -> Endpoint {
        Endpoint {
            uri: self.uri.clone(),
            tls: self.tls.clone(),
            connection_name: None,
            publisher_confirm: false,
        }
    }

    /// The queue's arguments, typed as upstream's client sends them.
    pub fn queue_arguments(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        if let Some(ttl) = self.default_ttl {
            let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(millis));
        }
        if let Some(priority) = self.max_priority {
            arguments.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(priority));
        }
        arguments
    }
}

/// An `amqp://` or `amqps://` URI, with the default heartbeat unless it sets one.
fn parse_uri(text: &str) -> Result<AMQPUri, BindingError> {
    let scheme = text.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("amqp" | "amqps")) {
        return Err(invalid(
            "invalid host address: AMQP scheme must be either 'amqp://' or 'amqps://'",
        ));
    }
    let mut uri = AMQPUri::from_str(text)
        .map_err(|reason| invalid(format!("invalid host address: {reason}")))?;
    uri.query.heartbeat.get_or_insert(DEFAULT_HEARTBEAT);
    Ok(uri)
}
