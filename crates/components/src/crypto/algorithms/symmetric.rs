//! Symmetric encryption with an `oct` key: AES-CBC (with or without PKCS#7 padding),
//! AES-GCM, AES-CBC-HMAC, AES key wrap (RFC 3394) and (X)ChaCha20-Poly1305.

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::generic_array::typenum::Unsigned;
use aes_gcm::aead::{AeadCore, AeadInPlace, KeyInit};
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::{BlockCipher, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};

use super::{AlgorithmError, Sealed, aes_cbc_hmac, expected_key_size};

/// The AES block size, which is also the CBC IV size.
const BLOCK_SIZE: usize = 16;
/// Go's text for a failed AES-GCM open.
const GCM_FAILED: &str = "cipher: message authentication failed";
/// Go's text for a failed ChaCha20-Poly1305 open.
const CHACHA_FAILED: &str = "chacha20poly1305: message authentication failed";
/// dapr/kit's text for a failed AES key unwrap.
const KW_FAILED: &str = "integrity check failed - unexpected IV";

pub(super) fn encrypt(
    plaintext: &[u8],
    algorithm: &str,
    key: &[u8],
    nonce: &[u8],
    associated_data: &[u8],
) -> Result<Sealed, AlgorithmError> {
    let unauthenticated = |ciphertext| Sealed {
        ciphertext,
        tag: Vec::new(),
    };
    match algorithm {
        "A128CBC" | "A192CBC" | "A256CBC" => {
            cbc_encrypt(algorithm, key, nonce, plaintext, true).map(unauthenticated)
        }
        "A128CBC-NOPAD" | "A192CBC-NOPAD" | "A256CBC-NOPAD" => {
            cbc_encrypt(algorithm, key, nonce, plaintext, false).map(unauthenticated)
        }
        "A128GCM" | "A192GCM" | "A256GCM" => {
            if key.len() != expected_key_size(algorithm) {
                return Err(AlgorithmError::KeyTypeMismatch);
            }
            match key.len() {
                16 => seal::<AesGcm<Aes128, U12>>(key, nonce, plaintext, associated_data),
                24 => seal::<AesGcm<Aes192, U12>>(key, nonce, plaintext, associated_data),
                _ => seal::<AesGcm<Aes256, U12>>(key, nonce, plaintext, associated_data),
            }
        }
        "A128CBC-HS256" | "A192CBC-HS384" | "A256CBC-HS512" => {
            aes_cbc_hmac::seal(algorithm, key, nonce, plaintext, associated_data)
        }
        "A128KW" | "A192KW" | "A256KW" => key_wrap(algorithm, key, plaintext).map(unauthenticated),
        "C20P" | "C20PKW" => {
            if key.len() != 32 {
                return Err(AlgorithmError::KeyTypeMismatch);
            }
            seal::<ChaCha20Poly1305>(key, nonce, plaintext, associated_data)
        }
        "XC20P" | "XC20PKW" => {
            if key.len() != 32 {
                return Err(AlgorithmError::KeyTypeMismatch);
            }
            seal::<XChaCha20Poly1305>(key, nonce, plaintext, associated_data)
        }
        _ => Err(AlgorithmError::Unsupported),
    }
}

