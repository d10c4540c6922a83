//! The `pubsub.redis` settings: the connection settings every Redis component shares
//! (read by the state store's parser, with the pub/sub defaults upstream applies) plus the
//! streams settings (`consumerID`, `redeliverInterval`, `processingTimeout`, `queueDepth`,
//! `concurrency`, `maxLenApprox`, `streamTTL`) with upstream's names and defaults.
//!
//! The streams durations decode as upstream's do: a whole number is milliseconds,
//! anything else is Go duration text; zero turns redelivery off.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metadata::{Properties, non_empty};
use crate::pubsub::{CONSUMER_ID_METADATA_KEY, PubSubError};
use crate::state::StateError;
use crate::state::redis::metadata::RedisMetadata;

/// go-redis's retry count, which applies because pub/sub sets no legacy default.
const DEFAULT_MAX_RETRIES: usize = 3;
/// go-redis's first retry backoff, which applies for the same reason.
const DEFAULT_MIN_RETRY_INTERVAL: Duration = Duration::from_millis(8);
/// Default `processingTimeout`.
const DEFAULT_PROCESSING_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `redeliverInterval`.
const DEFAULT_REDELIVER_INTERVAL: Duration = Duration::from_secs(15);
/// Default `queueDepth`.
const DEFAULT_QUEUE_DEPTH: usize = 100;
/// Default `concurrency`.
const DEFAULT_CONCURRENCY: usize = 10;

/// Decoded `pubsub.redis` settings.
#[derive(Debug, Clone)]
pub(crate) struct StreamSettings {
    /// Where and how to connect (shared with the other Redis components).
    pub connection: RedisMetadata,
    /// `consumerID`: the consumer group, also used as the consumer name.
    pub consumer_id: String,
    /// `redeliverInterval` (default 15s): how often pending messages are checked for
    /// redelivery; zero disables redelivery.
    pub redeliver_interval: Duration,
    /// `processingTimeout` (default 60s): how long a message stays pending before it is
    /// redelivered, and how long a handler may run; zero disables redelivery.
    pub processing_timeout: Duration,
    /// `queueDepth` (default 100): messages read per request and buffered for workers.
    pub queue_depth: usize,
    /// `concurrency` (default 10): messages handled at once per subscription.
    pub concurrency: usize,
    /// `maxLenApprox`: trim streams to about this many entries on publish (0: never).
    pub max_len_approx: i64,
    /// `streamTTL`: trim entries older than this on publish (used when `maxLenApprox`
    /// is not).
    pub stream_ttl: Option<Duration>,
}

impl StreamSettings {
    /// Decodes and validates the component's settings.
    pub(crate) fn parse(properties: &Properties) -> Result<Self, PubSubError> {
        let mut connection = RedisMetadata::parse(properties).map_err(|error| match error {
            StateError::InvalidMetadata(reason) => PubSubError::InvalidMetadata(reason),
            other => PubSubError::InvalidMetadata(other.to_string()),
        })?;
        // The state store's legacy retry defaults and aliases do not apply to pub/sub.
        if non_empty(properties, "redisMaxRetries").is_none() {
            connection.max_retries = DEFAULT_MAX_RETRIES;
        }
        if non_empty(properties, "redisMinRetryInterval").is_none() {
            connection.min_retry_interval = Some(DEFAULT_MIN_RETRY_INTERVAL);
        }

        let consumer_id = non_empty(properties, CONSUMER_ID_METADATA_KEY)
            .ok_or_else(|| {
                PubSubError::InvalidMetadata(format!(
                    "redis streams: missing {CONSUMER_ID_METADATA_KEY}"
                ))
            })?
            .to_owned();
        let concurrency = count(properties, "concurrency")?.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(PubSubError::InvalidMetadata(
                "redis streams: concurrency must be at least 1".to_owned(),
            ));
        }
        let max_len_approx = match non_empty(properties, "maxLenApprox") {
            None => 0,
            Some(text) => text
                .parse::<i64>()
                .map_err(|_| invalid("maxLenApprox", text, "not a whole number"))?,
        };
        let stream_ttl = duration(properties, "streamTTL")?.filter(|ttl| !ttl.is_zero());
        if max_len_approx > 0 && stream_ttl.is_some() {
            tracing::warn!(
                "redis streams: maxLenApprox and streamTTL cannot be used together; only one \
                 stream trimming strategy can be active at a time"
            );
        }

