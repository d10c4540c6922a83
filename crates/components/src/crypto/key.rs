//! Keys as upstream's crypto components hold them: JSON Web Keys (RFC 7517) of type
//! `oct` (symmetric), `RSA`, `EC` (P-256, P-384, P-521) and `OKP` (Ed25519), each with
//! the optional `kid`, `alg`, `use` and `key_ops` members that restrict what it may do.
//!
//! Keys are read the way dapr/kit's `crypto.ParseKey` reads them (a JWK when the text
//! starts with `{`, PEM when it starts with `-----`, otherwise raw symmetric bytes that
//! may be base64-encoded) and written the way upstream's APIs return them (a public JWK
//! with its members in name order, PKIX PEM, or the PKCS#8/PKIX DER or raw bytes that
//! key wrapping encrypts).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value};
use spki::{DecodePublicKey, EncodePublicKey};

/// Why a key could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

impl KeyError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// An elliptic-curve private key.
#[derive(Clone)]
pub enum EcSecret {
    /// NIST P-256.
    P256(p256::SecretKey),
    /// NIST P-384.
    P384(p384::SecretKey),
    /// NIST P-521.
    P521(p521::SecretKey),
}

/// An elliptic-curve public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EcPublic {
    /// NIST P-256.
    P256(p256::PublicKey),
    /// NIST P-384.
    P384(p384::PublicKey),
    /// NIST P-521.
    P521(p521::PublicKey),
}

/// The key itself, by kind.
#[derive(Clone)]
pub enum KeyMaterial {
    /// A symmetric key (`oct`).
    Symmetric(Vec<u8>),
    /// An RSA private key.
    RsaPrivate(Box<RsaPrivateKey>),
    /// An RSA public key.
    RsaPublic(Box<RsaPublicKey>),
    /// An elliptic-curve private key.
    EcPrivate(EcSecret),
    /// An elliptic-curve public key.
    EcPublic(EcPublic),
    /// An Ed25519 private key.
    Ed25519Private(Box<ed25519_dalek::SigningKey>),
    /// An Ed25519 public key.
    Ed25519Public(ed25519_dalek::VerifyingKey),
}

