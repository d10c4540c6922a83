//! Invoking services outside Dapr: `HTTPEndpoint` resources (called by name, with their
//! base URL, headers and client TLS) and full URLs given in place of an app id. The
//! sidecar calls them itself over pooled HTTP clients, streaming both bodies. HTTPS
//! servers are verified against the system's roots plus the endpoint's `clientTLS.rootCA`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Request, Uri};
use dapr_resources::HttpEndpoint;
use dapr_resources::common::{NameValuePair, Renegotiation, TlsConfig, TlsDocument};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::message::{InvokeRequest, InvokeResponse};
use super::metadata;
use super::target::clean_path;

/// An HTTP client for `http` and `https` URLs.
type EndpointClient = Client<HttpsConnector<HttpConnector>, Body>;

/// The known `HTTPEndpoint` resources and the clients that call them.
pub struct HttpEndpoints {
    resources: RwLock<Arc<HashMap<String, Arc<HttpEndpoint>>>>,
    /// The client for URLs and endpoints without `clientTLS`, made on first use.
    default_client: OnceLock<EndpointClient>,
    /// One client per endpoint with `clientTLS`, made on first use.
    tls_clients: Mutex<HashMap<String, EndpointClient>>,
}

impl std::fmt::Debug for HttpEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.snapshot().keys().cloned().collect();
        f.debug_struct("HttpEndpoints")
            .field("resources", &names)
            .finish()
    }
}

impl Default for HttpEndpoints {
    fn default() -> Self {
        Self::new()
    }
}

/// `https://host` → `Https`: the operation name Go's HTTP client puts before a URL in
/// its errors.
fn go_operation(method: &str) -> String {
    let mut name = method.to_ascii_lowercase();
    if let Some(first) = name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    name
}

/// An error with its chain of causes, `outer: inner: innermost`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The text of a TLS document, or why it cannot be had yet.
fn document_text(endpoint: &str, field: &str, document: &TlsDocument) -> Result<String, String> {
    if let Some(value) = &document.value {
        return Ok(value.to_plain_string());
    }
    if document.secret_key_ref.is_some() {
        return Err(format!(
            "clientTLS.{field} of HTTPEndpoint {endpoint} references a secret, and secret stores are not supported yet"
        ));
    }
    Err(format!(
        "clientTLS.{field} of HTTPEndpoint {endpoint} has no value"
    ))
}

/// The TLS settings for one endpoint (`None`: the defaults for URLs): TLS 1.2 or newer,
/// servers verified against the system's roots plus `rootCA`, a client certificate when
/// one is configured.
fn tls_config(endpoint: &str, client_tls: Option<&TlsConfig>) -> Result<ClientConfig, String> {
    let mut roots = crate::outbound_tls::system_roots();
    let mut identity = None;
    if let Some(tls) = client_tls {
        if tls
            .renegotiation
            .is_some_and(|renegotiation| renegotiation != Renegotiation::Never)
        {
            return Err(format!(
                "clientTLS.renegotiation of HTTPEndpoint {endpoint} is not supported: TLS renegotiation is never allowed"
            ));
        }
        if let Some(root_ca) = &tls.root_ca {
            let pem = document_text(endpoint, "rootCA", root_ca)?;
            for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let certificate = certificate.map_err(|err| {
                    format!("invalid clientTLS.rootCA of HTTPEndpoint {endpoint}: {err}")
                })?;
                roots.add(certificate).map_err(|err| {
                    format!("invalid clientTLS.rootCA of HTTPEndpoint {endpoint}: {err}")
                })?;
            }
        }
        identity = match (&tls.certificate, &tls.private_key) {
            (None, None) => None,
            (Some(certificate), Some(key)) => {
                let chain = document_text(endpoint, "certificate", certificate)?;
                let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| {
                        format!("invalid clientTLS.certificate of HTTPEndpoint {endpoint}: {err}")
                    })?;
                let key = document_text(endpoint, "privateKey", key)?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|err| {
                    format!("invalid clientTLS.privateKey of HTTPEndpoint {endpoint}: {err}")
                })?;
                Some((chain, key))
            }
            _ => {
                return Err(format!(
                    "clientTLS of HTTPEndpoint {endpoint} needs both certificate and privateKey"
                ));
            }
        };
    }
    let builder =
        crate::outbound_tls::verified_client_builder(roots).map_err(|err| err.to_string())?;
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|err| format!("invalid clientTLS of HTTPEndpoint {endpoint}: {err}"))?,
    };
    Ok(config)
}