pub(super) fn decrypt(
    ciphertext: &[u8],
    algorithm: &str,
    key: &[u8],
    nonce: &[u8],
    tag: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, AlgorithmError> {
    match algorithm {
        "A128CBC" | "A192CBC" | "A256CBC" => cbc_decrypt(algorithm, key, nonce, ciphertext, true),
        "A128CBC-NOPAD" | "A192CBC-NOPAD" | "A256CBC-NOPAD" => {
            cbc_decrypt(algorithm, key, nonce, ciphertext, false)
        }
        "A128GCM" | "A192GCM" | "A256GCM" => {
            if key.len() != expected_key_size(algorithm) {
                return Err(AlgorithmError::KeyTypeMismatch);
            }
            match key.len() {
                16 => open::<AesGcm<Aes128, U12>>(
                    key,
                    nonce,
                    ciphertext,
                    tag,
                    associated_data,
                    GCM_FAILED,
                ),
                24 => open::<AesGcm<Aes192, U12>>(
                    key,
                    nonce,
                    ciphertext,
                    tag,
                    associated_data,
                    GCM_FAILED,
                ),
                _ => open::<AesGcm<Aes256, U12>>(
                    key,
                    nonce,
                    ciphertext,
                    tag,
                    associated_data,
                    GCM_FAILED,
                ),
            }
        }
        "A128CBC-HS256" | "A192CBC-HS384" | "A256CBC-HS512" => {
            aes_cbc_hmac::open(algorithm, key, nonce, ciphertext, tag, associated_data)
        }
        "A128KW" | "A192KW" | "A256KW" => key_unwrap(algorithm, key, ciphertext),
        "C20P" | "C20PKW" => {
            if key.len() != 32 {
                return Err(AlgorithmError::KeyTypeMismatch);
            }
            open::<ChaCha20Poly1305>(key, nonce, ciphertext, tag, associated_data, CHACHA_FAILED)
        }
        "XC20P" | "XC20PKW" => {
            if key.len() != 32 {
                return Err(AlgorithmError::KeyTypeMismatch);
            }
            open::<XChaCha20Poly1305>(key, nonce, ciphertext, tag, associated_data, CHACHA_FAILED)
        }
        _ => Err(AlgorithmError::Unsupported),
    }
}

/// AEAD encryption with a detached tag.
fn seal<A: KeyInit + AeadInPlace>(
    key: &[u8],
    nonce: &[u8],
    plaintext: &[u8],
    associated_data: &[u8],
) -> Result<Sealed, AlgorithmError> {
    let cipher = A::new_from_slice(key).map_err(|_| AlgorithmError::KeyTypeMismatch)?;
    if nonce.len() != <A as AeadCore>::NonceSize::USIZE {
        return Err(AlgorithmError::InvalidNonce);
    }
    let mut buffer = plaintext.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            associated_data,
            &mut buffer,
        )
        .map_err(|_| AlgorithmError::InvalidPlaintextLength)?;
    Ok(Sealed {
        ciphertext: buffer,
        tag: tag.to_vec(),
    })
}

/// AEAD decryption with a detached tag; `failure` is the text of a failed check.
fn open<A: KeyInit + AeadInPlace>(
    key: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    associated_data: &[u8],
    failure: &str,
) -> Result<Vec<u8>, AlgorithmError> {
    let cipher = A::new_from_slice(key).map_err(|_| AlgorithmError::KeyTypeMismatch)?;
    if nonce.len() != <A as AeadCore>::NonceSize::USIZE {
        return Err(AlgorithmError::InvalidNonce);
    }
    if tag.len() != <A as AeadCore>::TagSize::USIZE {
        return Err(AlgorithmError::InvalidTag);
    }
    let mut buffer = ciphertext.to_vec();
    cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            associated_data,
            &mut buffer,
            GenericArray::from_slice(tag),
        )
        .map_err(|_| AlgorithmError::Failed(failure.to_owned()))?;
    Ok(buffer)
}

/// AES-CBC encryption, PKCS#7-padded when `pad`.
pub(super) fn cbc_encrypt(
    algorithm: &str,
    key: &[u8],
    iv: &[u8],
    plaintext: &[u8],
    pad: bool,
) -> Result<Vec<u8>, AlgorithmError> {
    if key.len() != expected_key_size(algorithm) {
        return Err(AlgorithmError::KeyTypeMismatch);
    }
    if iv.len() != BLOCK_SIZE {
        return Err(AlgorithmError::InvalidNonce);
    }
    if !pad && !plaintext.len().is_multiple_of(BLOCK_SIZE) {
        return Err(AlgorithmError::InvalidPlaintextLength);
    }
    match key.len() {
        16 => cbc_encrypt_with::<Aes128>(key, iv, plaintext, pad),
        24 => cbc_encrypt_with::<Aes192>(key, iv, plaintext, pad),
        _ => cbc_encrypt_with::<Aes256>(key, iv, plaintext, pad),
    }
}