/// A key with the JWK members that restrict its use.
#[derive(Clone)]
pub struct Key {
    /// The key.
    pub material: KeyMaterial,
    /// `kid`: the key's id.
    pub id: Option<String>,
    /// `alg`: the one algorithm the key may be used with.
    pub algorithm: Option<String>,
    /// `use`: `enc` or `sig`.
    pub usage: Option<String>,
    /// `key_ops`: the operations the key may perform.
    pub operations: Vec<String>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kty", &self.key_type())
            .field("kid", &self.id)
            .field("alg", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Base64 as Go's decoders accept it: padding optional, non-zero trailing bits allowed.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decodes base64 in either alphabet, with or without padding (as JWK readers do).
pub(crate) fn decode_base64_any(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if text.contains(['+', '/']) {
        STANDARD_LENIENT.decode(text)
    } else {
        URL_SAFE_LENIENT.decode(text)
    }
}

fn base64url(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl Key {
    /// A symmetric key with no restrictions.
    pub fn symmetric(bytes: Vec<u8>) -> Self {
        Self::bare(KeyMaterial::Symmetric(bytes))
    }

    fn bare(material: KeyMaterial) -> Self {
        Self {
            material,
            id: None,
            algorithm: None,
            usage: None,
            operations: Vec::new(),
        }
    }

    /// The JWK `kty`: `oct`, `RSA`, `EC` or `OKP`.
    pub fn key_type(&self) -> &'static str {
        match &self.material {
            KeyMaterial::Symmetric(_) => "oct",
            KeyMaterial::RsaPrivate(_) | KeyMaterial::RsaPublic(_) => "RSA",
            KeyMaterial::EcPrivate(_) | KeyMaterial::EcPublic(_) => "EC",
            KeyMaterial::Ed25519Private(_) | KeyMaterial::Ed25519Public(_) => "OKP",
        }
    }

    /// The public half (with the same members), or `None` for a symmetric key.
    pub fn public_key(&self) -> Option<Key> {
        let material = match &self.material {
            KeyMaterial::Symmetric(_) => return None,
            KeyMaterial::RsaPrivate(key) => KeyMaterial::RsaPublic(Box::new(key.to_public_key())),
            KeyMaterial::EcPrivate(secret) => KeyMaterial::EcPublic(match secret {
                EcSecret::P256(key) => EcPublic::P256(key.public_key()),
                EcSecret::P384(key) => EcPublic::P384(key.public_key()),
                EcSecret::P521(key) => EcPublic::P521(key.public_key()),
            }),
            KeyMaterial::Ed25519Private(key) => KeyMaterial::Ed25519Public(key.verifying_key()),
            public => public.clone(),
        };
        Some(Key {
            material,
            id: self.id.clone(),
            algorithm: self.algorithm.clone(),
            usage: self.usage.clone(),
            operations: self.operations.clone(),
        })
    }

    /// Reads a key as dapr/kit's `ParseKey` does. `content_type` `application/json` forces
    /// a JWK, `application/x-pem-file` (or `application/pkcs8`) forces PEM; otherwise the
    /// text decides.
    pub fn parse(raw: &[u8], content_type: Option<&str>) -> Result<Key, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::new("key is empty"));
        }
        match content_type {
            Some("application/json") => return Self::from_jwk_json(raw),
            Some("application/x-pem-file" | "application/pkcs8") => return Self::from_pem(raw),
            _ => {}
        }
        let length = raw.len();
        if raw[0] == b'{' && length != 16 && length != 24 && length != 32 {
            Self::from_jwk_json(raw)
        } else if length > 10 && raw.starts_with(b"-----") {
            Self::from_pem(raw)
        } else {
            Ok(Self::symmetric(parse_symmetric(raw)))
        }
    }

    /// Reads one JWK from JSON text.
    pub fn from_jwk_json(raw: &[u8]) -> Result<Key, KeyError> {
        let value: Value = serde_json::from_slice(raw)
            .map_err(|error| KeyError(format!("failed to parse JWK: {error}")))?;
        Self::from_jwk(&value)
    }

    /// Reads one JWK from a JSON value.
    pub fn from_jwk(value: &Value) -> Result<Key, KeyError> {
        let object = value
            .as_object()
            .ok_or_else(|| KeyError::new("failed to parse JWK: not a JSON object"))?;
        let kty = text_member(object, "kty")?
            .ok_or_else(|| KeyError::new("failed to parse JWK: missing \"kty\""))?;
        let material = match kty {
            "oct" => KeyMaterial::Symmetric(required_bytes(object, "k")?),
            "RSA" => rsa_from_jwk(object)?,
            "EC" => ec_from_jwk(object)?,
            "OKP" => okp_from_jwk(object)?,
            other => return Err(KeyError(format!("invalid key type from JSON ({other})"))),
        };
        let operations = match object.get("key_ops") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| KeyError::new("invalid \"key_ops\": not a list of strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(KeyError::new("invalid \"key_ops\": not a list of strings")),
        };
        Ok(Key {
            material,
            id: text_member(object, "kid")?.map(str::to_owned),
            algorithm: text_member(object, "alg")?.map(str::to_owned),
            usage: text_member(object, "use")?.map(str::to_owned),
            operations,
        })
    }

    /// Reads a JSON Web Key Set (`{"keys": [...]}`), or a single JWK as a set of one.
    pub fn parse_set(raw: &[u8]) -> Result<Vec<Key>, KeyError> {
        let value: Value = serde_json::from_slice(raw)
            .map_err(|error| KeyError(format!("failed to parse JWKS: {error}")))?;
        match value.get("keys") {
            Some(Value::Array(keys)) => keys
                .iter()
                .enumerate()
                .map(|(index, key)| {
                    Self::from_jwk(key)
                        .map_err(|error| KeyError(format!("failed to parse key #{index}: {error}")))
                })
                .collect(),
            Some(_) => Err(KeyError::new(
                "failed to parse JWKS: \"keys\" is not a list",
            )),
            None => Ok(vec![Self::from_jwk(&value)?]),
        }
    }

    /// Reads the first PEM block: a PKIX or PKCS#1 public key, a PKCS#8, PKCS#1 or SEC1
    /// private key, or a certificate (its public key).
    pub fn from_pem(raw: &[u8]) -> Result<Key, KeyError> {
        let text = std::str::from_utf8(raw)
            .map_err(|_| KeyError::new("failed to parse PEM encoded key: not text"))?;
        let start = text
            .find("-----BEGIN ")
            .ok_or_else(|| KeyError::new("failed to parse PEM encoded key: no PEM block"))?;
        let (label, der) = pkcs8::der::pem::decode_vec(first_block(&text[start..]).as_bytes())
            .map_err(|error| KeyError(format!("failed to parse PEM encoded key: {error}")))?;
        let material = match label {
            "PUBLIC KEY" => public_from_spki(&der)?,
            "RSA PUBLIC KEY" => KeyMaterial::RsaPublic(Box::new(
                RsaPublicKey::from_pkcs1_der(&der).map_err(pem_error)?,
            )),
            "RSA PRIVATE KEY" => KeyMaterial::RsaPrivate(Box::new(
                RsaPrivateKey::from_pkcs1_der(&der).map_err(pem_error)?,
            )),
            "EC PRIVATE KEY" => ec_from_sec1(&der)?,
            "PRIVATE KEY" => private_from_pkcs8(&der)?,
            "CERTIFICATE" => {
                use x509_cert::der::{Decode, Encode};
                let certificate = x509_cert::Certificate::from_der(&der).map_err(pem_error)?;
                let spki = certificate
                    .tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .map_err(pem_error)?;
                public_from_spki(&spki)?
            }
            other => {
                return Err(KeyError(format!(
                    "failed to parse PEM encoded key: invalid PEM block type {other}"
                )));
            }
        };
        Ok(Self::bare(material))
    }

    /// The bytes key wrapping encrypts (dapr/kit's `SerializeKey`): a symmetric key's raw
    /// bytes, a private key as PKCS#8 DER, a public key as PKIX DER.
    pub fn to_bytes(&self) -> Result<Vec<u8>, KeyError> {
        let encode_error = |error: &dyn std::fmt::Display| KeyError(error.to_string());
        let private = |der: Result<pkcs8::SecretDocument, pkcs8::Error>| {
            der.map(|der| der.as_bytes().to_vec())
                .map_err(|error| encode_error(&error))
        };
        match &self.material {
            KeyMaterial::Symmetric(bytes) => Ok(bytes.clone()),
            KeyMaterial::RsaPrivate(key) => private(key.to_pkcs8_der()),
            KeyMaterial::EcPrivate(EcSecret::P256(key)) => private(key.to_pkcs8_der()),
            KeyMaterial::EcPrivate(EcSecret::P384(key)) => private(key.to_pkcs8_der()),
            KeyMaterial::EcPrivate(EcSecret::P521(key)) => private(key.to_pkcs8_der()),
            KeyMaterial::Ed25519Private(key) => private(key.to_pkcs8_der()),
            _ => self.public_der(),
        }
    }

    /// The public key as PKIX DER; an error for a symmetric key.
    fn public_der(&self) -> Result<Vec<u8>, KeyError> {
        let public = self
            .public_key()
            .ok_or_else(|| KeyError::new("a symmetric key has no public part"))?;
        let der = match &public.material {
            KeyMaterial::RsaPublic(key) => key.to_public_key_der(),
            KeyMaterial::EcPublic(EcPublic::P256(key)) => key.to_public_key_der(),
            KeyMaterial::EcPublic(EcPublic::P384(key)) => key.to_public_key_der(),
            KeyMaterial::EcPublic(EcPublic::P521(key)) => key.to_public_key_der(),
            KeyMaterial::Ed25519Public(key) => key.to_public_key_der(),
            _ => return Err(KeyError::new("unsupported key type")),
        };
        der.map(|der| der.as_bytes().to_vec())
            .map_err(|error| KeyError(error.to_string()))
    }

    /// The public key as PKIX PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_public_pem(&self) -> Result<String, KeyError> {
        let der = self.public_der()?;
        pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &der)
            .map_err(|error| KeyError(error.to_string()))
    }

    /// The public key as a JWK, members in name order (as upstream's JSON encoder writes
    /// them); an error for a symmetric key.
    pub fn to_public_jwk(&self) -> Result<String, KeyError> {
        let public = self
            .public_key()
            .ok_or_else(|| KeyError::new("a symmetric key has no public part"))?;
        let mut members = std::collections::BTreeMap::new();
        members.insert("kty", Value::String(public.key_type().to_owned()));
        match &public.material {
            KeyMaterial::RsaPublic(key) => {
                members.insert("n", base64url(&key.n().to_bytes_be()));
                members.insert("e", base64url(&key.e().to_bytes_be()));
            }
            KeyMaterial::EcPublic(key) => {
                let (curve, point) = match key {
                    EcPublic::P256(key) => ("P-256", key.to_encoded_point(false).to_bytes()),
                    EcPublic::P384(key) => ("P-384", key.to_encoded_point(false).to_bytes()),
                    EcPublic::P521(key) => ("P-521", key.to_encoded_point(false).to_bytes()),
                };
                // Uncompressed SEC1: 0x04 || x || y, both padded to the field size.
                let coordinates = point.get(1..).unwrap_or_default();
                let (x, y) = coordinates.split_at(coordinates.len() / 2);
                members.insert("crv", Value::String(curve.to_owned()));
                members.insert("x", base64url(x));
                members.insert("y", base64url(y));
            }
            KeyMaterial::Ed25519Public(key) => {
                members.insert("crv", Value::String("Ed25519".to_owned()));
                members.insert("x", base64url(key.as_bytes()));
            }
            _ => return Err(KeyError::new("unsupported key type")),
        }
        if let Some(id) = &public.id {
            members.insert("kid", Value::String(id.clone()));
        }
        if let Some(algorithm) = &public.algorithm {
            members.insert("alg", Value::String(algorithm.clone()));
        }
        if let Some(usage) = &public.usage {
            members.insert("use", Value::String(usage.clone()));
        }
        if !public.operations.is_empty() {
            members.insert(
                "key_ops",
                Value::Array(
                    public
                        .operations
                        .iter()
                        .cloned()
                        .map(Value::String)
                        .collect(),
                ),
            );
        }
        serde_json::to_string(&members).map_err(|error| KeyError(error.to_string()))
    }
}

