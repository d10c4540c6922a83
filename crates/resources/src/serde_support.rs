//! Small serde and schemars helpers shared by the resource types.
//!
//! Upstream decodes manifests through JSON into Go structs, where an explicit
//! `null` (or a YAML key with nothing after it) leaves a field at its zero
//! value. [`null_as_default`] gives optional Rust fields the same behaviour;
//! [`is_default`] keeps zero values out of serialized output the way Go's
//! `omitempty` does (and keeps schemars from writing `default:` into CRDs).

use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

/// Deserializes `T`, mapping an explicit `null` to `T::default()`.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// True when `value` equals its type's default (used for `skip_serializing_if`).
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Schema of `metadata`: an object the API server validates itself.
pub(crate) fn object_meta_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object" })
}

/// Schema of a free-form JSON object whose content is kept as written.
pub(crate) fn free_form_object_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