        Ok(Self {
            connection,
            consumer_id,
            redeliver_interval: duration(properties, "redeliverInterval")?
                .unwrap_or(DEFAULT_REDELIVER_INTERVAL),
            processing_timeout: duration(properties, "processingTimeout")?
                .unwrap_or(DEFAULT_PROCESSING_TIMEOUT),
            queue_depth: count(properties, "queueDepth")?.unwrap_or(DEFAULT_QUEUE_DEPTH),
            concurrency,
            max_len_approx,
            stream_ttl,
        })
    }

    /// Whether pending messages are redelivered (both `redeliverInterval` and
    /// `processingTimeout` are above zero).
    pub(crate) fn redelivers(&self) -> bool {
        !self.redeliver_interval.is_zero() && !self.processing_timeout.is_zero()
    }

    /// The `MINID` below which `streamTTL` trims a stream, at `now`.
    pub(crate) fn min_id(&self, now: SystemTime) -> Option<String> {
        let ttl = self.stream_ttl?;
        let cutoff = now.checked_sub(ttl).unwrap_or(UNIX_EPOCH);
        let millis = cutoff
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        Some(format!("{millis}-1"))
    }
}

fn invalid(name: &str, text: &str, reason: impl std::fmt::Display) -> PubSubError {
    PubSubError::InvalidMetadata(format!(
        "redis streams: invalid value for '{name}' {text:?}: {reason}"
    ))
}

/// A non-negative whole number.
fn count(properties: &Properties, name: &str) -> Result<Option<usize>, PubSubError> {
    non_empty(properties, name)
        .map(|text| {
            text.parse::<usize>()
                .map_err(|_| invalid(name, text, "not a non-negative whole number"))
        })
        .transpose()
}

/// A whole number of milliseconds, or Go duration text.
fn duration(properties: &Properties, name: &str) -> Result<Option<Duration>, PubSubError> {
    let Some(text) = non_empty(properties, name) else {
        return Ok(None);
    };
    if let Ok(millis) = text.parse::<u64>() {
        return Ok(Some(Duration::from_millis(millis)));
    }
    dapr_kit::duration::parse(text)
        .map(Some)
        .map_err(|error| invalid(name, text, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<StreamSettings, PubSubError> {
        StreamSettings::parse(&Properties::from_json(&value).unwrap())
    }

    #[test]
    fn defaults_follow_upstream() {
        let settings = parse(json!({"redisHost": "localhost:6379", "consumerID": "app"})).unwrap();
        assert_eq!(settings.consumer_id, "app");
        assert_eq!(settings.redeliver_interval, Duration::from_secs(15));
        assert_eq!(settings.processing_timeout, Duration::from_secs(60));
        assert_eq!(settings.queue_depth, 100);
        assert_eq!(settings.concurrency, 10);
        assert_eq!(settings.max_len_approx, 0);
        assert_eq!(settings.stream_ttl, None);
        assert!(settings.redelivers());
        assert_eq!(settings.connection.max_retries, 3);
        assert_eq!(
            settings.connection.min_retry_interval,
            Some(Duration::from_millis(8))
        );
        assert_eq!(
            settings.connection.read_timeout,
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn durations_are_milliseconds_or_go_text() {
        let settings = parse(json!({
            "redisHost": "localhost",
            "consumerID": "app",
            "redeliverInterval": "250",
            "processingTimeout": "2m",
            "streamTTL": 1500,
            "queueDepth": "5",
            "concurrency": 2,
            "maxLenApprox": "1000",
        }))
        .unwrap();
        assert_eq!(settings.redeliver_interval, Duration::from_millis(250));
        assert_eq!(settings.processing_timeout, Duration::from_secs(120));
        assert_eq!(settings.stream_ttl, Some(Duration::from_millis(1500)));
        assert_eq!(settings.queue_depth, 5);
        assert_eq!(settings.concurrency, 2);
        assert_eq!(settings.max_len_approx, 1000);
    }

    #[test]
    fn zero_disables_redelivery() {
        for (interval, timeout) in [("0", "10s"), ("10s", "0")] {
            let settings = parse(json!({
                "redisHost": "localhost",
                "consumerID": "app",
                "redeliverInterval": interval,
                "processingTimeout": timeout,
            }))
            .unwrap();
            assert!(!settings.redelivers());
        }
    }

    #[test]
    fn bad_values_are_invalid_metadata() {
        for bad in [
            json!({"redisHost": "localhost"}),
            json!({"consumerID": "app"}),
            json!({"redisHost": "localhost", "consumerID": "app", "concurrency": "0"}),
            json!({"redisHost": "localhost", "consumerID": "app", "queueDepth": "-1"}),
            json!({"redisHost": "localhost", "consumerID": "app", "processingTimeout": "soon"}),
            json!({"redisHost": "localhost", "consumerID": "app", "maxLenApprox": "many"}),
        ] {
            assert!(
                matches!(parse(bad.clone()), Err(PubSubError::InvalidMetadata(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn stream_ttl_becomes_a_min_id() {
        let settings = parse(json!({
            "redisHost": "localhost",
            "consumerID": "app",
            "streamTTL": "1s",
        }))
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_millis(10_000);
        assert_eq!(settings.min_id(now).as_deref(), Some("9000-1"));
    }
}
