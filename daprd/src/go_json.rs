//! JSON written byte for byte as upstream's Go sidecar writes it with `encoding/json`, so
//! the same request yields the same bytes whichever sidecar served it: state values and
//! the CloudEvents pub/sub publishes.
//!
//! A decoded value is written compact, object keys sorted, and `<`, `>`, `&`, U+2028 and
//! U+2029 escaped. A value decoded as Go decodes into `any` (e.g. a state value saved over
//! HTTP) has every number as a float64 (`1.0` is `1`, `1e21` is `1e+21`); one decoded with
//! `UseNumber` (a CloudEvent's `data`, see [`decode_precise`]) keeps each number's text.
//! Values returned inside HTTP JSON bodies (bulk get, query) are spliced in compacted as
//! Go's `json.RawMessage` is; a value that is not JSON, which upstream cannot encode at
//! all, is given as a base64 JSON string instead.

use std::collections::BTreeMap;

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

/// A JSON value as Go decodes it into `any` with `UseNumber`: numbers keep their text,
/// objects are maps (a repeated key keeps its last value) written with sorted keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written in the document.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<GoValue>),
    /// An object.
    Object(BTreeMap<String, GoValue>),
}

impl GoValue {
    /// A string value.
    pub fn text(text: impl Into<String>) -> Self {
        Self::String(text.into())
    }

    /// The value as Go decodes it into `any` without `UseNumber`: numbers become float64.
    pub fn to_float_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(flag) => Value::Bool(*flag),
            Self::Number(text) => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
            Self::String(text) => Value::String(text.clone()),
            Self::Array(items) => Value::Array(items.iter().map(Self::to_float_value).collect()),
            Self::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(key, item)| (key.clone(), item.to_float_value()))
                    .collect(),
            ),
        }
    }

    /// Go's name for the kind of value, as its unmarshal errors give it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "bool",
            Self::Number(_) => "number",
            Self::String(_) => "string",
            Self::Array(_) => "array",
            Self::Object(_) => "object",
        }
    }
}

/// The bytes Go's `json.Marshal` writes for `value`.
pub fn encode_go_value(value: &GoValue) -> Vec<u8> {
    let mut out = Vec::new();
    write_go_value(&mut out, value);
    out
}

