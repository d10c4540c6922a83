//! Version 2 layout, upstream's `<tablePrefix>state` table:
//! `key text PRIMARY KEY, value bytea, etag uuid, created_at, updated_at, expires_at,
//! row_id`. Values are kept as the exact bytes daprd hands over; every write sets a new
//! random UUID as the ETag (so it works on PostgreSQL-compatible databases without
//! `xmin`). No query API.

use crate::state::{SetRequest, StateError};

use super::layout::Statements;
use super::migrations::Migration;
use super::pool::Param;

/// The expiry of a write: `$3` seconds from now, or none.
const EXPIRY: &str = "CASE WHEN $3::bigint > 0 THEN now() + $3::bigint * interval '1 second' END";
/// The condition that a row has not expired.
const LIVE: &str = "(expires_at IS NULL OR expires_at >= now())";
/// A row's expiry as whole Unix seconds.
const EXPIRES: &str = "floor(extract(epoch FROM expires_at))::bigint";

/// The statements for `table`.
pub(crate) fn statements(table: &str) -> Statements {
    let insert = format!(
        "INSERT INTO {table} AS t (key, value, etag, expires_at) \
         VALUES ($1::text, $2::bytea, gen_random_uuid(), {EXPIRY}) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now(), \
         etag = gen_random_uuid(), expires_at = excluded.expires_at"
    );
    Statements {
        get: format!(
            "SELECT value, etag::text, {EXPIRES} FROM {table} WHERE key = $1::text AND {LIVE}"
        ),
        bulk_get: format!(
            "SELECT key, value, etag::text, {EXPIRES} FROM {table} WHERE key = ANY($1::text[]) AND {LIVE}"
        ),
        insert_first_write: format!(
            "{insert} WHERE t.expires_at IS NOT NULL AND t.expires_at < now()"
        ),
        upsert: insert,
        update_with_etag: format!(
            "UPDATE {table} SET value = $2::bytea, updated_at = now(), etag = gen_random_uuid(), \
             expires_at = {EXPIRY} WHERE key = $1::text AND etag = $4::text::uuid AND {LIVE}"
        ),
        delete: format!("DELETE FROM {table} WHERE key = $1::text"),
        delete_with_etag: format!(
            "DELETE FROM {table} WHERE key = $1::text AND etag = $2::text::uuid"
        ),
        delete_expired: format!(
            "DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at < now()"
        ),
    }
}

/// `$2`: the bytes as they are.
pub(crate) fn value_params(request: &SetRequest) -> Vec<Param> {
    vec![Param::Bytes(request.value.to_vec())]
}

/// v2 ETags are UUIDs; like upstream, one that is not a UUID cannot match (a mismatch).
pub(crate) fn etag_param(etag: &str) -> Result<Param, StateError> {
    uuid::Uuid::parse_str(etag)
        .map(|uuid| Param::Text(uuid.to_string()))
        .map_err(|error| StateError::etag_mismatch(format!("invalid etag value {etag:?}: {error}")))
}

/// Migration 1 creates the table and its expiry index, 2 adds `row_id`.
pub(crate) fn migrations(table: &str) -> Vec<Migration> {
    vec![
        Migration::Sql(format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             key text NOT NULL PRIMARY KEY, \
             value bytea NOT NULL, \
             etag uuid NOT NULL DEFAULT gen_random_uuid(), \
             created_at timestamp with time zone NOT NULL DEFAULT now(), \
             updated_at timestamp with time zone, \
             expires_at timestamp with time zone); \
             CREATE INDEX ON {table} (expires_at);"
        )),
        Migration::RowId {
            table: table.to_owned(),
            created_column: "created_at",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::EtagErrorKind;

    #[test]
    fn etags_must_be_uuids_and_anything_else_is_a_mismatch() {
        let uuid = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        assert_eq!(
            etag_param(uuid).unwrap(),
            Param::Text(uuid.to_ascii_lowercase())
        );
        assert!(matches!(
            etag_param("12"),
            Err(StateError::Etag {
                kind: EtagErrorKind::Mismatch,
                ..
            })
        ));
    }
}
