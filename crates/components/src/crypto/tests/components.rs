//! The two components through the [`CryptoProvider`] contract, and the `dapr.io/enc/v1`
//! format with real key wrapping by them.

use std::sync::Arc;
use std::time::Duration;

use super::super::enc_v1::{EncError, EncryptOptions, EncryptionPlan, HeaderReader};
use super::super::{CipherParams, CryptoError, CryptoProvider, Key, OpenError, open};
use super::testdata;
use crate::metadata::Properties;

fn properties(value: serde_json::Value) -> Properties {
    Properties::from_json(&value).unwrap()
}

/// A folder of keys: every test PEM, a 256-bit and a 128-bit symmetric key (raw and
/// base64), restricted JWKs, a key in a subfolder.
fn key_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "rsa-2048.pem",
        "rsa-2048-public.pem",
        "ec-p256-sec1.pem",
        "ed25519.pem",
        "ec-p384.pem",
    ] {
        std::fs::write(dir.path().join(file), testdata(file)).unwrap();
    }
    std::fs::write(dir.path().join("aes256"), [7u8; 32]).unwrap();
    std::fs::write(dir.path().join("aes128.b64"), "AAECAwQFBgcICQoLDA0ODw==\n").unwrap();
    std::fs::write(
        dir.path().join("sign-only.json"),
        r#"{"kty":"oct","k":"AAECAwQFBgcICQoLDA0ODwABAgMEBQYHCAkKCwwNDg8","use":"sig"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("a256kw-only.json"),
        r#"{"kty":"oct","k":"AAECAwQFBgcICQoLDA0ODwABAgMEBQYHCAkKCwwNDg8","alg":"A256KW","key_ops":["wrapKey","unwrapKey"]}"#,
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("sub/inner.pem"),
        testdata("ec-p256-sec1.pem"),
    )
    .unwrap();
    dir
}

async fn local(dir: &tempfile::TempDir) -> Arc<dyn CryptoProvider> {
    open(
        "crypto.dapr.localstorage",
        "v1",
        &properties(serde_json::json!({ "path": dir.path() })),
    )
    .await
    .unwrap()
}

fn params<'a>(algorithm: &'a str, key_name: &'a str) -> CipherParams<'a> {
    CipherParams {
        algorithm,
        key_name,
        ..CipherParams::default()
    }
}

