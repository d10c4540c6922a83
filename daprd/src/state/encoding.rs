//! How state values are encoded, byte for byte as upstream's Go sidecar does, so the same
//! request stores the same bytes whichever sidecar served it.
//!
//! A JSON value saved over HTTP (or over gRPC with `contentType: application/json`) is
//! stored as Go's `encoding/json` writes a decoded value: compact, object keys sorted,
//! every number as a float64 (`1.0` is `1`, `1e21` is `1e+21`), and `<`, `>`, `&`,
//! U+2028 and U+2029 escaped. Values returned inside HTTP JSON bodies (bulk get, query)
//! are spliced in compacted as Go's `json.RawMessage` is; a value that is not JSON, which
//! upstream cannot encode at all, is given as a base64 JSON string instead.

use base64::Engine;
use serde_json::Value;

/// The stored bytes of a JSON value.
pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, value);
    out
}

/// The stored bytes of a JSON document given as bytes (re-encoded as [`encode_value`]).
pub fn normalize(document: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let value: Value = serde_json::from_slice(document)?;
    Ok(encode_value(&value))
}

/// Writes `value` as Go's `encoding/json` writes a decoded `any`.
fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => match number.as_f64() {
            Some(float) => write_float(out, float),
            None => out.extend_from_slice(number.to_string().as_bytes()),
        },
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            let mut fields: Vec<_> = fields.iter().collect();
            fields.sort_unstable_by_key(|(key, _)| *key);
            write_object(
                out,
                fields.into_iter().map(|(key, value)| (key.as_str(), value)),
            );
        }
    }
}

/// Writes `{"k":v,...}` with the entries in the given order.
fn write_object<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = (&'a str, &'a Value)>) {
    out.push(b'{');
    for (index, (key, value)) in fields.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

/// Writes a string map with its keys sorted, as Go writes a `map[string]string`.
pub fn write_string_map<'a>(
    out: &mut Vec<u8>,
    entries: impl Iterator<Item = (&'a String, &'a String)>,
) {
    let mut entries: Vec<_> = entries.collect();
    entries.sort_unstable();
    out.push(b'{');
    for (index, (key, value)) in entries.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        write_string(out, value);
    }
    out.push(b'}');
}

/// Writes a float64 as Go does: shortest round-trip digits, plain notation between 1e-6
/// and 1e21, exponent notation (`1e+21`, `1e-7`) outside.
fn write_float(out: &mut Vec<u8>, float: f64) {
    let magnitude = float.abs();
    let text = if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        let scientific = format!("{float:e}");
        match scientific.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                format!("{mantissa}e+{exponent}")
            }
            _ => scientific,
        }
    } else {
        format!("{float}")
    };
    out.extend_from_slice(text.as_bytes());
}

/// Writes a JSON string with Go's escapes.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for character in text.chars() {
        match character {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{0}'..='\u{1f}' => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(character)).as_bytes());
            }
            other => {
                let mut buffer = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Writes stored bytes as a JSON value inside a response: the JSON document compacted
/// (as Go's `json.RawMessage`), `null` for no bytes, or a base64 string for bytes that
/// are not JSON.
pub fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        out.extend_from_slice(b"null");
    } else if serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok() {
        compact(out, data);
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        write_string(out, &encoded);
    }
}

/// Copies a valid JSON document without insignificant whitespace, escaping `<`, `>`, `&`,
/// U+2028 and U+2029 inside strings as Go's compaction does.
fn compact(out: &mut Vec<u8>, document: &[u8]) {
    const LINE_SEPARATOR: &[u8] = "\u{2028}".as_bytes();
    const PARAGRAPH_SEPARATOR: &[u8] = "\u{2029}".as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let mut index = 0;
    while let Some(&byte) = document.get(index) {
        index += 1;
        if !in_string {
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' => {}
                b'"' => {
                    in_string = true;
                    out.push(byte);
                }
                _ => out.push(byte),
            }
            continue;
        }
        if escaped {
            escaped = false;
            out.push(byte);
            continue;
        }
        let rest = &document[index - 1..];
        match byte {
            b'\\' => {
                escaped = true;
                out.push(byte);
            }
            b'"' => {
                in_string = false;
                out.push(byte);
            }
            b'<' | b'>' | b'&' => {
                out.extend_from_slice(format!("\\u{byte:04x}").as_bytes());
            }
            _ if rest.starts_with(LINE_SEPARATOR) => {
                out.extend_from_slice(b"\\u2028");
                index += 2;
            }
            _ if rest.starts_with(PARAGRAPH_SEPARATOR) => {
                out.extend_from_slice(b"\\u2029");
                index += 2;
            }
            _ => out.push(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(value: Value) -> String {
        String::from_utf8(encode_value(&value)).unwrap()
    }

    #[test]
    fn values_are_encoded_like_gos_encoding_json() {
        assert_eq!(encoded(json!("value1")), r#""value1""#);
        assert_eq!(
            encoded(json!({"b": 1, "a": [true, null, 1.5], "c": {"z": "x", "y": 2.0}})),
            r#"{"a":[true,null,1.5],"b":1,"c":{"y":2,"z":"x"}}"#
        );
        assert_eq!(
            encoded(json!("<a href=\"x\">&</a>")),
            r#""\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e""#
        );
        assert_eq!(
            encoded(json!("tab\there\nnew\u{1}\u{8}\u{2028}")),
            r#""tab\there\nnew\u0001\b\u2028""#
        );
        assert_eq!(
            encoded(json!(12345678901234567890u64)),
            "12345678901234567000"
        );
        assert_eq!(encoded(json!(1e21)), "1e+21");
        assert_eq!(encoded(json!(1e20)), "100000000000000000000");
        assert_eq!(encoded(json!(0.000001)), "0.000001");
        assert_eq!(encoded(json!(0.0000001)), "1e-7");
        assert_eq!(encoded(json!(-2.5e-10)), "-2.5e-10");
        assert_eq!(encoded(json!(0)), "0");
    }

    #[test]
    fn documents_are_normalized_and_bad_ones_refused() {
        assert_eq!(
            normalize(br#" { "b" : 2 , "a" : 1 } "#).unwrap(),
            br#"{"a":1,"b":2}"#
        );
        assert!(normalize(b"{oops").is_err());
    }

    #[test]
    fn data_is_spliced_compacted_or_given_as_base64() {
        let data = |bytes: &[u8]| {
            let mut out = Vec::new();
            write_data(&mut out, bytes);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            data(b"{ \"b\": \"a b<\\\"\" ,\n \"a\": 1 }"),
            r#"{"b":"a b\u003c\"","a":1}"#
        );
        assert_eq!(data("\"\u{2029}\"".as_bytes()), r#""\u2029""#);
        assert_eq!(data(b""), "null");
        assert_eq!(data(&[0xff, 0x00, b'h', b'i']), r#""/wBoaQ==""#);
        assert_eq!(data(b"plain text"), r#""cGxhaW4gdGV4dA==""#);
    }

    #[test]
    fn string_maps_are_written_with_sorted_keys() {
        let map = std::collections::HashMap::from([
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "<1>".to_owned()),
        ]);
        let mut out = Vec::new();
        write_string_map(&mut out, map.iter());
        assert_eq!(out, br#"{"a":"\u003c1\u003e","b":"2"}"#);
    }
}
