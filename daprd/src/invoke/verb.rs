//! The HTTP verb of an invocation and its protobuf form (`common.v1.HTTPExtension`).
//!
//! An HTTP caller always has a verb. A gRPC caller may send no HTTP extension, or one with
//! verb `NONE`; the invocation then has no verb ([`None`]): gRPC apps receive the message
//! as sent, and HTTP apps refuse it, as upstream does.

use axum::http::Method;
use dapr_proto::common::HttpExtension;
use dapr_proto::common::http_extension::Verb;

/// The verb an HTTP extension names, `None` for a missing extension or verb `NONE`.
pub fn from_extension(extension: Option<&HttpExtension>) -> Option<Method> {
    let verb = extension?.verb();
    Some(match verb {
        Verb::None => return None,
        Verb::Get => Method::GET,
        Verb::Head => Method::HEAD,
        Verb::Post => Method::POST,
        Verb::Put => Method::PUT,
        Verb::Delete => Method::DELETE,
        Verb::Connect => Method::CONNECT,
        Verb::Options => Method::OPTIONS,
        Verb::Trace => Method::TRACE,
        Verb::Patch => Method::PATCH,
    })
}

/// The HTTP extension for a verb and query string: absent when there is neither, as a
/// gRPC caller without one sent it. Verbs outside the protobuf's list travel as `POST`.
pub fn to_extension(verb: Option<&Method>, query: &str) -> Option<HttpExtension> {
    let verb = match verb {
        None if query.is_empty() => return None,
        None => Verb::None,
        Some(method) => match *method {
            Method::GET => Verb::Get,
            Method::HEAD => Verb::Head,
            Method::PUT => Verb::Put,
            Method::DELETE => Verb::Delete,
            Method::CONNECT => Verb::Connect,
            Method::OPTIONS => Verb::Options,
            Method::TRACE => Verb::Trace,
            Method::PATCH => Verb::Patch,
            _ => Verb::Post,
        },
    };
    Some(HttpExtension {
        verb: verb as i32,
        querystring: query.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_round_trips_and_none_stays_absent() {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::CONNECT,
            Method::OPTIONS,
            Method::TRACE,
            Method::PATCH,
        ] {
            let extension = to_extension(Some(&method), "a=1");
            assert_eq!(from_extension(extension.as_ref()), Some(method));
        }
        assert_eq!(to_extension(None, ""), None);
        let none_with_query = to_extension(None, "a=1").unwrap();
        assert_eq!(none_with_query.verb(), Verb::None);
        assert_eq!(from_extension(Some(&none_with_query)), None);
        assert_eq!(from_extension(None), None);
    }
}