async fn open_error(component_type: &str, metadata: serde_json::Value) -> String {
    match open(component_type, "v1", &properties(metadata)).await {
        Ok(_) => panic!("opened"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn localstorage_metadata_is_checked() {
    let dir = key_folder();
    assert_eq!(
        open_error("crypto.dapr.localstorage", serde_json::json!({})).await,
        "failed to load metadata: metadata property 'path' is required"
    );
    let missing = dir.path().join("missing");
    assert_eq!(
        open_error(
            "crypto.dapr.localstorage",
            serde_json::json!({ "path": missing })
        )
        .await,
        format!(
            "failed to load metadata: could not stat path '{0}': stat {0}: no such file or directory",
            missing.display()
        )
    );
    let file = dir.path().join("aes256");
    assert_eq!(
        open_error(
            "crypto.dapr.localstorage",
            serde_json::json!({ "path": file })
        )
        .await,
        format!(
            "failed to load metadata: path '{}' is not a directory",
            file.display()
        )
    );
    assert!(matches!(
        open("crypto.dapr.unknown", "v1", &Properties::default()).await,
        Err(OpenError::Unknown { .. })
    ));
}

#[tokio::test]
async fn localstorage_serves_every_operation() {
    let dir = key_folder();
    let provider = local(&dir).await;

    // Public parts only; a symmetric key is "not found".
    let public = provider.get_key("rsa-2048.pem").await.unwrap();
    assert_eq!(
        public.to_public_pem().unwrap(),
        String::from_utf8(testdata("rsa-2048-public.pem")).unwrap()
    );
    assert_eq!(
        provider.get_key("aes256").await.unwrap_err(),
        CryptoError::KeyNotFound
    );
    assert!(provider.get_key("sub/inner.pem").await.is_ok());
    assert!(provider.get_key("/sub/inner.pem").await.is_ok());

    // Encrypt/decrypt, wrap/unwrap, sign/verify.
    let nonce = [3u8; 12];
    let sealed = provider
        .encrypt(
            b"hello",
            CipherParams {
                nonce: &nonce,
                ..params("A256GCM", "aes256")
            },
        )
        .await
        .unwrap();
    let opened = provider
        .decrypt(
            &sealed.ciphertext,
            CipherParams {
                nonce: &nonce,
                tag: &sealed.tag,
                ..params("A256GCM", "aes256")
            },
        )
        .await
        .unwrap();
    assert_eq!(opened, b"hello");
    for (algorithm, key_name) in [
        ("A256KW", "aes256"),
        ("A128KW", "aes128.b64"),
        ("RSA-OAEP-256", "rsa-2048.pem"),
        ("A256KW", "a256kw-only.json"),
    ] {
        let plaintext_key = Key::symmetric(vec![5; 32]);
        let wrapped = provider
            .wrap_key(&plaintext_key, params(algorithm, key_name))
            .await
            .unwrap();
        let unwrapped = provider
            .unwrap_key(&wrapped.ciphertext, params(algorithm, key_name))
            .await
            .unwrap();
        assert_eq!(unwrapped.to_bytes().unwrap(), vec![5; 32], "{algorithm}");
    }
    let digest = [9u8; 32];
    for (algorithm, key_name) in [
        ("PS256", "rsa-2048.pem"),
        ("ES256", "ec-p256-sec1.pem"),
        ("EdDSA", "ed25519.pem"),
    ] {
        let signature = provider.sign(&digest, algorithm, key_name).await.unwrap();
        assert!(
            provider
                .verify(&digest, &signature, algorithm, key_name)
                .await
                .unwrap()
        );
        assert!(
            !provider
                .verify(&[8; 32], &signature, algorithm, key_name)
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn localstorage_errors_are_upstreams() {
    let dir = key_folder();
    let provider = local(&dir).await;
    let wrap = |name: &'static str, algorithm: &'static str| {
        let provider = provider.clone();
        async move {
            provider
                .wrap_key(&Key::symmetric(vec![1; 32]), params(algorithm, name))
                .await
                .unwrap_err()
                .to_string()
        }
    };
    assert_eq!(
        wrap("../etc/passwd", "A256KW").await,
        "failed to retrieve the key encryption key: invalid key path: cannot contain '..'"
    );
    assert_eq!(
        wrap("nope", "A256KW").await,
        format!(
            "failed to retrieve the key encryption key: failed to load key 'nope': open {}: no such file or directory",
            dir.path().join("nope").display()
        )
    );
    assert_eq!(
        wrap("sign-only.json", "A256KW").await,
        "key cannot perform the 'wrapKey' operation"
    );
    assert_eq!(
        wrap("a256kw-only.json", "A128KW").await,
        "key cannot be used with algorithm 'A128KW'"
    );
    assert_eq!(
        wrap("rsa-2048.pem", "A256KW").await,
        "failed to encrypt data: key type mismatch"
    );
    assert_eq!(
        wrap("aes256", "RSA-OAEP-256").await,
        "failed to encrypt data: key type mismatch"
    );
    assert_eq!(
        wrap("aes256", "A256CBC-NOPAD").await,
        "failed to encrypt data: invalid nonce"
    );
    assert_eq!(
        provider.get_key("missing").await.unwrap_err().to_string(),
        format!(
            "failed to load key 'missing': open {}: no such file or directory",
            dir.path().join("missing").display()
        )
    );
    assert_eq!(
        provider
            .sign(&[1; 32], "ES256", "sub")
            .await
            .unwrap_err()
            .to_string(),
        format!(
            "failed to retrieve the key: failed to load key 'sub': read {}: is a directory",
            dir.path().join("sub").display()
        )
    );
    std::fs::write(
        dir.path().join("broken.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert!(
        provider
            .get_key("broken.pem")
            .await
            .unwrap_err()
            .to_string()
            .starts_with("failed to parse key from secret: ")
    );
}

/// Encrypts with `provider` wrapping the file key, then decrypts unwrapping it.
async fn enc_round_trip(
    provider: &dyn CryptoProvider,
    options: &EncryptOptions,
    decrypt_key: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, EncError> {
    let plan = EncryptionPlan::new(options)?;
    let algorithm = plan.algorithm();
    let wrapped = provider
        .wrap_key(
            &Key::symmetric(plan.file_key().to_vec()),
            CipherParams {
                nonce: algorithm.wrapping_iv(),
                ..params(algorithm.name(), &options.key_name)
            },
        )
        .await
        .map_err(|error| EncError::Wrap(error.to_string()))?;
    let (header, mut encryptor) = plan.seal(wrapped.ciphertext)?;
    let mut encrypted = header.to_vec();
    for segment in encryptor.push(plaintext)? {
        encrypted.extend_from_slice(&segment);
    }
    encrypted.extend(encryptor.finish()?.unwrap_or_default());

    let header = HeaderReader::new()
        .push(&encrypted)?
        .ok_or(EncError::TooLarge)?;
    let key_name = header.key_name(decrypt_key)?;
    let manifest = header.manifest().clone();
    let file_key = provider
        .unwrap_key(
            &manifest.wrapped_file_key,
            CipherParams {
                nonce: manifest.key_wrapping_algorithm.wrapping_iv(),
                ..params(manifest.key_wrapping_algorithm.name(), &key_name)
            },
        )
        .await
        .ok()
        .and_then(|key| key.to_bytes().ok());
    let (mut decryptor, rest) = header.open(file_key.as_deref())?;
    let mut out = Vec::new();
    for segment in decryptor.push(&rest)? {
        out.extend_from_slice(&segment);
    }
    out.extend(decryptor.finish()?.unwrap_or_default());
    Ok(out)
}

#[tokio::test]
async fn enc_v1_round_trips_with_real_key_wrapping() {
    let dir = key_folder();
    let provider = local(&dir).await;
    let plaintext: Vec<u8> = (0..200_000).map(|i| (i % 241) as u8).collect();
    let options = |key: &str, algorithm: &str, cipher: &str| EncryptOptions {
        key_name: key.to_owned(),
        algorithm: algorithm.to_owned(),
        cipher: Some(cipher.to_owned()),
        ..EncryptOptions::default()
    };
    for cipher in ["AES-GCM", "CHACHA20-POLY1305"] {
        for (key, algorithm) in [
            ("rsa-2048.pem", "RSA"),
            ("aes256", "AES"),
            ("aes256", "A256KW"),
        ] {
            let out = enc_round_trip(
                provider.as_ref(),
                &options(key, algorithm, cipher),
                "",
                &plaintext,
            )
            .await
            .unwrap();
            assert!(out == plaintext, "{key} {algorithm} {cipher}");
        }
    }
    // Encrypting with the public key, decrypting with the private one.
    let mut split = options("rsa-2048-public.pem", "RSA-OAEP-256", "AES-GCM");
    split.decryption_key_name = "rsa-2048.pem".to_owned();
    assert_eq!(
        enc_round_trip(provider.as_ref(), &split, "", b"abc")
            .await
            .unwrap(),
        b"abc"
    );
    // The wrong key to decrypt shows as a MAC failure, as upstream.
    assert_eq!(
        enc_round_trip(
            provider.as_ref(),
            &options("aes256", "AES", "AES-GCM"),
            "a256kw-only.json",
            b"abc"
        )
        .await,
        Err(EncError::Signature)
    );
    // CBC key wrapping (which upstream's components refuse without an IV) works with the
    // scheme's fixed IV; a key of another size is refused.
    assert_eq!(
        enc_round_trip(
            provider.as_ref(),
            &options("aes128.b64", "A128CBC-NOPAD", "AES-GCM"),
            "",
            &plaintext
        )
        .await
        .unwrap(),
        plaintext
    );
    assert!(
        enc_round_trip(
            provider.as_ref(),
            &options("aes256", "A128CBC-NOPAD", "AES-GCM"),
            "",
            b"abc"
        )
        .await
        .unwrap_err()
        .to_string()
        .starts_with("failed to wrap the file key: ")
    );
}

#[tokio::test]
async fn jwks_loads_inline_base64_and_files() {
    let set = serde_json::json!({"keys": [
        {"kty": "oct", "kid": "sym", "k": "AAECAwQFBgcICQoLDA0ODwABAgMEBQYHCAkKCwwNDg8"},
        serde_json::from_str::<serde_json::Value>(
            &Key::parse(&testdata("ec-p256-public.pem"), None).unwrap().to_public_jwk().unwrap()
        ).unwrap(),
    ]});
    let mut set_with_kid = set.clone();
    set_with_kid["keys"][1]["kid"] = "ec".into();
    let text = set_with_kid.to_string();
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&text);
    for jwks in [text.clone(), encoded] {
        let provider = open(
            "crypto.dapr.jwks",
            "v1",
            &properties(serde_json::json!({ "jwks": jwks })),
        )
        .await
        .unwrap();
        assert!(provider.get_key("ec").await.is_ok());
        assert_eq!(
            provider.get_key("sym").await.unwrap_err(),
            CryptoError::KeyNotFound
        );
        assert_eq!(
            provider.get_key("other").await.unwrap_err(),
            CryptoError::KeyNotFound
        );
        let wrapped = provider
            .wrap_key(&Key::symmetric(vec![1; 32]), params("A256KW", "sym"))
            .await
            .unwrap();
        assert_eq!(wrapped.ciphertext.len(), 40);
        assert_eq!(
            provider
                .wrap_key(&Key::symmetric(vec![1; 32]), params("A256KW", "nope"))
                .await
                .unwrap_err()
                .to_string(),
            "failed to retrieve the key encryption key: key not found"
        );
    }

    // A file, read again when it changes.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, &text).unwrap();
    let provider = open(
        "crypto.dapr.jwks",
        "v1",
        &properties(serde_json::json!({ "jwks": file })),
    )
    .await
    .unwrap();
    assert!(provider.get_key("ec").await.is_ok());
    let renamed = text.replace("\"ec\"", "\"ec2\"") + " ";
    std::fs::write(&file, renamed).unwrap();
    assert!(provider.get_key("ec2").await.is_ok());
    assert_eq!(
        provider.get_key("ec").await.unwrap_err(),
        CryptoError::KeyNotFound
    );
    // A broken file keeps the keys already loaded.
    std::fs::write(&file, "{broken").unwrap();
    assert!(provider.get_key("ec2").await.is_ok());
}

#[tokio::test]
async fn jwks_metadata_errors_are_upstreams() {
    assert_eq!(
        open_error("crypto.dapr.jwks", serde_json::json!({})).await,
        "empty metadata properties"
    );
    assert_eq!(
        open_error(
            "crypto.dapr.jwks",
            serde_json::json!({"requestTimeout": "1s"})
        )
        .await,
        "failed to load metadata: metadata property 'jwks' is required"
    );
    assert_eq!(
        open_error("crypto.dapr.jwks", serde_json::json!({"jwks": "not json"})).await,
        "failed to init cache: failed to parse property 'location': not a URL, path to local file, or JSON value (optionally base64-encoded)"
    );
    assert!(
        open_error(
            "crypto.dapr.jwks",
            serde_json::json!({"jwks": "{}", "requestTimeout": "soon"})
        )
        .await
        .starts_with("failed to load metadata: ")
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, "[1]").unwrap();
    assert!(
        open_error("crypto.dapr.jwks", serde_json::json!({"jwks": file}))
            .await
            .starts_with("failed to init cache: failed to parse JWKS file: ")
    );
    assert!(
        open_error(
            "crypto.dapr.jwks",
            serde_json::json!({"jwks": "http://127.0.0.1:1/jwks", "requestTimeout": "2s"})
        )
        .await
        .starts_with("failed to init cache: failed to fetch JWKS: ")
    );
}

#[tokio::test]
async fn jwks_from_a_url_refreshes_after_the_interval() {
    let served = Arc::new(std::sync::Mutex::new(
        serde_json::json!({"keys": [{"kty": "oct", "kid": "one", "k": "AQIDBAUGBwgJCgsMDQ4PEA"}]}),
    ));
    let state = served.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let state = state.clone();
            async move { axum::Json(state.lock().unwrap().clone()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let provider = open(
        "crypto.dapr.jwks",
        "v1",
        &properties(serde_json::json!({
            "jwks": format!("http://{address}/jwks"),
            "minRefreshInterval": "1s",
        })),
    )
    .await
    .unwrap();
    let wrap = |name: &'static str| {
        let provider = provider.clone();
        async move {
            provider
                .wrap_key(&Key::symmetric(vec![1; 16]), params("A128KW", name))
                .await
                .is_ok()
        }
    };
    assert!(wrap("one").await);
    *served.lock().unwrap() =
        serde_json::json!({"keys": [{"kty": "oct", "kid": "two", "k": "AQIDBAUGBwgJCgsMDQ4PEA"}]});
    assert!(!wrap("two").await, "refreshed before the interval");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(wrap("two").await);
    assert!(!wrap("one").await);
    server.abort();
}
