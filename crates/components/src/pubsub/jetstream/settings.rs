//! The `pubsub.jetstream` component settings, read with upstream's names and defaults
//! (`pubsub/jetstream/metadata.go`): where and how to connect, which stream, and the
//! consumer options every subscription's consumer is created with.
//!
//! Numbers and durations are read the way upstream's decoder reads them: empty means
//! unset, a duration is Go text or a whole number of seconds, `backOff` is a
//! comma-separated list of such durations.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::metadata::Properties;
use crate::pubsub::PubSubError;

/// The connection name used when `name` is unset.
pub(super) const DEFAULT_CONNECTION_NAME: &str = "dapr.io - pubsub.jetstream";

/// How the component authenticates to NATS; upstream checks them in this order.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Auth {
    /// No credentials.
    None,
    /// A user JWT and the nkey seed that signs the server's nonce (`jwt`, `seedKey`).
    Jwt {
        /// The user JWT.
        jwt: String,
        /// The user's nkey seed.
        seed_key: String,
    },
    /// A TLS client certificate and key, both file paths (`tls_client_cert`,
    /// `tls_client_key`).
    ClientCertificate {
        /// Path of the PEM certificate.
        cert_path: String,
        /// Path of the PEM private key.
        key_path: String,
    },
    /// A token (`token`).
    Token(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => formatter.write_str("None"),
            Self::Jwt { .. } => formatter.write_str("Jwt(<redacted>)"),
            Self::ClientCertificate {
                cert_path,
                key_path,
            } => formatter
                .debug_struct("ClientCertificate")
                .field("cert_path", cert_path)
                .field("key_path", key_path)
                .finish(),
            Self::Token(_) => formatter.write_str("Token(<redacted>)"),
        }
    }
}

/// Where a new consumer starts (`deliverPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DeliverPolicy {
    /// Every message still in the stream (`all`, the default).
    All,
    /// The stream's last message (`last`).
    Last,
    /// Only messages published after the consumer is created (`new`).
    New,
    /// From `startSequence` on (`sequence`).
    Sequence,
    /// From `startTime` on (`time`).
    Time,
}

/// How handled messages are acknowledged (`ackPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AckPolicy {
    /// Each message is acknowledged on its own (`explicit`, the default).
    Explicit,
    /// Acknowledging a message acknowledges every earlier one too (`all`).
    All,
    /// Messages are never acknowledged (`none`).
    None,
}

impl AckPolicy {
    /// Whether the subscription acknowledges (and NAKs) messages at all.
    pub(super) fn acknowledges(self) -> bool {
        !matches!(self, Self::None)
    }
}

/// Whether a subscription handles one message at a time or each as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Concurrency {
    /// One message at a time, in order (`single`, the default).
    Single,
    /// Every message as soon as it arrives (`parallel`).
    Parallel,
}

/// The decoded settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    /// The server URL(s), comma-separated (`natsURL`, required).
    pub nats_url: String,
    /// The connection name shown by the server (`name`).
    pub name: String,
    /// Credentials.
    pub auth: Auth,
    /// The stream to bind consumers to; unset means the stream whose subjects cover the
    /// topic (`streamName`).
    pub stream_name: Option<String>,
    /// The durable consumer name; unset means an ephemeral consumer (`durableName`).
    pub durable_name: Option<String>,
    /// The deliver group sharing the consumer's messages (`queueGroupName`).
    pub queue_group_name: Option<String>,
    /// The first stream sequence for `deliverPolicy: sequence` (`startSequence`).
    pub start_sequence: u64,
    /// The first message time, in Unix seconds, for `deliverPolicy: time` (`startTime`).
    pub start_time: Option<u64>,
    /// Consumer flow control (`flowControl`).
    pub flow_control: bool,
    /// How long the server waits for an acknowledgement, and the NAK delay (`ackWait`).
    pub ack_wait: Option<Duration>,
    /// The most deliveries of one message; 0 is the server's default (`maxDeliver`).
    pub max_deliver: i64,
    /// Redelivery delays after unacknowledged deliveries (`backOff`).
    pub back_off: Vec<Duration>,
    /// The most unacknowledged messages in flight (`maxAckPending`).
    pub max_ack_pending: i64,
    /// Consumer replicas; 0 follows the stream (`replicas`).
    pub replicas: usize,
    /// Keep the consumer's state in memory (`memoryStorage`).
    pub memory_storage: bool,
    /// Delivery rate limit in bits per second (`rateLimit`).
    pub rate_limit: u64,
    /// The idle heartbeat interval (`heartbeat`).
    pub heartbeat: Option<Duration>,
    /// Where a new consumer starts (`deliverPolicy`).
    pub deliver_policy: DeliverPolicy,
    /// How messages are acknowledged (`ackPolicy`).
    pub ack_policy: AckPolicy,
    /// The JetStream domain (`domain`).
    pub domain: Option<String>,
    /// The JetStream API prefix; wins over `domain` (`apiPrefix`).
    pub api_prefix: Option<String>,
    /// How messages are handed to the app (`concurrency`, `concurrencyMode`).
    pub concurrency: Concurrency,
}

