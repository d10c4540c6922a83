//! Tests of the crypto components: the algorithms against published vectors and against
//! keys, ciphertexts and signatures made by OpenSSL (`testdata/`), key reading and
//! writing, the key-use checks, both components, and the `dapr.io/enc/v1` format with
//! real key wrapping.

mod algorithms;
mod components;
mod keys;

use super::Key;

/// The bytes of hex text.
fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A file of `testdata/`.
fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/src/crypto/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A key of `testdata/`.
fn key(name: &str) -> Key {
    Key::parse(&testdata(name), None).unwrap()
}

/// `testdata/openssl-vectors.json`: made with OpenSSL 3 from the test keys: the file key
/// 0x00..0x1f encrypted with RSA-OAEP-256, RSA-OAEP (SHA-1) and RSA1_5 to
/// `rsa-2048-public.pem`, and signatures over "hello dapr" (its SHA-256 digest for RS256,
/// PS256 with the longest and with a digest-long salt, ES256 with `ec-p256-sec1.pem`; its
/// SHA-384 digest for ES384 with `ec-p384.pem`; the message for EdDSA with `ed25519.pem`).
fn openssl(name: &str) -> Vec<u8> {
    let vectors: serde_json::Value =
        serde_json::from_slice(&testdata("openssl-vectors.json")).unwrap();
    hex(vectors[name].as_str().unwrap())
}
