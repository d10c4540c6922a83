//! Version 1 layout, upstream's original table:
//! `key text PRIMARY KEY, value jsonb, isbinary boolean, insertdate, updatedate,
//! expiredate, row_id`. JSON values are kept as `jsonb` (so the query API can look into
//! them); anything else is kept as a JSON string of its standard base64 with
//! `isbinary = true`. The ETag is the row's `xmin` (the id of the transaction that last
//! wrote it), so rows written by upstream daprd keep their ETags here and the reverse.

use base64::Engine;
use serde_json::Value;

use crate::state::{SetRequest, StateError};

use super::layout::Statements;
use super::migrations::Migration;
use super::pool::Param;

/// The expiry of a write: `$4` seconds from now, or none.
const EXPIRY: &str =
    "CASE WHEN $4::bigint > 0 THEN CURRENT_TIMESTAMP + $4::bigint * interval '1 second' END";
/// The condition that a row has not expired.
const LIVE: &str = "(expiredate IS NULL OR expiredate >= CURRENT_TIMESTAMP)";
/// A row's value as bytes: base64-decoded for binary rows, the JSON text otherwise.
const DATA: &str = "CASE WHEN isbinary THEN decode(value #>> '{}', 'base64') ELSE convert_to(value::text, 'UTF8') END";
/// A row's expiry as whole Unix seconds.
const EXPIRES: &str = "floor(extract(epoch FROM expiredate))::bigint";

/// The statements for `table`.
pub(crate) fn statements(table: &str) -> Statements {
    let insert = format!(
        "INSERT INTO {table} AS t (key, value, isbinary, expiredate) \
         VALUES ($1::text, $2::text::jsonb, $3::boolean, {EXPIRY}) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, isbinary = excluded.isbinary, \
         updatedate = CURRENT_TIMESTAMP, expiredate = excluded.expiredate"
    );
    Statements {
        get: format!(
            "SELECT {DATA}, xmin::text, {EXPIRES} FROM {table} WHERE key = $1::text AND {LIVE}"
        ),
        bulk_get: format!(
            "SELECT key, {DATA}, xmin::text, {EXPIRES} FROM {table} WHERE key = ANY($1::text[]) AND {LIVE}"
        ),
        insert_first_write: format!(
            "{insert} WHERE t.expiredate IS NOT NULL AND t.expiredate < CURRENT_TIMESTAMP"
        ),
        upsert: insert,
        update_with_etag: format!(
            "UPDATE {table} SET value = $2::text::jsonb, isbinary = $3::boolean, \
             updatedate = CURRENT_TIMESTAMP, expiredate = {EXPIRY} \
             WHERE key = $1::text AND xmin = $5::text::xid \
             AND (expiredate IS NULL OR expiredate > CURRENT_TIMESTAMP)"
        ),
        delete: format!("DELETE FROM {table} WHERE key = $1::text"),
        delete_with_etag: format!(
            "DELETE FROM {table} WHERE key = $1::text AND xmin = $2::text::xid"
        ),
        delete_expired: format!(
            "DELETE FROM {table} WHERE expiredate IS NOT NULL AND expiredate < CURRENT_TIMESTAMP"
        ),
    }
}

/// The SELECT list of a query: key, the stored JSON text and the ETag.
pub(crate) fn query_select(table: &str) -> String {
    format!("SELECT key, value::text, xmin::text FROM {table} WHERE {LIVE}")
}

/// `$2` (the JSON text) and `$3` (`isbinary`).
///
/// A value is stored as `jsonb` when it is JSON that `jsonb` can hold and its content type
/// (the request's, or `contentType` metadata) is absent or a JSON type; otherwise it is
/// binary, which keeps its exact bytes.
pub(crate) fn value_params(request: &SetRequest) -> Vec<Param> {
    let content_type = request
        .content_type
        .as_deref()
        .or(request.metadata.get("contentType").map(String::as_str));
    let json_text = declares_json(content_type)
        .then(|| std::str::from_utf8(&request.value).ok())
        .flatten()
        .filter(|text| serde_json::from_str::<Value>(text).is_ok_and(|value| fits_jsonb(&value)));
    match json_text {
        Some(text) => vec![Param::Text(text.to_owned()), Param::Bool(false)],
        None => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&request.value);
            vec![
                Param::Text(Value::String(encoded).to_string()),
                Param::Bool(true),
            ]
        }
    }
}

