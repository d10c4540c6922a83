//! The `bindings.mqtt3` settings, read the way upstream's binding reads them: `url`,
//! `topic` and `consumerID` are required; `retain` and `cleanSession` are lenient
//! booleans (anything not truthy is false); `backOffMaxRetries` (default 0, negative for
//! no limit) bounds the retries of a failed event; `qos` is deprecated and ignored (always
//! 1); `caCert`, `clientCert` and `clientKey` must each hold a PEM block.

use std::time::Duration;

use rumqttc::QoS;

use crate::bindings::BindingError;
use crate::bindings::settings::{invalid, non_empty, pem, truthy};
use crate::metadata::Properties;
use crate::pubsub::PubSubError;
use crate::pubsub::mqtt3::{self as broker, BrokerAddress, TlsPem, parse_url};

/// The pause between attempts at a failed event (upstream's constant back-off).
const RETRY_WAIT: Duration = Duration::from_secs(5);
/// Suffix of the client id of the connection that publishes.
const PRODUCER_SUFFIX: &str = "-producer";
/// Suffix of the client id of the connection that reads.
const CONSUMER_SUFFIX: &str = "-consumer";

/// How often a failed event is tried again before it is left unacknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// At most this many more attempts.
    AtMost(u64),
    /// Until the handler accepts the event or the reading stops.
    Unlimited,
}

impl Retries {
    /// Whether another attempt may follow `done` retries.
    pub fn allow(self, done: u64) -> bool {
        match self {
            Self::AtMost(limit) => done < limit,
            Self::Unlimited => true,
        }
    }
}

/// The binding's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The broker (`url`).
    pub broker: BrokerAddress,
    /// The topic published to and read from (`topic`).
    pub topic: String,
    /// The base of both client ids (`consumerID`).
    pub client_id: String,
    /// Whether publishes are retained (`retain`, default false).
    pub retain: bool,
    /// Whether sessions start clean (`cleanSession`, default false).
    pub clean_session: bool,
    /// Retries of an event the app refused (`backOffMaxRetries`).
    pub retries: Retries,
    /// The pause between attempts at a refused event (upstream's 5 s).
    pub retry_wait: Duration,
    /// TLS material.
    pub tls: TlsPem,
}

impl Settings {
    /// Reads and checks the settings.
    pub fn parse(properties: &Properties) -> Result<Self, BindingError> {
        let url = non_empty(properties, "url").ok_or_else(|| invalid("missing url"))?;
        let broker = parse_url(url).map_err(|error| match error {
            PubSubError::InvalidMetadata(reason) => invalid(reason),
            other => invalid(other.to_string()),
        })?;
        let topic = non_empty(properties, "topic").ok_or_else(|| invalid("missing topic"))?;
        // A wildcard filter may be read from, though not published to.
        if !rumqttc::valid_filter(topic) {
            return Err(invalid(format!("invalid topic {topic:?}")));
        }
        let client_id =
            non_empty(properties, "consumerID").ok_or_else(|| invalid("missing consumerID"))?;
        if non_empty(properties, "qos").is_some() {
            tracing::warn!(
                "mqtt3 binding: metadata property 'qos' has been deprecated and is ignored; qos is set to 1"
            );
        }
        let retries = match non_empty(properties, "backOffMaxRetries") {
            None => Retries::AtMost(0),
            Some(text) => match text.parse::<i64>() {
                Ok(limit) => u64::try_from(limit).map_or(Retries::Unlimited, Retries::AtMost),
                Err(_) => {
                    return Err(invalid(format!(
                        "invalid backOffMaxRetries {text:?}: it must be a whole number"
                    )));
                }
            },
        };
        let tls = TlsPem {
            ca_cert: pem(properties, "caCert", "invalid ca certificate")?,
            client_cert: pem(properties, "clientCert", "invalid client certificate")?,
            client_key: pem(properties, "clientKey", "invalid client certificate key")?,
        };
        Ok(Self {
            broker,
            topic: topic.to_owned(),
            client_id: client_id.to_owned(),
            retain: truthy(properties, "retain"),
            clean_session: truthy(properties, "cleanSession"),
            retries,
            retry_wait: RETRY_WAIT,
            tls,
        })
    }

    /// The settings of the connection that publishes (`<consumerID>-producer`).
    pub fn producer(&self) -> broker::Settings {
        self.connection(PRODUCER_SUFFIX)
    }

    /// The settings of the connection that reads (`<consumerID>-consumer`).
    pub fn consumer(&self) -> broker::Settings {
        self.connection(CONSUMER_SUFFIX)
    }

    /// A broker may hold one connection per client id, so each half has its own.
    fn connection(&self, suffix: &str) -> broker::Settings {
        broker::Settings {
            broker: self.broker.clone(),
            client_id: format!("{}{suffix}", self.client_id),
            qos: QoS::AtLeastOnce,
            retain: self.retain,
            clean_session: self.clean_session,
            tls: self.tls.clone(),
        }
    }
}
