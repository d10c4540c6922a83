//! Translates an alpha1 query into SQL over v1's `jsonb` column. Every value and every
//! field path travels as a bind parameter (`value #> $n::text[]`, `$m::text::jsonb`); the
//! only text pasted into the SQL is the configured table name and fixed keywords.
//!
//! Comparisons are between `jsonb` values, so numbers compare as numbers (upstream
//! compares the text of the field), `GT`/`GTE`/`LT`/`LTE` only match fields of the same
//! JSON type as the operand and refuse string operands (as upstream does), and `NEQ`
//! also matches documents without the field (as the in-process evaluator does). Results
//! are ordered by the sort keys and then by key, so offset paging is stable. The page
//! token is the offset of the next page, as upstream's.

use serde_json::Value;

use crate::state::StateError;
use crate::state::query::{Filter, Order, Query, field_path};

use super::pool::Param;
use super::v1;

/// SQL text with its parameters, and the paging facts needed to compute the next token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SqlQuery {
    /// The statement.
    pub sql: String,
    /// Its parameters.
    pub params: Vec<Param>,
    /// The offset this page starts at.
    pub offset: u64,
    /// The page size (0: unlimited).
    pub limit: usize,
}

impl SqlQuery {
    /// The token for the page after one that returned `returned` rows: the next offset
    /// when the page was full, empty when it was the last.
    pub(crate) fn next_token(&self, returned: usize) -> String {
        if self.limit > 0 && returned >= self.limit {
            (self.offset + returned as u64).to_string()
        } else {
            String::new()
        }
    }
}

/// Builds the statement for `query` over `table`, confined to keys starting with
/// `key_prefix` when one is given.
pub(crate) fn build(
    table: &str,
    query: &Query,
    key_prefix: Option<&str>,
) -> Result<SqlQuery, StateError> {
    let mut builder = Builder::default();
    let mut sql = v1::query_select(table);
    if let Some(prefix) = key_prefix.filter(|prefix| !prefix.is_empty()) {
        let placeholder = builder.bind(Param::Text(prefix.to_owned()), "text");
        sql.push_str(&format!(" AND starts_with(key, {placeholder})"));
    }
    if let Some(filter) = &query.filter {
        let condition = builder.filter(filter)?;
        sql.push_str(&format!(" AND {condition}"));
    }
    sql.push_str(" ORDER BY ");
    for sorting in &query.sort {
        let path = builder.path(&sorting.key);
        let direction = match sorting.order {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        };
        sql.push_str(&format!("{path} {direction}, "));
    }
    sql.push_str("key ASC");
    if query.limit > 0 {
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let placeholder = builder.bind(Param::Int8(limit), "bigint");
        sql.push_str(&format!(" LIMIT {placeholder}"));
    }
    let offset = if query.token.is_empty() {
        0
    } else {
        let offset = query
            .token
            .parse::<i64>()
            .ok()
            .filter(|offset| *offset >= 0)
            .ok_or_else(|| {
                StateError::InvalidRequest(format!(
                    "invalid page token {:?}: expected an offset",
                    query.token
                ))
            })?;
        let placeholder = builder.bind(Param::Int8(offset), "bigint");
        sql.push_str(&format!(" OFFSET {placeholder}"));
        offset.unsigned_abs()
    };
    Ok(SqlQuery {
        sql,
        params: builder.params,
        offset,
        limit: query.limit,
    })
}

#[derive(Default)]
struct Builder {
    params: Vec<Param>,
}

impl Builder {
    /// Adds a parameter and returns its cast placeholder (`$3::text`).
    fn bind(&mut self, param: Param, cast: &str) -> String {
        self.params.push(param);
        format!("${}::{cast}", self.params.len())
    }

    /// The `jsonb` at a field path of the value.
    fn path(&mut self, key: &str) -> String {
        let segments = field_path(key).split('.').map(str::to_owned).collect();
        let placeholder = self.bind(Param::TextArray(segments), "text[]");
        format!("(value #> {placeholder})")
    }

    /// A JSON operand as `jsonb`.
    fn json(&mut self, value: &Value) -> String {
        let placeholder = self.bind(Param::Text(value.to_string()), "text");
        format!("{placeholder}::jsonb")
    }

