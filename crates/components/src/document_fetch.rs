//! Fetching a small document over HTTP or HTTPS (a JSON Web Key Set, an OpenID discovery
//! document): one client with the platform's roots, a size cap on the body and a time
//! limit on the whole exchange. Each caller words the failures as its upstream does.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::bindings::http::settings::TlsSettings;
use crate::bindings::http::tls::client_config;

/// A client for `http://` and `https://` URLs.
pub(crate) type DocumentClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Why a document could not be fetched.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The URL, the exchange or the body failed; the text says which.
    Failed(String),
    /// The answer's status was not 200.
    Status(u16),
    /// The exchange took longer than allowed.
    TimedOut,
}

/// A client speaking HTTP/1.1 over TCP or TLS (default TLS settings).
pub(crate) fn document_client() -> Result<DocumentClient, String> {
    let tls = client_config(&TlsSettings::default())?;
    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// GETs `url` and returns its body (at most `max_size` bytes) when the status is 200.
pub(crate) async fn get_document(
    client: &DocumentClient,
    url: &str,
    max_size: usize,
    timeout: Duration,
) -> Result<Bytes, FetchError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|error| FetchError::Failed(format!("invalid URL {url:?}: {error}")))?;
    let exchange = async {
        let response = client
            .get(uri)
            .await
            .map_err(|error| FetchError::Failed(format!("failed to execute request: {error}")))?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        http_body_util::Limited::new(response.into_body(), max_size)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|error| FetchError::Failed(format!("failed to read response body: {error}")))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(FetchError::TimedOut))
}
