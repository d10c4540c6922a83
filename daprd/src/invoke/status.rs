//! Status texts shared by the invocation edges: HTTP reason phrases as Go spells them,
//! and the `rpc error: code = … desc = …` text Go's gRPC library gives a status error,
//! which upstream embeds in its error messages. (The code/status tables themselves are
//! the app channel's: `crate::channel::{http_status_from_grpc_code,
//! grpc_code_from_http_status}`.)

use axum::http::StatusCode;
use tonic::Code;

/// The reason phrase Go's `http.StatusText` gives `status` (empty when Go knows none).
pub fn status_text(status: u16) -> &'static str {
    match status {
        // Go keeps the RFC 7231 wording for these, where the `http` crate uses RFC 9110's.
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        416 => "Requested Range Not Satisfiable",
        _ => StatusCode::from_u16(status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or(""),
    }
}

/// The name Go's gRPC library prints for `code`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// A gRPC status as text, the way Go's gRPC library formats a status error.
pub fn status_error_text(code: Code, message: &str) -> String {
    format!("rpc error: code = {} desc = {message}", code_name(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_follow_go() {
        assert_eq!(status_text(404), "Not Found");
        assert_eq!(status_text(413), "Request Entity Too Large");
        assert_eq!(
            status_error_text(Code::Cancelled, "gone"),
            "rpc error: code = Canceled desc = gone"
        );
    }
}
