//! `crypto.dapr.jwks`: keys come from a JSON Web Key Set named by the `jwks` metadata,
//! which is, as upstream decides it, an `https://` or `http://` URL, else the path of an
//! existing file, else the set itself as JSON (optionally base64-encoded). A key's name
//! is its `kid`.
//!
//! The set is loaded when the component starts (a failure stops the component). A file
//! is read again when its size or modification time changed since it was last read; a
//! URL is fetched again (at most every `minRefreshInterval`, default 10m) when the set is
//! older than that; a failed refresh keeps the keys already loaded. Requests time out
//! after `requestTimeout` (default 30s).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use tokio::sync::RwLock;

use super::local::{KeySource, LocalProvider};
use super::{CryptoError, Key};
use crate::document_fetch::{DocumentClient, FetchError, document_client, get_document};
use crate::metadata::Properties;

/// Timeout of network requests when `requestTimeout` is unset or under a millisecond.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Refresh interval when `minRefreshInterval` is unset or under a second.
const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Largest key set document fetched from a URL.
const MAX_DOCUMENT_SIZE: usize = 4 << 20;

/// Where the key set comes from.
enum Location {
    /// Given in the metadata.
    Inline,
    /// A file, re-read when it changes.
    File(PathBuf),
    /// A URL, fetched again when the set is old.
    Url {
        url: String,
        client: Box<DocumentClient>,
    },
}

/// The keys of one load of the set.
struct Loaded {
    keys: Vec<Arc<Key>>,
    /// When the set was loaded.
    at: Instant,
    /// The file's (modification time, size) when it was read.
    stamp: Option<(SystemTime, u64)>,
}

/// Keys of a JSON Web Key Set, by `kid`.
pub(crate) struct JwksKeys {
    location: Location,
    request_timeout: Duration,
    min_refresh_interval: Duration,
    loaded: RwLock<Arc<Loaded>>,
}

/// Reads the metadata and loads the key set.
pub(crate) async fn open(properties: &Properties) -> Result<LocalProvider<JwksKeys>, CryptoError> {
    if properties.entries().next().is_none() {
        return Err(CryptoError::InvalidMetadata(
            "empty metadata properties".to_owned(),
        ));
    }
    let invalid =
        |reason: String| CryptoError::InvalidMetadata(format!("failed to load metadata: {reason}"));
    let jwks = properties
        .text("jwks", &[])
        .filter(|jwks| !jwks.is_empty())
        .ok_or_else(|| invalid("metadata property 'jwks' is required".to_owned()))?;
    let duration = |name: &str, minimum: Duration, default: Duration| {
        properties
            .duration(name, &[])
            .map(|value| value.filter(|value| *value >= minimum).unwrap_or(default))
            .map_err(|error| invalid(error.to_string()))
    };
    let request_timeout = duration(
        "requestTimeout",
        Duration::from_millis(1),
        DEFAULT_REQUEST_TIMEOUT,
    )?;
    let min_refresh_interval = duration(
        "minRefreshInterval",
        Duration::from_secs(1),
        DEFAULT_MIN_REFRESH_INTERVAL,
    )?;
    let init_failed =
        |reason: String| CryptoError::Failed(format!("failed to init cache: {reason}"));
    let (location, loaded) = if jwks.starts_with("https://") || jwks.starts_with("http://") {
        if jwks.starts_with("http://") {
            tracing::warn!(
                "Loading JWK from an HTTP endpoint without TLS: this is not recommended on production environments."
            );
        }
        let client = document_client().map_err(init_failed)?;
        let keys = fetch(&client, jwks, request_timeout)
            .await
            .map_err(|error| init_failed(format!("failed to fetch JWKS: {error}")))?;
        let location = Location::Url {
            url: jwks.to_owned(),
            client: Box::new(client),
        };
        (location, Loaded::now(keys, None))
    } else if std::fs::metadata(jwks).is_ok_and(|info| !info.is_dir()) {
        let path = PathBuf::from(jwks);
        let loaded = read_file(&path).await.map_err(init_failed)?;
        (Location::File(path), loaded)
    } else {
        let trimmed = jwks.trim_end_matches('=');
        let json = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .unwrap_or_else(|_| jwks.as_bytes().to_vec());
        let keys = Key::parse_set(&json).map_err(|_| {
            init_failed(
                "failed to parse property 'location': not a URL, path to local file, or JSON value (optionally base64-encoded)"
                    .to_owned(),
            )
        })?;
        (Location::Inline, Loaded::now(keys, None))
    };
    Ok(LocalProvider::new(JwksKeys {
        location,
        request_timeout,
        min_refresh_interval,
        loaded: RwLock::new(Arc::new(loaded)),
    }))
}

