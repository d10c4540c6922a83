//! The `dapr.io/enc/v1` encryption scheme (dapr/kit `schemes/enc/v1`), in which daprd's
//! Encrypt and Decrypt APIs write and read data, so data encrypted by upstream daprd
//! decrypts here and the reverse.
//!
//! ```text
//! dapr.io/enc/v1\n
//! {"k":"mykey","kw":1,"wfk":"<wrapped file key>","cph":1,"np":"<nonce prefix>"}\n
//! <base64 HMAC-SHA-256 of the two lines above>\n
//! segment 0 || segment 1 || ... (64 KiB of plaintext + 16-byte tag each)
//! ```
//!
//! Every message gets a random 256-bit file key, wrapped by a key of a crypto component
//! with one of [`KeyAlgorithm`]; the header MAC and the segment cipher ([`Cipher`]) use
//! keys derived from it (see [`file_key`]). Encrypting is [`EncryptionPlan`] (wrap its
//! file key, then [`EncryptionPlan::seal`]); decrypting is [`HeaderReader`], then
//! [`Header::open`] with the unwrapped file key. Both then stream through a
//! [`SegmentStream`] in fixed memory. It lives with the components (not in daprd)
//! because it is a data format of the building block, testable without a sidecar.

mod file_key;
mod header;
mod manifest;
mod segments;
#[cfg(test)]
mod tests;

pub use header::{Header, HeaderReader};
pub use manifest::{Cipher, KeyAlgorithm, Manifest};
pub use segments::SegmentStream;

use bytes::Bytes;
use file_key::FileKey;

/// The first line of every encrypted stream.
pub const SCHEME_NAME: &str = "dapr.io/enc/v1";
/// Plaintext bytes per segment.
pub const SEGMENT_SIZE: usize = 64 << 10;
/// Bytes each segment grows by when encrypted (the AEAD tag).
pub const SEGMENT_OVERHEAD: usize = 16;
/// Length of the nonce prefix.
pub const NONCE_PREFIX_LENGTH: usize = 7;
/// Length of the file key.
pub const FILE_KEY_LENGTH: usize = 32;

/// A failed encryption or decryption, with upstream's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncError {
    /// The encryption options are invalid.
    #[error("{0}")]
    Options(String),
    /// The crypto component could not wrap the file key.
    #[error("failed to wrap the file key: {0}")]
    Wrap(String),
    /// The header would be longer than a segment (a very long key name).
    #[error("failed to sign header: header is too long")]
    HeaderTooLong,
    /// The header is malformed.
    #[error("invalid header: {0}")]
    Header(String),
    /// Neither the caller nor the manifest names the key.
    #[error("document's manifest does not contain a key name, and no key name was provided")]
    DecryptionKeyMissing,
    /// The header MAC is not base64.
    #[error("failed to decode header's signature: {0}")]
    SignatureEncoding(String),
    /// The header MAC does not match (tampered header, or wrong or missing key).
    #[error("failed to validate the document's signature")]
    Signature,
    /// A segment failed (decryption: it was tampered with, cut, or moved).
    #[error("error processing segment {number}: {reason}")]
    Segment {
        /// The segment's number, from 0.
        number: u32,
        /// What failed.
        reason: &'static str,
    },
    /// More than 2^32 segments.
    #[error("input stream is too large")]
    TooLarge,
}

/// What an encryption asks for (upstream's `EncryptOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptOptions {
    /// The key that wraps the file key (required).
    pub key_name: String,
    /// The wrapping algorithm's name or alias (required).
    pub algorithm: String,
    /// The key name written into the manifest when it differs from `key_name`.
    pub decryption_key_name: String,
    /// Writes no key name into the manifest.
    pub omit_decryption_key_name: bool,
    /// The cipher's name; AES-GCM when `None`.
    pub cipher: Option<String>,
}

/// A checked encryption request with its fresh file key, waiting for the key to be
/// wrapped.
pub struct EncryptionPlan {
    algorithm: KeyAlgorithm,
    cipher: Cipher,
    manifest_key_name: String,
    file_key: FileKey,
}

impl std::fmt::Debug for EncryptionPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionPlan")
            .field("algorithm", &self.algorithm)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl EncryptionPlan {
    /// Checks `options` and draws a random file key and nonce prefix.
    pub fn new(options: &EncryptOptions) -> Result<Self, EncError> {
        let (algorithm, cipher) = Self::check(options)?;
        Ok(Self::with_key(
            options,
            algorithm,
            cipher,
            FileKey::generate(cipher),
        ))
    }

    /// As [`EncryptionPlan::new`] with a given file key and nonce prefix (for fixtures).
    #[cfg(test)]
    fn with_fixed_key(
        options: &EncryptOptions,
        key: [u8; FILE_KEY_LENGTH],
        nonce_prefix: [u8; NONCE_PREFIX_LENGTH],
    ) -> Result<Self, EncError> {
        let (algorithm, cipher) = Self::check(options)?;
        let file_key = FileKey::new(key, nonce_prefix, cipher);
        Ok(Self::with_key(options, algorithm, cipher, file_key))
    }

    fn check(options: &EncryptOptions) -> Result<(KeyAlgorithm, Cipher), EncError> {
        if options.key_name.is_empty() {
            return Err(EncError::Options("option KeyName is required".to_owned()));
        }
        if options.algorithm.is_empty() {
            return Err(EncError::Options("option Algorithm is required".to_owned()));
        }
        let algorithm = KeyAlgorithm::parse(&options.algorithm).map_err(|error| {
            EncError::Options(format!("option Algorithm is not valid: {error}"))
        })?;
        let cipher = match &options.cipher {
            None => Cipher::AesGcm,
            Some(name) => Cipher::parse(name).map_err(|error| {
                EncError::Options(format!("option Cipher is not valid: {error}"))
            })?,
        };
        Ok((algorithm, cipher))
    }

    fn with_key(
        options: &EncryptOptions,
        algorithm: KeyAlgorithm,
        cipher: Cipher,
        file_key: FileKey,
    ) -> Self {
        let manifest_key_name = if options.omit_decryption_key_name {
            String::new()
        } else if options.decryption_key_name.is_empty() {
            options.key_name.clone()
        } else {
            options.decryption_key_name.clone()
        };
        Self {
            algorithm,
            cipher,
            manifest_key_name,
            file_key,
        }
    }

    /// The wrapping algorithm (its [`KeyAlgorithm::name`] is what the component uses).
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The file key to wrap.
    pub fn file_key(&self) -> &[u8] {
        self.file_key.key()
    }

    /// Writes the header around the wrapped file key; returns it and the encryptor of the
    /// payload.
    pub fn seal(self, wrapped_file_key: Vec<u8>) -> Result<(Bytes, SegmentStream), EncError> {
        let manifest = Manifest {
            key_name: self.manifest_key_name,
            key_wrapping_algorithm: self.algorithm,
            wrapped_file_key,
            cipher: self.cipher,
            nonce_prefix: self.file_key.nonce_prefix(),
        };
        let header = self.file_key.sign_header(manifest.to_json().as_bytes())?;
        Ok((
            Bytes::from(header),
            SegmentStream::encrypting(self.file_key),
        ))
    }
}
