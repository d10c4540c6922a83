//! Metadata readers the bindings share: upstream's lenient booleans, PEM settings and
//! the error for bad metadata.

use super::BindingError;
use crate::metadata::{Properties, is_truthy};
use crate::pubsub::mqtt3::has_pem_block;

pub(crate) use crate::metadata::non_empty;

/// Upstream decodes booleans leniently: the truthy words are true, anything else false.
pub(crate) fn truthy(properties: &Properties, name: &str) -> bool {
    non_empty(properties, name).is_some_and(is_truthy)
}

/// A PEM setting: unset or empty is `None`; otherwise it must hold a PEM block (else
/// `error`).
pub(crate) fn pem(
    properties: &Properties,
    name: &str,
    error: &str,
) -> Result<Option<String>, BindingError> {
    match non_empty(properties, name) {
        None => Ok(None),
        Some(text) if has_pem_block(text) => Ok(Some(text.to_owned())),
        Some(_) => Err(invalid(error)),
    }
}

/// Invalid component metadata.
pub(crate) fn invalid(reason: impl Into<String>) -> BindingError {
    BindingError::InvalidMetadata(reason.into())
}
