//! The `state.redis` component settings, read with upstream's names, defaults and legacy
//! aliases (`common/component/redis/settings.go`): where to connect (`redisHost`,
//! `redisPort`, `redisType`, `failover`), how to authenticate, TLS, timeouts and retries,
//! the store-wide default TTL and the query index schemas.
//!
//! Durations follow upstream's redis decoder: a bare number is milliseconds, a negative
//! number (`-1`) disables the timeout or backoff, anything else is Go duration text.

use std::time::Duration;

use crate::metadata::Properties;
use crate::state::StateError;

/// The Redis port used when `redisHost` has none and `redisPort` is unset.
const DEFAULT_PORT: u16 = 6379;

/// Retries after a connection failure: go-redis's default, also upstream's.
const DEFAULT_MAX_RETRIES: usize = 3;
/// The first retry backoff upstream presets for state stores (above the ceiling, so
/// every wait is the ceiling).
const STATE_MIN_RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// go-redis's own first retry backoff, which an explicit zero selects.
const GO_REDIS_MIN_RETRY_INTERVAL: Duration = Duration::from_millis(8);
/// go-redis's retry backoff ceiling, which upstream leaves as it is.
const DEFAULT_MAX_RETRY_INTERVAL: Duration = Duration::from_millis(512);

/// Settings of go-redis's connection pool. They are validated and accepted (existing
/// component files set them), but a multiplexed connection has no pool to tune.
const POOL_SETTINGS: [&str; 6] = [
    "poolSize",
    "minIdleConns",
    "poolTimeout",
    "maxConnAge",
    "idleTimeout",
    "idleCheckFrequency",
];

/// One `host:port` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for Address {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(formatter, "[{}]:{}", self.host, self.port)
        } else {
            write!(formatter, "{}:{}", self.host, self.port)
        }
    }
}

/// How the store reaches Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One server (`redisType: node`, the default).
    Node,
    /// A Redis Cluster reached through any of the given nodes (`redisType: cluster`).
    Cluster,
    /// The master named `sentinelMasterName`, found through Sentinel (`failover: true`).
    Sentinel {
        /// The monitored master's name.
        master_name: String,
    },
}

/// TLS to Redis (`enableTLS`).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// Accept any server certificate (`insecureSkipTLSVerify`).
    pub insecure_skip_verify: bool,
    /// PEM client certificate and key (`clientCert`, `clientKey`), for mutual TLS.
    pub client_identity: Option<(String, String)>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsSettings")
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field(
                "client_identity",
                &self.client_identity.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Decoded `state.redis` settings.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisMetadata {
    /// The resolved `redisHost` list (several for cluster seeds or sentinels).
    pub addresses: Vec<Address>,
    /// Node, cluster or sentinel.
    pub topology: Topology,
    /// `redisUsername` (Redis 6 ACL user).
    pub username: Option<String>,
    /// `redisPassword`.
    pub password: Option<String>,
    /// `sentinelUsername`.
    pub sentinel_username: Option<String>,
    /// `sentinelPassword`.
    pub sentinel_password: Option<String>,
    /// `redisDB` (ignored in cluster mode, as upstream documents).
    pub db: i64,
    /// `redisMaxRetries` / `maxRetries`: retries after a connection failure (default and
    /// `0`: 3; negative: none).
    pub max_retries: usize,
    /// `redisMinRetryInterval` / legacy `maxRetryBackoff`: the backoff floor (default 2s,
    /// an explicit zero 8ms); `None` (negative) turns backoff off.
    pub min_retry_interval: Option<Duration>,
    /// `redisMaxRetryInterval`: the backoff ceiling (default 512ms); `None` (negative)
    /// turns backoff off, as in go-redis.
    pub max_retry_interval: Option<Duration>,
    /// `dialTimeout` (default 5s).
    pub dial_timeout: Duration,
    /// `readTimeout` for reads (default 3s); `None` waits forever.
    pub read_timeout: Option<Duration>,
    /// `writeTimeout` for writes (default: the read timeout); `None` waits forever.
    pub write_timeout: Option<Duration>,
    /// `enableTLS` and its certificate settings.
    pub tls: Option<TlsSettings>,
    /// `ttlInSeconds`: the TTL applied to writes that do not ask for one.
    pub default_ttl: Option<i64>,
    /// `queryIndexes`: the JSON list of RediSearch index schemas (empty when unset).
    pub query_indexes: String,
    /// The pool settings that were given (accepted, not applicable).
    pub pool_settings_given: Vec<&'static str>,
}

impl std::fmt::Debug for RedisMetadata {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        formatter
            .debug_struct("RedisMetadata")
            .field("addresses", &self.addresses)
            .field("topology", &self.topology)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_password", &redacted(&self.sentinel_password))
            .field("db", &self.db)
            .field("max_retries", &self.max_retries)
            .field("min_retry_interval", &self.min_retry_interval)
            .field("max_retry_interval", &self.max_retry_interval)
            .field("dial_timeout", &self.dial_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("tls", &self.tls)
            .field("default_ttl", &self.default_ttl)
            .field("query_indexes", &self.query_indexes)
            .finish()
    }
}

/// A redis-style duration setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    /// Unset, empty or zero: use the default.
    Default,
    /// Negative: turned off.
    Disabled,
    /// A positive duration.
    Value(Duration),
}

