//! How a value sits in the `value` and `is_binary` columns, as upstream keeps it: a JSON
//! document as its own text with `is_binary` false, any other bytes base64-encoded
//! (standard alphabet, padded) with `is_binary` true. Both read back as the original
//! bytes, here and in upstream's daprd.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use rusqlite::types::ValueRef;

/// A value ready for the `value` and `is_binary` columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Encoded {
    /// The `value` column.
    pub text: String,
    /// The `is_binary` column.
    pub is_binary: bool,
}

/// Encodes a value: JSON text stays text, everything else becomes base64.
pub(super) fn encode(value: &[u8]) -> Encoded {
    let is_json = serde_json::from_slice::<serde_json::Value>(value).is_ok();
    match std::str::from_utf8(value) {
        Ok(text) if is_json => Encoded {
            text: text.to_owned(),
            is_binary: false,
        },
        _ => Encoded {
            text: STANDARD.encode(value),
            is_binary: true,
        },
    }
}

/// Decodes the `value` column given the `is_binary` column.
pub(super) fn decode(value: ValueRef<'_>, is_binary: ValueRef<'_>) -> Result<Bytes, String> {
    let raw: &[u8] = match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes,
        ValueRef::Null => b"",
        other => {
            return Err(format!(
                "unexpected {:?} in the value column",
                other.data_type()
            ));
        }
    };
    if flag(is_binary)? {
        STANDARD
            .decode(raw)
            .map(Bytes::from)
            .map_err(|error| format!("failed to decode binary data: {error}"))
    } else {
        Ok(Bytes::copy_from_slice(raw))
    }
}

/// Reads a boolean column as SQLite keeps it: an integer, or the text of one.
fn flag(value: ValueRef<'_>) -> Result<bool, String> {
    match value {
        ValueRef::Integer(number) => Ok(number != 0),
        ValueRef::Real(number) => Ok(number != 0.0),
        ValueRef::Text(text) => match text.to_ascii_lowercase().as_slice() {
            b"1" | b"true" | b"t" => Ok(true),
            b"0" | b"false" | b"f" => Ok(false),
            _ => Err(format!(
                "unexpected {:?} in the is_binary column",
                String::from_utf8_lossy(text)
            )),
        },
        other => Err(format!(
            "unexpected {:?} in the is_binary column",
            other.data_type()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_stays_text_and_other_bytes_become_base64() {
        assert_eq!(
            encode(br#"{"a": [1, "two"]}"#),
            Encoded {
                text: r#"{"a": [1, "two"]}"#.to_owned(),
                is_binary: false
            }
        );
        assert!(!encode(b"\"text\"").is_binary);
        assert_eq!(
            encode(b"plain text"),
            Encoded {
                text: "cGxhaW4gdGV4dA==".to_owned(),
                is_binary: true
            }
        );
        assert_eq!(encode(&[0xff, 0x00]).text, "/wA=");
        assert!(encode(b"").is_binary);
    }

    #[test]
    fn columns_decode_back_to_the_original_bytes() {
        for value in [&b"{\"k\":1}"[..], b"plain text", &[0xff, 0x00, 0x80], b""] {
            let encoded = encode(value);
            let flag = ValueRef::Integer(i64::from(encoded.is_binary));
            let decoded = decode(ValueRef::Text(encoded.text.as_bytes()), flag).unwrap();
            assert_eq!(decoded, value);
        }
        assert_eq!(
            decode(ValueRef::Text(b"/wA="), ValueRef::Text(b"true")).unwrap(),
            &[0xff, 0x00][..]
        );
        let error = decode(ValueRef::Text(b"not base64!"), ValueRef::Integer(1)).unwrap_err();
        assert!(error.starts_with("failed to decode binary data"), "{error}");
    }
}
