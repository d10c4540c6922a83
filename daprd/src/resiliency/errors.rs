//! Why a Resiliency resource was refused at start: the file, the resource and the field,
//! so a bad policy file is found without guessing.

use std::path::PathBuf;

/// A field of a policy that cannot be used, relative to the policy (`duration`,
/// `matching.httpStatusCodes`, `trip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path inside the policy.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A Resiliency resource that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resiliency {resource} in {}: {field}: {message}", file.display())]
pub struct ResiliencyError {
    /// The resource's name.
    pub resource: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// The field's full path (`spec.policies.retries.fast.duration`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}
