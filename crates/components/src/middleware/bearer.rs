//! `middleware.http.bearer`: requests must carry `Authorization: Bearer <JWT>` signed by a
//! key of the issuer's JSON Web Key Set, for `audience` (alias `clientID`) and from
//! `issuer` (alias `issuerURL`), within its validity (5 minutes of clock skew allowed);
//! anything else is answered `401 Unauthorized`, as upstream. The key set comes from
//! `jwksURL`, or from the `jwks_uri` of the issuer's OpenID configuration document
//! (`<issuer>/.well-known/openid-configuration`, whose `issuer` must match); it is fetched
//! at start (a failure stops the component) and again, at most every 10 minutes, when a
//! token names a key it does not hold. As upstream's key-set parsing, tokens must name
//! their key (`kid`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use tokio::sync::RwLock;

use super::{HttpMiddleware, MiddlewareError, Request, Response, status_response};
use crate::document_fetch::{DocumentClient, FetchError, document_client, get_document};
use crate::metadata::Properties;

/// The scheme prefix of the authorization header (compared case-insensitively).
const BEARER_PREFIX: &str = "bearer ";
/// Key sets are not fetched again sooner than this.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Clock skew tolerated on `exp` and `nbf`.
const ALLOWED_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Bound on fetching a document at start.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest document accepted.
const MAX_DOCUMENT_SIZE: usize = 1 << 20;

/// The keys of the set, by key id.
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fetched: Instant,
}

/// The bearer-token middleware.
pub struct Bearer {
    issuer: String,
    audience: String,
    jwks_url: String,
    client: DocumentClient,
    keys: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Bearer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

/// GETs `url` and parses its JSON body.
async fn fetch_json<T: serde::de::DeserializeOwned>(
    client: &DocumentClient,
    url: &str,
) -> Result<T, String> {
    let body = get_document(client, url, MAX_DOCUMENT_SIZE, FETCH_TIMEOUT)
        .await
        .map_err(|error| match error {
            FetchError::Failed(reason) => reason,
            FetchError::Status(status) => format!("invalid response status code: {status}"),
            FetchError::TimedOut => "timed out".to_owned(),
        })?;
    serde_json::from_slice(&body)
        .map_err(|error| format!("failed to decode JSON response: {error}"))
}

/// The OpenID configuration document's fields upstream reads.
#[derive(serde::Deserialize)]
struct OpenIdConfiguration {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    jwks_uri: String,
}

/// Finds the key set's URL in the issuer's OpenID configuration document.
async fn discover_jwks_url(client: &DocumentClient, issuer: &str) -> Result<String, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let document: OpenIdConfiguration = fetch_json(client, &url).await?;
    if document.jwks_uri.is_empty() {
        return Err("the OpenID Configuration document does not contain a 'jwks_uri'".into());
    }
    if document.issuer != issuer {
        return Err(format!(
            "the issuer found in the OpenID Configuration document ('{}') doesn't match the one provided in the component's metadata ('{issuer}')",
            document.issuer
        ));
    }
    Ok(document.jwks_uri)
}

async fn fetch_keys(client: &DocumentClient, url: &str) -> Result<KeySet, String> {
    let set: JwkSet = fetch_json(client, url).await?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(id) = jwk.common.key_id.clone() else {
            continue;
        };
        match DecodingKey::from_jwk(jwk) {
            Ok(key) => {
                keys.insert(id, key);
            }
            Err(error) => tracing::warn!("skipping JWKS key {id}: {error}"),
        }
    }
    Ok(KeySet {
        keys,
        fetched: Instant::now(),
    })
}

/// Reads the settings and fetches the key set.
pub async fn open(properties: &Properties) -> Result<Bearer, MiddlewareError> {
    let required = |name: &str, alias: &str| {
        properties
            .text(name, &[alias])
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                MiddlewareError::InvalidMetadata(format!("metadata property '{name}' is required"))
            })
    };
    let issuer = required("issuer", "issuerURL")?;
    let audience = required("audience", "clientID")?;
    let client = document_client().map_err(MiddlewareError::InvalidMetadata)?;
    let jwks_url = match properties
        .text("jwksURL", &[])
        .filter(|url| !url.is_empty())
    {
        Some(url) => url.to_owned(),
        None => discover_jwks_url(&client, &issuer).await.map_err(|error| {
            MiddlewareError::Unavailable(format!(
                "failed to retrieve OpenID Configuration document: {error}"
            ))
        })?,
    };
    let keys = fetch_keys(&client, &jwks_url)
        .await
        .map_err(|error| MiddlewareError::Unavailable(format!("failed to fetch JWKS: {error}")))?;
    Ok(Bearer {
        issuer,
        audience,
        jwks_url,
        client,
        keys: RwLock::new(Arc::new(keys)),
    })
}

impl Bearer {
    /// The key named `id`, fetching the set again when it is missing and the last fetch
    /// is old enough.
    async fn key(&self, id: &str) -> Option<DecodingKey> {
        let current = self.keys.read().await.clone();
        if let Some(key) = current.keys.get(id) {
            return Some(key.clone());
        }
        if current.fetched.elapsed() < MIN_REFRESH_INTERVAL {
            return None;
        }
        let mut keys = self.keys.write().await;
        if keys.fetched.elapsed() >= MIN_REFRESH_INTERVAL {
            match fetch_keys(&self.client, &self.jwks_url).await {
                Ok(fresh) => *keys = Arc::new(fresh),
                Err(error) => tracing::warn!("Error while refreshing JWKS cache: {error}"),
            }
        }
        keys.keys.get(id).cloned()
    }

    /// Whether `token` is valid.
    async fn accepts(&self, token: &str) -> bool {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return false;
        };
        let Some(id) = header.kid.as_deref() else {
            return false;
        };
        let Some(key) = self.key(id).await else {
            return false;
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = ALLOWED_CLOCK_SKEW.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["aud", "iss"]);
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).is_ok()
    }
}

#[async_trait::async_trait]
impl HttpMiddleware for Bearer {
    async fn on_request(&self, request: Request) -> Result<Request, Response> {
        let unauthorized = || status_response(http::StatusCode::UNAUTHORIZED);
        let Some(header) = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
        else {
            return Err(unauthorized());
        };
        let scheme_ok = header.len() > BEARER_PREFIX.len()
            && header
                .get(..BEARER_PREFIX.len())
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case(BEARER_PREFIX));
        let token = header.get(BEARER_PREFIX.len()..).unwrap_or_default();
        if !scheme_ok || token.len() < 10 || !self.accepts(token).await {
            return Err(unauthorized());
        }
        Ok(request)
    }
}
