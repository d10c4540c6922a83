//! The cryptography API against the real sidecar: the official Python SDK encrypts and
//! decrypts multi-megabyte streams with every key-wrapping algorithm and both ciphers, on
//! `crypto.dapr.localstorage` (PEM and JWK files) and `crypto.dapr.jwks` (an inline set);
//! data encrypted over HTTP decrypts over gRPC and the reverse; the SDK's generated stub
//! drives every `Subtle*` call; tampered and cut streams are refused; and tables of bad
//! input over HTTP and gRPC get upstream's errors without hurting the sidecar.

use std::path::Path;

use ::http::Method;
use base64::Engine as _;
use bytes::Bytes;
use dapr_proto::common::StreamPayload;
use dapr_proto::runtime::dapr_client::DaprClient;
use dapr_proto::runtime::{
    DecryptRequest, DecryptRequestOptions, EncryptRequest, EncryptRequestOptions,
};
use dapr_testkit::{Daprd, http};
use serde_json::{Value, json};

use crate::support::run_sdk;

/// The component test keys (generated with openssl, see the components crate).
fn test_key(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../components/src/crypto/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

/// A JWK of a symmetric key of `len` bytes (`first`, `first + 1`, ...).
fn oct_jwk(kid: &str, first: u8, len: u8) -> Value {
    let key: Vec<u8> = (0..len).map(|offset| first.wrapping_add(offset)).collect();
    json!({
        "kty": "oct",
        "kid": kid,
        "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
    })
}

/// A sidecar with `localkeys` (a folder of PEM and JWK files) and `jwkskeys` (an inline
/// set), plus the folder it reads.
async fn crypto_sidecar(dir: &Path) -> Daprd {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for name in [
        "rsa-2048.pem",
        "ec-p256-sec1.pem",
        "ed25519.pem",
        "ec-p384.pem",
    ] {
        std::fs::write(keys.join(name), test_key(name)).unwrap();
    }
    for (name, len) in [
        ("aes128.json", 16),
        ("aes192.json", 24),
        ("aes256.json", 32),
    ] {
        std::fs::write(keys.join(name), oct_jwk(name, 1, len).to_string()).unwrap();
    }
    let resources = dir.join("resources");
    std::fs::create_dir_all(&resources).unwrap();
    std::fs::write(
        resources.join("localkeys.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: localkeys\nspec:\n  \
             type: crypto.dapr.localstorage\n  version: v1\n  metadata:\n  - name: path\n    \
             value: \"{}\"\n",
            keys.display()
        ),
    )
    .unwrap();
    let jwks = json!({ "keys": [oct_jwk("jwks-aes", 101, 32)] }).to_string();
    std::fs::write(
        resources.join("jwkskeys.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: jwkskeys\nspec:\n  \
             type: crypto.dapr.jwks\n  version: v1\n  metadata:\n  - name: jwks\n    \
             value: '{jwks}'\n"
        ),
    )
    .unwrap();
    Daprd::builder("cryptographer")
        .resources_path(&resources)
        .arg("--max-body-size")
        .arg("16Mi")
        .start()
        .await
        .unwrap()
}

const SDK_STREAMS: &str = r#"
import os, urllib.request, urllib.error
import grpc
from dapr.clients import DaprClient
from dapr.clients.grpc._crypto import EncryptOptions, DecryptOptions

http_base = "http://127.0.0.1:" + os.environ["DAPR_HTTP_PORT"]

def http_put(path, body, headers):
    request = urllib.request.Request(http_base + path, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()

big = os.urandom(5 * 1024 * 1024 + 4321)
small = os.urandom(200_003)
cases = [
    ("localkeys", "rsa-2048.pem", "RSA", "aes-gcm", big),
    ("localkeys", "rsa-2048.pem", "RSA-OAEP-256", "chacha20-poly1305", small),
    ("localkeys", "aes256.json", "A256KW", "aes-gcm", big),
    ("localkeys", "aes256.json", "AES", "chacha20-poly1305", small),
    ("localkeys", "aes128.json", "A128CBC-NOPAD", "aes-gcm", small),
    ("localkeys", "aes192.json", "A192CBC-NOPAD", "aes-gcm", small),
    ("localkeys", "aes256.json", "A256CBC-NOPAD", "chacha20-poly1305", small),
    ("jwkskeys", "jwks-aes", "a256kw", "aes-gcm", small),
]

with DaprClient() as client:
    for component, key, algorithm, cipher, data in cases:
        sealed = client.encrypt(data, EncryptOptions(
            component_name=component, key_name=key, key_wrap_algorithm=algorithm,
            data_encryption_cipher=cipher)).read()
        assert sealed.startswith(b"dapr.io/enc/v1\n"), sealed[:40]
        assert len(sealed) > len(data)
        assert data not in sealed
        opened = client.decrypt(sealed, DecryptOptions(component_name=component)).read()
        assert opened == data, (component, key, algorithm, cipher)
        print("round trip", component, key, algorithm, cipher, len(data))

    # The key name left out of the header must be given to decrypt.
    sealed = client.encrypt(small, EncryptOptions(
        component_name="localkeys", key_name="aes256.json", key_wrap_algorithm="A256KW",
        omit_decryption_key_name=True)).read()
    assert b"aes256.json" not in sealed.split(b"\n")[1]
    try:
        client.decrypt(sealed, DecryptOptions(component_name="localkeys")).read()
        raise SystemExit("decrypted without a key name")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INTERNAL, error
        assert "does not contain a key name" in error.details(), error.details()
    assert client.decrypt(sealed, DecryptOptions(
        component_name="localkeys", key_name="aes256.json")).read() == small

    # A different key name written into the header.
    sealed = client.encrypt(small, EncryptOptions(
        component_name="localkeys", key_name="rsa-2048.pem", key_wrap_algorithm="RSA",
        decryption_key_name="rsa-2048.pem")).read()
    assert b'"k":"rsa-2048.pem"' in sealed.split(b"\n")[1]
    assert client.decrypt(sealed, DecryptOptions(component_name="localkeys")).read() == small

    # Tampering anywhere is refused: header, first segment, last segment, a cut-off end.
    sealed = client.encrypt(big, EncryptOptions(
        component_name="localkeys", key_name="aes256.json", key_wrap_algorithm="AES")).read()
    header_end = sealed.index(b"\n", sealed.index(b"\n", sealed.index(b"\n") + 1) + 1) + 1
    def flipped(at):
        return sealed[:at] + bytes([sealed[at] ^ 1]) + sealed[at + 1:]
    for label, broken in [
        ("header", flipped(30)),
        ("first segment", flipped(header_end + 10)),
        ("last segment", flipped(len(sealed) - 3)),
        ("cut", sealed[:-1000]),
        ("cut at a segment boundary", sealed[:header_end + 65552]),
        ("one extra byte", sealed + b"x"),
    ]:
        try:
            out = client.decrypt(broken, DecryptOptions(component_name="localkeys")).read()
            raise SystemExit(f"{label}: accepted, {len(out)} bytes")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INTERNAL, (label, error)
            assert error.details().startswith("failed to perform operation: "), (label, error.details())
            print("refused", label, ":", error.details())

    # The wrong key: the file key cannot be recovered, the header check fails.
    sealed = client.encrypt(small, EncryptOptions(
        component_name="localkeys", key_name="aes256.json", key_wrap_algorithm="AES")).read()
    try:
        client.decrypt(sealed, DecryptOptions(component_name="jwkskeys", key_name="jwks-aes")).read()
        raise SystemExit("decrypted with another key")
    except grpc.RpcError as error:
        assert "failed to validate the document's signature" in error.details(), error.details()

    # HTTP and gRPC share the format: each decrypts what the other encrypted.
    status, sealed = http_put("/v1.0-alpha1/crypto/localkeys/encrypt", big, {
        "dapr-key-name": "rsa-2048.pem", "dapr-key-wrap-algorithm": "rsa-oaep-256",
        "dapr-data-encryption-cipher": "chacha20-poly1305"})
    assert status == 200, (status, sealed[:200])
    assert client.decrypt(sealed, DecryptOptions(component_name="localkeys")).read() == big
    sealed = client.encrypt(big, EncryptOptions(
        component_name="jwkskeys", key_name="jwks-aes", key_wrap_algorithm="A256KW")).read()
    status, opened = http_put("/v1.0-alpha1/crypto/jwkskeys/decrypt", sealed, {})
    assert status == 200, (status, opened[:200])
    assert opened == big
    status, body = http_put("/v1.0-alpha1/crypto/jwkskeys/decrypt", sealed[:-1], {})
    assert status == 500 and b"error processing segment 80" in body, (status, body)
    print("crypto streams ok")
"#;

#[tokio::test]
async fn sdk_streams_round_trip_every_algorithm_and_refuse_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let daprd = crypto_sidecar(dir.path()).await;
    let output = run_sdk(&daprd, SDK_STREAMS, &[]).await;
    assert!(output.contains("crypto streams ok"), "{output}");
    assert_eq!(output.matches("round trip").count(), 8, "{output}");
    assert_eq!(output.matches("refused").count(), 6, "{output}");
}

const SDK_SUBTLE: &str = r#"
import os, json, hashlib
import grpc
from dapr.proto.runtime.v1 import crypto_pb2 as api, dapr_pb2_grpc

channel = grpc.insecure_channel("127.0.0.1:" + os.environ["DAPR_GRPC_PORT"])
stub = dapr_pb2_grpc.DaprStub(channel)
C = "localkeys"

# The public part of asymmetric keys, as PEM and as a JWK; none for a symmetric key.
pem = stub.SubtleGetKeyAlpha1(api.SubtleGetKeyRequest(component_name=C, name="rsa-2048.pem"))
assert pem.name == "rsa-2048.pem"
assert pem.public_key.startswith("-----BEGIN PUBLIC KEY-----"), pem.public_key
jwk = json.loads(stub.SubtleGetKeyAlpha1(api.SubtleGetKeyRequest(
    component_name=C, name="ec-p256-sec1.pem", format=api.SubtleGetKeyRequest.JSON)).public_key)
assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and "d" not in jwk, jwk
try:
    stub.SubtleGetKeyAlpha1(api.SubtleGetKeyRequest(component_name=C, name="aes256.json"))
    raise SystemExit("a symmetric key was returned")
except grpc.RpcError as error:
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "failed to retrieve key aes256.json" in error.details(), error.details()

# AEAD with associated data, and RSA-OAEP.
nonce = os.urandom(12)
sealed = stub.SubtleEncryptAlpha1(api.SubtleEncryptRequest(component_name=C, plaintext=b"secret",
    algorithm="A256GCM", key_name="aes256.json", nonce=nonce, associated_data=b"ad"))
assert len(sealed.tag) == 16
opened = stub.SubtleDecryptAlpha1(api.SubtleDecryptRequest(component_name=C, ciphertext=sealed.ciphertext,
    algorithm="A256GCM", key_name="aes256.json", nonce=nonce, tag=sealed.tag, associated_data=b"ad"))
assert opened.plaintext == b"secret"
try:
    stub.SubtleDecryptAlpha1(api.SubtleDecryptRequest(component_name=C, ciphertext=sealed.ciphertext,
        algorithm="A256GCM", key_name="aes256.json", nonce=nonce, tag=sealed.tag, associated_data=b"xx"))
    raise SystemExit("wrong associated data accepted")
except grpc.RpcError as error:
    assert error.details() == "failed to perform operation: failed to decrypt", error.details()
sealed = stub.SubtleEncryptAlpha1(api.SubtleEncryptRequest(component_name=C, plaintext=b"secret",
    algorithm="RSA-OAEP", key_name="rsa-2048.pem"))
assert stub.SubtleDecryptAlpha1(api.SubtleDecryptRequest(component_name=C, ciphertext=sealed.ciphertext,
    algorithm="RSA-OAEP", key_name="rsa-2048.pem")).plaintext == b"secret"

# Key wrapping: a raw symmetric key round trips through AES-KW and RSA-OAEP-256.
data_key = os.urandom(32)
for algorithm, key in [("A256KW", "aes256.json"), ("RSA-OAEP-256", "rsa-2048.pem")]:
    wrapped = stub.SubtleWrapKeyAlpha1(api.SubtleWrapKeyRequest(component_name=C,
        plaintext_key=data_key, algorithm=algorithm, key_name=key))
    assert wrapped.wrapped_key and wrapped.wrapped_key != data_key
    unwrapped = stub.SubtleUnwrapKeyAlpha1(api.SubtleUnwrapKeyRequest(component_name=C,
        wrapped_key=wrapped.wrapped_key, algorithm=algorithm, key_name=key))
    assert unwrapped.plaintext_key == data_key, algorithm

# Signatures: made and checked here; a changed digest fails.
for algorithm, key, digest in [
    ("PS256", "rsa-2048.pem", hashlib.sha256(b"msg").digest()),
    ("RS256", "rsa-2048.pem", hashlib.sha256(b"msg").digest()),
    ("ES256", "ec-p256-sec1.pem", hashlib.sha256(b"msg").digest()),
    ("ES384", "ec-p384.pem", hashlib.sha384(b"msg").digest()),
    ("EdDSA", "ed25519.pem", b"msg"),
]:
    signature = stub.SubtleSignAlpha1(api.SubtleSignRequest(component_name=C, digest=digest,
        algorithm=algorithm, key_name=key)).signature
    assert stub.SubtleVerifyAlpha1(api.SubtleVerifyRequest(component_name=C, digest=digest,
        algorithm=algorithm, key_name=key, signature=signature)).valid, algorithm
    other = bytes([digest[0] ^ 1]) + digest[1:]
    assert not stub.SubtleVerifyAlpha1(api.SubtleVerifyRequest(component_name=C, digest=other,
        algorithm=algorithm, key_name=key, signature=signature)).valid, algorithm
    print("signed", algorithm)

# Unknown component and no key.
for call, request in [
    (stub.SubtleEncryptAlpha1, api.SubtleEncryptRequest(component_name="nope", plaintext=b"x",
        algorithm="A256GCM", key_name="aes256.json")),
    (stub.SubtleSignAlpha1, api.SubtleSignRequest(component_name=C, digest=b"x" * 32,
        algorithm="ES256", key_name="missing.pem")),
]:
    try:
        call(request)
        raise SystemExit("accepted")
    except grpc.RpcError as error:
        print("refused", error.code(), error.details())
print("subtle ok")
"#;

#[tokio::test]
async fn sdk_stub_drives_every_subtle_operation() {
    let dir = tempfile::tempdir().unwrap();
    let daprd = crypto_sidecar(dir.path()).await;
    let output = run_sdk(&daprd, SDK_SUBTLE, &[]).await;
    assert!(output.contains("subtle ok"), "{output}");
    assert!(
        output.contains("refused StatusCode.INVALID_ARGUMENT crypto provider nope not found"),
        "{output}"
    );
    assert!(
        output.contains("refused StatusCode.INTERNAL failed to perform operation: failed to sign"),
        "{output}"
    );
    assert_eq!(output.matches("signed").count(), 5, "{output}");
}

/// A PUT to the crypto HTTP API.
async fn put(daprd: &Daprd, path: &str, headers: &[(&str, &str)], body: &[u8]) -> http::Response {
    http::request(
        Method::PUT,
        &format!("{}{path}", daprd.base_url()),
        headers,
        Bytes::copy_from_slice(body),
    )
    .await
    .unwrap()
}

fn error_of(response: &http::Response) -> (u16, String, String) {
    let body: Value = response.json().unwrap_or_else(|_| json!({}));
    (
        response.status.as_u16(),
        body["errorCode"].as_str().unwrap_or_default().to_owned(),
        body["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// One bad HTTP request: label, path, headers, body, and the status, `errorCode` and start
/// of the message expected.
type HttpCase = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    (u16, &'static str, &'static str),
);

#[tokio::test]
async fn http_subtle_calls_and_bad_input_get_upstreams_errors() {
    let dir = tempfile::tempdir().unwrap();
    let daprd = crypto_sidecar(dir.path()).await;
    let base = daprd.base_url();
    let b64 = |data: &[u8]| base64::engine::general_purpose::STANDARD.encode(data);

    // Subtle over HTTP: protojson in, protojson out.
    let sealed = http::post_json(
        &format!("{base}/v1.0-alpha1/subtlecrypto/localkeys/encrypt"),
        &json!({"plaintext": b64(b"hello"), "algorithm": "A128CBC", "keyName": "aes128.json",
                "nonce": b64(&[7u8; 16])}),
    )
    .await
    .unwrap();
    assert_eq!(sealed.status, 200, "{}", sealed.text());
    let sealed: Value = sealed.json().unwrap();
    let opened = http::post_json(
        &format!("{base}/v1.0-alpha1/subtlecrypto/localkeys/decrypt"),
        &json!({"ciphertext": sealed["ciphertext"], "algorithm": "A128CBC",
                "key_name": "aes128.json", "nonce": b64(&[7u8; 16])}),
    )
    .await
    .unwrap();
    assert_eq!(
        opened.json::<Value>().unwrap(),
        json!({"plaintext": b64(b"hello")})
    );
    let key = http::post_json(
        &format!("{base}/v1.0-alpha1/subtlecrypto/localkeys/getkey"),
        &json!({"name": "ed25519.pem", "format": "JSON"}),
    )
    .await
    .unwrap();
    let key: Value = key.json().unwrap();
    assert_eq!(key["name"], "ed25519.pem");
    let jwk: Value = serde_json::from_str(key["publicKey"].as_str().unwrap()).unwrap();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    let verify = http::post_json(
        &format!("{base}/v1.0-alpha1/subtlecrypto/localkeys/verify"),
        &json!({"digest": b64(b"m"), "signature": b64(&[0u8; 64]), "algorithm": "EdDSA",
                "keyName": "ed25519.pem"}),
    )
    .await
    .unwrap();
    assert_eq!(
        verify.json::<Value>().unwrap(),
        json!({}),
        "false is left out"
    );
    let malformed = http::post_json(
        &format!("{base}/v1.0-alpha1/subtlecrypto/localkeys/sign"),
        &json!({"digest": "not base64!"}),
    )
    .await
    .unwrap();
    assert_eq!(error_of(&malformed).1, "ERR_MALFORMED_REQUEST");

    let sealed = put(
        &daprd,
        "/v1.0-alpha1/crypto/localkeys/encrypt",
        &[
            ("dapr-key-name", "aes256.json"),
            ("dapr-key-wrap-algorithm", "A256KW"),
        ],
        b"some data",
    )
    .await;
    assert_eq!(sealed.status, 200);
    assert_eq!(
        sealed.header("content-type"),
        Some("application/octet-stream")
    );
    let sealed = sealed.body.to_vec();
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;

    let wrap = [
        ("dapr-key-name", "aes256.json"),
        ("dapr-key-wrap-algorithm", "A256KW"),
    ];
    let cases: Vec<HttpCase> = vec![
        (
            "unknown component",
            "/v1.0-alpha1/crypto/nope/encrypt",
            wrap.to_vec(),
            b"x".to_vec(),
            (
                400,
                "ERR_CRYPTO_PROVIDER_NOT_FOUND",
                "crypto provider nope not found",
            ),
        ),
        (
            "no key name",
            "/v1.0-alpha1/crypto/localkeys/encrypt",
            vec![("dapr-key-wrap-algorithm", "A256KW")],
            b"x".to_vec(),
            (
                400,
                "ERR_BAD_REQUEST",
                "invalid request: missing header 'dapr-key-name'",
            ),
        ),
        (
            "no algorithm",
            "/v1.0-alpha1/crypto/localkeys/encrypt",
            vec![("dapr-key-name", "aes256.json")],
            b"x".to_vec(),
            (
                400,
                "ERR_BAD_REQUEST",
                "invalid request: missing header 'dapr-key-wrap-algorithm'",
            ),
        ),
        (
            "unknown algorithm",
            "/v1.0-alpha1/crypto/localkeys/encrypt",
            vec![
                ("dapr-key-name", "aes256.json"),
                ("dapr-key-wrap-algorithm", "ROT13"),
            ],
            b"x".to_vec(),
            (
                500,
                "ERR_CRYPTO",
                "failed to perform operation: option Algorithm is not valid: algorithm ROT13 is not supported",
            ),
        ),
        (
            "unknown cipher",
            "/v1.0-alpha1/crypto/localkeys/encrypt",
            vec![
                ("dapr-key-name", "aes256.json"),
                ("dapr-key-wrap-algorithm", "A256KW"),
                ("dapr-data-encryption-cipher", "des"),
            ],
            b"x".to_vec(),
            (
                500,
                "ERR_CRYPTO",
                "failed to perform operation: option Cipher is not valid: cipher DES is not supported",
            ),
        ),
        (
            "wrong key name",
            "/v1.0-alpha1/crypto/localkeys/encrypt",
            vec![
                ("dapr-key-name", "missing.json"),
                ("dapr-key-wrap-algorithm", "A256KW"),
            ],
            b"x".to_vec(),
            (
                500,
                "ERR_CRYPTO",
                "failed to perform operation: failed to wrap the file key",
            ),
        ),
        (
            "key that cannot wrap this way",
            "/v1.0-alpha1/crypto/localkeys/encrypt",
            vec![
                ("dapr-key-name", "ed25519.pem"),
                ("dapr-key-wrap-algorithm", "RSA"),
            ],
            b"x".to_vec(),
            (
                500,
                "ERR_CRYPTO",
                "failed to perform operation: failed to wrap the file key",
            ),
        ),
        (
            "not encrypted data",
            "/v1.0-alpha1/crypto/localkeys/decrypt",
            vec![],
            b"plain text, no header\n".to_vec(),
            (
                500,
                "ERR_CRYPTO",
                "failed to perform operation: invalid header",
            ),
        ),
        (
            "empty body",
            "/v1.0-alpha1/crypto/localkeys/decrypt",
            vec![],
            Vec::new(),
            (500, "ERR_CRYPTO", "failed to perform operation: "),
        ),
        (
            "truncated header",
            "/v1.0-alpha1/crypto/localkeys/decrypt",
            vec![],
            sealed[..40].to_vec(),
            (500, "ERR_CRYPTO", "failed to perform operation: "),
        ),
        (
            "truncated stream",
            "/v1.0-alpha1/crypto/localkeys/decrypt",
            vec![],
            sealed[..sealed.len() - 5].to_vec(),
            (500, "ERROR", "error processing segment 0"),
        ),
        (
            "tampered",
            "/v1.0-alpha1/crypto/localkeys/decrypt",
            vec![],
            tampered,
            (500, "ERROR", "error processing segment 0"),
        ),
        (
            "wrong decryption key",
            "/v1.0-alpha1/crypto/localkeys/decrypt",
            vec![("dapr-key-name", "aes192.json")],
            sealed.clone(),
            (
                500,
                "ERR_CRYPTO",
                "failed to perform operation: failed to validate the document's signature",
            ),
        ),
    ];
    for (label, path, headers, body, (status, code, message)) in cases {
        let response = put(&daprd, path, &headers, &body).await;
        let (got_status, got_code, got_message) = error_of(&response);
        assert_eq!(
            (got_status, got_code.as_str()),
            (status, code),
            "{label}: {got_message}"
        );
        assert!(
            got_message.starts_with(message),
            "{label}: {got_message:?} does not start with {message:?}"
        );
    }
    // The sidecar is unharmed and still decrypts.
    let opened = put(
        &daprd,
        "/v1.0-alpha1/crypto/localkeys/decrypt",
        &[],
        &sealed,
    )
    .await;
    assert_eq!(opened.body.as_ref(), b"some data");
}

#[tokio::test]
async fn sidecar_without_crypto_components_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let daprd = Daprd::builder("plain")
        .resources_path(dir.path())
        .start()
        .await
        .unwrap();
    let response = put(&daprd, "/v1.0-alpha1/crypto/any/encrypt", &[], b"x").await;
    assert_eq!(
        error_of(&response),
        (
            500,
            "ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED".to_owned(),
            "crypto providers not configured".to_owned()
        )
    );
}

/// Runs an `EncryptAlpha1` stream of `messages` and returns the status it ends with.
async fn encrypt_stream(daprd: &Daprd, messages: Vec<EncryptRequest>) -> tonic::Status {
    let mut client = DaprClient::connect(daprd.grpc_endpoint()).await.unwrap();
    let outcome = async {
        let mut replies = client
            .encrypt_alpha1(futures::stream::iter(messages))
            .await?
            .into_inner();
        while replies.message().await?.is_some() {}
        Ok::<(), tonic::Status>(())
    };
    outcome.await.expect_err("the stream was accepted")
}

fn chunk(data: &[u8], seq: u64) -> Option<StreamPayload> {
    Some(StreamPayload {
        data: data.to_vec(),
        seq,
    })
}

#[tokio::test]
async fn grpc_streams_check_options_sequence_and_framing() {
    let dir = tempfile::tempdir().unwrap();
    let daprd = crypto_sidecar(dir.path()).await;
    let options = |component: &str, key: &str, algorithm: &str| {
        Some(EncryptRequestOptions {
            component_name: component.to_owned(),
            key_name: key.to_owned(),
            key_wrap_algorithm: algorithm.to_owned(),
            ..EncryptRequestOptions::default()
        })
    };
    let good = || options("localkeys", "aes256.json", "A256KW");
    let cases: Vec<(&str, Vec<EncryptRequest>, tonic::Code, &str)> = vec![
        (
            "no options",
            vec![EncryptRequest {
                options: None,
                payload: chunk(b"x", 0),
            }],
            tonic::Code::InvalidArgument,
            "invalid request: first message does not contain the required options",
        ),
        (
            "no key name",
            vec![EncryptRequest {
                options: options("localkeys", "", "A256KW"),
                payload: None,
            }],
            tonic::Code::InvalidArgument,
            "invalid request: missing property 'keyName' in the options message",
        ),
        (
            "no algorithm",
            vec![EncryptRequest {
                options: options("localkeys", "aes256.json", ""),
                payload: None,
            }],
            tonic::Code::InvalidArgument,
            "invalid request: missing property 'keyWrapAlgorithm' in the options message",
        ),
        (
            "no component name",
            vec![EncryptRequest {
                options: options("", "aes256.json", "A256KW"),
                payload: None,
            }],
            tonic::Code::InvalidArgument,
            "invalid request: missing component name",
        ),
        (
            "unknown component",
            vec![EncryptRequest {
                options: options("nope", "aes256.json", "A256KW"),
                payload: None,
            }],
            tonic::Code::InvalidArgument,
            "crypto provider nope not found",
        ),
        (
            "sequence skips",
            vec![
                EncryptRequest {
                    options: good(),
                    payload: chunk(b"a", 0),
                },
                EncryptRequest {
                    options: None,
                    payload: chunk(b"b", 2),
                },
            ],
            tonic::Code::Internal,
            "failed to perform operation: invalid sequence number received: 2 (expected: 1)",
        ),
        (
            "options repeated",
            vec![
                EncryptRequest {
                    options: good(),
                    payload: chunk(b"a", 0),
                },
                EncryptRequest {
                    options: good(),
                    payload: chunk(b"b", 1),
                },
            ],
            tonic::Code::Internal,
            "failed to perform operation: options found in non-leading message",
        ),
        (
            "nothing sent",
            vec![],
            tonic::Code::Internal,
            "failed to perform operation: error receiving the first message: EOF",
        ),
    ];
    for (label, messages, code, message) in cases {
        let status = encrypt_stream(&daprd, messages).await;
        assert_eq!(status.code(), code, "{label}: {}", status.message());
        assert_eq!(status.message(), message, "{label}");
    }

    // A decryption stream whose input is cut mid-segment ends with an error, after the
    // chunks it could check.
    let mut client = DaprClient::connect(daprd.grpc_endpoint()).await.unwrap();
    let data = vec![42u8; 200_000];
    let mut sealed = Vec::new();
    let mut replies = client
        .encrypt_alpha1(futures::stream::iter(vec![EncryptRequest {
            options: good(),
            payload: chunk(&data, 0),
        }]))
        .await
        .unwrap()
        .into_inner();
    let mut seq = 0;
    while let Some(reply) = replies.message().await.unwrap() {
        let payload = reply.payload.unwrap();
        assert_eq!(payload.seq, seq);
        seq += 1;
        sealed.extend_from_slice(&payload.data);
    }
    let cut = &sealed[..sealed.len() - 70_000];
    let messages: Vec<DecryptRequest> = cut
        .chunks(10_000)
        .enumerate()
        .map(|(index, piece)| DecryptRequest {
            options: (index == 0).then(|| DecryptRequestOptions {
                component_name: "localkeys".to_owned(),
                key_name: String::new(),
            }),
            payload: chunk(piece, index as u64),
        })
        .collect();
    let mut replies = client
        .decrypt_alpha1(futures::stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    let mut opened = Vec::new();
    let status = loop {
        match replies.message().await {
            Ok(Some(reply)) => opened.extend_from_slice(&reply.payload.unwrap().data),
            Ok(None) => panic!("a cut stream decrypted to its end"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::Internal);
    assert!(
        status
            .message()
            .starts_with("failed to perform operation: "),
        "{}",
        status.message()
    );
    assert!(opened.len() < data.len() && data.starts_with(&opened));
}