/// A pooled client for `http` and `https` URLs using `config` for TLS, speaking HTTP/2
/// or HTTP/1.1 as the server chooses by ALPN.
fn client(config: ClientConfig) -> EndpointClient {
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The value of one configured header, or why it cannot be had yet.
fn header_value(endpoint: &str, header: &NameValuePair) -> Result<String, String> {
    if let Some(value) = &header.value {
        return Ok(value.to_plain_string());
    }
    if header.secret_key_ref.is_some() {
        return Err(format!(
            "header {} of HTTPEndpoint {endpoint} references a secret, and secret stores are not supported yet",
            header.name
        ));
    }
    if !header.env_ref.is_empty() {
        return std::env::var(&header.env_ref).map_err(|_| {
            format!(
                "header {} of HTTPEndpoint {endpoint} names environment variable {}, which is not set",
                header.name, header.env_ref
            )
        });
    }
    Ok(String::new())
}

impl HttpEndpoints {
    /// No endpoints yet.
    pub fn new() -> Self {
        Self {
            resources: RwLock::new(Arc::new(HashMap::new())),
            default_client: OnceLock::new(),
            tls_clients: Mutex::new(HashMap::new()),
        }
    }

    fn snapshot(&self) -> Arc<HashMap<String, Arc<HttpEndpoint>>> {
        match self.resources.read() {
            Ok(resources) => resources.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the known endpoints (at start and on every resource update).
    pub fn replace(&self, endpoints: impl IntoIterator<Item = HttpEndpoint>) {
        let map = endpoints
            .into_iter()
            .map(|endpoint| {
                let name = endpoint.metadata.name.clone().unwrap_or_default();
                (name, Arc::new(endpoint))
            })
            .collect();
        match self.resources.write() {
            Ok(mut resources) => *resources = Arc::new(map),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(map),
        }
        if let Ok(mut clients) = self.tls_clients.lock() {
            clients.clear();
        }
    }

    /// The client for URLs and endpoints without their own TLS settings.
    fn default_client(&self) -> Result<EndpointClient, String> {
        if let Some(client) = self.default_client.get() {
            return Ok(client.clone());
        }
        let made = client(tls_config("", None)?);
        Ok(self.default_client.get_or_init(|| made).clone())
    }

    /// The client for `endpoint`, made with its `clientTLS` on first use.
    fn endpoint_client(
        &self,
        name: &str,
        endpoint: &HttpEndpoint,
    ) -> Result<EndpointClient, String> {
        let Some(client_tls) = &endpoint.spec.client_tls else {
            return self.default_client();
        };
        let mut clients = self
            .tls_clients
            .lock()
            .map_err(|_| "HTTP endpoint clients are unusable".to_string())?;
        if let Some(client) = clients.get(name) {
            return Ok(client.clone());
        }
        let made = client(tls_config(name, Some(client_tls))?);
        clients.insert(name.to_string(), made.clone());
        Ok(made)
    }

    /// The endpoint named `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<Arc<HttpEndpoint>> {
        self.snapshot().get(name).cloned()
    }

    /// Calls the `HTTPEndpoint` resource `endpoint` with `request`.
    pub async fn invoke_endpoint(
        &self,
        endpoint: &HttpEndpoint,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, String> {
        let name = endpoint.metadata.name.clone().unwrap_or_default();
        let client = self.endpoint_client(&name, endpoint)?;
        let mut extra = Vec::with_capacity(endpoint.spec.headers.len());
        for header in &endpoint.spec.headers {
            extra.push((header.name.clone(), header_value(&name, header)?));
        }
        send(&client, &endpoint.spec.base_url, &extra, request).await
    }

    /// Calls the URL `base_url` (given as the target) with `request`.
    pub async fn invoke_url(
        &self,
        base_url: &str,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, String> {
        send(&self.default_client()?, base_url, &[], request).await
    }
}

/// Calls `base_url` + `/` + the request's method with `client`, adding the `extra`
/// headers.
async fn send(
    client: &EndpointClient,
    base_url: &str,
    extra: &[(String, String)],
    request: InvokeRequest,
) -> Result<InvokeResponse, String> {
    let mut url = base_url.to_string();
    let method = clean_path(&request.method);
    let method = if method == "." { "" } else { method.as_str() };
    if !method.is_empty() && !method.starts_with('/') {
        url.push('/');
    }
    url.push_str(method);
    if !request.query.is_empty() {
        url.push('?');
        url.push_str(&request.query);
    }
    let uri: Uri = url.parse().map_err(|err| format!("parse {url:?}: {err}"))?;
    let mut headers = metadata::to_http_headers(&request.headers);
    if let Some(length) = request.headers.get(CONTENT_LENGTH) {
        headers.insert(CONTENT_LENGTH, length.clone());
    }
    if let Some(content_type) = request
        .content_type
        .as_deref()
        .and_then(|value| HeaderValue::from_str(value).ok())
    {
        headers.insert(CONTENT_TYPE, content_type);
    }
    for (name, value) in extra {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?} in HTTPEndpoint"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header {name} in HTTPEndpoint"))?;
        headers.insert(name, value);
    }

    let verb = request
        .http_verb
        .clone()
        .ok_or_else(|| "missing HTTP extension field".to_string())?;
    let mut outgoing = Request::new(request.body);
    *outgoing.method_mut() = verb.clone();
    *outgoing.uri_mut() = uri;
    *outgoing.headers_mut() = headers;
    let reply = client.request(outgoing).await.map_err(|err| {
        format!(
            "{} {url:?}: {}",
            go_operation(verb.as_str()),
            error_chain(&err)
        )
    })?;

    let (parts, body) = reply.into_parts();
    let mut headers = parts.headers;
    metadata::strip_hop_by_hop(&mut headers);
    headers.remove(CONTENT_LENGTH);
    let content_type = headers
        .remove(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok().map(str::to_string));
    Ok(InvokeResponse {
        status: parts.status,
        grpc_code: None,
        headers,
        trailers: Default::default(),
        content_type,
        data_type_url: None,
        body: Body::new(body),
    })
}