/// The text up to the end of the first PEM block.
fn first_block(text: &str) -> &str {
    match text.find("-----END ") {
        Some(end) => {
            let after = end + "-----END ".len();
            match text[after..].find("-----") {
                Some(close) => &text[..after + close + "-----".len()],
                None => text,
            }
        }
        None => text,
    }
}

fn pem_error(error: impl std::fmt::Display) -> KeyError {
    KeyError(format!("failed to parse PEM encoded key: {error}"))
}

fn public_from_spki(der: &[u8]) -> Result<KeyMaterial, KeyError> {
    if let Ok(key) = RsaPublicKey::from_public_key_der(der) {
        return Ok(KeyMaterial::RsaPublic(Box::new(key)));
    }
    if let Ok(key) = p256::PublicKey::from_public_key_der(der) {
        return Ok(KeyMaterial::EcPublic(EcPublic::P256(key)));
    }
    if let Ok(key) = p384::PublicKey::from_public_key_der(der) {
        return Ok(KeyMaterial::EcPublic(EcPublic::P384(key)));
    }
    if let Ok(key) = p521::PublicKey::from_public_key_der(der) {
        return Ok(KeyMaterial::EcPublic(EcPublic::P521(key)));
    }
    ed25519_dalek::VerifyingKey::from_public_key_der(der)
        .map(KeyMaterial::Ed25519Public)
        .map_err(|_| pem_error("unsupported public key type"))
}

