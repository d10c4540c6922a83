//! Statement parameters from the request's `params` JSON array, sent in PostgreSQL's
//! text format so the server converts each to whatever type the statement gives `$n`
//! (as pgx does with the values Go decodes from JSON):
//!
//! - `null` → SQL `NULL`; strings as they are (so `"2024-05-01"` fills a `date` and
//!   `"{\"a\":1}"` a `jsonb`); `true`/`false`;
//! - numbers as written, with whole floats as integers (`1.0` fills an `integer`, since
//!   Go reads every JSON number as a float);
//! - arrays and objects as JSON text, except an array for an array-typed parameter,
//!   which becomes an array literal (`[1,2]` → `{"1","2"}` for `int[]`).

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use serde_json::Value;
use tokio_postgres::types::{Format, IsNull, Kind, ToSql, Type, to_sql_checked};

/// The largest magnitude below which every whole `f64` is exactly an `i64`.
const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;

/// One JSON value as a text-format parameter.
#[derive(Debug)]
pub(super) struct JsonParam<'a>(pub &'a Value);

impl ToSql for JsonParam<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if self.0.is_null() {
            return Ok(IsNull::Yes);
        }
        let text = match (self.0, ty.kind()) {
            (Value::Array(items), Kind::Array(_)) => array_literal(items),
            (value, _) => scalar_text(value),
        };
        out.put_slice(text.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        // The server parses the text as the parameter's type.
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// A value as parameter text (arrays and objects as JSON).
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number_text(number),
        other => other.to_string(),
    }
}

/// A number as written, or a whole float as an integer.
fn number_text(number: &serde_json::Number) -> String {
    match number.as_f64() {
        Some(float)
            if !number.is_i64()
                && !number.is_u64()
                && float.fract() == 0.0
                && float.abs() < EXACT_INTEGER_LIMIT =>
        {
            format!("{float:.0}")
        }
        _ => number.to_string(),
    }
}

/// An array literal (`{"a","b",NULL,{"c"}}`): every element quoted, `null` as `NULL`,
/// nested arrays as nested braces.
fn array_literal(items: &[Value]) -> String {
    let mut out = String::from("{");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        match item {
            Value::Null => out.push_str("NULL"),
            Value::Array(nested) => out.push_str(&array_literal(nested)),
            other => {
                out.push('"');
                for c in scalar_text(other).chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    let _ = out.write_char(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(value: Value, ty: &Type) -> Option<String> {
        let mut out = BytesMut::new();
        match JsonParam(&value).to_sql(ty, &mut out).unwrap() {
            IsNull::Yes => None,
            IsNull::No => Some(String::from_utf8(out.to_vec()).unwrap()),
        }
    }

    #[test]
    fn scalars_become_their_text() {
        assert_eq!(text(json!(null), &Type::INT4), None);
        assert_eq!(text(json!("x y"), &Type::TEXT).unwrap(), "x y");
        assert_eq!(text(json!(true), &Type::BOOL).unwrap(), "true");
        assert_eq!(text(json!(42), &Type::INT8).unwrap(), "42");
        assert_eq!(text(json!(-7.0), &Type::INT4).unwrap(), "-7");
        assert_eq!(text(json!(2.5), &Type::FLOAT8).unwrap(), "2.5");
        assert_eq!(text(json!(1e300), &Type::FLOAT8).unwrap(), "1e+300");
        assert_eq!(
            text(json!(u64::MAX), &Type::NUMERIC).unwrap(),
            "18446744073709551615"
        );
    }

    #[test]
    fn arrays_are_literals_for_array_types_and_json_otherwise() {
        assert_eq!(
            text(json!([1, "a\"b", null, [true, "c\\d"]]), &Type::TEXT_ARRAY).unwrap(),
            r#"{"1","a\"b",NULL,{"true","c\\d"}}"#
        );
        assert_eq!(
            text(json!([{"k": 1}]), &Type::JSONB_ARRAY).unwrap(),
            r#"{"{\"k\":1}"}"#
        );
        assert_eq!(text(json!([1, 2]), &Type::JSONB).unwrap(), "[1,2]");
        assert_eq!(
            text(json!({"b": [1]}), &Type::UNKNOWN).unwrap(),
            r#"{"b":[1]}"#
        );
    }
}
