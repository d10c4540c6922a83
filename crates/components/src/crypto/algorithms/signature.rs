//! Signatures over a digest: RSA PKCS#1 v1.5 (`RS*`) and PSS (`PS*`), ECDSA (`ES*`, with
//! the key's own curve, ASN.1 DER signatures) and Ed25519 (`EdDSA`, over the message).
//!
//! As Go's `crypto/rsa` (which upstream uses), PSS signatures carry the longest salt the
//! key allows, and verification accepts any salt length.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::OsRng;
use rsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey};
use sha2::digest::{Digest, DynDigest};
use sha2::{Sha256, Sha384, Sha512};

use super::AlgorithmError;
use crate::crypto::key::{EcPublic, EcSecret, Key, KeyMaterial};

/// Signs `digest` (for `EdDSA`, the whole message) with a private key.
pub fn sign(digest: &[u8], algorithm: &str, key: &Key) -> Result<Vec<u8>, AlgorithmError> {
    let failed = |error: &dyn std::fmt::Display| AlgorithmError::Failed(error.to_string());
    match algorithm {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
            let KeyMaterial::RsaPrivate(private) = &key.material else {
                return Err(AlgorithmError::KeyTypeMismatch);
            };
            let max_salt = pss_max_salt(private.n(), hash_size(algorithm));
            let signed = match algorithm {
                "RS256" => private.sign(Pkcs1v15Sign::new::<Sha256>(), digest),
                "RS384" => private.sign(Pkcs1v15Sign::new::<Sha384>(), digest),
                "RS512" => private.sign(Pkcs1v15Sign::new::<Sha512>(), digest),
                "PS256" => private.sign_with_rng(
                    &mut OsRng,
                    Pss::new_with_salt::<Sha256>(max_salt),
                    digest,
                ),
                "PS384" => private.sign_with_rng(
                    &mut OsRng,
                    Pss::new_with_salt::<Sha384>(max_salt),
                    digest,
                ),
                _ => private.sign_with_rng(
                    &mut OsRng,
                    Pss::new_with_salt::<Sha512>(max_salt),
                    digest,
                ),
            };
            signed.map_err(|error| failed(&format!("crypto/rsa: {error}")))
        }
        "ES256" | "ES384" | "ES512" => {
            let KeyMaterial::EcPrivate(secret) = &key.material else {
                return Err(AlgorithmError::KeyTypeMismatch);
            };
            match secret {
                EcSecret::P256(secret) => {
                    let signature: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(secret)
                        .sign_prehash(digest)
                        .map_err(|error| failed(&error))?;
                    Ok(signature.to_der().as_bytes().to_vec())
                }
                EcSecret::P384(secret) => {
                    let signature: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(secret)
                        .sign_prehash(digest)
                        .map_err(|error| failed(&error))?;
                    Ok(signature.to_der().as_bytes().to_vec())
                }
                EcSecret::P521(secret) => {
                    let signing = p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes())
                        .map_err(|error| failed(&error))?;
                    let signature: p521::ecdsa::Signature = signing
                        .sign_prehash(digest)
                        .map_err(|error| failed(&error))?;
                    Ok(signature.to_der().as_bytes().to_vec())
                }
            }
        }
        "EdDSA" => {
            let KeyMaterial::Ed25519Private(signing) = &key.material else {
                return Err(AlgorithmError::KeyTypeMismatch);
            };
            Ok(ed25519_dalek::Signer::sign(signing.as_ref(), digest)
                .to_bytes()
                .to_vec())
        }
        _ => Err(AlgorithmError::Unsupported),
    }
}