fn private_from_pkcs8(der: &[u8]) -> Result<KeyMaterial, KeyError> {
    if let Ok(key) = RsaPrivateKey::from_pkcs8_der(der) {
        return Ok(KeyMaterial::RsaPrivate(Box::new(key)));
    }
    if let Ok(key) = p256::SecretKey::from_pkcs8_der(der) {
        return Ok(KeyMaterial::EcPrivate(EcSecret::P256(key)));
    }
    if let Ok(key) = p384::SecretKey::from_pkcs8_der(der) {
        return Ok(KeyMaterial::EcPrivate(EcSecret::P384(key)));
    }
    if let Ok(key) = p521::SecretKey::from_pkcs8_der(der) {
        return Ok(KeyMaterial::EcPrivate(EcSecret::P521(key)));
    }
    ed25519_dalek::SigningKey::from_pkcs8_der(der)
        .map(|key| KeyMaterial::Ed25519Private(Box::new(key)))
        .map_err(|_| pem_error("unsupported private key type"))
}

fn ec_from_sec1(der: &[u8]) -> Result<KeyMaterial, KeyError> {
    if let Ok(key) = p256::SecretKey::from_sec1_der(der) {
        return Ok(KeyMaterial::EcPrivate(EcSecret::P256(key)));
    }
    if let Ok(key) = p384::SecretKey::from_sec1_der(der) {
        return Ok(KeyMaterial::EcPrivate(EcSecret::P384(key)));
    }
    p521::SecretKey::from_sec1_der(der)
        .map(|key| KeyMaterial::EcPrivate(EcSecret::P521(key)))
        .map_err(|_| pem_error("unsupported EC private key"))
}

