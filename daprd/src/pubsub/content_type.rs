//! Upstream's content-type tests (components-contrib `contenttype`): a type matches when
//! it equals the expected one, ignoring case and any `;` parameters.

/// `application/cloudevents+json`.
pub const CLOUD_EVENT: &str = "application/cloudevents+json";
/// `application/json`.
pub const JSON: &str = "application/json";
/// `application/cloudevents+protobuf`.
const CLOUD_EVENT_PROTOBUF: &str = "application/cloudevents+protobuf";
/// `application/octet-stream`.
const BINARY: &str = "application/octet-stream";

/// Whether `content_type` is a CloudEvent in JSON.
pub fn is_cloud_event(content_type: &str) -> bool {
    matches(content_type, CLOUD_EVENT)
}

/// Whether `content_type` is JSON.
pub fn is_json(content_type: &str) -> bool {
    matches(content_type, JSON)
}

/// Whether `content_type` is text (`text/*` or `application/xml`).
pub fn is_string(content_type: &str) -> bool {
    content_type.to_lowercase().starts_with("text/") || matches(content_type, "application/xml")
}

/// Whether `content_type` is raw bytes.
pub fn is_binary(content_type: &str) -> bool {
    matches(content_type, BINARY)
}

/// Whether `content_type` is a CloudEvent in protobuf.
pub fn is_cloud_event_protobuf(content_type: &str) -> bool {
    matches(content_type, CLOUD_EVENT_PROTOBUF)
}

fn matches(content_type: &str, expected: &str) -> bool {
    let lowered = content_type.to_lowercase();
    let essence = lowered
        .split_once(';')
        .map_or(lowered.as_str(), |(essence, _)| essence);
    essence == expected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_match_without_case_or_parameters() {
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("application/json+x"));
        assert!(!is_json("application/json ;x"));
        assert!(is_cloud_event("application/cloudevents+json"));
        assert!(is_string("TEXT/plain") && is_string("application/xml"));
        assert!(is_binary("application/octet-stream;x=y"));
        assert!(is_cloud_event_protobuf("application/cloudevents+protobuf"));
    }
}
