//! HTTP middleware pipelines in a real sidecar: `httpPipeline` (rate limit, router alias,
//! router checker, uppercase on requests) in front of the HTTP API, `appHttpPipeline`
//! (bearer tokens checked against a key set served by the test, uppercase on responses)
//! on the calls to the app; every stage asserted over real HTTP.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use ::http::Method;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use dapr_testkit::{Daprd, http};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::support::{sqlite_config, start_app};

const SECRET: &[u8] = b"a shared secret for the test key";
const ISSUER: &str = "https://issuer.test";

/// Serves the key set (one HS256 key, `k1`) at `/jwks`; returns its URL.
async fn serve_jwks() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let jwks = json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(SECRET)}]})
        .to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let jwks = jwks.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let jwks = jwks.clone();
                    async move {
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(jwks)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

fn token(audience: &str) -> String {
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(
        &header,
        &json!({"aud": audience, "iss": ISSUER, "exp": expires}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn component(name: &str, component_type: &str, metadata: &[(&str, &str)]) -> String {
    let metadata: String = metadata
        .iter()
        .map(|(key, value)| format!("  - name: {key}\n    value: '{value}'\n"))
        .collect();
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: {component_type}\n  version: v1\n  metadata:\n{metadata}"
    )
}

#[tokio::test]
async fn pipelines_run_every_middleware_in_order_on_real_requests() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_url = serve_jwks().await;
    let resources = dir.path().join("resources");
    std::fs::create_dir_all(&resources).unwrap();
    let routes = r#"{"/shop/{id}": "/v1.0/invoke/mw/method/items"}"#;
    for (file, text) in [
        (
            "limit",
            component(
                "limit",
                "middleware.http.ratelimit",
                &[("maxRequestsPerSecond", "5")],
            ),
        ),
        (
            "alias",
            component(
                "alias",
                "middleware.http.routeralias",
                &[("routes", routes)],
            ),
        ),
        (
            "checker",
            component(
                "checker",
                "middleware.http.routerchecker",
                &[("rule", r"^/v1\.0/(invoke|healthz|metadata)")],
            ),
        ),
        (
            "upper",
            component("upper", "middleware.http.uppercase", &[]),
        ),
        (
            "upper-replies",
            component(
                "upper-replies",
                "middleware.http.uppercase",
                &[("direction", "response")],
            ),
        ),
        (
            "auth",
            component(
                "auth",
                "middleware.http.bearer",
                &[
                    ("issuer", ISSUER),
                    ("audience", "dapr"),
                    ("jwksURL", &jwks_url),
                ],
            ),
        ),
    ] {
        std::fs::write(resources.join(format!("{file}.yaml")), text).unwrap();
    }
    let config = sqlite_config(
        dir.path(),
        "  httpPipeline:
    handlers:
    - {name: limit, type: middleware.http.ratelimit}
    - {name: alias, type: middleware.http.routeralias}
    - {name: checker, type: middleware.http.routerchecker}
    - {name: upper, type: middleware.http.uppercase}
  appHttpPipeline:
    handlers:
    - {name: auth, type: middleware.http.bearer}
    - {name: upper-replies, type: middleware.http.uppercase}
",
    );
    let (app_port, _app) = start_app("http_app.py").await;
    let daprd = Daprd::builder("mw")
        .app_port(app_port)
        .config(&config)
        .resources_path(&resources)
        .start()
        .await
        .unwrap();
    let base = daprd.base_url();
    let bearer = format!("Bearer {}", token("dapr"));

    // In: the body upper-cased by the server pipeline; the token passes the app pipeline;
    // out: the app's reply upper-cased.
    let response = http::request(
        Method::POST,
        &format!("{base}/v1.0/invoke/mw/method/echo"),
        &[("authorization", &bearer)],
        "hello",
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let text = response.text();
    assert!(text.contains(r#""BODY": "HELLO""#), "{text}");
    assert!(text.contains(r#""PATH": "/ECHO""#), "{text}");

    // The app pipeline refuses calls without a valid token, for this audience.
    for authorization in [None, Some(format!("Bearer {}", token("someone-else")))] {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|value| vec![("authorization", value)])
            .unwrap_or_default();
        let response = http::request(
            Method::POST,
            &format!("{base}/v1.0/invoke/mw/method/echo"),
            &headers,
            "hello",
        )
        .await
        .unwrap();
        assert_eq!(response.status, 401, "{authorization:?}");
        assert_eq!(response.text(), "Unauthorized");
    }

    // The alias rewrites before the checker looks; the id goes to the query.
    let response = http::request(
        Method::GET,
        &format!("{base}/shop/7"),
        &[("authorization", &bearer)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let text = response.text();
    assert!(
        text.contains(r#""PATH": "/ITEMS""#) && text.contains(r#""QUERY": "ID=7""#),
        "{text}"
    );

    // The checker refuses what its rule does not allow.
    let response = http::get(&format!("{base}/v1.0/state/store/key"))
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.text(), "invalid router");

    // The limit: 5 a second on one path.
    let mut limited = 0;
    for _ in 0..12 {
        let response = http::get(&format!("{base}/v1.0/metadata")).await.unwrap();
        if response.status == 429 {
            assert_eq!(response.text(), "You have reached maximum request limit.");
            limited += 1;
        } else {
            assert_eq!(response.status, 200);
        }
    }
    assert!(limited >= 1, "the rate limit never answered");
}
