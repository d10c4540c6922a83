//! The file key and what is derived from it: the header MAC key
//! (`HKDF-SHA-256(file key, salt: none, info: "header")`), the payload key
//! (`HKDF-SHA-256(file key, salt: nonce prefix, info: "payload")`) and the per-segment
//! nonces (`nonce prefix || segment number, 32-bit big-endian || 1 if last else 0`).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;

use super::manifest::{Cipher, decode_base64, encode_base64};
use super::{EncError, FILE_KEY_LENGTH, NONCE_PREFIX_LENGTH, SCHEME_NAME, SEGMENT_SIZE};

/// The segment cipher, keyed with the payload key.
enum SegmentCipher {
    AesGcm(Box<Aes256Gcm>),
    ChaCha20Poly1305(Box<ChaCha20Poly1305>),
}

/// A file key with its derived keys.
pub(super) struct FileKey {
    key: [u8; FILE_KEY_LENGTH],
    nonce_prefix: [u8; NONCE_PREFIX_LENGTH],
    header_key: [u8; 32],
    cipher: SegmentCipher,
}

/// HKDF-SHA-256 with `info` and `salt`, 32 bytes out.
fn derive(key: &[u8], salt: Option<&[u8]>, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA-256's 8160-byte limit, so expansion cannot fail.
    let _ = Hkdf::<Sha256>::new(salt, key).expand(info, &mut out);
    out
}

impl FileKey {
    /// A fresh random file key and nonce prefix.
    pub(super) fn generate(cipher: Cipher) -> Self {
        let mut key = [0u8; FILE_KEY_LENGTH];
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LENGTH];
        OsRng.fill_bytes(&mut key);
        OsRng.fill_bytes(&mut nonce_prefix);
        Self::new(key, nonce_prefix, cipher)
    }

    /// A given file key and nonce prefix.
    pub(super) fn new(
        key: [u8; FILE_KEY_LENGTH],
        nonce_prefix: [u8; NONCE_PREFIX_LENGTH],
        cipher: Cipher,
    ) -> Self {
        let header_key = derive(&key, None, b"header");
        let payload_key = derive(&key, Some(&nonce_prefix), b"payload");
        let payload_key = GenericArray::from_slice(&payload_key);
        let cipher = match cipher {
            Cipher::AesGcm => SegmentCipher::AesGcm(Box::new(Aes256Gcm::new(payload_key))),
            Cipher::ChaCha20Poly1305 => {
                SegmentCipher::ChaCha20Poly1305(Box::new(ChaCha20Poly1305::new(payload_key)))
            }
        };
        Self {
            key,
            nonce_prefix,
            header_key,
            cipher,
        }
    }

    /// The file key itself (what gets wrapped).
    pub(super) fn key(&self) -> &[u8; FILE_KEY_LENGTH] {
        &self.key
    }

    /// The nonce prefix.
    pub(super) fn nonce_prefix(&self) -> [u8; NONCE_PREFIX_LENGTH] {
        self.nonce_prefix
    }

    /// The first two header lines (scheme name, manifest), each ending with a line feed.
    fn header_message(manifest: &[u8]) -> Vec<u8> {
        let mut message = Vec::with_capacity(SCHEME_NAME.len() + manifest.len() + 2);
        message.extend_from_slice(SCHEME_NAME.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(manifest);
        message.push(b'\n');
        message
    }

    fn header_mac(&self) -> Result<Hmac<Sha256>, EncError> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.header_key).map_err(|_| EncError::Signature)
    }

    /// The whole header for `manifest`: the two lines, the base64 MAC and a line feed.
    pub(super) fn sign_header(&self, manifest: &[u8]) -> Result<Vec<u8>, EncError> {
        let mut header = Self::header_message(manifest);
        let mut mac = self.header_mac()?;
        mac.update(&header);
        header.extend_from_slice(encode_base64(&mac.finalize().into_bytes()).as_bytes());
        header.push(b'\n');
        if header.len() > SEGMENT_SIZE {
            return Err(EncError::HeaderTooLong);
        }
        Ok(header)
    }

    /// Checks the header MAC (`mac` as written: base64) over `manifest`.
    pub(super) fn verify_header(&self, manifest: &[u8], mac: &[u8]) -> Result<(), EncError> {
        let expected = decode_base64(mac)
            .map_err(|error| EncError::SignatureEncoding(go_base64_error(&error)))?;
        let mut computed = self.header_mac()?;
        computed.update(&Self::header_message(manifest));
        computed
            .verify_slice(&expected)
            .map_err(|_| EncError::Signature)
    }

    /// The nonce of segment `number`.
    fn nonce(&self, number: u32, last: bool) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[..NONCE_PREFIX_LENGTH].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_LENGTH..NONCE_PREFIX_LENGTH + 4].copy_from_slice(&number.to_be_bytes());
        nonce[11] = u8::from(last);
        nonce
    }

    /// Encrypts segment `number` (ciphertext with the 16-byte tag appended); `None` only
    /// for inputs far longer than a segment.
    pub(super) fn seal_segment(
        &self,
        plaintext: &[u8],
        number: u32,
        last: bool,
    ) -> Option<Vec<u8>> {
        let nonce = self.nonce(number, last);
        let nonce = GenericArray::from_slice(&nonce);
        match &self.cipher {
            SegmentCipher::AesGcm(cipher) => cipher.encrypt(nonce, plaintext),
            SegmentCipher::ChaCha20Poly1305(cipher) => cipher.encrypt(nonce, plaintext),
        }
        .ok()
    }

    /// Decrypts segment `number`; `None` when it fails authentication.
    pub(super) fn open_segment(
        &self,
        ciphertext: &[u8],
        number: u32,
        last: bool,
    ) -> Option<Vec<u8>> {
        let nonce = self.nonce(number, last);
        let nonce = GenericArray::from_slice(&nonce);
        match &self.cipher {
            SegmentCipher::AesGcm(cipher) => cipher.decrypt(nonce, ciphertext),
            SegmentCipher::ChaCha20Poly1305(cipher) => cipher.decrypt(nonce, ciphertext),
        }
        .ok()
    }
}

/// A base64 error worded as Go's (`illegal base64 data at input byte N`).
fn go_base64_error(error: &base64::DecodeError) -> String {
    let position = match error {
        base64::DecodeError::InvalidByte(offset, _)
        | base64::DecodeError::InvalidLastSymbol(offset, _) => *offset,
        base64::DecodeError::InvalidLength(length) => *length,
        base64::DecodeError::InvalidPadding => 0,
    };
    format!("illegal base64 data at input byte {position}")
}
