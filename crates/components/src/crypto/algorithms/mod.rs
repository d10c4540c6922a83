//! The cryptographic operations of dapr/kit's `crypto` package that upstream's local
//! crypto components perform with a [`Key`], by JOSE algorithm name:
//!
//! - symmetric encryption and key wrapping (`oct` keys): `A128CBC`/`A192CBC`/`A256CBC`
//!   (PKCS#7 padding), the same with `-NOPAD`, `A128GCM`/`A192GCM`/`A256GCM`,
//!   `A128CBC-HS256`/`A192CBC-HS384`/`A256CBC-HS512`, `A128KW`/`A192KW`/`A256KW`
//!   (RFC 3394), `C20P`/`C20PKW` (ChaCha20-Poly1305) and `XC20P`/`XC20PKW`
//!   (XChaCha20-Poly1305);
//! - asymmetric encryption (RSA keys): `RSA1_5`, `RSA-OAEP` (SHA-1) and
//!   `RSA-OAEP-256`/`-384`/`-512`, the associated data serving as the OAEP label;
//! - signatures over a digest: `RS256`/`384`/`512` (PKCS#1 v1.5), `PS256`/`384`/`512`
//!   (PSS), `ES256`/`384`/`512` (ECDSA with the key's curve, ASN.1 DER signatures) and
//!   `EdDSA` (Ed25519, over the whole message).
//!
//! Upstream names more algorithms (`A*GCMKW`, `ECDH-ES*`) without implementing them;
//! they fail with "unsupported algorithm" here too. Error texts are dapr/kit's.

mod aes_cbc_hmac;
mod asymmetric;
mod signature;
mod symmetric;

pub use signature::{sign, verify};

use super::key::{Key, KeyMaterial};

/// A failed cryptographic operation, with dapr/kit's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    /// The algorithm is not implemented.
    #[error("unsupported algorithm")]
    Unsupported,
    /// The key cannot be used with the algorithm (kind or size).
    #[error("key type mismatch")]
    KeyTypeMismatch,
    /// The nonce or IV has the wrong size.
    #[error("invalid nonce")]
    InvalidNonce,
    /// The authentication tag has the wrong size.
    #[error("invalid tag")]
    InvalidTag,
    /// The plaintext's length does not suit the algorithm.
    #[error("invalid plaintext length")]
    InvalidPlaintextLength,
    /// The ciphertext's length does not suit the algorithm.
    #[error("invalid ciphertext length")]
    InvalidCiphertextLength,
    /// The operation itself failed (authentication, padding, RSA).
    #[error("{0}")]
    Failed(String),
}

/// Ciphertext and, for authenticated ciphers, its tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sealed {
    /// The encrypted bytes.
    pub ciphertext: Vec<u8>,
    /// The authentication tag; empty for unauthenticated ciphers.
    pub tag: Vec<u8>,
}

/// Symmetric algorithms routed to the symmetric implementation (some unimplemented).
const SYMMETRIC: &[&str] = &[
    "A128CBC",
    "A192CBC",
    "A256CBC",
    "A128CBC-NOPAD",
    "A192CBC-NOPAD",
    "A256CBC-NOPAD",
    "A128GCM",
    "A192GCM",
    "A256GCM",
    "A128CBC-HS256",
    "A192CBC-HS384",
    "A256CBC-HS512",
    "A128KW",
    "A192KW",
    "A256KW",
    "A128GCMKW",
    "A192GCMKW",
    "A256GCMKW",
    "C20P",
    "XC20P",
    "C20PKW",
    "XC20PKW",
];

/// Asymmetric algorithms routed to the public-key implementation (ECDH-ES unimplemented).
const ASYMMETRIC: &[&str] = &[
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
    "RSA1_5",
    "RSA-OAEP",
    "RSA-OAEP-256",
    "RSA-OAEP-384",
    "RSA-OAEP-512",
];

/// Encrypts `plaintext` with `key` (for RSA, its public part).
pub fn encrypt(
    plaintext: &[u8],
    algorithm: &str,
    key: &Key,
    nonce: &[u8],
    associated_data: &[u8],
) -> Result<Sealed, AlgorithmError> {
    if SYMMETRIC.contains(&algorithm) {
        let KeyMaterial::Symmetric(secret) = &key.material else {
            return Err(AlgorithmError::KeyTypeMismatch);
        };
        symmetric::encrypt(plaintext, algorithm, secret, nonce, associated_data)
    } else if ASYMMETRIC.contains(&algorithm) {
        let ciphertext = asymmetric::encrypt(plaintext, algorithm, key, associated_data)?;
        Ok(Sealed {
            ciphertext,
            tag: Vec::new(),
        })
    } else {
        Err(AlgorithmError::Unsupported)
    }
}

/// Decrypts `ciphertext` with `key` (for RSA, a private key).
pub fn decrypt(
    ciphertext: &[u8],
    algorithm: &str,
    key: &Key,
    nonce: &[u8],
    tag: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, AlgorithmError> {
    if SYMMETRIC.contains(&algorithm) {
        let KeyMaterial::Symmetric(secret) = &key.material else {
            return Err(AlgorithmError::KeyTypeMismatch);
        };
        symmetric::decrypt(ciphertext, algorithm, secret, nonce, tag, associated_data)
    } else if ASYMMETRIC.contains(&algorithm) {
        asymmetric::decrypt(ciphertext, algorithm, key, associated_data)
    } else {
        Err(AlgorithmError::Unsupported)
    }
}

/// The key size in bytes that an `A<bits>...` algorithm name asks for.
fn expected_key_size(algorithm: &str) -> usize {
    match algorithm.get(1..4) {
        Some("128") => 16,
        Some("192") => 24,
        Some("256") => 32,
        _ => 0,
    }
}
