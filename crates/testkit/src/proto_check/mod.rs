//! The core of `cargo xtask proto-check`: comparing our protobuf API with a reference one.
//!
//! Two [`FileDescriptorSet`](prost_types::FileDescriptorSet)s are compared by fully
//! qualified names, never by file, so the file layout may differ: services and their
//! methods, messages (recursively, nested ones by full name), enums and their values, and
//! every field's number, name, type, label, type name, oneof membership and `proto3
//! optional` flag. Each difference is one [`Mismatch`]. These functions are synchronous so
//! xtask can call them without a runtime.

mod compare;
mod sources;

pub use compare::{Mismatch, MismatchKind, compare};
pub use sources::{compile_reference_dir, decode_descriptor_set, sdk_descriptor_set};