/// A symmetric key given as text or bytes: base64 (standard, then URL alphabet, trailing
/// newlines and padding ignored) when it decodes, the bytes themselves otherwise.
fn parse_symmetric(raw: &[u8]) -> Vec<u8> {
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\n' | b'=') {
        end -= 1;
    }
    let trimmed: Vec<u8> = raw[..end]
        .iter()
        .copied()
        .filter(|byte| !matches!(byte, b'\r' | b'\n'))
        .collect();
    STANDARD_LENIENT
        .decode(&trimmed)
        .or_else(|_| URL_SAFE_LENIENT.decode(&trimmed))
        .unwrap_or_else(|_| raw.to_vec())
}

fn text_member<'a>(
    object: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, KeyError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(KeyError(format!("invalid \"{name}\": not a string"))),
    }
}

fn optional_bytes(object: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, KeyError> {
    text_member(object, name)?
        .map(|text| {
            decode_base64_any(text)
                .map_err(|error| KeyError(format!("failed to decode \"{name}\": {error}")))
        })
        .transpose()
}

fn required_bytes(object: &Map<String, Value>, name: &str) -> Result<Vec<u8>, KeyError> {
    optional_bytes(object, name)?.ok_or_else(|| {
        KeyError(format!(
            "failed to parse JWK: required field {name} is missing"
        ))
    })
}

fn rsa_from_jwk(object: &Map<String, Value>) -> Result<KeyMaterial, KeyError> {
    let n = BigUint::from_bytes_be(&required_bytes(object, "n")?);
    let e = BigUint::from_bytes_be(&required_bytes(object, "e")?);
    let invalid = |error: rsa::Error| KeyError(format!("invalid RSA key: {error}"));
    match optional_bytes(object, "d")? {
        None => Ok(KeyMaterial::RsaPublic(Box::new(
            RsaPublicKey::new(n, e).map_err(invalid)?,
        ))),
        Some(d) => {
            let primes = match (optional_bytes(object, "p")?, optional_bytes(object, "q")?) {
                (Some(p), Some(q)) => vec![BigUint::from_bytes_be(&p), BigUint::from_bytes_be(&q)],
                _ => Vec::new(),
            };
            let key = RsaPrivateKey::from_components(n, e, BigUint::from_bytes_be(&d), primes)
                .map_err(invalid)?;
            Ok(KeyMaterial::RsaPrivate(Box::new(key)))
        }
    }
}

/// Left-pads `bytes` with zeros to `size`.
fn padded(bytes: &[u8], size: usize) -> Result<Vec<u8>, KeyError> {
    if bytes.len() > size {
        return Err(KeyError::new("invalid EC key: coordinate too long"));
    }
    let mut out = vec![0; size - bytes.len()];
    out.extend_from_slice(bytes);
    Ok(out)
}

/// An uncompressed SEC1 point from JWK coordinates.
fn sec1_point(object: &Map<String, Value>, size: usize) -> Result<Vec<u8>, KeyError> {
    let mut point = vec![0x04];
    point.extend(padded(&required_bytes(object, "x")?, size)?);
    point.extend(padded(&required_bytes(object, "y")?, size)?);
    Ok(point)
}

fn ec_from_jwk(object: &Map<String, Value>) -> Result<KeyMaterial, KeyError> {
    let curve = text_member(object, "crv")?
        .ok_or_else(|| KeyError::new("failed to parse JWK: required field crv is missing"))?;
    let invalid = |_| KeyError::new("invalid EC key: point not on the curve");
    let private = optional_bytes(object, "d")?;
    let material = match (curve, private) {
        ("P-256", None) => KeyMaterial::EcPublic(EcPublic::P256(
            p256::PublicKey::from_sec1_bytes(&sec1_point(object, 32)?).map_err(invalid)?,
        )),
        ("P-384", None) => KeyMaterial::EcPublic(EcPublic::P384(
            p384::PublicKey::from_sec1_bytes(&sec1_point(object, 48)?).map_err(invalid)?,
        )),
        ("P-521", None) => KeyMaterial::EcPublic(EcPublic::P521(
            p521::PublicKey::from_sec1_bytes(&sec1_point(object, 66)?).map_err(invalid)?,
        )),
        ("P-256", Some(d)) => KeyMaterial::EcPrivate(EcSecret::P256(
            p256::SecretKey::from_slice(&padded(&d, 32)?).map_err(invalid)?,
        )),
        ("P-384", Some(d)) => KeyMaterial::EcPrivate(EcSecret::P384(
            p384::SecretKey::from_slice(&padded(&d, 48)?).map_err(invalid)?,
        )),
        ("P-521", Some(d)) => KeyMaterial::EcPrivate(EcSecret::P521(
            p521::SecretKey::from_slice(&padded(&d, 66)?).map_err(invalid)?,
        )),
        (other, _) => return Err(KeyError(format!("unsupported curve {other}"))),
    };
    Ok(material)
}

fn okp_from_jwk(object: &Map<String, Value>) -> Result<KeyMaterial, KeyError> {
    let curve = text_member(object, "crv")?
        .ok_or_else(|| KeyError::new("failed to parse JWK: required field crv is missing"))?;
    if curve != "Ed25519" {
        return Err(KeyError(format!("unsupported curve {curve}")));
    }
    let exact = |bytes: Vec<u8>| -> Result<[u8; 32], KeyError> {
        bytes
            .try_into()
            .map_err(|_| KeyError::new("invalid Ed25519 key: wrong length"))
    };
    match optional_bytes(object, "d")? {
        Some(seed) => Ok(KeyMaterial::Ed25519Private(Box::new(
            ed25519_dalek::SigningKey::from_bytes(&exact(seed)?),
        ))),
        None => ed25519_dalek::VerifyingKey::from_bytes(&exact(required_bytes(object, "x")?)?)
            .map(KeyMaterial::Ed25519Public)
            .map_err(|error| KeyError(format!("invalid Ed25519 key: {error}"))),
    }
}