/// Checks `signature` over `digest` with the key's public part: `Ok(false)` when it does
/// not match.
pub fn verify(
    digest: &[u8],
    signature: &[u8],
    algorithm: &str,
    key: &Key,
) -> Result<bool, AlgorithmError> {
    let public = key.public_key();
    let material = public.as_ref().map(|key| &key.material);
    match algorithm {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
            let Some(KeyMaterial::RsaPublic(public)) = material else {
                return Err(AlgorithmError::KeyTypeMismatch);
            };
            Ok(match algorithm {
                "RS256" => public
                    .verify(Pkcs1v15Sign::new::<Sha256>(), digest, signature)
                    .is_ok(),
                "RS384" => public
                    .verify(Pkcs1v15Sign::new::<Sha384>(), digest, signature)
                    .is_ok(),
                "RS512" => public
                    .verify(Pkcs1v15Sign::new::<Sha512>(), digest, signature)
                    .is_ok(),
                "PS256" => verify_pss::<Sha256>(public, digest, signature),
                "PS384" => verify_pss::<Sha384>(public, digest, signature),
                _ => verify_pss::<Sha512>(public, digest, signature),
            })
        }
        "ES256" | "ES384" | "ES512" => {
            let Some(KeyMaterial::EcPublic(public)) = material else {
                return Err(AlgorithmError::KeyTypeMismatch);
            };
            Ok(match public {
                EcPublic::P256(public) => {
                    p256::ecdsa::Signature::from_der(signature).is_ok_and(|signature| {
                        p256::ecdsa::VerifyingKey::from(public)
                            .verify_prehash(digest, &signature)
                            .is_ok()
                    })
                }
                EcPublic::P384(public) => {
                    p384::ecdsa::Signature::from_der(signature).is_ok_and(|signature| {
                        p384::ecdsa::VerifyingKey::from(public)
                            .verify_prehash(digest, &signature)
                            .is_ok()
                    })
                }
                EcPublic::P521(public) => {
                    p521::ecdsa::Signature::from_der(signature).is_ok_and(|signature| {
                        p521::ecdsa::VerifyingKey::from_encoded_point(
                            &public.to_encoded_point(false),
                        )
                        .is_ok_and(|verifying| verifying.verify_prehash(digest, &signature).is_ok())
                    })
                }
            })
        }
        "EdDSA" => {
            let Some(KeyMaterial::Ed25519Public(public)) = material else {
                return Err(AlgorithmError::KeyTypeMismatch);
            };
            Ok(ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| public.verify_strict(digest, &signature).is_ok()))
        }
        _ => Err(AlgorithmError::Unsupported),
    }
}

/// The digest size of an `RS*`/`PS*` algorithm.
fn hash_size(algorithm: &str) -> usize {
    match algorithm.get(2..) {
        Some("384") => 48,
        Some("512") => 64,
        _ => 32,
    }
}

/// The longest PSS salt a key of modulus `n` allows with a `hash_len`-byte hash (Go's
/// `PSSSaltLengthAuto` when signing).
fn pss_max_salt(n: &BigUint, hash_len: usize) -> usize {
    let em_bits = n.bits().saturating_sub(1);
    em_bits.div_ceil(8).saturating_sub(hash_len + 2)
}

/// PSS verification with the salt length read from the signature (Go's
/// `PSSSaltLengthAuto` when verifying).
fn verify_pss<D>(public: &RsaPublicKey, digest: &[u8], signature: &[u8]) -> bool
where
    D: Digest + DynDigest + Send + Sync + 'static,
{
    let Some(salt_len) = pss_salt_len::<D>(public, signature) else {
        return false;
    };
    public
        .verify(Pss::new_with_salt::<D>(salt_len), digest, signature)
        .is_ok()
}

/// Reads the salt length out of a PSS signature's encoded message, or `None` when the
/// encoding is malformed.
fn pss_salt_len<D: Digest>(public: &RsaPublicKey, signature: &[u8]) -> Option<usize> {
    let size = public.size();
    if signature.len() != size {
        return None;
    }
    let s = BigUint::from_bytes_be(signature);
    if &s >= public.n() {
        return None;
    }
    let m = s.modpow(public.e(), public.n()).to_bytes_be();
    let mut em = vec![0u8; size.checked_sub(m.len())?];
    em.extend_from_slice(&m);
    let em_bits = public.n().bits().checked_sub(1)?;
    let em_len = em_bits.div_ceil(8);
    if em_len < size {
        if em.first() != Some(&0) {
            return None;
        }
        em.remove(0);
    }
    let hash_len = <D as Digest>::output_size();
    if em_len < hash_len + 2 || em.last() != Some(&0xbc) {
        return None;
    }
    let db_len = em_len - hash_len - 1;
    let (masked, rest) = em.split_at(db_len);
    let h = &rest[..hash_len];
    let mut db: Vec<u8> = masked
        .iter()
        .zip(mgf1::<D>(h, db_len))
        .map(|(a, b)| a ^ b)
        .collect();
    let unused_bits = 8 * em_len - em_bits;
    if let Some(first) = db.first_mut() {
        *first &= 0xffu8
            .checked_shr(u32::try_from(unused_bits).ok()?)
            .unwrap_or(0);
    }
    let separator = db.iter().position(|byte| *byte != 0)?;
    (db[separator] == 0x01).then(|| db_len - separator - 1)
}

/// MGF1 with hash `D`.
fn mgf1<D: Digest>(seed: &[u8], length: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(length + <D as Digest>::output_size());
    let mut counter = 0u32;
    while out.len() < length {
        let mut hasher = D::new();
        Digest::update(&mut hasher, seed);
        Digest::update(&mut hasher, counter.to_be_bytes());
        out.extend_from_slice(&hasher.finalize());
        counter = counter.wrapping_add(1);
    }
    out.truncate(length);
    out
}