/// True when the content type is absent or names JSON.
fn declares_json(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media_type.is_empty() || media_type == "application/json" || media_type.ends_with("+json")
}

/// `jsonb` refuses NUL characters in strings (and keys).
fn fits_jsonb(value: &Value) -> bool {
    match value {
        Value::String(text) => !text.contains('\0'),
        Value::Array(items) => items.iter().all(fits_jsonb),
        Value::Object(fields) => fields
            .iter()
            .all(|(key, value)| !key.contains('\0') && fits_jsonb(value)),
        _ => true,
    }
}

/// v1 ETags are transaction ids: anything that is not a 32-bit number is invalid.
pub(crate) fn etag_param(etag: &str) -> Result<Param, StateError> {
    etag.parse::<u32>()
        .map(|xid| Param::Text(xid.to_string()))
        .map_err(|error| StateError::etag_invalid(format!("invalid etag value {etag:?}: {error}")))
}

/// Migration 1 creates the table, 2 adds `expiredate`, 3 adds `row_id`.
pub(crate) fn migrations(table: &str) -> Vec<Migration> {
    vec![
        Migration::Sql(format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             key text NOT NULL PRIMARY KEY, \
             value jsonb NOT NULL, \
             isbinary boolean NOT NULL, \
             insertdate TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(), \
             updatedate TIMESTAMP WITH TIME ZONE NULL)"
        )),
        Migration::Sql(format!(
            "ALTER TABLE {table} ADD expiredate TIMESTAMP WITH TIME ZONE"
        )),
        Migration::RowId {
            table: table.to_owned(),
            created_column: "insertdate",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::HashMap;

    fn params(value: &[u8], content_type: Option<&str>) -> Vec<Param> {
        value_params(&SetRequest {
            value: Bytes::copy_from_slice(value),
            content_type: content_type.map(str::to_owned),
            ..SetRequest::default()
        })
    }

    #[test]
    fn json_goes_to_jsonb_and_everything_else_to_base64() {
        assert_eq!(
            params(br#"{"a": 1}"#, None),
            vec![Param::Text(r#"{"a": 1}"#.into()), Param::Bool(false)]
        );
        assert_eq!(
            params(br#""text""#, Some("application/json; charset=utf-8")),
            vec![Param::Text(r#""text""#.into()), Param::Bool(false)]
        );
        assert_eq!(
            params(b"hello", None),
            vec![Param::Text(r#""aGVsbG8=""#.into()), Param::Bool(true)]
        );
        assert_eq!(
            params(b"42", Some("text/plain")),
            vec![Param::Text(r#""NDI=""#.into()), Param::Bool(true)]
        );
        assert_eq!(params(br#""a\u0000b""#, None)[1], Param::Bool(true));
        assert_eq!(params(b"", None)[1], Param::Bool(true));
    }

    #[test]
    fn content_type_metadata_counts_too() {
        let request = SetRequest {
            value: Bytes::from_static(b"{}"),
            metadata: HashMap::from([(
                "contentType".to_owned(),
                "application/octet-stream".to_owned(),
            )]),
            ..SetRequest::default()
        };
        assert_eq!(value_params(&request)[1], Param::Bool(true));
    }

    #[test]
    fn etags_must_be_transaction_ids() {
        assert_eq!(etag_param("0042").unwrap(), Param::Text("42".into()));
        assert!(matches!(
            etag_param("4294967296"),
            Err(StateError::Etag {
                kind: crate::state::EtagErrorKind::Invalid,
                ..
            })
        ));
    }
}