fn write_go_value(out: &mut Vec<u8>, value: &GoValue) {
    match value {
        GoValue::Null => out.extend_from_slice(b"null"),
        GoValue::Bool(true) => out.extend_from_slice(b"true"),
        GoValue::Bool(false) => out.extend_from_slice(b"false"),
        GoValue::Number(text) => out.extend_from_slice(text.as_bytes()),
        GoValue::String(text) => write_string(out, text),
        GoValue::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_go_value(out, item);
            }
            out.push(b']');
        }
        GoValue::Object(fields) => {
            out.push(b'{');
            for (index, (key, item)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_go_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// A document Go's decoder refuses, with Go's words for why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Decodes the first JSON value of `document` as Go's `json.Decoder` with `UseNumber`
/// does (anything after it is not read). Invalid UTF-8 becomes U+FFFD.
pub fn decode_precise(document: &[u8]) -> Result<GoValue, DecodeError> {
    let text = String::from_utf8_lossy(document);
    let mut parser = Parser {
        chars: text.chars().collect(),
        at: 0,
    };
    parser.skip_space();
    if parser.peek().is_none() {
        return Err(DecodeError("EOF".to_owned()));
    }
    let value = parser.value()?;
    let delimited = matches!(value, GoValue::Object(_) | GoValue::Array(_));
    match parser.peek() {
        Some(next) if !delimited && !matches!(next, ' ' | '\t' | '\n' | '\r') => {
            Err(invalid(next, "after top-level value"))
        }
        _ => Ok(value),
    }
}

/// Decodes `document` as Go decodes into a `map[string]any` with `UseNumber`.
pub fn decode_precise_object(document: &[u8]) -> Result<BTreeMap<String, GoValue>, DecodeError> {
    match decode_precise(document)? {
        GoValue::Object(fields) => Ok(fields),
        GoValue::Null => Ok(BTreeMap::new()),
        other => Err(DecodeError(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            other.kind()
        ))),
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Result<char, DecodeError> {
        let next = self.peek().ok_or_else(unexpected_eof)?;
        self.at += 1;
        Ok(next)
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.at += 1;
        }
    }

    fn value(&mut self) -> Result<GoValue, DecodeError> {
        self.skip_space();
        match self.next()? {
            '{' => self.object(),
            '[' => self.array(),
            '"' => self.string().map(GoValue::String),
            't' => self.literal("true", GoValue::Bool(true)),
            'f' => self.literal("false", GoValue::Bool(false)),
            'n' => self.literal("null", GoValue::Null),
            first @ ('-' | '0'..='9') => self.number(first),
            other => Err(invalid(other, "looking for beginning of value")),
        }
    }

    fn literal(&mut self, word: &str, value: GoValue) -> Result<GoValue, DecodeError> {
        for expected in word.chars().skip(1) {
            let found = self.next()?;
            if found != expected {
                return Err(invalid(
                    found,
                    &format!("in literal {word} (expecting {})", quote_char(expected)),
                ));
            }
        }
        Ok(value)
    }

    fn digits(&mut self, text: &mut String) {
        while let Some(digit @ '0'..='9') = self.peek() {
            text.push(digit);
            self.at += 1;
        }
    }

    fn number(&mut self, first: char) -> Result<GoValue, DecodeError> {
        let mut text = String::from(first);
        let leading = if first == '-' {
            let digit = self.next()?;
            if !digit.is_ascii_digit() {
                return Err(invalid(digit, "in numeric literal"));
            }
            text.push(digit);
            digit
        } else {
            first
        };
        if leading != '0' {
            self.digits(&mut text);
        }
        if self.peek() == Some('.') {
            self.at += 1;
            text.push('.');
            let digit = self.next()?;
            if !digit.is_ascii_digit() {
                return Err(invalid(digit, "after decimal point in numeric literal"));
            }
            text.push(digit);
            self.digits(&mut text);
        }
        if let Some(marker @ ('e' | 'E')) = self.peek() {
            self.at += 1;
            text.push(marker);
            let mut digit = self.next()?;
            if digit == '+' || digit == '-' {
                text.push(digit);
                digit = self.next()?;
            }
            if !digit.is_ascii_digit() {
                return Err(invalid(digit, "in exponent of numeric literal"));
            }
            text.push(digit);
            self.digits(&mut text);
        }
        Ok(GoValue::Number(text))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let mut text = String::new();
        loop {
            match self.next()? {
                '"' => return Ok(text),
                '\\' => match self.next()? {
                    '"' => text.push('"'),
                    '\\' => text.push('\\'),
                    '/' => text.push('/'),
                    'b' => text.push('\u{8}'),
                    'f' => text.push('\u{c}'),
                    'n' => text.push('\n'),
                    'r' => text.push('\r'),
                    't' => text.push('\t'),
                    'u' => {
                        let unit = self.hex4()?;
                        text.push(self.code_point(unit)?);
                    }
                    other => return Err(invalid(other, "in string escape code")),
                },
                control @ '\u{0}'..='\u{1f}' => {
                    return Err(invalid(control, "in string literal"));
                }
                other => text.push(other),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let mut unit = 0;
        for _ in 0..4 {
            let digit = self.next()?;
            let value = digit
                .to_digit(16)
                .ok_or_else(|| invalid(digit, "in \\u hexadecimal character escape"))?;
            unit = unit * 16 + value;
        }
        Ok(unit)
    }

    /// The character of a `\u` escape; a surrogate pairs with a following `\u` escape,
    /// and one that does not pair is U+FFFD, as Go decodes it.
    fn code_point(&mut self, unit: u32) -> Result<char, DecodeError> {
        if (0xD800..0xDC00).contains(&unit)
            && self.chars.get(self.at) == Some(&'\\')
            && self.chars.get(self.at + 1) == Some(&'u')
        {
            let saved = self.at;
            self.at += 2;
            let low = self.hex4()?;
            if (0xDC00..0xE000).contains(&low) {
                let combined = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                return Ok(char::from_u32(combined).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            self.at = saved;
        }
        Ok(char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    fn array(&mut self) -> Result<GoValue, DecodeError> {
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(']') {
            self.at += 1;
            return Ok(GoValue::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_space();
            match self.next()? {
                ',' => {}
                ']' => return Ok(GoValue::Array(items)),
                other => return Err(invalid(other, "after array element")),
            }
        }
    }

    fn object(&mut self) -> Result<GoValue, DecodeError> {
        let mut fields = BTreeMap::new();
        self.skip_space();
        if self.peek() == Some('}') {
            self.at += 1;
            return Ok(GoValue::Object(fields));
        }
        loop {
            self.skip_space();
            let quote = self.next()?;
            if quote != '"' {
                return Err(invalid(quote, "looking for beginning of object key string"));
            }
            let key = self.string()?;
            self.skip_space();
            let colon = self.next()?;
            if colon != ':' {
                return Err(invalid(colon, "after object key"));
            }
            let value = self.value()?;
            fields.insert(key, value);
            self.skip_space();
            match self.next()? {
                ',' => {}
                '}' => return Ok(GoValue::Object(fields)),
                other => return Err(invalid(other, "after object key:value pair")),
            }
        }
    }
}

fn unexpected_eof() -> DecodeError {
    DecodeError("unexpected EOF".to_owned())
}

fn invalid(found: char, context: &str) -> DecodeError {
    DecodeError(format!("invalid character {} {context}", quote_char(found)))
}

/// A character quoted as Go's JSON errors quote it (`'x'`, `'\n'`, `'\x01'`).
fn quote_char(character: char) -> String {
    let inner = match character {
        '\'' => "\\'".to_owned(),
        '\u{7}' => "\\a".to_owned(),
        '\u{8}' => "\\b".to_owned(),
        '\u{c}' => "\\f".to_owned(),
        '\n' => "\\n".to_owned(),
        '\r' => "\\r".to_owned(),
        '\t' => "\\t".to_owned(),
        '\u{b}' => "\\v".to_owned(),
        '\\' => "\\\\".to_owned(),
        control if control.is_control() && u32::from(control) < 0x100 => {
            format!("\\x{:02x}", u32::from(control))
        }
        other => other.to_string(),
    };
    format!("'{inner}'")
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

    #[test]
    fn precise_values_keep_number_text_and_sort_keys() {
        let value = decode_precise(
            br#" {"b": 1.50, "a": [12345678901234567890, 1e5, -0.0], "a\u0026": "\ud83d\ude00<"} trailing"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(encode_go_value(&value)).unwrap(),
            r#"{"a":[12345678901234567890,1e5,-0.0],"a\u0026":"😀\u003c","b":1.50}"#
        );
        let repeated = decode_precise(br#"{"k": 1, "k": 2}"#).unwrap();
        assert_eq!(encode_go_value(&repeated), br#"{"k":2}"#);
        let lone = decode_precise(br#""\ud800x""#).unwrap();
        assert_eq!(lone, GoValue::text("\u{fffd}x"));
    }

    #[test]
    fn bad_documents_fail_with_gos_words() {
        let error = |document: &[u8]| decode_precise(document).unwrap_err().to_string();
        assert_eq!(error(b""), "EOF");
        assert_eq!(error(b"  "), "EOF");
        assert_eq!(error(b"{\"a\":"), "unexpected EOF");
        assert_eq!(
            error(b"hello"),
            "invalid character 'h' looking for beginning of value"
        );
        assert_eq!(
            error(b"{a}"),
            "invalid character 'a' looking for beginning of object key string"
        );
        assert_eq!(
            error(b"{\"a\" 1}"),
            "invalid character '1' after object key"
        );
        assert_eq!(
            error(b"{\"a\":1 2}"),
            "invalid character '2' after object key:value pair"
        );
        assert_eq!(error(b"[1 2]"), "invalid character '2' after array element");
        assert_eq!(
            error(b"[1,]"),
            "invalid character ']' looking for beginning of value"
        );
        assert_eq!(
            error(b"\"a\nb\""),
            "invalid character '\\n' in string literal"
        );
        assert_eq!(error(b"tru"), "unexpected EOF");
        assert_eq!(
            error(b"trux"),
            "invalid character 'x' in literal true (expecting 'e')"
        );
        assert_eq!(error(b"-x"), "invalid character 'x' in numeric literal");
        assert_eq!(
            error(b"1.x"),
            "invalid character 'x' after decimal point in numeric literal"
        );
        assert_eq!(
            decode_precise_object(b"[1]").unwrap_err().to_string(),
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
    }
}
