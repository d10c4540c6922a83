//! The trace context of a call and its wire formats: W3C `traceparent` / `tracestate`
//! headers and the OpenCensus binary `grpc-trace-bin` metadata. Parsing follows upstream's
//! rules; anything malformed yields no context (a new trace starts), never an error.

use http::{HeaderMap, HeaderValue};

use super::binary_header;

/// The W3C trace parent header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C trace state header.
pub const TRACESTATE: &str = "tracestate";
/// The OpenCensus binary trace context metadata of gRPC calls.
pub const GRPC_TRACE_BIN: &str = "grpc-trace-bin";
/// Longest `tracestate` that is propagated, as upstream.
pub const MAX_TRACESTATE_LEN: usize = 512;

/// Highest `traceparent` version accepted (255 is invalid by the spec).
const MAX_VERSION: u8 = 254;
/// Most members a `tracestate` may have.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A vendor `tracestate` list, validated and normalised (members joined by `,`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TraceState(String);

impl TraceState {
    /// Parses a `tracestate` header; an invalid list (bad key or value, duplicate key, more
    /// than 32 members) is dropped whole, as upstream.
    pub fn parse(header: &str) -> TraceState {
        let mut members: Vec<&str> = Vec::new();
        let mut keys: Vec<&str> = Vec::new();
        for member in header.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let Some((key, value)) = member.split_once('=') else {
                return TraceState::default();
            };
            if !valid_key(key) || !valid_value(value) || keys.contains(&key) {
                return TraceState::default();
            }
            keys.push(key);
            members.push(member);
        }
        if members.len() > MAX_TRACESTATE_MEMBERS {
            return TraceState::default();
        }
        TraceState(members.join(","))
    }

    /// The list as a header value (empty when there is none).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn key_character(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'_' | b'-' | b'*' | b'/')
}

fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    match key.split_once('@') {
        None => {
            bytes.len() <= 256
                && bytes.first().is_some_and(u8::is_ascii_lowercase)
                && bytes.iter().all(|byte| key_character(*byte))
        }
        Some((tenant, system)) => {
            let (tenant, system) = (tenant.as_bytes(), system.as_bytes());
            (1..=241).contains(&tenant.len())
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && tenant.iter().all(|byte| key_character(*byte))
                && (1..=14).contains(&system.len())
                && system[0].is_ascii_lowercase()
                && system.iter().all(|byte| key_character(*byte))
        }
    }
}

fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    let allowed = |byte: u8| matches!(byte, 0x20..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    (1..=256).contains(&bytes.len())
        && bytes.iter().all(|byte| allowed(*byte))
        && bytes.last().is_some_and(|byte| *byte != b' ')
}

/// Who a call belongs to: trace id, the calling span, the sampling flags and vendor state.
/// Trace and span ids are never all zeros.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    state: TraceState,
}

impl TraceContext {
    /// The "sampled" trace flag.
    pub const SAMPLED: u8 = 0x01;

