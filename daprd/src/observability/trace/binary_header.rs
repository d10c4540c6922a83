//! Binary metadata as gRPC carries it in HTTP/2 headers (`-bin` keys): standard base64,
//! written without padding and read with or without it.

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const GRPC_BINARY: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes `bytes` for a `-bin` header.
pub(crate) fn encode(bytes: &[u8]) -> String {
    GRPC_BINARY.encode(bytes)
}

/// Decodes a `-bin` header value; `None` when it is not base64.
pub(crate) fn decode(text: &[u8]) -> Option<Vec<u8>> {
    GRPC_BINARY.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_padding() {
        let bytes: Vec<u8> = (0..=255).collect();
        for length in 0..40 {
            let encoded = encode(&bytes[..length]);
            assert!(!encoded.contains('='));
            assert_eq!(decode(encoded.as_bytes()).unwrap(), &bytes[..length]);
        }
        assert_eq!(decode(b"aGk=").unwrap(), b"hi");
        assert_eq!(decode(b"aGk").unwrap(), b"hi");
        assert_eq!(decode(b"a*k"), None);
    }
}
