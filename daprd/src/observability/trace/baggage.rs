//! W3C `baggage` validation. Upstream's tracing middleware refuses a call whose baggage
//! does not parse (HTTP 400 / gRPC `InvalidArgument`) and echoes valid baggage back in the
//! response headers.

use http::HeaderMap;

/// The W3C baggage header.
pub const BAGGAGE: &str = "baggage";

const MAX_MEMBERS: usize = 64;
const MAX_MEMBER_BYTES: usize = 4096;
const MAX_BAGGAGE_BYTES: usize = 8192;

/// The request's baggage: every `baggage` header joined with `,`; `Ok(None)` when there
/// is none, `Err(reason)` when it is malformed.
pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Option<String>, String> {
    let mut joined: Option<String> = None;
    for value in headers.get_all(BAGGAGE) {
        let value = value
            .to_str()
            .map_err(|_| "baggage is not ASCII text".to_string())?;
        match &mut joined {
            Some(all) => {
                all.push(',');
                all.push_str(value);
            }
            None => joined = Some(value.to_string()),
        }
    }
    match joined {
        Some(baggage) => validate(&baggage).map(|()| Some(baggage)),
        None => Ok(None),
    }
}

/// Checks `baggage` against the W3C grammar and size limits.
fn validate(baggage: &str) -> Result<(), String> {
    if baggage.len() > MAX_BAGGAGE_BYTES {
        return Err(format!("baggage exceeds {MAX_BAGGAGE_BYTES} bytes"));
    }
    let members: Vec<&str> = baggage.split(',').collect();
    if members.len() > MAX_MEMBERS {
        return Err(format!("baggage has more than {MAX_MEMBERS} members"));
    }
    for member in members {
        if member.len() > MAX_MEMBER_BYTES {
            return Err(format!("baggage member exceeds {MAX_MEMBER_BYTES} bytes"));
        }
        let mut parts = member.split(';');
        let pair = parts.next().unwrap_or_default();
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("invalid baggage list-member: {member:?}"))?;
        check_key(key.trim_matches([' ', '\t']))?;
        check_value(value.trim_matches([' ', '\t']))?;
        for property in parts {
            let property = property.trim_matches([' ', '\t']);
            match property.split_once('=') {
                Some((key, value)) => {
                    check_key(key.trim_matches([' ', '\t']))?;
                    check_value(value.trim_matches([' ', '\t']))?;
                }
                None => check_key(property)?,
            }
        }
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), String> {
    let token = |byte: u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte);
    if key.is_empty() || !key.bytes().all(token) {
        return Err(format!("invalid baggage key: {key:?}"));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    let octet =
        |byte: u8| matches!(byte, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e);
    let bytes = value.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if !octet(byte) {
            return Err(format!("invalid baggage value: {value:?}"));
        }
        if byte == b'%' {
            let escaped = bytes.get(index + 1..index + 3);
            if !escaped.is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit)) {
                return Err(format!(
                    "invalid percent-encoding in baggage value: {value:?}"
                ));
            }
            index += 3;
            continue;
        }
        index += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_w3c_baggage_and_rejects_the_rest() {
        for valid in ["userId=alice", "a=1, b = 2;prop;p2=v", "k=%20x", "k="] {
            assert!(validate(valid).is_ok(), "{valid}");
        }
        for invalid in [
            "noequals",
            "a=1,,b=2",
            "bad key=1",
            "k=a b",
            "k=%zz",
            "k=v;;",
            "=v",
        ] {
            assert!(validate(invalid).is_err(), "{invalid}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
        assert!(validate(&many.join(",")).is_err());
    }

    #[test]
    fn joins_every_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(from_headers(&headers), Ok(None));
        headers.append(BAGGAGE, "a=1".parse().unwrap());
        headers.append(BAGGAGE, "b=2".parse().unwrap());
        assert_eq!(from_headers(&headers), Ok(Some("a=1,b=2".to_string())));
    }
}