fn cbc_encrypt_with<C>(
    key: &[u8],
    iv: &[u8],
    plaintext: &[u8],
    pad: bool,
) -> Result<Vec<u8>, AlgorithmError>
where
    C: BlockEncryptMut + BlockCipher + KeyInit,
{
    let encryptor = cbc::Encryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| AlgorithmError::KeyTypeMismatch)?;
    Ok(if pad {
        encryptor.encrypt_padded_vec_mut::<Pkcs7>(plaintext)
    } else {
        encryptor.encrypt_padded_vec_mut::<NoPadding>(plaintext)
    })
}

/// AES-CBC decryption, PKCS#7 padding removed when `pad`.
pub(super) fn cbc_decrypt(
    algorithm: &str,
    key: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    pad: bool,
) -> Result<Vec<u8>, AlgorithmError> {
    if key.len() != expected_key_size(algorithm) {
        return Err(AlgorithmError::KeyTypeMismatch);
    }
    if iv.len() != BLOCK_SIZE {
        return Err(AlgorithmError::InvalidNonce);
    }
    if !ciphertext.len().is_multiple_of(BLOCK_SIZE) {
        return Err(AlgorithmError::InvalidCiphertextLength);
    }
    match key.len() {
        16 => cbc_decrypt_with::<Aes128>(key, iv, ciphertext, pad),
        24 => cbc_decrypt_with::<Aes192>(key, iv, ciphertext, pad),
        _ => cbc_decrypt_with::<Aes256>(key, iv, ciphertext, pad),
    }
}

fn cbc_decrypt_with<C>(
    key: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    pad: bool,
) -> Result<Vec<u8>, AlgorithmError>
where
    C: BlockDecryptMut + BlockCipher + KeyInit,
{
    let decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| AlgorithmError::KeyTypeMismatch)?;
    let padding_error = |_| AlgorithmError::Failed("pkcs7: incorrect padding".to_owned());
    if pad {
        decryptor
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .map_err(padding_error)
    } else {
        decryptor
            .decrypt_padded_vec_mut::<NoPadding>(ciphertext)
            .map_err(padding_error)
    }
}

/// RFC 3394 AES key wrap.
fn key_wrap(algorithm: &str, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AlgorithmError> {
    if key.len() != expected_key_size(algorithm) {
        return Err(AlgorithmError::KeyTypeMismatch);
    }
    let wrapped = match key.len() {
        16 => aes_kw::KekAes128::new(GenericArray::from_slice(key)).wrap_vec(plaintext),
        24 => aes_kw::KekAes192::new(GenericArray::from_slice(key)).wrap_vec(plaintext),
        _ => aes_kw::KekAes256::new(GenericArray::from_slice(key)).wrap_vec(plaintext),
    };
    wrapped.map_err(|_| AlgorithmError::Failed("cek must be in 8-byte blocks".to_owned()))
}

/// RFC 3394 AES key unwrap.
fn key_unwrap(algorithm: &str, key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, AlgorithmError> {
    if key.len() != expected_key_size(algorithm) {
        return Err(AlgorithmError::KeyTypeMismatch);
    }
    let unwrapped = match key.len() {
        16 => aes_kw::KekAes128::new(GenericArray::from_slice(key)).unwrap_vec(ciphertext),
        24 => aes_kw::KekAes192::new(GenericArray::from_slice(key)).unwrap_vec(ciphertext),
        _ => aes_kw::KekAes256::new(GenericArray::from_slice(key)).unwrap_vec(ciphertext),
    };
    unwrapped.map_err(|_| AlgorithmError::Failed(KW_FAILED.to_owned()))
}