    fn filter(&mut self, filter: &Filter) -> Result<String, StateError> {
        Ok(match filter {
            Filter::Eq(key, value) => {
                let path = self.path(key);
                format!("{path} = {}", self.json(value))
            }
            Filter::Neq(key, value) => {
                let path = self.path(key);
                format!("{path} IS DISTINCT FROM {}", self.json(value))
            }
            Filter::Gt(key, value) => self.range(key, value, ">")?,
            Filter::Gte(key, value) => self.range(key, value, ">=")?,
            Filter::Lt(key, value) => self.range(key, value, "<")?,
            Filter::Lte(key, value) => self.range(key, value, "<=")?,
            Filter::In(key, values) => {
                if values.is_empty() {
                    return Err(StateError::InvalidRequest(format!(
                        "empty IN operator for key {key:?}"
                    )));
                }
                let path = self.path(key);
                let alternatives: Vec<String> = values
                    .iter()
                    .map(|value| format!("{path} = {}", self.json(value)))
                    .collect();
                format!("({})", alternatives.join(" OR "))
            }
            Filter::And(filters) => self.combine(filters, " AND ")?,
            Filter::Or(filters) => self.combine(filters, " OR ")?,
        })
    }

    fn range(&mut self, key: &str, value: &Value, operator: &str) -> Result<String, StateError> {
        if let Value::String(text) = value {
            return Err(StateError::InvalidRequest(format!(
                "unsupported type of value {text}; string type not permitted"
            )));
        }
        let path = self.path(key);
        let operand = self.json(value);
        Ok(format!(
            "({path} {operator} {operand} AND jsonb_typeof({path}) = jsonb_typeof({operand}))"
        ))
    }

    fn combine(&mut self, filters: &[Filter], separator: &str) -> Result<String, StateError> {
        let parts = filters
            .iter()
            .map(|filter| self.filter(filter))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(separator)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_paths_are_parameters_never_sql_text() {
        let query = Query::from_value(&json!({
            "filter": {"AND": [
                {"EQ": {"person.o'rg": "x'); DROP TABLE state; --"}},
                {"IN": {"state": ["CA", "WA"]}},
                {"GT": {"value.age": 30}}
            ]},
            "sort": [{"key": "person.id", "order": "DESC"}],
            "page": {"limit": 3, "token": "6"}
        }))
        .unwrap();
        let built = build("state", &query, Some("app||")).unwrap();
        assert_eq!(
            built.sql,
            "SELECT key, value::text, xmin::text FROM state \
             WHERE (expiredate IS NULL OR expiredate >= CURRENT_TIMESTAMP) \
             AND starts_with(key, $1::text) \
             AND ((value #> $2::text[]) = $3::text::jsonb \
             AND ((value #> $4::text[]) = $5::text::jsonb OR (value #> $4::text[]) = $6::text::jsonb) \
             AND ((value #> $7::text[]) > $8::text::jsonb AND jsonb_typeof((value #> $7::text[])) = jsonb_typeof($8::text::jsonb))) \
             ORDER BY (value #> $9::text[]) DESC, key ASC LIMIT $10::bigint OFFSET $11::bigint"
        );
        assert!(!built.sql.contains("DROP"));
        assert_eq!(
            built.params[1],
            Param::TextArray(vec!["person".into(), "o'rg".into()])
        );
        assert_eq!(
            built.params[2],
            Param::Text(r#""x'); DROP TABLE state; --""#.into())
        );
        assert_eq!(built.params[6], Param::TextArray(vec!["age".into()]));
        assert_eq!(built.offset, 6);
        assert_eq!(built.next_token(3), "9");
        assert_eq!(built.next_token(2), "");
    }

    #[test]
    fn malformed_queries_are_invalid_requests() {
        let error = |value: serde_json::Value| {
            build("state", &Query::from_value(&value).unwrap(), None)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(json!({"filter": {"GT": {"a": "10"}}})),
            "unsupported type of value 10; string type not permitted"
        );
        assert_eq!(
            error(json!({"filter": {"IN": {"a": []}}})),
            "empty IN operator for key \"a\""
        );
        assert!(error(json!({"page": {"limit": 1, "token": "-1"}})).contains("invalid page token"));
        assert!(
            error(json!({"page": {"limit": 1, "token": "next"}})).contains("invalid page token")
        );
    }

    #[test]
    fn without_a_limit_there_is_no_next_page() {
        let built = build("state", &Query::default(), None).unwrap();
        assert!(built.params.is_empty());
        assert!(built.sql.ends_with("ORDER BY key ASC"));
        assert_eq!(built.next_token(1000), "");
    }
}