impl Settings {
    /// Reads and checks the settings.
    pub(super) fn from_properties(properties: &Properties) -> Result<Self, PubSubError> {
        let nats_url = text(properties, "natsURL").ok_or_else(|| invalid("missing nats URL"))?;
        let auth = auth(properties)?;
        let start_time = number(properties, "startTime")?;
        Ok(Self {
            nats_url,
            name: text(properties, "name").unwrap_or_else(|| DEFAULT_CONNECTION_NAME.to_owned()),
            auth,
            stream_name: text(properties, "streamName"),
            durable_name: text(properties, "durableName"),
            queue_group_name: text(properties, "queueGroupName"),
            start_sequence: number(properties, "startSequence")?.unwrap_or(0),
            start_time,
            flow_control: flag(properties, "flowControl")?,
            ack_wait: duration(properties, "ackWait")?,
            max_deliver: number(properties, "maxDeliver")?.unwrap_or(0),
            back_off: back_off(properties)?,
            max_ack_pending: number(properties, "maxAckPending")?.unwrap_or(0),
            replicas: number(properties, "replicas")?.unwrap_or(0),
            memory_storage: flag(properties, "memoryStorage")?,
            rate_limit: number(properties, "rateLimit")?.unwrap_or(0),
            heartbeat: duration(properties, "heartbeat")?,
            deliver_policy: deliver_policy(properties)?,
            ack_policy: ack_policy(properties),
            domain: text(properties, "domain"),
            api_prefix: text(properties, "apiPrefix"),
            concurrency: concurrency(properties)?,
        })
    }
}

fn invalid(reason: impl Into<String>) -> PubSubError {
    PubSubError::InvalidMetadata(reason.into())
}

/// A setting's text; empty counts as unset.
fn text(properties: &Properties, name: &str) -> Option<String> {
    properties
        .text(name, &[])
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

fn number<T: FromStr>(properties: &Properties, name: &str) -> Result<Option<T>, PubSubError> {
    let Some(value) = properties.text(name, &[]).map(str::trim) else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        invalid(format!(
            "invalid value for '{name}': {value:?} is not a number"
        ))
    })
}

fn flag(properties: &Properties, name: &str) -> Result<bool, PubSubError> {
    properties
        .bool(name, &[])
        .map(Option::unwrap_or_default)
        .map_err(|error| invalid(error.to_string()))
}

fn duration(properties: &Properties, name: &str) -> Result<Option<Duration>, PubSubError> {
    properties
        .duration(name, &[])
        .map_err(|error| invalid(error.to_string()))
}

fn auth(properties: &Properties) -> Result<Auth, PubSubError> {
    let jwt = text(properties, "jwt");
    let seed_key = text(properties, "seedKey");
    let cert_path = text(properties, "tls_client_cert");
    let key_path = text(properties, "tls_client_key");
    let token = text(properties, "token");
    match (jwt, seed_key) {
        (Some(_), None) => return Err(invalid("missing seed key")),
        (None, Some(_)) => return Err(invalid("missing jwt")),
        (Some(jwt), Some(seed_key)) => {
            check_client_certificate(cert_path.as_deref(), key_path.as_deref())?;
            return Ok(Auth::Jwt { jwt, seed_key });
        }
        (None, None) => {}
    }
    check_client_certificate(cert_path.as_deref(), key_path.as_deref())?;
    Ok(match (cert_path, key_path, token) {
        (Some(cert_path), Some(key_path), _) => Auth::ClientCertificate {
            cert_path,
            key_path,
        },
        (_, _, Some(token)) => Auth::Token(token),
        _ => Auth::None,
    })
}