    /// A context from raw ids; `None` when either is all zeros.
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<Self> {
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags,
            state: TraceState::default(),
        })
    }

    /// The same context carrying `state`.
    pub fn with_trace_state(mut self, state: TraceState) -> Self {
        self.state = state;
        self
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id of the span this context describes.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The trace flags byte.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the trace is sampled (recorded and exported).
    pub fn is_sampled(&self) -> bool {
        self.flags & Self::SAMPLED != 0
    }

    /// The vendor trace state.
    pub fn trace_state(&self) -> &TraceState {
        &self.state
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// Parses a `traceparent` value (`version-traceid-spanid-flags`) the way upstream
    /// does: versions up to 254 (exactly four fields for version 0), lowercase ids that
    /// are not all zeros, and the first byte of the flags field.
    pub fn from_traceparent(header: &str) -> Option<Self> {
        let sections: Vec<&str> = header.split('-').collect();
        if sections.len() < 4 || sections[0].len() != 2 {
            return None;
        }
        let version = *decode_hex_any_case(sections[0])?.first()?;
        if version > MAX_VERSION || (version == 0 && sections.len() != 4) {
            return None;
        }
        let trace_id: [u8; 16] = decode_lowercase_id(sections[1])?;
        let span_id: [u8; 8] = decode_lowercase_id(sections[2])?;
        let flags = *decode_hex_any_case(sections[3])?.first()?;
        TraceContext::new(trace_id, span_id, flags)
    }

    /// The `traceparent` value (version 00).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }

    /// Parses the OpenCensus binary format: version 0, then field 0 (trace id), optionally
    /// field 1 (span id), optionally field 2 (flags). A context without a span id is no
    /// context (upstream treats it as invalid too).
    pub fn from_binary(bytes: &[u8]) -> Option<Self> {
        let (&version, mut rest) = bytes.split_first()?;
        if version != 0 {
            return None;
        }
        if rest.len() < 17 || rest[0] != 0 {
            return None;
        }
        let trace_id: [u8; 16] = rest[1..17].try_into().ok()?;
        rest = &rest[17..];
        let mut span_id = [0u8; 8];
        if rest.len() >= 9 && rest[0] == 1 {
            span_id.copy_from_slice(&rest[1..9]);
            rest = &rest[9..];
        }
        let mut flags = 0;
        if rest.len() >= 2 && rest[0] == 2 {
            flags = rest[1];
        }
        TraceContext::new(trace_id, span_id, flags)
    }

    /// The OpenCensus binary format (29 bytes).
    pub fn to_binary(&self) -> [u8; 29] {
        let mut bytes = [0u8; 29];
        bytes[2..18].copy_from_slice(&self.trace_id);
        bytes[18] = 1;
        bytes[19..27].copy_from_slice(&self.span_id);
        bytes[27] = 2;
        bytes[28] = self.flags;
        bytes
    }

    /// The context of an incoming HTTP request (`traceparent`, plus `tracestate` when the
    /// parent is valid).
    pub fn from_http_headers(headers: &HeaderMap) -> Option<Self> {
        let parent = headers.get(TRACEPARENT)?.to_str().ok()?;
        let context = TraceContext::from_traceparent(parent)?;
        let state = headers
            .get(TRACESTATE)
            .and_then(|value| value.to_str().ok())
            .map(TraceState::parse)
            .unwrap_or_default();
        Some(context.with_trace_state(state))
    }

    /// The context of an incoming gRPC call: `grpc-trace-bin` (base64, as gRPC carries
    /// binary metadata) when present, else `traceparent` / `tracestate`.
    pub fn from_grpc_metadata(headers: &HeaderMap) -> Option<Self> {
        match headers.get(GRPC_TRACE_BIN) {
            Some(binary) => TraceContext::from_binary(&binary_header::decode(binary.as_bytes())?),
            None => TraceContext::from_http_headers(headers),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

fn decode_hex_any_case(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let high = (pair[0] as char).to_digit(16)?;
            let low = (pair[1] as char).to_digit(16)?;
            Some((high * 16 + low) as u8)
        })
        .collect()
}

fn decode_lowercase_id<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2
        || !text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    {
        return None;
    }
    decode_hex_any_case(text)?.try_into().ok()
}

/// Writes `context` into outgoing HTTP headers: `traceparent`, and `tracestate` when there
/// is one no longer than [`MAX_TRACESTATE_LEN`]. Existing values are replaced.
pub fn inject_into(headers: &mut HeaderMap, context: &TraceContext) {
    if let Ok(parent) = HeaderValue::from_str(&context.traceparent()) {
        headers.insert(TRACEPARENT, parent);
    }
    let state = context.trace_state().as_str();
    if !state.is_empty() && state.len() <= MAX_TRACESTATE_LEN {
        if let Ok(state) = HeaderValue::from_str(state) {
            headers.insert(TRACESTATE, state);
        }
    } else {
        headers.remove(TRACESTATE);
    }
}

/// Writes `context` into the headers of an outgoing gRPC call: `traceparent` and the
/// base64 `grpc-trace-bin`, as upstream sends both.
pub fn inject_grpc_into(headers: &mut HeaderMap, context: &TraceContext) {
    if let Ok(parent) = HeaderValue::from_str(&context.traceparent()) {
        headers.insert(TRACEPARENT, parent);
    }
    if let Ok(binary) = HeaderValue::from_str(&binary_header::encode(&context.to_binary())) {
        headers.insert(GRPC_TRACE_BIN, binary);
    }
}

/// [`inject_grpc_into`] for a tonic request's metadata.
pub fn inject_grpc_metadata(metadata: &mut tonic::metadata::MetadataMap, context: &TraceContext) {
    if let Ok(parent) = tonic::metadata::MetadataValue::try_from(context.traceparent()) {
        metadata.insert(TRACEPARENT, parent);
    }
    metadata.insert_bin(
        GRPC_TRACE_BIN,
        tonic::metadata::MetadataValue::from_bytes(&context.to_binary()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn traceparent_round_trips() {
        let context = TraceContext::from_traceparent(PARENT).unwrap();
        assert_eq!(context.trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(context.span_id_hex(), "b7ad6b7169203331");
        assert!(context.is_sampled());
        assert_eq!(context.traceparent(), PARENT);
    }

    #[test]
    fn traceparent_follows_upstreams_rules() {
        let accepted = [
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-extra",
            "FE-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0A",
        ];
        for header in accepted {
            assert!(TraceContext::from_traceparent(header).is_some(), "{header}");
        }
        let rejected = [
            "",
            "garbage",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01",
            "zz-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ];
        for header in rejected {
            assert!(
                TraceContext::from_traceparent(header).is_none(),
                "{header:?}"
            );
        }
    }

    #[test]
    fn tracestate_keeps_valid_lists_and_drops_invalid_ones() {
        assert_eq!(
            TraceState::parse("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE").as_str(),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
        );
        assert_eq!(
            TraceState::parse("t@vendor=x,,a-b*/_=1 2").as_str(),
            "t@vendor=x,a-b*/_=1 2"
        );
        for invalid in [
            "Upper=1",
            "a=1,a=2",
            "noequals",
            "a=",
            "a=b,c=d=e",
            "1abc=x",
            "t@V=x",
        ] {
            assert!(TraceState::parse(invalid).is_empty(), "{invalid}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(TraceState::parse(&many.join(",")).is_empty());
        assert!(!TraceState::parse(&many[..32].join(",")).is_empty());
    }

    #[test]
    fn binary_format_round_trips_and_rejects_garbage() {
        let context = TraceContext::from_traceparent(PARENT).unwrap();
        let binary = context.to_binary();
        assert_eq!(binary.len(), 29);
        assert_eq!(
            (binary[0], binary[1], binary[18], binary[27], binary[28]),
            (0, 0, 1, 2, 1)
        );
        assert_eq!(TraceContext::from_binary(&binary).unwrap(), context);
        // Without flags: unsampled.
        assert!(
            !TraceContext::from_binary(&binary[..27])
                .unwrap()
                .is_sampled()
        );
        for garbage in [&[][..], &[1][..], &binary[..10], &[0u8; 29][..]] {
            assert!(TraceContext::from_binary(garbage).is_none(), "{garbage:?}");
        }
        // No span id: no usable context.
        assert!(TraceContext::from_binary(&binary[..18]).is_none());
    }

    #[test]
    fn headers_carry_context_both_ways() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, PARENT.parse().unwrap());
        headers.insert(TRACESTATE, "vendor=value".parse().unwrap());
        let context = TraceContext::from_http_headers(&headers).unwrap();
        assert_eq!(context.trace_state().as_str(), "vendor=value");

        let mut outgoing = HeaderMap::new();
        inject_into(&mut outgoing, &context);
        assert_eq!(outgoing[TRACEPARENT], PARENT);
        assert_eq!(outgoing[TRACESTATE], "vendor=value");

        let mut grpc = HeaderMap::new();
        inject_grpc_into(&mut grpc, &context);
        assert_eq!(grpc[TRACEPARENT], PARENT);
        let decoded = TraceContext::from_grpc_metadata(&grpc).unwrap();
        assert_eq!(
            (decoded.trace_id(), decoded.span_id(), decoded.flags()),
            (context.trace_id(), context.span_id(), 1)
        );

        let mut metadata = tonic::metadata::MetadataMap::new();
        inject_grpc_metadata(&mut metadata, &context);
        let headers = metadata.into_headers();
        assert_eq!(
            TraceContext::from_grpc_metadata(&headers)
                .unwrap()
                .span_id(),
            context.span_id()
        );
    }

    #[test]
    fn grpc_falls_back_to_traceparent_and_ignores_bad_binary() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, PARENT.parse().unwrap());
        assert!(TraceContext::from_grpc_metadata(&headers).is_some());
        headers.insert(GRPC_TRACE_BIN, "!!notbase64".parse().unwrap());
        assert!(TraceContext::from_grpc_metadata(&headers).is_none());
    }
}
