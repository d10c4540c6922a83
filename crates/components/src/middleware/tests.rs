//! Each middleware on real requests; the bearer middleware against key sets served by a
//! real local HTTP server, with tokens signed by keys made in the test.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

use super::*;
use crate::metadata::Properties;

fn properties(value: Value) -> Properties {
    Properties::from_json(&value).unwrap()
}

fn request(uri: &str, body: &str) -> Request {
    http::Request::builder()
        .method("POST")
        .uri(uri)
        .body(full_body(body.to_owned()))
        .unwrap()
}

async fn text(body: MiddlewareBody) -> String {
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

async fn open_one(component_type: &str, metadata: Value) -> std::sync::Arc<dyn HttpMiddleware> {
    open(component_type, "v1", &properties(metadata))
        .await
        .unwrap()
}

#[tokio::test]
async fn uppercase_changes_the_directions_it_is_told() {
    let request_only = open_one("middleware.http.uppercase", json!({})).await;
    let passed = request_only
        .on_request(request("/x", "hello"))
        .await
        .unwrap();
    assert_eq!(text(passed.into_body()).await, "HELLO");
    let response = http::Response::new(full_body("reply"));
    assert_eq!(
        text(request_only.on_response(response).await.into_body()).await,
        "reply"
    );

    let both = open_one("middleware.http.uppercase", json!({"direction": "both"})).await;
    let response = http::Response::new(full_body("reply"));
    assert_eq!(
        text(both.on_response(response).await.into_body()).await,
        "REPLY"
    );
    let response_only = open_one(
        "middleware.http.uppercase",
        json!({"direction": "response"}),
    )
    .await;
    let passed = response_only
        .on_request(request("/x", "quiet"))
        .await
        .unwrap();
    assert_eq!(text(passed.into_body()).await, "quiet");
}

#[tokio::test]
async fn routerchecker_refuses_uris_outside_its_rule() {
    let checker = open_one(
        "middleware.http.routerchecker",
        json!({"rule": "^[A-Za-z0-9/._-]+$"}),
    )
    .await;
    assert!(
        checker
            .on_request(request("/v1.0/invoke/app/method/ok", ""))
            .await
            .is_ok()
    );
    let refused = checker
        .on_request(request("/v1.0/invoke/app/method/bad%20path", ""))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(text(refused.into_body()).await, "invalid router");
    let bad = open(
        "middleware.http.routerchecker",
        "v1",
        &properties(json!({"rule": "("})),
    )
    .await
    .err()
    .unwrap();
    assert!(
        bad.to_string().starts_with("failed to compile rule regexp"),
        "{bad}"
    );
}

#[tokio::test]
async fn routeralias_rewrites_paths_and_adds_captured_values_to_the_query() {
    let routes = json!({
        "/mall/info": "/v1.0/invoke/srv/method/mall/info",
        "/hello/{id}/user": "/v1.0/invoke/srv/method/hello/user",
        "/num/{n:[0-9]+}": "/v1.0/invoke/srv/method/num",
    })
    .to_string();
    let alias = open_one("middleware.http.routeralias", json!({"routes": routes})).await;
    let rewritten = alias
        .on_request(request("/mall/info?a=1", ""))
        .await
        .unwrap();
    assert_eq!(rewritten.uri(), "/v1.0/invoke/srv/method/mall/info?a=1");
    let rewritten = alias
        .on_request(request("/hello/42/user?z=9&b=x%20y", ""))
        .await;
    let rewritten = rewritten.unwrap();
    assert_eq!(
        rewritten.uri(),
        "/v1.0/invoke/srv/method/hello/user?b=x+y&id=42&z=9"
    );
    let untouched = alias.on_request(request("/num/abc", "")).await.unwrap();
    assert_eq!(untouched.uri(), "/num/abc");
    let number = alias.on_request(request("/num/7", "")).await.unwrap();
    assert_eq!(number.uri(), "/v1.0/invoke/srv/method/num?n=7");

    let yaml = open_one(
        "middleware.http.routeralias",
        json!({"routes": "/a: /v1.0/invoke/srv/method/b\n"}),
    )
    .await;
    assert_eq!(
        yaml.on_request(request("/a", "")).await.unwrap().uri(),
        "/v1.0/invoke/srv/method/b"
    );
    // The deprecated form: every entry is an alias.
    let listed = open_one("middleware.http.routeralias", json!({"/old": "/v1.0/new"})).await;
    assert_eq!(
        listed.on_request(request("/old", "")).await.unwrap().uri(),
        "/v1.0/new"
    );
    let bad = open(
        "middleware.http.routeralias",
        "v1",
        &properties(json!({"routes": "[1, 2"})),
    )
    .await
    .err()
    .unwrap();
    assert!(
        bad.to_string()
            .starts_with("failed to decode 'routes' property"),
        "{bad}"
    );
}

#[tokio::test]
async fn ratelimit_allows_a_seconds_worth_per_client_and_path() {
    let limiter = open_one(
        "middleware.http.ratelimit",
        json!({"maxRequestsPerSecond": 3}),
    )
    .await;
    let from = |path: &str, client: &str| {
        let mut request = request(path, "");
        request
            .headers_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
        request
    };
    for _ in 0..3 {
        assert!(limiter.on_request(from("/a", "10.0.0.1")).await.is_ok());
    }
    let limited = limiter
        .on_request(from("/a", "10.0.0.1"))
        .await
        .unwrap_err();
    assert_eq!(limited.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        text(limited.into_body()).await,
        "You have reached maximum request limit."
    );
    // Other paths and other clients have their own buckets.
    assert!(limiter.on_request(from("/b", "10.0.0.1")).await.is_ok());
    assert!(limiter.on_request(from("/a", "10.0.0.2")).await.is_ok());
    // The bucket refills over time.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(limiter.on_request(from("/a", "10.0.0.1")).await.is_ok());

    for bad in [
        json!({"maxRequestsPerSecond": 0}),
        json!({"maxRequestsPerSecond": "lots"}),
    ] {
        let error = open("middleware.http.ratelimit", "v1", &properties(bad))
            .await
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("maxRequestsPerSecond"),
            "{error}"
        );
    }
}

