//! What the gRPC layers need to know about a call from its HTTP/2 shape alone: the status
//! (from `grpc-status` in the headers of a trailers-only response or in the trailers), the
//! names upstream gives status codes in metric labels, and the size of the messages in a
//! length-prefixed body.

use std::borrow::Cow;

use http::HeaderMap;

/// The `grpc-status` header.
pub(crate) const GRPC_STATUS: &str = "grpc-status";
/// The `grpc-message` header.
pub(crate) const GRPC_MESSAGE: &str = "grpc-message";

/// gRPC `OK`.
pub(crate) const CODE_OK: i32 = 0;
/// gRPC `CANCELLED`: the caller went away.
pub(crate) const CODE_CANCELLED: i32 = 1;
/// gRPC `UNKNOWN`: a response that carried no status.
pub(crate) const CODE_UNKNOWN: i32 = 2;

/// The numeric `grpc-status` in `headers`, if present and numeric.
pub(crate) fn status_in(headers: &HeaderMap) -> Option<i32> {
    headers.get(GRPC_STATUS)?.to_str().ok()?.trim().parse().ok()
}

/// The `grpc-message` in `headers`, percent-decoded as the gRPC spec encodes it.
pub(crate) fn message_in(headers: &HeaderMap) -> String {
    headers
        .get(GRPC_MESSAGE)
        .map(|value| percent_decode(value.as_bytes()))
        .unwrap_or_default()
}

/// Percent-encodes a `grpc-message` value (bytes outside printable ASCII, and `%`).
pub(crate) fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn percent_decode(encoded: &[u8]) -> String {
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut index = 0;
    while index < encoded.len() {
        let byte = encoded[index];
        if byte == b'%' {
            let high = encoded
                .get(index + 1)
                .and_then(|b| (*b as char).to_digit(16));
            let low = encoded
                .get(index + 2)
                .and_then(|b| (*b as char).to_digit(16));
            if let (Some(high), Some(low)) = (high, low) {
                decoded.push((high * 16 + low) as u8);
                index += 3;
                continue;
            }
        }
        decoded.push(byte);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The name upstream's metrics give a status code (Go's `codes.Code.String()`).
pub(crate) fn code_name(code: i32) -> Cow<'static, str> {
    let name = match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        other => return Cow::Owned(format!("Code({other})")),
    };
    Cow::Borrowed(name)
}

/// Counts the messages of a length-prefixed gRPC body and their payload bytes (without the
/// five-byte prefix, like upstream's `proto.Size`), across arbitrary chunk boundaries.
#[derive(Debug, Default, Clone)]
pub(crate) struct MessageTally {
    prefix: [u8; 5],
    prefix_filled: usize,
    payload_left: u64,
    /// Payload bytes seen so far.
    pub(crate) payload_bytes: u64,
    /// Messages started so far.
    pub(crate) messages: u64,
}

impl MessageTally {
    /// Feeds the next chunk of the body.
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if self.payload_left > 0 {
                let take = chunk
                    .len()
                    .min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                self.payload_bytes += take as u64;
                self.payload_left -= take as u64;
                chunk = &chunk[take..];
                continue;
            }
            let take = (5 - self.prefix_filled).min(chunk.len());
            self.prefix[self.prefix_filled..self.prefix_filled + take]
                .copy_from_slice(&chunk[..take]);
            self.prefix_filled += take;
            chunk = &chunk[take..];
            if self.prefix_filled == 5 {
                self.prefix_filled = 0;
                self.messages += 1;
                let length = [
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ];
                self.payload_left = u64::from(u32::from_be_bytes(length));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_messages_split_across_chunks() {
        let mut body = Vec::new();
        for payload in [&b"hello"[..], b"", b"0123456789"] {
            body.push(0);
            body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            body.extend_from_slice(payload);
        }
        for split in 0..body.len() {
            let mut tally = MessageTally::default();
            tally.feed(&body[..split]);
            tally.feed(&body[split..]);
            assert_eq!(
                (tally.messages, tally.payload_bytes),
                (3, 15),
                "split at {split}"
            );
        }
        let mut bytewise = MessageTally::default();
        body.iter()
            .for_each(|byte| bytewise.feed(std::slice::from_ref(byte)));
        assert_eq!((bytewise.messages, bytewise.payload_bytes), (3, 15));
    }

    #[test]
    fn reads_status_and_decodes_message() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_in(&headers), None);
        headers.insert(GRPC_STATUS, "5".parse().unwrap());
        headers.insert(GRPC_MESSAGE, "not%20found%3A%20k%".parse().unwrap());
        assert_eq!(status_in(&headers), Some(5));
        assert_eq!(message_in(&headers), "not found: k%");
        assert_eq!(percent_encode("50% \u{e9}"), "50%25 %C3%A9");
        assert_eq!(code_name(1), "Canceled");
        assert_eq!(code_name(42), "Code(42)");
    }
}