fn check_client_certificate(cert: Option<&str>, key: Option<&str>) -> Result<(), PubSubError> {
    match (cert, key) {
        (Some(_), None) => Err(invalid("missing tls client key")),
        (None, Some(_)) => Err(invalid("missing tls client cert")),
        _ => Ok(()),
    }
}

/// `backOff`: comma-separated durations; empty entries are skipped. Surrounding brackets
/// (`[1s, 2s]`, the form upstream's component description shows) are accepted too.
fn back_off(properties: &Properties) -> Result<Vec<Duration>, PubSubError> {
    let Some(value) = properties.text("backOff", &[]).map(str::trim) else {
        return Ok(Vec::new());
    };
    let value = value
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(value);
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            dapr_kit::duration::parse(entry)
                .or_else(|_| entry.parse::<u64>().map(Duration::from_secs))
                .map_err(|_| {
                    invalid(format!(
                        "invalid value for 'backOff': {entry:?} is not a duration"
                    ))
                })
        })
        .collect()
}

fn deliver_policy(properties: &Properties) -> Result<DeliverPolicy, PubSubError> {
    match text(properties, "deliverPolicy").as_deref() {
        None | Some("all") => Ok(DeliverPolicy::All),
        Some("last") => Ok(DeliverPolicy::Last),
        Some("new") => Ok(DeliverPolicy::New),
        Some("sequence") => Ok(DeliverPolicy::Sequence),
        Some("time") => Ok(DeliverPolicy::Time),
        Some(other) => Err(invalid(format!(
            "deliver policy {other} is not one of: all, last, new, sequence, time"
        ))),
    }
}

/// `ackPolicy`: unknown values fall back to `explicit`, as upstream does.
fn ack_policy(properties: &Properties) -> AckPolicy {
    match text(properties, "ackPolicy").as_deref() {
        Some("all") => AckPolicy::All,
        Some("none") => AckPolicy::None,
        _ => AckPolicy::Explicit,
    }
}