/// An Ed25519 signing key, its JWK and its key id.
struct SigningKey {
    encoding: EncodingKey,
    jwk: Value,
}

fn signing_key(kid: &str) -> SigningKey {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    SigningKey {
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        }),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(key: &SigningKey, kid: Option<&str>, claims: Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

/// Serves `/jwks` and the OpenID configuration naming `issuer` on a local port.
async fn identity_provider(keys: Vec<Value>, issuer_override: Option<&str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = issuer_override.map_or_else(|| base.clone(), str::to_owned);
    let jwks = json!({ "keys": keys });
    let configuration = json!({ "issuer": issuer, "jwks_uri": format!("{base}/jwks") });
    let router = axum::Router::new()
        .route(
            "/jwks",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        )
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(configuration) }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

fn authorized(value: &str) -> Request {
    let mut request = request("/v1.0/state/store", "");
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, value.parse().unwrap());
    request
}

#[tokio::test]
async fn bearer_accepts_only_valid_tokens_from_the_key_set() {
    let key = signing_key("k1");
    let stranger = signing_key("k1");
    let issuer = identity_provider(vec![key.jwk.clone()], None).await;
    // Discovery through the issuer's OpenID configuration document.
    let bearer = open_one(
        "middleware.http.bearer",
        json!({"issuer": issuer, "audience": "dapr"}),
    )
    .await;
    let claims =
        |aud: &str, iss: &str, exp: u64| json!({"aud": aud, "iss": iss, "exp": exp, "sub": "me"});
    let good = token(&key, Some("k1"), claims("dapr", &issuer, now() + 60));
    assert!(
        bearer
            .on_request(authorized(&format!("Bearer {good}")))
            .await
            .is_ok()
    );
    assert!(
        bearer
            .on_request(authorized(&format!("bearer {good}")))
            .await
            .is_ok()
    );

    let refused = [
        String::new(),
        format!("Basic {good}"),
        "Bearer short".to_owned(),
        format!(
            "Bearer {}",
            token(&key, Some("k1"), claims("other", &issuer, now() + 60))
        ),
        format!(
            "Bearer {}",
            token(&key, Some("k1"), claims("dapr", "https://evil", now() + 60))
        ),
        // Expired beyond the 5 minutes of allowed skew.
        format!(
            "Bearer {}",
            token(&key, Some("k1"), claims("dapr", &issuer, now() - 600))
        ),
        // Signed by another key claiming the same id.
        format!(
            "Bearer {}",
            token(&stranger, Some("k1"), claims("dapr", &issuer, now() + 60))
        ),
        // No key id, or an unknown one.
        format!(
            "Bearer {}",
            token(&key, None, claims("dapr", &issuer, now() + 60))
        ),
        format!(
            "Bearer {}",
            token(&key, Some("k9"), claims("dapr", &issuer, now() + 60))
        ),
        format!("Bearer {good}x"),
    ];
    for header in refused {
        let mut request = request("/v1.0/state/store", "");
        if !header.is_empty() {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, header.parse().unwrap());
        }
        let response = bearer.on_request(request).await.unwrap_err();
        assert_eq!(
            response.status(),
            http::StatusCode::UNAUTHORIZED,
            "{header}"
        );
        assert_eq!(text(response.into_body()).await, "Unauthorized");
    }

    // A recently expired token is within the allowed skew.
    let skewed = token(&key, Some("k1"), claims("dapr", &issuer, now() - 60));
    assert!(
        bearer
            .on_request(authorized(&format!("Bearer {skewed}")))
            .await
            .is_ok()
    );

    // An explicit key set URL needs no discovery.
    let direct = open_one(
        "middleware.http.bearer",
        json!({"issuerURL": "https://issuer.example", "clientID": "dapr", "jwksURL": format!("{issuer}/jwks")}),
    )
    .await;
    let token = token(
        &key,
        Some("k1"),
        claims("dapr", "https://issuer.example", now() + 60),
    );
    assert!(
        direct
            .on_request(authorized(&format!("Bearer {token}")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn bearer_settings_and_discovery_failures_are_reported() {
    let missing = open(
        "middleware.http.bearer",
        "v1",
        &properties(json!({"audience": "a"})),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        missing.to_string(),
        "metadata property 'issuer' is required"
    );
    let base = identity_provider(vec![], Some("https://someone.else")).await;
    let mismatch = open(
        "middleware.http.bearer",
        "v1",
        &properties(json!({"issuer": base, "audience": "a"})),
    )
    .await
    .err()
    .unwrap();
    assert!(
        mismatch
            .to_string()
            .contains("doesn't match the one provided in the component's metadata"),
        "{mismatch}"
    );
    let unreachable = open(
        "middleware.http.bearer",
        "v1",
        &properties(json!({"issuer": "x", "audience": "a", "jwksURL": "http://127.0.0.1:1/jwks"})),
    )
    .await
    .err()
    .unwrap();
    assert!(
        unreachable
            .to_string()
            .starts_with("failed to fetch JWKS: "),
        "{unreachable}"
    );
    let unknown = open("middleware.http.oauth2", "v1", &properties(json!({})))
        .await
        .err()
        .unwrap();
    assert_eq!(
        unknown.to_string(),
        "couldn't find middleware middleware.http.oauth2/v1"
    );
}
