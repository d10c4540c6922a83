//! The manifest: the JSON object on the header's second line, naming the key that
//! decrypts (`k`, optional), the key wrapping algorithm (`kw`, a number), the wrapped
//! file key (`wfk`, standard base64), the cipher (`cph`, a number) and the 7-byte nonce
//! prefix (`np`, standard base64). It is written compact, members in that order, as
//! Go's encoder writes it; it is read by member name (any case, as Go's decoder does).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::NONCE_PREFIX_LENGTH;

/// Base64 as Go's `StdEncoding` decodes it: padding required, trailing bits ignored.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Standard base64 with padding, as upstream writes it.
pub(super) fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64 as Go does (carriage returns and line feeds skipped).
pub(super) fn decode_base64(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    let text: Vec<u8> = text
        .iter()
        .copied()
        .filter(|byte| !matches!(byte, b'\r' | b'\n'))
        .collect();
    GO_STD.decode(text)
}

/// The algorithm that wraps the file key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// `A256KW` (alias `AES`), id 1.
    A256Kw,
    /// `A128CBC-NOPAD`, id 2.
    A128Cbc,
    /// `A192CBC-NOPAD`, id 3.
    A192Cbc,
    /// `A256CBC-NOPAD`, id 4.
    A256Cbc,
    /// `RSA-OAEP-256` (alias `RSA`), id 5.
    RsaOaep256,
}

impl KeyAlgorithm {
    /// Reads an algorithm name, resolving the aliases `AES` and `RSA`; names are
    /// case-sensitive (daprd upper-cases what callers send).
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "A256KW" | "AES" => Self::A256Kw,
            "A128CBC-NOPAD" => Self::A128Cbc,
            "A192CBC-NOPAD" => Self::A192Cbc,
            "A256CBC-NOPAD" => Self::A256Cbc,
            "RSA-OAEP-256" | "RSA" => Self::RsaOaep256,
            other => return Err(format!("algorithm {other} is not supported")),
        })
    }

    /// The IV the file key is wrapped and unwrapped with: sixteen zero bytes for the CBC
    /// algorithms, nothing for the others. The format stores no IV, and upstream's
    /// daprd passes none, which its components refuse for CBC (they require a 16-byte
    /// IV), so upstream cannot write or read these variants at all; a fixed IV is the
    /// only choice that lets a stream be read back, and it is safe here because the
    /// wrapped value is a random key (no repeated plaintext to reveal) whose integrity
    /// the header MAC checks.
    pub fn wrapping_iv(self) -> &'static [u8] {
        match self {
            Self::A128Cbc | Self::A192Cbc | Self::A256Cbc => &[0; 16],
            Self::A256Kw | Self::RsaOaep256 => &[],
        }
    }

    /// The JOSE name the crypto component is asked to use.
    pub fn name(self) -> &'static str {
        match self {
            Self::A256Kw => "A256KW",
            Self::A128Cbc => "A128CBC-NOPAD",
            Self::A192Cbc => "A192CBC-NOPAD",
            Self::A256Cbc => "A256CBC-NOPAD",
            Self::RsaOaep256 => "RSA-OAEP-256",
        }
    }

    fn id(self) -> i64 {
        match self {
            Self::A256Kw => 1,
            Self::A128Cbc => 2,
            Self::A192Cbc => 3,
            Self::A256Cbc => 4,
            Self::RsaOaep256 => 5,
        }
    }

    fn from_id(id: i64) -> Option<Self> {
        [
            Self::A256Kw,
            Self::A128Cbc,
            Self::A192Cbc,
            Self::A256Cbc,
            Self::RsaOaep256,
        ]
        .into_iter()
        .find(|algorithm| algorithm.id() == id)
    }
}

/// The AEAD cipher of the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// `AES-GCM` (256-bit key), id 1, the default.
    AesGcm,
    /// `CHACHA20-POLY1305`, id 2.
    ChaCha20Poly1305,
}

impl Cipher {
    /// Reads a cipher name (case-sensitive, as [`KeyAlgorithm::parse`]).
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "AES-GCM" => Ok(Self::AesGcm),
            "CHACHA20-POLY1305" => Ok(Self::ChaCha20Poly1305),
            other => Err(format!("cipher {other} is not supported")),
        }
    }

    fn id(self) -> i64 {
        match self {
            Self::AesGcm => 1,
            Self::ChaCha20Poly1305 => 2,
        }
    }

    fn from_id(id: i64) -> Option<Self> {
        [Self::AesGcm, Self::ChaCha20Poly1305]
            .into_iter()
            .find(|cipher| cipher.id() == id)
    }
}

/// The header's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The key that decrypts, when the encrypting caller let it be written.
    pub key_name: String,
    /// How the file key is wrapped.
    pub key_wrapping_algorithm: KeyAlgorithm,
    /// The wrapped file key.
    pub wrapped_file_key: Vec<u8>,
    /// The segments' cipher.
    pub cipher: Cipher,
    /// The first 7 bytes of every segment nonce.
    pub nonce_prefix: [u8; NONCE_PREFIX_LENGTH],
}

/// A JSON string as Go's encoder writes it (HTML characters and line separators escaped).
fn go_json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for character in Value::String(text.to_owned()).to_string().chars() {
        match character {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    out
}

impl Manifest {
    /// The compact JSON text.
    pub fn to_json(&self) -> String {
        let key_name = if self.key_name.is_empty() {
            String::new()
        } else {
            format!("\"k\":{},", go_json_string(&self.key_name))
        };
        format!(
            "{{{key_name}\"kw\":{},\"wfk\":\"{}\",\"cph\":{},\"np\":\"{}\"}}",
            self.key_wrapping_algorithm.id(),
            encode_base64(&self.wrapped_file_key),
            self.cipher.id(),
            encode_base64(&self.nonce_prefix),
        )
    }

    /// Reads and validates a manifest; `None` when it is not a valid one (upstream
    /// reports all such cases alike).
    pub fn parse(text: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(text).ok()?;
        let object = value.as_object()?;
        let key_name = match member(object, "k") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(name)) => name.clone(),
            Some(_) => return None,
        };
        let integer = |name: &str| match member(object, name) {
            Some(Value::Number(number)) => number.as_i64(),
            _ => None,
        };
        let bytes = |name: &str| match member(object, name) {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::String(text)) => decode_base64(text.as_bytes()).ok(),
            Some(_) => None,
        };
        let key_wrapping_algorithm = KeyAlgorithm::from_id(integer("kw")?)?;
        let wrapped_file_key = bytes("wfk")?;
        let cipher = Cipher::from_id(integer("cph")?)?;
        let nonce_prefix = bytes("np")?.try_into().ok()?;
        if wrapped_file_key.is_empty() {
            return None;
        }
        Some(Self {
            key_name,
            key_wrapping_algorithm,
            wrapped_file_key,
            cipher,
            nonce_prefix,
        })
    }
}

/// A member by exact name, else the first whose name matches ignoring case.
fn member<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}