impl Loaded {
    fn now(keys: Vec<Key>, stamp: Option<(SystemTime, u64)>) -> Self {
        Self {
            keys: keys.into_iter().map(Arc::new).collect(),
            at: Instant::now(),
            stamp,
        }
    }

    fn find(&self, id: &str) -> Option<Arc<Key>> {
        self.keys
            .iter()
            .find(|key| key.id.as_deref() == Some(id))
            .cloned()
    }
}

/// GETs the key set at `url`.
async fn fetch(client: &DocumentClient, url: &str, timeout: Duration) -> Result<Vec<Key>, String> {
    let body = get_document(client, url, MAX_DOCUMENT_SIZE, timeout)
        .await
        .map_err(|error| match error {
            FetchError::Failed(reason) => reason,
            FetchError::Status(status) => {
                format!("failed to fetch JWKS from {url}: unexpected status code {status}")
            }
            FetchError::TimedOut => "context deadline exceeded".to_owned(),
        })?;
    Key::parse_set(&body).map_err(|error| error.to_string())
}

/// The file's (modification time, size).
fn stamp(info: &std::fs::Metadata) -> Option<(SystemTime, u64)> {
    info.modified().ok().map(|modified| (modified, info.len()))
}

/// Reads and parses the key set file.
async fn read_file(path: &PathBuf) -> Result<Loaded, String> {
    let stamp = tokio::fs::metadata(path)
        .await
        .ok()
        .and_then(|info| stamp(&info));
    let data = tokio::fs::read(path)
        .await
        .map_err(|error| format!("failed to read JWKS file: {error}"))?;
    let keys =
        Key::parse_set(&data).map_err(|error| format!("failed to parse JWKS file: {error}"))?;
    Ok(Loaded::now(keys, stamp))
}

impl JwksKeys {
    /// The current set, refreshed first when the source changed or aged.
    async fn current(&self) -> Arc<Loaded> {
        let current = self.loaded.read().await.clone();
        match &self.location {
            Location::Inline => current,
            Location::File(path) => {
                let now = tokio::fs::metadata(path)
                    .await
                    .ok()
                    .and_then(|info| stamp(&info));
                if now.is_none() || now == current.stamp {
                    return current;
                }
                tracing::debug!("Reloading JWKS file from disk");
                match read_file(path).await {
                    Ok(fresh) => self.replace(fresh).await,
                    Err(error) => {
                        tracing::error!("Error reading JWKS from disk: {error}");
                        current
                    }
                }
            }
            Location::Url { url, client } => {
                if current.at.elapsed() < self.min_refresh_interval {
                    return current;
                }
                let mut loaded = self.loaded.write().await;
                if loaded.at.elapsed() >= self.min_refresh_interval {
                    match fetch(client, url, self.request_timeout).await {
                        Ok(keys) => *loaded = Arc::new(Loaded::now(keys, None)),
                        Err(error) => {
                            tracing::warn!("Error while refreshing JWKS cache: {error}");
                            // Wait a full interval before trying again.
                            *loaded = Arc::new(Loaded {
                                keys: loaded.keys.clone(),
                                at: Instant::now(),
                                stamp: None,
                            });
                        }
                    }
                }
                loaded.clone()
            }
        }
    }

    async fn replace(&self, fresh: Loaded) -> Arc<Loaded> {
        let fresh = Arc::new(fresh);
        *self.loaded.write().await = fresh.clone();
        fresh
    }
}

#[async_trait::async_trait]
impl KeySource for JwksKeys {
    async fn retrieve(&self, name: &str) -> Result<Arc<Key>, CryptoError> {
        self.current()
            .await
            .find(name)
            .ok_or(CryptoError::KeyNotFound)
    }
}