impl Setting {
    fn or(self, default: Duration) -> Option<Duration> {
        match self {
            Self::Default => Some(default),
            Self::Disabled => None,
            Self::Value(duration) => Some(duration),
        }
    }
}

impl RedisMetadata {
    /// Decodes and validates the component's settings.
    pub(crate) fn parse(properties: &Properties) -> Result<Self, StateError> {
        for name in ["useEntraID", "useOIDC"] {
            let aliases: &[&str] = if name == "useEntraID" {
                &["useAzureAD"]
            } else {
                &[]
            };
            if properties.bool(name, aliases).map_err(invalid)? == Some(true) {
                return Err(StateError::InvalidMetadata(format!(
                    "{name} is not supported by this state.redis implementation; \
                     use redisUsername/redisPassword"
                )));
            }
        }

        let port = match non_empty(properties, "redisPort") {
            None => None,
            Some(text) => Some(text.parse::<u16>().map_err(|_| {
                StateError::InvalidMetadata(format!("redisPort {text:?} is not a port number"))
            })?),
        };
        let host = non_empty(properties, "redisHost")
            .ok_or_else(|| StateError::InvalidMetadata("redisHost is required".to_owned()))?;
        let addresses = host
            .split(',')
            .map(|address| resolve_address(address.trim(), port))
            .collect::<Result<Vec<_>, _>>()?;

        let failover = properties.bool("failover", &[]).map_err(invalid)? == Some(true);
        let cluster = match non_empty(properties, "redisType") {
            None => false,
            Some(kind) if kind.eq_ignore_ascii_case("node") => false,
            Some(kind) if kind.eq_ignore_ascii_case("cluster") => true,
            Some(other) => {
                return Err(StateError::InvalidMetadata(format!(
                    "redisType {other:?} is not supported: use \"node\" or \"cluster\""
                )));
            }
        };
        let topology = match (failover, cluster) {
            (false, false) => Topology::Node,
            (false, true) => Topology::Cluster,
            (true, false) => Topology::Sentinel {
                master_name: non_empty(properties, "sentinelMasterName")
                    .ok_or_else(|| {
                        StateError::InvalidMetadata(
                            "sentinelMasterName is required when failover is enabled".to_owned(),
                        )
                    })?
                    .to_owned(),
            },
            (true, true) => {
                return Err(StateError::InvalidMetadata(
                    "failover with redisType \"cluster\" (Sentinel-managed cluster) is not \
                     supported by this state.redis implementation"
                        .to_owned(),
                ));
            }
        };

        let db = match non_empty(properties, "redisDB") {
            None => 0,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|db| *db >= 0)
                .ok_or_else(|| {
                    StateError::InvalidMetadata(format!(
                        "redisDB {text:?} is not a database number"
                    ))
                })?,
        };

