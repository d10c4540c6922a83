//! Input bindings and an HTTP app: whether the app listens (`OPTIONS /<route>` answering
//! 2xx or 405) and the delivery of an event (`POST /<route>` with the data as an
//! `application/json` body and the event metadata as headers; a 2xx answer accepts the
//! event and its body goes back to the binding, anything else rejects it).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use bytes::Bytes;
use dapr_components::bindings::InputEvent;
use http_body_util::BodyExt;

use crate::channel::AppChannel;
use crate::invoke::InvokeRequest;

/// The content type of every delivered event, whatever the source's, as upstream.
const EVENT_CONTENT_TYPE: &str = "application/json";

/// A call to `route` of the app with `verb`.
fn request(route: &str, verb: Method, headers: HeaderMap, body: Body) -> InvokeRequest {
    InvokeRequest {
        method: route.to_owned(),
        http_verb: Some(verb),
        query: String::new(),
        headers,
        content_type: Some(EVENT_CONTENT_TYPE.to_owned()),
        data_type_url: None,
        body,
    }
}

/// Whether the app serves `route`: `OPTIONS` answers 2xx or 405.
pub(super) async fn listens(app: &AppChannel, route: &str) -> Result<bool, String> {
    let response = app
        .invoke(request(route, Method::OPTIONS, HeaderMap::new(), Body::empty()))
        .await
        .map_err(|error| {
            format!(
                "could not invoke OPTIONS method on input binding subscription endpoint {route:?}: {}",
                error.message
            )
        })?;
    let status = response.status;
    // The verdict is the status; draining only returns the connection to the pool.
    let _ = response.body.collect().await;
    Ok(status.is_success() || status == StatusCode::METHOD_NOT_ALLOWED)
}

/// The event metadata as request headers (names lower-cased; the content type and length
/// are the sidecar's; names or values HTTP cannot carry are left out).
fn headers(event: &InputEvent) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(event.metadata.len());
    for (key, value) in &event.metadata {
        let key = key.to_ascii_lowercase();
        if key == "content-type" || key == "content-length" {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

/// Posts `event` to `route`; `Ok` carries the app's answer body.
pub(super) async fn deliver(
    app: &AppChannel,
    route: &str,
    event: InputEvent,
) -> Result<Bytes, String> {
    let headers = headers(&event);
    let response = app
        .invoke(request(
            route,
            Method::POST,
            headers,
            Body::from(event.data),
        ))
        .await
        .map_err(|error| format!("error invoking app: {}", error.message))?;
    let status = response.status;
    let body = response.body.collect().await.map(|body| body.to_bytes());
    if !status.is_success() {
        let text = body
            .as_ref()
            .map(|body| String::from_utf8_lossy(body).into_owned())
            .unwrap_or_default();
        return Err(format!(
            "fails to send binding event to http app channel, status code: {} body: {text}",
            status.as_u16()
        ));
    }
    body.map_err(|error| format!("failed to read response body: {error}"))
}
