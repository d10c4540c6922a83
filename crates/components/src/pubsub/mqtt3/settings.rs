//! The `pubsub.mqtt3` settings, read the way upstream reads them: `url` (with the broker's
//! address, scheme and credentials), `consumerID` (the MQTT client id), `qos` (default 1),
//! `retain` (default false), `cleanSession` (default false) and the PEM texts `caCert`,
//! `clientCert` and `clientKey`.

use percent_encoding::percent_decode_str;
use rumqttc::QoS;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::metadata::{Properties, non_empty};
use crate::pubsub::{CONSUMER_ID_METADATA_KEY, PubSubError};

/// Plain MQTT's default port.
const DEFAULT_PORT: u16 = 1883;
/// MQTT over TLS's default port.
const DEFAULT_TLS_PORT: u16 = 8883;

/// Where the broker is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or IP address (without IPv6 brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the connection uses TLS (`ssl`, `mqtts`, `tcps`, `tls` schemes).
    pub tls: bool,
    /// User name from the URL, if any.
    pub username: Option<String>,
    /// Password from the URL, if any.
    pub password: Option<String>,
}

/// PEM texts for TLS connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPem {
    /// CA certificates trusted for the broker (`caCert`); the system roots when unset.
    pub ca_cert: Option<String>,
    /// The client certificate chain (`clientCert`).
    pub client_cert: Option<String>,
    /// The client's private key (`clientKey`).
    pub client_key: Option<String>,
}

/// The component's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The broker (`url`).
    pub broker: BrokerAddress,
    /// The MQTT client id (`consumerID`; daprd defaults it to the app id).
    pub client_id: String,
    /// QoS of publishes and subscriptions (`qos`, default 1).
    pub qos: QoS,
    /// Whether publishes are retained unless a request says otherwise (`retain`).
    pub retain: bool,
    /// Whether the session starts clean (`cleanSession`, default false).
    pub clean_session: bool,
    /// TLS material.
    pub tls: TlsPem,
}

impl Settings {
    /// Reads and checks the settings.
    pub fn parse(properties: &Properties) -> Result<Self, PubSubError> {
        let url = non_empty(properties, "url")
            .ok_or_else(|| PubSubError::InvalidMetadata("missing url".into()))?;
        let broker = parse_url(url)?;
        let client_id = non_empty(properties, CONSUMER_ID_METADATA_KEY)
            .ok_or_else(|| PubSubError::InvalidMetadata("missing consumerID".into()))?
            .to_owned();
        let qos = match non_empty(properties, "qos") {
            None => QoS::AtLeastOnce,
            Some(text) => parse_qos(text)?,
        };
        let retain = properties
            .bool("retain", &[])
            .map_err(|error| PubSubError::InvalidMetadata(error.to_string()))?
            .unwrap_or(false);
        let clean_session = properties
            .bool("cleanSession", &[])
            .map_err(|error| PubSubError::InvalidMetadata(error.to_string()))?
            .unwrap_or(false);
        let tls = TlsPem {
            ca_cert: pem_setting(properties, "caCert")?,
            client_cert: pem_setting(properties, "clientCert")?,
            client_key: pem_setting(properties, "clientKey")?,
        };
        Ok(Self {
            broker,
            client_id,
            qos,
            retain,
            clean_session,
            tls,
        })
    }
}

/// Reads a QoS level: 0, 1 or 2.
pub fn parse_qos(text: &str) -> Result<QoS, PubSubError> {
    match text.trim() {
        "0" => Ok(QoS::AtMostOnce),
        "1" => Ok(QoS::AtLeastOnce),
        "2" => Ok(QoS::ExactlyOnce),
        other => Err(PubSubError::InvalidMetadata(format!(
            "invalid qos {other}: must be 0, 1 or 2"
        ))),
    }
}

/// A PEM setting: unset or empty is `None`; otherwise it must hold a PEM block.
fn pem_setting(properties: &Properties, name: &str) -> Result<Option<String>, PubSubError> {
    let Some(text) = non_empty(properties, name) else {
        return Ok(None);
    };
    if !has_pem_block(text) {
        return Err(PubSubError::InvalidMetadata(format!(
            "invalid TLS configuration: invalid {name}"
        )));
    }
    Ok(Some(text.to_owned()))
}

/// Whether `text` holds a PEM certificate or private key block. Any such section will do
/// here (a key is not a certificate); the TLS setup reads them.
pub(crate) fn has_pem_block(text: &str) -> bool {
    text.contains("-----BEGIN ")
        && (CertificateDer::pem_slice_iter(text.as_bytes())
            .next()
            .is_some()
            || rustls::pki_types::PrivateKeyDer::from_pem_slice(text.as_bytes()).is_ok())
}

/// Reads `scheme://[user[:password]@]host[:port][/...]`, mapping upstream's scheme aliases
/// (`mqtt` is `tcp`; `mqtts`, `tcps` and `tls` are `ssl`).
pub fn parse_url(url: &str) -> Result<BrokerAddress, PubSubError> {
    let invalid =
        |reason: &str| PubSubError::InvalidMetadata(format!("invalid url {url:?}: {reason}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("expected scheme://host:port"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "tcp" | "mqtt" => false,
        "ssl" | "mqtts" | "tcps" | "tls" => true,
        "ws" | "wss" => return Err(invalid("MQTT over websockets is not supported")),
        _ => return Err(invalid("the scheme must be tcp, mqtt, ssl or mqtts")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((credentials, host_port)) => (Some(credentials), host_port),
        None => (None, authority),
    };
    let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
    let (username, password) = match credentials {
        None => (None, None),
        Some(credentials) => match credentials.split_once(':') {
            Some((user, password)) => (
                Some(decode(user)),
                Some(decode(password)).filter(|password| !password.is_empty()),
            ),
            None => (Some(decode(credentials)), None),
        },
    };
    let (host, port) = split_host_port(host_port).ok_or_else(|| invalid("bad host or port"))?;
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    let port = port.unwrap_or(if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT });
    Ok(BrokerAddress {
        host,
        port,
        tls,
        username: username.filter(|user| !user.is_empty()),
        password,
    })
}

/// Splits `host[:port]` or `[v6][:port]`.
fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host.to_owned(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), Some(port.parse().ok()?))),
        None => Some((text.to_owned(), None)),
    }
}