/// `concurrencyMode` (checked) wins over `concurrency`; the default is `single`.
fn concurrency(properties: &Properties) -> Result<Concurrency, PubSubError> {
    let (key, value) = match text(properties, "concurrencyMode") {
        Some(value) => ("concurrencyMode", value),
        None => match text(properties, "concurrency") {
            Some(value) => ("concurrency", value),
            None => return Ok(Concurrency::Single),
        },
    };
    match value.as_str() {
        "single" => Ok(Concurrency::Single),
        "parallel" => Ok(Concurrency::Parallel),
        other => Err(invalid(format!("invalid {key} {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(value: serde_json::Value) -> Result<Settings, PubSubError> {
        Settings::from_properties(&Properties::from_json(&value).unwrap())
    }

    #[test]
    fn defaults_follow_upstream() {
        let settings = settings(json!({"natsURL": "nats://localhost:4222"})).unwrap();
        assert_eq!(settings.name, DEFAULT_CONNECTION_NAME);
        assert_eq!(settings.auth, Auth::None);
        assert_eq!(settings.durable_name, None);
        assert_eq!(settings.deliver_policy, DeliverPolicy::All);
        assert_eq!(settings.ack_policy, AckPolicy::Explicit);
        assert_eq!(settings.concurrency, Concurrency::Single);
        assert!(settings.back_off.is_empty());
        assert_eq!(settings.ack_wait, None);
    }

    #[test]
    fn every_setting_is_read() {
        let settings = settings(json!({
            "natsURL": "nats://localhost:4222",
            "name": "myName",
            "durableName": "myDurable",
            "queueGroupName": "myQueue",
            "startTime": "1629328511",
            "flowControl": "true",
            "ackWait": "2s",
            "maxDeliver": "10",
            "backOff": "500ms, 2s, 10s",
            "maxAckPending": "5000",
            "replicas": "3",
            "memoryStorage": "true",
            "rateLimit": "20000",
            "heartbeat": "1s",
            "token": "myToken",
            "deliverPolicy": "sequence",
            "startSequence": "5",
            "ackPolicy": "all",
            "apiPrefix": "HUB",
            "domain": "hub",
            "streamName": "orders",
            "concurrencyMode": "parallel",
        }))
        .unwrap();
        assert_eq!(settings.name, "myName");
        assert_eq!(settings.durable_name.as_deref(), Some("myDurable"));
        assert_eq!(settings.queue_group_name.as_deref(), Some("myQueue"));
        assert_eq!(settings.start_time, Some(1_629_328_511));
        assert_eq!(settings.start_sequence, 5);
        assert!(settings.flow_control);
        assert_eq!(settings.ack_wait, Some(Duration::from_secs(2)));
        assert_eq!(settings.max_deliver, 10);
        assert_eq!(
            settings.back_off,
            vec![
                Duration::from_millis(500),
                Duration::from_secs(2),
                Duration::from_secs(10)
            ]
        );
        assert_eq!(settings.max_ack_pending, 5000);
        assert_eq!(settings.replicas, 3);
        assert!(settings.memory_storage);
        assert_eq!(settings.rate_limit, 20000);
        assert_eq!(settings.heartbeat, Some(Duration::from_secs(1)));
        assert_eq!(settings.auth, Auth::Token("myToken".into()));
        assert_eq!(settings.deliver_policy, DeliverPolicy::Sequence);
        assert_eq!(settings.ack_policy, AckPolicy::All);
        assert_eq!(settings.api_prefix.as_deref(), Some("HUB"));
        assert_eq!(settings.domain.as_deref(), Some("hub"));
        assert_eq!(settings.stream_name.as_deref(), Some("orders"));
        assert_eq!(settings.concurrency, Concurrency::Parallel);
    }

    #[test]
    fn credentials_must_come_in_pairs() {
        let url = "nats://localhost:4222";
        let missing = |value: serde_json::Value| settings(value).unwrap_err().to_string();
        assert_eq!(
            missing(json!({"natsURL": url, "jwt": "eyJ"})),
            "invalid metadata: missing seed key"
        );
        assert_eq!(
            missing(json!({"natsURL": url, "seedKey": "SUA"})),
            "invalid metadata: missing jwt"
        );
        assert_eq!(
            missing(json!({"natsURL": url, "tls_client_cert": "/c.pem"})),
            "invalid metadata: missing tls client key"
        );
        assert_eq!(
            missing(json!({"natsURL": url, "tls_client_key": "/k.pem"})),
            "invalid metadata: missing tls client cert"
        );
        assert_eq!(missing(json!({})), "invalid metadata: missing nats URL");
    }

    #[test]
    fn jwt_wins_over_client_certificates_which_win_over_tokens() {
        let all = json!({
            "natsURL": "nats://localhost:4222",
            "jwt": "eyJ", "seedKey": "SUA",
            "tls_client_cert": "/c.pem", "tls_client_key": "/k.pem",
            "token": "t",
        });
        assert!(matches!(settings(all).unwrap().auth, Auth::Jwt { .. }));
        let cert_and_token = json!({
            "natsURL": "nats://localhost:4222",
            "tls_client_cert": "/c.pem", "tls_client_key": "/k.pem",
            "token": "t",
        });
        assert!(matches!(
            settings(cert_and_token).unwrap().auth,
            Auth::ClientCertificate { .. }
        ));
        let secret = format!(
            "{:?}",
            Auth::Jwt {
                jwt: "eyJ".into(),
                seed_key: "SUA".into()
            }
        );
        assert!(!secret.contains("SUA"));
    }

    #[test]
    fn policies_are_checked() {
        let url = "nats://localhost:4222";
        let error = settings(json!({"natsURL": url, "deliverPolicy": "oldest"})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid metadata: deliver policy oldest is not one of: all, last, new, sequence, time"
        );
        let unknown_ack = settings(json!({"natsURL": url, "ackPolicy": "some"})).unwrap();
        assert_eq!(unknown_ack.ack_policy, AckPolicy::Explicit);
        let error = settings(json!({"natsURL": url, "concurrencyMode": "many"})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid metadata: invalid concurrencyMode many"
        );
        let single = settings(json!({"natsURL": url, "concurrency": "parallel",
            "concurrencyMode": "single"}))
        .unwrap();
        assert_eq!(single.concurrency, Concurrency::Single);
    }

    #[test]
    fn back_off_accepts_lists_with_or_without_brackets() {
        let url = "nats://localhost:4222";
        let bracketed = settings(json!({"natsURL": url, "backOff": "[1s, 2, 4s]"})).unwrap();
        assert_eq!(
            bracketed.back_off,
            vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(4)
            ]
        );
        assert!(settings(json!({"natsURL": url, "backOff": "1s, soon"})).is_err());
        assert!(settings(json!({"natsURL": url, "maxDeliver": "ten"})).is_err());
    }
}
