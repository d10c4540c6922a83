//! How upstream's `bindings.localstorage` turns a `create` request's data into file
//! content: a Go-quoted string (`"..."`, `'x'` or `` `...` ``, Go's `strconv.Unquote`) is
//! unquoted first, and the result, when it is standard base64 (padded, line breaks
//! ignored), is decoded. Anything else is written as given.
//!
//! Through the HTTP API a JSON string in `data` arrives with its quotes, so
//! `"data": "Hello"` writes `Hello` and `"data": "aGVsbG8="` writes `hello`.

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Go's `base64.StdEncoding` when decoding: padding required, trailing bits not checked.
const GO_STD_ENCODING: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// The bytes to write for a `create` request's `data`.
pub fn file_content(data: &[u8]) -> Vec<u8> {
    let unquoted = unquote(data).unwrap_or_else(|| data.to_vec());
    // Go's decoder skips carriage returns and line feeds anywhere in the input.
    let compact: Vec<u8> = unquoted
        .iter()
        .copied()
        .filter(|byte| *byte != b'\r' && *byte != b'\n')
        .collect();
    GO_STD_ENCODING.decode(compact).unwrap_or(unquoted)
}

/// Go's `strconv.Unquote`: the content of a Go string or character literal, or `None`
/// when `text` is not exactly one such literal.
fn unquote(text: &[u8]) -> Option<Vec<u8>> {
    let (&quote, rest) = text.split_first()?;
    match quote {
        b'`' => {
            let body = rest.strip_suffix(b"`")?;
            if body.contains(&b'`') {
                return None;
            }
            // Carriage returns inside raw strings are discarded.
            Some(body.iter().copied().filter(|byte| *byte != b'\r').collect())
        }
        b'"' | b'\'' => {
            let mut out = Vec::with_capacity(rest.len());
            let mut rest = rest;
            let mut characters = 0;
            loop {
                let (&first, _) = rest.split_first()?;
                if first == quote {
                    rest = &rest[1..];
                    break;
                }
                if quote == b'\'' && characters == 1 {
                    return None;
                }
                if first == b'\n' {
                    return None;
                }
                rest = unquote_char(rest, quote, &mut out)?;
                characters += 1;
            }
            // Go accepts `''` as an empty character literal.
            let complete = rest.is_empty() && (quote == b'"' || characters <= 1);
            complete.then_some(out)
        }
        _ => None,
    }
}

/// Decodes one character or escape at the start of `text` (Go's `UnquoteChar`) onto
/// `out`; returns the rest.
fn unquote_char<'a>(text: &'a [u8], quote: u8, out: &mut Vec<u8>) -> Option<&'a [u8]> {
    let (&first, rest) = text.split_first()?;
    if first == quote {
        return None;
    }
    if first >= 0x80 {
        // One UTF-8 character; an invalid byte becomes U+FFFD, as Go decodes it.
        let length = utf8_length(text);
        match std::str::from_utf8(&text[..length]) {
            Ok(character) => out.extend_from_slice(character.as_bytes()),
            Err(_) => {
                out.extend_from_slice("\u{FFFD}".as_bytes());
                return Some(rest);
            }
        }
        return Some(&text[length..]);
    }
    if first != b'\\' {
        out.push(first);
        return Some(rest);
    }
    let (&escape, rest) = rest.split_first()?;
    let simple = match escape {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        b'\\' => Some(b'\\'),
        b'\'' | b'"' if escape == quote => Some(escape),
        _ => None,
    };
    if let Some(byte) = simple {
        out.push(byte);
        return Some(rest);
    }
    match escape {
        b'x' | b'u' | b'U' => {
            let digits = match escape {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            let hex = std::str::from_utf8(rest.get(..digits)?).ok()?;
            if !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return None;
            }
            let value = u32::from_str_radix(hex, 16).ok()?;
            if escape == b'x' {
                out.push(u8::try_from(value).ok()?);
            } else {
                let character = char::from_u32(value)?;
                let mut buffer = [0; 4];
                out.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
            }
            Some(&rest[digits..])
        }
        b'0'..=b'7' => {
            let digits = text.get(1..4)?;
            if !digits.iter().all(|digit| (b'0'..=b'7').contains(digit)) {
                return None;
            }
            let value = digits
                .iter()
                .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
            out.push(u8::try_from(value).ok()?);
            Some(&text[4..])
        }
        _ => None,
    }
}

/// The length of the UTF-8 sequence a lead byte announces (1 for invalid lead bytes),
/// clamped to the bytes available.
fn utf8_length(text: &[u8]) -> usize {
    let announced = match text[0] {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    };
    announced.min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_literals_are_unquoted() {
        for (input, expected) in [
            (&b"\"hello\""[..], Some(&b"hello"[..])),
            (b"\"\"", Some(b"")),
            (b"\"a\\tb\\n\\\"c\\\\\"", Some(b"a\tb\n\"c\\")),
            (
                b"\"\\x41\\101\\u00e9\\U0001F600\"",
                Some("AA\u{e9}\u{1F600}".as_bytes()),
            ),
            (b"\"\\xff\"", Some(b"\xff")),
            (b"\"caf\xc3\xa9\"", Some("caf\u{e9}".as_bytes())),
            (b"\"bad \xff byte\"", Some("bad \u{FFFD} byte".as_bytes())),
            (b"'x'", Some(b"x")),
            (b"'\\n'", Some(b"\n")),
            (b"`raw \\n\r\nline`", Some(b"raw \\n\nline")),
            // Not exactly one literal: left as it is.
            (b"hello", None),
            (b"\"open", None),
            (b"\"a\"b\"", None),
            (b"\"a\" ", None),
            (b"\"line\nbreak\"", None),
            (b"\"\\'\"", None),
            (b"''", Some(b"")),
            (b"'ab'", None),
            (b"\"\\q\"", None),
            (b"\"\\400\"", None),
            (b"\"\\uD800\"", None),
            (b"`a`b`", None),
            (b"\"", None),
            (b"", None),
        ] {
            assert_eq!(
                unquote(input).as_deref(),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn content_is_unquoted_then_base64_decoded_when_it_is_base64() {
        for (input, expected) in [
            (&b"\"Hello World\""[..], &b"Hello World"[..]),
            (b"Hello World", b"Hello World"),
            (b"\"aGVsbG8=\"", b"hello"),
            (b"aGVsbG8=", b"hello"),
            (b"aGVs\r\nbG8=", b"hello"),
            // Unpadded base64 is not Go's standard encoding: written as given.
            (b"aGVsbG8", b"aGVsbG8"),
            // Short words that happen to be base64 are decoded, as upstream does.
            (b"abcd", b"i\xb7\x1d"),
            (b"{\"a\":1}", b"{\"a\":1}"),
            (b"", b""),
        ] {
            assert_eq!(
                file_content(input),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
