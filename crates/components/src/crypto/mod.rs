//! The cryptography building block: the contract every `crypto.*` component implements
//! (upstream's `SubtleCrypto`: get a public key, encrypt, decrypt, wrap and unwrap keys,
//! sign and verify, all with keys the component holds), the built-in components, and
//! the `dapr.io/enc/v1` stream format ([`enc_v1`]) that daprd's Encrypt/Decrypt APIs
//! write and read.
//!
//! Both built-in components keep their keys in the process and compute locally, as
//! upstream's `LocalCryptoBaseComponent`: `crypto.dapr.localstorage` reads PEM or JWK
//! files from a folder, `crypto.dapr.jwks` a JSON Web Key Set given inline, as a file or
//! at a URL. The operations ([`algorithms`]) and key formats ([`key`]) follow dapr/kit.

pub mod algorithms;
mod catalog;
pub mod enc_v1;
mod jwks;
pub mod key;
mod local;
mod localstorage;
#[cfg(test)]
mod tests;

pub use algorithms::{AlgorithmError, Sealed};
pub use catalog::{CRYPTO_TYPES, OpenError, open};
pub use key::{Key, KeyError};

/// A failed crypto component operation; the texts chain upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The key does not exist, or (for [`CryptoProvider::get_key`]) is symmetric.
    #[error("key not found")]
    KeyNotFound,
    /// The component's metadata is wrong; the component cannot start.
    #[error("{0}")]
    InvalidMetadata(String),
    /// The operation failed; the text says where.
    #[error("{0}")]
    Failed(String),
}

/// What an encryption, decryption or key (un)wrapping uses besides the data.
#[derive(Debug, Clone, Copy, Default)]
pub struct CipherParams<'a> {
    /// The JOSE algorithm name (`A256KW`, `RSA-OAEP-256`, ...).
    pub algorithm: &'a str,
    /// The name of the key in the component.
    pub key_name: &'a str,
    /// Nonce or IV; ignored by asymmetric algorithms.
    pub nonce: &'a [u8],
    /// Authentication tag (decryption and unwrapping only).
    pub tag: &'a [u8],
    /// Associated data of AEAD ciphers (the label of RSA-OAEP).
    pub associated_data: &'a [u8],
}

/// A crypto component (upstream's `crypto.SubtleCrypto`).
#[async_trait::async_trait]
pub trait CryptoProvider: Send + Sync {
    /// The public part of the key `key_name`; [`CryptoError::KeyNotFound`] for a
    /// symmetric key.
    async fn get_key(&self, key_name: &str) -> Result<Key, CryptoError>;

    /// Encrypts a small message.
    async fn encrypt(
        &self,
        plaintext: &[u8],
        params: CipherParams<'_>,
    ) -> Result<Sealed, CryptoError>;

    /// Decrypts a small message.
    async fn decrypt(
        &self,
        ciphertext: &[u8],
        params: CipherParams<'_>,
    ) -> Result<Vec<u8>, CryptoError>;

    /// Wraps (encrypts) `plaintext_key` with the key named in `params`.
    async fn wrap_key(
        &self,
        plaintext_key: &Key,
        params: CipherParams<'_>,
    ) -> Result<Sealed, CryptoError>;

    /// Unwraps a key wrapped by [`CryptoProvider::wrap_key`]; the result is symmetric.
    async fn unwrap_key(
        &self,
        wrapped_key: &[u8],
        params: CipherParams<'_>,
    ) -> Result<Key, CryptoError>;

    /// Signs `digest` with the private key `key_name`.
    async fn sign(
        &self,
        digest: &[u8],
        algorithm: &str,
        key_name: &str,
    ) -> Result<Vec<u8>, CryptoError>;

    /// Checks `signature` over `digest` with the key `key_name`.
    async fn verify(
        &self,
        digest: &[u8],
        signature: &[u8],
        algorithm: &str,
        key_name: &str,
    ) -> Result<bool, CryptoError>;

    /// Releases what the component holds.
    async fn close(&self) -> Result<(), CryptoError> {
        Ok(())
    }
}