        let max_retries = match integer(properties, "redisMaxRetries", &["maxRetries"])? {
            // Zero leaves go-redis its own default; -1 (any negative) turns retries off.
            None | Some(0) => DEFAULT_MAX_RETRIES,
            Some(retries) => usize::try_from(retries).unwrap_or(0),
        };
        // The legacy name applies only when the current one is unset, as upstream does.
        let min_retry_interval = if non_empty(properties, "redisMinRetryInterval").is_some() {
            redis_duration(properties, "redisMinRetryInterval")?.or(GO_REDIS_MIN_RETRY_INTERVAL)
        } else if let Some(text) = non_empty(properties, "maxRetryBackoff") {
            // The legacy name is a bare number of nanoseconds.
            let nanos = text.parse::<i64>().map_err(|error| {
                StateError::InvalidMetadata(format!("can't parse maxRetryBackoff field: {error}"))
            })?;
            match u64::try_from(nanos) {
                Ok(0) => Some(GO_REDIS_MIN_RETRY_INTERVAL),
                Ok(nanos) => Some(Duration::from_nanos(nanos)),
                Err(_) => None,
            }
        } else {
            Some(STATE_MIN_RETRY_INTERVAL)
        };
        let max_retry_interval =
            redis_duration(properties, "redisMaxRetryInterval")?.or(DEFAULT_MAX_RETRY_INTERVAL);
        let dial_timeout = redis_duration(properties, "dialTimeout")?
            .or(Duration::from_secs(5))
            .unwrap_or(Duration::from_secs(5));
        let read_timeout = redis_duration(properties, "readTimeout")?.or(Duration::from_secs(3));
        let write_timeout = match redis_duration(properties, "writeTimeout")? {
            Setting::Default => read_timeout,
            other => other.or(Duration::from_secs(3)),
        };

        let mut pool_settings_given = Vec::new();
        for name in POOL_SETTINGS {
            if non_empty(properties, name).is_none() {
                continue;
            }
            if matches!(name, "poolSize" | "minIdleConns") {
                integer(properties, name, &[])?;
            } else {
                redis_duration(properties, name)?;
            }
            pool_settings_given.push(name);
        }

        let tls = if properties.bool("enableTLS", &[]).map_err(invalid)? == Some(true) {
            let cert = non_empty(properties, "clientCert");
            let key = non_empty(properties, "clientKey");
            let client_identity = match (cert, key) {
                (Some(cert), Some(key)) => Some((cert.to_owned(), key.to_owned())),
                (None, None) => None,
                _ => {
                    return Err(StateError::InvalidMetadata(
                        "clientCert and clientKey must be set together".to_owned(),
                    ));
                }
            };
            Some(TlsSettings {
                insecure_skip_verify: properties
                    .bool("insecureSkipTLSVerify", &[])
                    .map_err(invalid)?
                    == Some(true),
                client_identity,
            })
        } else {
            None
        };

        let default_ttl = integer(properties, "ttlInSeconds", &[])?;

