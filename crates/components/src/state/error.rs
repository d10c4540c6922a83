//! Why a state operation failed, in the categories daprd maps to upstream's error codes.

/// What kind of ETag failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtagErrorKind {
    /// The value's current ETag differs from the one given (or the value is gone).
    Mismatch,
    /// The given ETag is not one this store could have produced.
    Invalid,
}

/// A failed state operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// An ETag check failed (daprd answers 409 for a mismatch, 400 for an invalid ETag);
    /// worded as upstream's `ETagError` for each kind.
    #[error("{}", etag_text(*kind, message))]
    Etag {
        /// Mismatch or invalid.
        kind: EtagErrorKind,
        /// The store's description.
        message: String,
    },
    /// The request itself is malformed (bad TTL, unsupported query field, ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// The store does not have the capability the request needs.
    #[error("{0} not supported by this state store")]
    NotSupported(&'static str),
    /// The component's metadata is wrong; the component cannot start.
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),
    /// The backing service failed or could not be reached.
    #[error("{0}")]
    Backend(String),
}

/// Upstream's text of an ETag error of `kind` carrying the store's `message`.
fn etag_text(kind: EtagErrorKind, message: &str) -> String {
    match kind {
        EtagErrorKind::Mismatch => {
            format!("possible etag mismatch. error from state store: {message}")
        }
        EtagErrorKind::Invalid => format!("invalid etag value: {message}"),
    }
}

impl StateError {
    /// An ETag mismatch with the store's own description.
    pub fn etag_mismatch(message: impl Into<String>) -> Self {
        Self::Etag {
            kind: EtagErrorKind::Mismatch,
            message: message.into(),
        }
    }

    /// An invalid ETag with the store's own description.
    pub fn etag_invalid(message: impl Into<String>) -> Self {
        Self::Etag {
            kind: EtagErrorKind::Invalid,
            message: message.into(),
        }
    }

    /// A backend failure from any displayable error.
    pub fn backend(error: impl std::fmt::Display) -> Self {
        Self::Backend(error.to_string())
    }
}
