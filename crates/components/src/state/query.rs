//! The alpha1 state query language: a JSON document with `filter`, `sort` and `page`,
//! parsed into a typed tree that stores translate into their own query language (or
//! evaluate in process).
//!
//! Filters are single-key objects: `EQ`, `NEQ`, `GT`, `GTE`, `LT`, `LTE` take one
//! `{"field.path": value}` pair, `IN` takes `{"field.path": [values]}`, `AND`/`OR` take a
//! list of at least two filters. Field paths address the JSON value (`person.org`), with
//! `value.` accepted as an explicit prefix as upstream's stores do.

use serde_json::Value;

use super::StateError;

/// A comparison or combination of filters.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Field equals value.
    Eq(String, Value),
    /// Field differs from value.
    Neq(String, Value),
    /// Field is greater than value.
    Gt(String, Value),
    /// Field is greater than or equal to value.
    Gte(String, Value),
    /// Field is less than value.
    Lt(String, Value),
    /// Field is less than or equal to value.
    Lte(String, Value),
    /// Field equals one of the values.
    In(String, Vec<Value>),
    /// Every filter matches.
    And(Vec<Filter>),
    /// At least one filter matches.
    Or(Vec<Filter>),
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Ascending (`ASC`, the default).
    #[default]
    Asc,
    /// Descending (`DESC`).
    Desc,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sorting {
    /// The field path.
    pub key: String,
    /// The direction.
    pub order: Order,
}

/// A parsed query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// The filter, if any (no filter matches everything).
    pub filter: Option<Filter>,
    /// Sort keys, most significant first.
    pub sort: Vec<Sorting>,
    /// Page size; 0 means no limit.
    pub limit: usize,
    /// The continuation token from the previous page, empty for the first.
    pub token: String,
}

impl Query {
    /// Parses a query document as the HTTP and gRPC query APIs receive it.
    pub fn parse(document: &[u8]) -> Result<Self, StateError> {
        let value: Value = serde_json::from_slice(document).map_err(|error| {
            StateError::InvalidRequest(format!("failed to parse JSON query body: {error}"))
        })?;
        Self::from_value(&value)
    }

    /// Parses an already decoded query document.
    pub fn from_value(document: &Value) -> Result<Self, StateError> {
        let Value::Object(fields) = document else {
            return Err(invalid("query must be a JSON object"));
        };
        let filter = match fields.get("filter") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) if map.is_empty() => None,
            Some(filter) => Some(parse_filter(filter)?),
        };
        let sort = match fields.get("sort") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(entries)) => entries
                .iter()
                .map(parse_sorting)
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("sort must be an array")),
        };
        let (limit, token) = match fields.get("page") {
            None | Some(Value::Null) => (0, String::new()),
            Some(Value::Object(page)) => {
                let limit = match page.get("limit") {
                    None | Some(Value::Null) => 0,
                    Some(Value::Number(number)) => number
                        .as_u64()
                        .and_then(|limit| usize::try_from(limit).ok())
                        .ok_or_else(|| invalid("page limit must be a non-negative integer"))?,
                    Some(_) => return Err(invalid("page limit must be a non-negative integer")),
                };
                let token = match page.get("token") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(token)) => token.clone(),
                    Some(_) => return Err(invalid("page token must be a string")),
                };
                (limit, token)
            }
            Some(_) => return Err(invalid("page must be an object")),
        };
        Ok(Self {
            filter,
            sort,
            limit,
            token,
        })
    }
}

/// Strips the optional `value.` prefix from a field path.
pub fn field_path(key: &str) -> &str {
    key.strip_prefix("value.").unwrap_or(key)
}

/// Looks up a dotted field path inside a JSON value.
pub fn lookup<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    field_path(key)
        .split('.')
        .try_fold(value, |current, segment| current.get(segment))
}

impl Filter {
    /// Evaluates the filter against a JSON value in process (for stores without a native
    /// query language).
    pub fn matches(&self, value: &Value) -> bool {
        use std::cmp::Ordering;
        let compare = |key: &str, expected: &Value, accept: &dyn Fn(Ordering) -> bool| {
            lookup(value, key)
                .and_then(|found| compare_values(found, expected))
                .is_some_and(accept)
        };
        match self {
            Self::Eq(key, expected) => {
                lookup(value, key).is_some_and(|found| values_equal(found, expected))
            }
            Self::Neq(key, expected) => {
                !lookup(value, key).is_some_and(|found| values_equal(found, expected))
            }
            Self::Gt(key, expected) => compare(key, expected, &|ordering| ordering.is_gt()),
            Self::Gte(key, expected) => compare(key, expected, &|ordering| ordering.is_ge()),
            Self::Lt(key, expected) => compare(key, expected, &|ordering| ordering.is_lt()),
            Self::Lte(key, expected) => compare(key, expected, &|ordering| ordering.is_le()),
            Self::In(key, options) => lookup(value, key)
                .is_some_and(|found| options.iter().any(|option| values_equal(found, option))),
            Self::And(filters) => filters.iter().all(|filter| filter.matches(value)),
            Self::Or(filters) => filters.iter().any(|filter| filter.matches(value)),
        }
    }
}

/// Orders two JSON values of the same kind (numbers numerically, strings by bytes,
/// booleans false < true); values of different kinds do not compare.
pub fn compare_values(left: &Value, right: &Value) -> Option<std::cmp::Ordering> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