        Ok(Self {
            addresses,
            topology,
            username: non_empty(properties, "redisUsername").map(str::to_owned),
            password: non_empty(properties, "redisPassword").map(str::to_owned),
            sentinel_username: non_empty(properties, "sentinelUsername").map(str::to_owned),
            sentinel_password: non_empty(properties, "sentinelPassword").map(str::to_owned),
            db,
            max_retries,
            min_retry_interval,
            max_retry_interval,
            dial_timeout,
            read_timeout,
            write_timeout,
            tls,
            default_ttl,
            query_indexes: non_empty(properties, "queryIndexes")
                .unwrap_or_default()
                .to_owned(),
            pool_settings_given,
        })
    }

    /// The addresses as upstream prints them in errors (`host:port,host:port`).
    pub(crate) fn hosts(&self) -> String {
        self.addresses
            .iter()
            .map(Address::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn invalid(error: impl std::fmt::Display) -> StateError {
    StateError::InvalidMetadata(error.to_string())
}

fn non_empty<'a>(properties: &'a Properties, name: &str) -> Option<&'a str> {
    properties
        .text(name, &[])
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

fn integer(
    properties: &Properties,
    name: &str,
    aliases: &[&str],
) -> Result<Option<i64>, StateError> {
    let Some(text) = std::iter::once(name)
        .chain(aliases.iter().copied())
        .find_map(|key| non_empty(properties, key))
    else {
        return Ok(None);
    };
    text.parse::<i64>()
        .map(Some)
        .map_err(|_| StateError::InvalidMetadata(format!("{name} {text:?} is not a whole number")))
}

/// A duration as upstream's redis settings decode it: a whole number is milliseconds
/// (negative disables), otherwise Go duration text (negative disables).
fn redis_duration(properties: &Properties, name: &str) -> Result<Setting, StateError> {
    let Some(text) = non_empty(properties, name) else {
        return Ok(Setting::Default);
    };
    let bad = |reason: String| StateError::InvalidMetadata(format!("{name}: {reason}"));
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(match u64::try_from(millis) {
            Ok(0) => Setting::Default,
            Ok(millis) => Setting::Value(Duration::from_millis(millis)),
            Err(_) => Setting::Disabled,
        });
    }
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let duration = dapr_kit::duration::parse(magnitude).map_err(|error| bad(error.to_string()))?;
    Ok(if duration.is_zero() {
        Setting::Default
    } else if negative {
        Setting::Disabled
    } else {
        Setting::Value(duration)
    })
}

/// Splits `host[:port]` (IPv6 in brackets) and applies `redisPort` the way upstream does:
/// a port in the host must agree with `redisPort`; no port means `redisPort` or 6379.
fn resolve_address(text: &str, port: Option<u16>) -> Result<Address, StateError> {
    if text.is_empty() {
        return Err(StateError::InvalidMetadata(
            "redisHost has an empty address".to_owned(),
        ));
    }
    let (host, own_port) = split_host_port(text)?;
    let port = match (own_port, port) {
        (Some(own), Some(configured)) if own != configured => {
            return Err(StateError::InvalidMetadata(format!(
                "redis host {text:?} already contains port {own}, but redisPort is set to \
                 {configured}; either remove the port from redisHost or remove the redisPort \
                 setting"
            )));
        }
        (Some(own), _) => own,
        (None, Some(configured)) => configured,
        (None, None) => DEFAULT_PORT,
    };
    Ok(Address {
        host: host.to_owned(),
        port,
    })
}

fn split_host_port(text: &str) -> Result<(&str, Option<u16>), StateError> {
    let parse_port = |port: &str| {
        port.parse::<u16>().map_err(|_| {
            StateError::InvalidMetadata(format!("redisHost {text:?} has an invalid port"))
        })
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| {
            StateError::InvalidMetadata(format!("redisHost {text:?} has an unclosed '['"))
        })?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(parse_port(port)?))),
                None => Err(StateError::InvalidMetadata(format!(
                    "redisHost {text:?} is not host:port"
                ))),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text, None)),
        // Several colons without brackets: a bare IPv6 address.
        1 => {
            let (host, port) = text.split_once(':').unwrap_or((text, ""));
            Ok((host, Some(parse_port(port)?)))
        }
        _ => Ok((text, None)),
    }
}

