//! Public-key encryption with RSA keys: PKCS#1 v1.5 (`RSA1_5`) and OAEP with SHA-1
//! (`RSA-OAEP`) or SHA-2 (`RSA-OAEP-256`/`-384`/`-512`), the associated data being the
//! OAEP label. Encryption takes the public part of any RSA key; decryption needs the
//! private key. `ECDH-ES*` are named upstream but unimplemented.

use rand_core::OsRng;
use rsa::{Oaep, Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};

use super::AlgorithmError;
use crate::crypto::key::{Key, KeyMaterial};

/// The OAEP padding for `algorithm` with `label`.
fn oaep(algorithm: &str, label: &[u8]) -> Result<Oaep, AlgorithmError> {
    let label = if label.is_empty() {
        None
    } else {
        Some(
            std::str::from_utf8(label)
                .map_err(|_| AlgorithmError::Failed("unsupported OAEP label".to_owned()))?,
        )
    };
    Ok(match (algorithm, label) {
        ("RSA-OAEP", None) => Oaep::new::<Sha1>(),
        ("RSA-OAEP", Some(label)) => Oaep::new_with_label::<Sha1, _>(label),
        ("RSA-OAEP-256", None) => Oaep::new::<Sha256>(),
        ("RSA-OAEP-256", Some(label)) => Oaep::new_with_label::<Sha256, _>(label),
        ("RSA-OAEP-384", None) => Oaep::new::<Sha384>(),
        ("RSA-OAEP-384", Some(label)) => Oaep::new_with_label::<Sha384, _>(label),
        ("RSA-OAEP-512", None) => Oaep::new::<Sha512>(),
        ("RSA-OAEP-512", Some(label)) => Oaep::new_with_label::<Sha512, _>(label),
        _ => return Err(AlgorithmError::Unsupported),
    })
}

fn public_rsa(key: &Key) -> Result<RsaPublicKey, AlgorithmError> {
    match &key.material {
        KeyMaterial::RsaPrivate(private) => Ok(private.to_public_key()),
        KeyMaterial::RsaPublic(public) => Ok(public.as_ref().clone()),
        _ => Err(AlgorithmError::KeyTypeMismatch),
    }
}

fn private_rsa(key: &Key) -> Result<&RsaPrivateKey, AlgorithmError> {
    match &key.material {
        KeyMaterial::RsaPrivate(private) => Ok(private),
        _ => Err(AlgorithmError::KeyTypeMismatch),
    }
}

fn rsa_failed(error: rsa::Error) -> AlgorithmError {
    match error {
        rsa::Error::MessageTooLong => {
            AlgorithmError::Failed("crypto/rsa: message too long for RSA key size".to_owned())
        }
        rsa::Error::Decryption => AlgorithmError::Failed("crypto/rsa: decryption error".to_owned()),
        other => AlgorithmError::Failed(format!("crypto/rsa: {other}")),
    }
}

pub(super) fn encrypt(
    plaintext: &[u8],
    algorithm: &str,
    key: &Key,
    associated_data: &[u8],
) -> Result<Vec<u8>, AlgorithmError> {
    if algorithm.starts_with("ECDH-ES") {
        return Err(AlgorithmError::Unsupported);
    }
    let public = public_rsa(key)?;
    if algorithm == "RSA1_5" {
        public.encrypt(&mut OsRng, Pkcs1v15Encrypt, plaintext)
    } else {
        public.encrypt(&mut OsRng, oaep(algorithm, associated_data)?, plaintext)
    }
    .map_err(rsa_failed)
}

pub(super) fn decrypt(
    ciphertext: &[u8],
    algorithm: &str,
    key: &Key,
    associated_data: &[u8],
) -> Result<Vec<u8>, AlgorithmError> {
    if algorithm.starts_with("ECDH-ES") {
        return Err(AlgorithmError::Unsupported);
    }
    let private = private_rsa(key)?;
    if algorithm == "RSA1_5" {
        private.decrypt_blinded(&mut OsRng, Pkcs1v15Encrypt, ciphertext)
    } else {
        private.decrypt_blinded(&mut OsRng, oaep(algorithm, associated_data)?, ciphertext)
    }
    .map_err(rsa_failed)
}