fn values_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(_), Value::Number(_)) => {
            compare_values(left, right).is_some_and(|ordering| ordering.is_eq())
        }
        _ => left == right,
    }
}

fn parse_filter(value: &Value) -> Result<Filter, StateError> {
    let Value::Object(map) = value else {
        return Err(invalid("filter unit must be a map"));
    };
    let mut entries = map.iter();
    let (Some((operator, operand)), None) = (entries.next(), entries.next()) else {
        return Err(invalid("filter unit must have a single element"));
    };
    let pair = |name: &str| -> Result<(String, Value), StateError> {
        let Value::Object(pair) = operand else {
            return Err(invalid(format!("{name} filter must be a map")));
        };
        let mut entries = pair.iter();
        match (entries.next(), entries.next()) {
            (Some((key, value)), None) => Ok((key.clone(), value.clone())),
            _ => Err(invalid(format!(
                "{name} filter must contain a single key/value pair"
            ))),
        }
    };
    let list = |name: &str| -> Result<Vec<Filter>, StateError> {
        let Value::Array(items) = operand else {
            return Err(invalid(format!("{name} filter must be an array")));
        };
        if items.len() < 2 {
            return Err(invalid(format!(
                "{name} filter must contain at least two entries"
            )));
        }
        items.iter().map(parse_filter).collect()
    };
    Ok(match operator.as_str() {
        "EQ" => pair("EQ").map(|(key, value)| Filter::Eq(key, value))?,
        "NEQ" => pair("NEQ").map(|(key, value)| Filter::Neq(key, value))?,
        "GT" => pair("GT").map(|(key, value)| Filter::Gt(key, value))?,
        "GTE" => pair("GTE").map(|(key, value)| Filter::Gte(key, value))?,
        "LT" => pair("LT").map(|(key, value)| Filter::Lt(key, value))?,
        "LTE" => pair("LTE").map(|(key, value)| Filter::Lte(key, value))?,
        "IN" => {
            let (key, values) = pair("IN")?;
            let Value::Array(values) = values else {
                return Err(invalid("IN filter value must be an array"));
            };
            Filter::In(key, values)
        }
        "AND" => Filter::And(list("AND")?),
        "OR" => Filter::Or(list("OR")?),
        other => return Err(invalid(format!("unsupported filter \"{other}\""))),
    })
}

fn parse_sorting(value: &Value) -> Result<Sorting, StateError> {
    let key = value
        .get("key")
        .and_then(Value::as_str)
        .filter(|key| !key.is_empty())
        .ok_or_else(|| invalid("sort entry must have a key"))?;
    let order = match value.get("order").and_then(Value::as_str) {
        None | Some("") | Some("ASC") => Order::Asc,
        Some("DESC") => Order::Desc,
        Some(other) => {
            return Err(invalid(format!(
                "invalid sort order \"{other}\" (use ASC or DESC)"
            )));
        }
    };
    Ok(Sorting {
        key: key.to_owned(),
        order,
    })
}

fn invalid(message: impl Into<String>) -> StateError {
    StateError::InvalidRequest(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_filters_sort_and_page() {
        let query = Query::from_value(&json!({
            "filter": {"OR": [{"EQ": {"person.org": "A"}}, {"AND": [{"IN": {"state": ["CA", "WA"]}}, {"GT": {"value.age": 30}}]}]},
            "sort": [{"key": "state", "order": "DESC"}, {"key": "person.id"}],
            "page": {"limit": 3, "token": "2"}
        }))
        .unwrap();
        assert_eq!(query.limit, 3);
        assert_eq!(query.token, "2");
        assert_eq!(
            query.sort[0],
            Sorting {
                key: "state".into(),
                order: Order::Desc
            }
        );
        assert_eq!(query.sort[1].order, Order::Asc);
        let filter = query.filter.unwrap();
        assert!(filter.matches(&json!({"person": {"org": "A"}})));
        assert!(filter.matches(&json!({"person": {"org": "B"}, "state": "WA", "age": 31})));
        assert!(!filter.matches(&json!({"person": {"org": "B"}, "state": "WA", "age": 30})));
        assert!(!filter.matches(&json!({"state": "NY", "age": 99})));
    }

    #[test]
    fn malformed_filters_are_rejected_with_upstreams_words() {
        let error = |value: Value| Query::from_value(&value).unwrap_err().to_string();
        assert_eq!(
            error(json!({"filter": {"EQ": {"a": 1}, "IN": {}}})),
            "filter unit must have a single element"
        );
        assert_eq!(
            error(json!({"filter": {"AND": [{"EQ": {"a": 1}}]}})),
            "AND filter must contain at least two entries"
        );
        assert_eq!(
            error(json!({"filter": {"IN": {"a": 1}}})),
            "IN filter value must be an array"
        );
        assert_eq!(
            error(json!({"filter": {"LIKE": {"a": 1}}})),
            "unsupported filter \"LIKE\""
        );
        assert_eq!(
            error(json!({"sort": [{"key": "a", "order": "UP"}]})),
            "invalid sort order \"UP\" (use ASC or DESC)"
        );
        assert!(Query::parse(b"{not json").is_err());
    }

    #[test]
    fn numbers_compare_across_integer_and_float() {
        let filter = Filter::Eq("n".into(), json!(2.0));
        assert!(filter.matches(&json!({"n": 2})));
        assert!(Filter::Lte("n".into(), json!(2)).matches(&json!({"n": 1.5})));
        assert!(!Filter::Gt("n".into(), json!("2")).matches(&json!({"n": 3})));
    }
}