/// Logs the pool settings that do not apply to a multiplexed connection.
pub(crate) fn warn_about_pool_settings(metadata: &RedisMetadata) {
    if !metadata.pool_settings_given.is_empty() {
        tracing::warn!(
            settings = %metadata.pool_settings_given.join(", "),
            "state.redis multiplexes commands over one connection per server; \
             connection pool settings are accepted but have no effect"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<RedisMetadata, StateError> {
        RedisMetadata::parse(&Properties::from_json(&value).unwrap())
    }

    #[test]
    fn defaults_follow_upstream() {
        let metadata = parse(json!({"redisHost": "localhost:6380"})).unwrap();
        assert_eq!(
            metadata.addresses,
            vec![Address {
                host: "localhost".into(),
                port: 6380
            }]
        );
        assert_eq!(metadata.topology, Topology::Node);
        assert_eq!(metadata.max_retries, 3);
        assert_eq!(metadata.min_retry_interval, Some(Duration::from_secs(2)));
        assert_eq!(
            metadata.max_retry_interval,
            Some(Duration::from_millis(512))
        );
        assert_eq!(metadata.dial_timeout, Duration::from_secs(5));
        assert_eq!(metadata.read_timeout, Some(Duration::from_secs(3)));
        assert_eq!(metadata.write_timeout, Some(Duration::from_secs(3)));
        assert_eq!(metadata.db, 0);
        assert_eq!(metadata.tls, None);
        assert_eq!(metadata.default_ttl, None);
    }

    #[test]
    fn hosts_take_redis_port_or_the_default() {
        let metadata = parse(json!({"redisHost": "a,b:7001, [::1]", "redisPort": 7001})).unwrap();
        assert_eq!(metadata.hosts(), "a:7001,b:7001,[::1]:7001");
        let metadata = parse(json!({"redisHost": "redis"})).unwrap();
        assert_eq!(metadata.hosts(), "redis:6379");
        let error = parse(json!({"redisHost": "a:7000", "redisPort": "7001"})).unwrap_err();
        assert!(error.to_string().contains("already contains port 7000"));
        let error = parse(json!({"redisHost": "a:notaport"})).unwrap_err();
        assert!(error.to_string().contains("invalid port"), "{error}");
        let error = parse(json!({})).unwrap_err();
        assert_eq!(error.to_string(), "invalid metadata: redisHost is required");
    }

    #[test]
    fn durations_are_milliseconds_or_go_text_and_negative_disables() {
        let metadata = parse(json!({
            "redisHost": "h",
            "readTimeout": "-1",
            "writeTimeout": 250,
            "dialTimeout": "1m",
            "redisMaxRetryInterval": "-1s",
            "redisMinRetryInterval": "10ms",
            "maxRetries": "-1",
        }))
        .unwrap();
        assert_eq!(metadata.read_timeout, None);
        assert_eq!(metadata.write_timeout, Some(Duration::from_millis(250)));
        assert_eq!(metadata.dial_timeout, Duration::from_secs(60));
        assert_eq!(metadata.max_retry_interval, None);
        assert_eq!(metadata.min_retry_interval, Some(Duration::from_millis(10)));
        assert_eq!(metadata.max_retries, 0);
        // The write timeout follows an explicit read timeout.
        let metadata = parse(json!({"redisHost": "h", "readTimeout": "7s"})).unwrap();
        assert_eq!(metadata.write_timeout, Some(Duration::from_secs(7)));
        let error = parse(json!({"redisHost": "h", "readTimeout": "soon"})).unwrap_err();
        assert!(error.to_string().contains("readTimeout"), "{error}");
    }

    #[test]
    fn legacy_retry_names_still_apply() {
        let metadata = parse(json!({
            "redisHost": "h",
            "maxRetries": 7,
            "maxRetryBackoff": 1_000_000,
        }))
        .unwrap();
        assert_eq!(metadata.max_retries, 7);
        assert_eq!(metadata.min_retry_interval, Some(Duration::from_millis(1)));
        let metadata = parse(json!({
            "redisHost": "h",
            "redisMaxRetries": 2,
            "maxRetries": 7,
            "redisMinRetryInterval": "5ms",
            "maxRetryBackoff": 1_000_000,
        }))
        .unwrap();
        assert_eq!(metadata.max_retries, 2);
        assert_eq!(metadata.min_retry_interval, Some(Duration::from_millis(5)));
        let error = parse(json!({"redisHost": "h", "maxRetryBackoff": "1s"})).unwrap_err();
        assert!(error.to_string().contains("maxRetryBackoff"), "{error}");
    }

    #[test]
    fn zero_retry_settings_select_go_redis_defaults() {
        let metadata = parse(json!({
            "redisHost": "h",
            "redisMaxRetries": 0,
            "redisMinRetryInterval": "0",
            "redisMaxRetryInterval": 0,
        }))
        .unwrap();
        assert_eq!(metadata.max_retries, 3);
        assert_eq!(metadata.min_retry_interval, Some(Duration::from_millis(8)));
        assert_eq!(
            metadata.max_retry_interval,
            Some(Duration::from_millis(512))
        );
        let metadata = parse(json!({"redisHost": "h", "maxRetryBackoff": 0})).unwrap();
        assert_eq!(metadata.min_retry_interval, Some(Duration::from_millis(8)));
        // The current name wins over the legacy one even when it is zero.
        let metadata = parse(json!({
            "redisHost": "h",
            "redisMinRetryInterval": 0,
            "maxRetryBackoff": 5_000_000,
        }))
        .unwrap();
        assert_eq!(metadata.min_retry_interval, Some(Duration::from_millis(8)));
        let metadata = parse(json!({"redisHost": "h", "redisMaxRetries": -1})).unwrap();
        assert_eq!(metadata.max_retries, 0);
    }

    #[test]
    fn topology_options_are_validated() {
        let metadata = parse(json!({"redisHost": "a:1,b:2", "redisType": "cluster"})).unwrap();
        assert_eq!(metadata.topology, Topology::Cluster);
        let metadata = parse(json!({
            "redisHost": "s:26379",
            "failover": "true",
            "sentinelMasterName": "mymaster",
        }))
        .unwrap();
        assert_eq!(
            metadata.topology,
            Topology::Sentinel {
                master_name: "mymaster".into()
            }
        );
        let error = parse(json!({"redisHost": "s", "failover": true})).unwrap_err();
        assert!(error.to_string().contains("sentinelMasterName"), "{error}");
        let error = parse(json!({"redisHost": "s", "redisType": "ring"})).unwrap_err();
        assert!(error.to_string().contains("redisType"), "{error}");
        let error = parse(json!({
            "redisHost": "s",
            "redisType": "cluster",
            "failover": true,
            "sentinelMasterName": "m",
        }))
        .unwrap_err();
        assert!(error.to_string().contains("failover"), "{error}");
    }

    #[test]
    fn unsupported_authentication_is_named() {
        for name in ["useEntraID", "useAzureAD", "useOIDC"] {
            let error = parse(json!({"redisHost": "h", name: "true"})).unwrap_err();
            let text = error.to_string();
            assert!(matches!(error, StateError::InvalidMetadata(_)));
            assert!(text.contains("not supported"), "{text}");
        }
        assert!(parse(json!({"redisHost": "h", "useEntraID": "false"})).is_ok());
    }

    #[test]
    fn bad_values_are_invalid_metadata() {
        for (name, value) in [
            ("redisDB", "one"),
            ("redisDB", "-1"),
            ("redisPort", "70000"),
            ("ttlInSeconds", "soon"),
            ("enableTLS", "maybe"),
            ("poolSize", "many"),
            ("idleTimeout", "later"),
            ("redisMaxRetries", "x"),
        ] {
            let error = parse(json!({"redisHost": "h", name: value})).unwrap_err();
            assert!(
                matches!(error, StateError::InvalidMetadata(_)),
                "{name}: {error}"
            );
        }
        let error =
            parse(json!({"redisHost": "h", "enableTLS": true, "clientCert": "x"})).unwrap_err();
        assert!(error.to_string().contains("clientKey"), "{error}");
    }

    #[test]
    fn pool_settings_are_accepted_and_remembered() {
        let metadata = parse(json!({
            "redisHost": "h",
            "poolSize": 20,
            "idleTimeout": "5m",
            "minIdleConns": 2,
        }))
        .unwrap();
        assert_eq!(
            metadata.pool_settings_given,
            vec!["poolSize", "minIdleConns", "idleTimeout"]
        );
    }

    #[test]
    fn tls_and_ttl_are_read() {
        let metadata = parse(json!({
            "redisHost": "h",
            "enableTLS": "true",
            "insecureSkipTLSVerify": "true",
            "ttlInSeconds": "600",
            "redisDB": "3",
            "redisPassword": "secret",
        }))
        .unwrap();
        assert_eq!(
            metadata.tls,
            Some(TlsSettings {
                insecure_skip_verify: true,
                client_identity: None
            })
        );
        assert_eq!(metadata.default_ttl, Some(600));
        assert_eq!(metadata.db, 3);
        assert!(!format!("{metadata:?}").contains("secret"));
    }
}
