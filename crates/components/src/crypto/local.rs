//! The operations of components that hold their keys in the process (upstream's
//! `LocalCryptoBaseComponent`): each finds its key through a [`KeySource`], checks that
//! the key's `key_ops`/`use` allow the operation and its `alg` (when set) is the one asked
//! for, then computes with [`algorithms`](super::algorithms).

use std::sync::Arc;

use super::algorithms::{self, Sealed};
use super::{CipherParams, CryptoError, CryptoProvider, Key};

/// Where a local component finds its keys.
#[async_trait::async_trait]
pub(crate) trait KeySource: Send + Sync {
    /// The key `name`, public, private or symmetric.
    async fn retrieve(&self, name: &str) -> Result<Arc<Key>, CryptoError>;
}

/// A crypto component computing locally with the keys of `S`.
pub(crate) struct LocalProvider<S> {
    source: S,
}

impl<S> LocalProvider<S> {
    /// A component over `source`.
    pub(crate) fn new(source: S) -> Self {
        Self { source }
    }
}

/// JWK key operations (RFC 7517 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Encrypt,
    Decrypt,
    WrapKey,
    UnwrapKey,
    Sign,
    Verify,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
            Operation::WrapKey => "wrapKey",
            Operation::UnwrapKey => "unwrapKey",
            Operation::Sign => "sign",
            Operation::Verify => "verify",
        }
    }
}

/// Whether the key's `key_ops` and `use` allow `operation` (both unset allow all).
fn can_perform_operation(key: &Key, operation: Operation) -> bool {
    if !key.operations.is_empty()
        && !key
            .operations
            .iter()
            .any(|allowed| allowed == operation.name())
    {
        return false;
    }
    match key.usage.as_deref() {
        None | Some("") => true,
        Some(usage) => match operation {
            Operation::Encrypt | Operation::Decrypt | Operation::WrapKey | Operation::UnwrapKey => {
                usage == "enc"
            }
            Operation::Sign | Operation::Verify => usage == "sig",
        },
    }
}

/// Whether the key's `alg` (unset allows all) is `algorithm`.
fn can_perform_algorithm(key: &Key, algorithm: &str) -> bool {
    match key.algorithm.as_deref() {
        None | Some("") => true,
        Some(allowed) => allowed == algorithm,
    }
}

/// Checks that `key` may do `operation` with `algorithm`.
fn check(key: &Key, operation: Operation, algorithm: &str) -> Result<(), CryptoError> {
    if !can_perform_operation(key, operation) {
        return Err(CryptoError::Failed(format!(
            "key cannot perform the '{}' operation",
            operation.name()
        )));
    }
    if !can_perform_algorithm(key, algorithm) {
        return Err(CryptoError::Failed(format!(
            "key cannot be used with algorithm '{algorithm}'"
        )));
    }
    Ok(())
}

impl<S: KeySource> LocalProvider<S> {
    /// The key `name`, the failure prefixed with `what` failed to be retrieved.
    async fn key(&self, name: &str, what: &str) -> Result<Arc<Key>, CryptoError> {
        self.source
            .retrieve(name)
            .await
            .map_err(|error| CryptoError::Failed(format!("failed to retrieve the {what}: {error}")))
    }
}

fn failed(context: &str, error: impl std::fmt::Display) -> CryptoError {
    CryptoError::Failed(format!("{context}: {error}"))
}

#[async_trait::async_trait]
impl<S: KeySource> CryptoProvider for LocalProvider<S> {
    async fn get_key(&self, key_name: &str) -> Result<Key, CryptoError> {
        let key = self.source.retrieve(key_name).await?;
        key.public_key().ok_or(CryptoError::KeyNotFound)
    }

    async fn encrypt(
        &self,
        plaintext: &[u8],
        params: CipherParams<'_>,
    ) -> Result<Sealed, CryptoError> {
        let key = self.key(params.key_name, "key").await?;
        check(&key, Operation::Encrypt, params.algorithm)?;
        algorithms::encrypt(
            plaintext,
            params.algorithm,
            &key,
            params.nonce,
            params.associated_data,
        )
        .map_err(|error| failed("failed to encrypt data", error))
    }

    async fn decrypt(
        &self,
        ciphertext: &[u8],
        params: CipherParams<'_>,
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.key(params.key_name, "key").await?;
        check(&key, Operation::Decrypt, params.algorithm)?;
        algorithms::decrypt(
            ciphertext,
            params.algorithm,
            &key,
            params.nonce,
            params.tag,
            params.associated_data,
        )
        .map_err(|error| failed("failed to decrypt data", error))
    }

    async fn wrap_key(
        &self,
        plaintext_key: &Key,
        params: CipherParams<'_>,
    ) -> Result<Sealed, CryptoError> {
        let plaintext = plaintext_key
            .to_bytes()
            .map_err(|error| failed("cannot serialize key", error))?;
        let key = self.key(params.key_name, "key encryption key").await?;
        check(&key, Operation::WrapKey, params.algorithm)?;
        algorithms::encrypt(
            &plaintext,
            params.algorithm,
            &key,
            params.nonce,
            params.associated_data,
        )
        .map_err(|error| failed("failed to encrypt data", error))
    }

    async fn unwrap_key(
        &self,
        wrapped_key: &[u8],
        params: CipherParams<'_>,
    ) -> Result<Key, CryptoError> {
        let key = self.key(params.key_name, "key encryption key").await?;
        check(&key, Operation::UnwrapKey, params.algorithm)?;
        algorithms::decrypt(
            wrapped_key,
            params.algorithm,
            &key,
            params.nonce,
            params.tag,
            params.associated_data,
        )
        .map(Key::symmetric)
        .map_err(|error| failed("failed to decrypt data", error))
    }

    async fn sign(
        &self,
        digest: &[u8],
        algorithm: &str,
        key_name: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.key(key_name, "key").await?;
        check(&key, Operation::Sign, algorithm)?;
        algorithms::sign(digest, algorithm, &key)
            .map_err(|error| failed("failed to sign message", error))
    }

    async fn verify(
        &self,
        digest: &[u8],
        signature: &[u8],
        algorithm: &str,
        key_name: &str,
    ) -> Result<bool, CryptoError> {
        let key = self.key(key_name, "key").await?;
        check(&key, Operation::Verify, algorithm)?;
        algorithms::verify(digest, signature, algorithm, &key)
            .map_err(|error| failed("failed to validate the signature", error))
    }
}
