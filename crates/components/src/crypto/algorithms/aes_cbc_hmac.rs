//! AES-CBC with HMAC-SHA-2 as one AEAD (RFC 7518 §5.2, as dapr/kit's `aescbcaead`): the
//! key is the MAC key followed by the encryption key; the ciphertext is AES-CBC with
//! PKCS#7 padding; the tag is the left half of
//! `HMAC(mac key, associated data || IV || ciphertext || bit length of the associated
//! data as a 64-bit big-endian number)`.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

use super::symmetric::{cbc_decrypt, cbc_encrypt};
use super::{AlgorithmError, Sealed};

/// The parameters of one variant.
struct Variant {
    /// The AES-CBC algorithm the encryption half uses.
    cbc: &'static str,
    /// Bytes of MAC key, of encryption key, and of tag.
    mac_key: usize,
    enc_key: usize,
    tag: usize,
}

fn variant(algorithm: &str) -> Result<Variant, AlgorithmError> {
    let (cbc, size) = match algorithm {
        "A128CBC-HS256" => ("A128CBC", 16),
        "A192CBC-HS384" => ("A192CBC", 24),
        "A256CBC-HS512" => ("A256CBC", 32),
        _ => return Err(AlgorithmError::Unsupported),
    };
    Ok(Variant {
        cbc,
        mac_key: size,
        enc_key: size,
        tag: size,
    })
}

/// The full HMAC over the authenticated parts.
fn mac(
    algorithm: &str,
    key: &[u8],
    associated_data: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, AlgorithmError> {
    let bits = u64::try_from(associated_data.len())
        .unwrap_or(u64::MAX)
        .wrapping_mul(8)
        .to_be_bytes();
    fn compute<M: Mac + hmac::digest::KeyInit>(
        key: &[u8],
        parts: [&[u8]; 4],
    ) -> Result<Vec<u8>, AlgorithmError> {
        let mut mac =
            <M as Mac>::new_from_slice(key).map_err(|_| AlgorithmError::KeyTypeMismatch)?;
        for part in parts {
            mac.update(part);
        }
        Ok(mac.finalize().into_bytes().to_vec())
    }
    let parts = [associated_data, iv, ciphertext, &bits[..]];
    match algorithm {
        "A128CBC-HS256" => compute::<Hmac<Sha256>>(key, parts),
        "A192CBC-HS384" => compute::<Hmac<Sha384>>(key, parts),
        "A256CBC-HS512" => compute::<Hmac<Sha512>>(key, parts),
        _ => Err(AlgorithmError::Unsupported),
    }
}

/// Checks the key size and splits it into (MAC key, encryption key).
fn split_key<'a>(variant: &Variant, key: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), AlgorithmError> {
    if key.len() != variant.mac_key + variant.enc_key {
        return Err(AlgorithmError::KeyTypeMismatch);
    }
    Ok((&key[..variant.mac_key], &key[key.len() - variant.enc_key..]))
}

pub(super) fn seal(
    algorithm: &str,
    key: &[u8],
    iv: &[u8],
    plaintext: &[u8],
    associated_data: &[u8],
) -> Result<Sealed, AlgorithmError> {
    let variant = variant(algorithm)?;
    let (mac_key, enc_key) = split_key(&variant, key)?;
    let ciphertext = cbc_encrypt(variant.cbc, enc_key, iv, plaintext, true)?;
    let mut tag = mac(algorithm, mac_key, associated_data, iv, &ciphertext)?;
    tag.truncate(variant.tag);
    Ok(Sealed { ciphertext, tag })
}

pub(super) fn open(
    algorithm: &str,
    key: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, AlgorithmError> {
    let variant = variant(algorithm)?;
    let (mac_key, enc_key) = split_key(&variant, key)?;
    if iv.len() != 16 {
        return Err(AlgorithmError::InvalidNonce);
    }
    if tag.len() != variant.tag {
        return Err(AlgorithmError::InvalidTag);
    }
    let expected = mac(algorithm, mac_key, associated_data, iv, ciphertext)?;
    let matches = expected
        .iter()
        .zip(tag)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0;
    if !matches {
        return Err(AlgorithmError::Failed(
            "message authentication failed".to_owned(),
        ));
    }
    cbc_decrypt(variant.cbc, enc_key, iv, ciphertext, true)
}
