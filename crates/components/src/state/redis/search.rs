//! The alpha1 query API on RediSearch, as upstream builds it: `queryIndexes` declares
//! named indexes over JSON paths of `$.data` (each path gets an alias `var0`, `var1`, ...),
//! `FT.CREATE` registers them, and a query becomes one `FT.SEARCH` whose results carry
//! `$.data` and `$.version`. Page tokens are offsets.

use std::collections::HashMap;

use bytes::Bytes;
use redis::Value;
use serde_json::Value as Json;

use crate::state::query::{Filter, Order, Query, field_path};
use crate::state::{QueryItem, StateError};

/// The query metadata key naming the index to search (upstream's `queryIndexName`).
pub(crate) const INDEX_NAME_METADATA_KEY: &str = "queryIndexName";

/// One declared index: the `FT.CREATE` arguments and the alias of each indexed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexSchema {
    /// The `FT.CREATE` arguments: `name ON JSON SCHEMA $.data.<path> AS varN <type>
    /// SORTABLE ...`.
    pub create: Vec<String>,
    /// Indexed path (as written in queries) -> alias.
    aliases: HashMap<String, String>,
}

/// Parses `queryIndexes`: `[{"name": ..., "indexes": [{"key": ..., "type": ...}]}]`.
pub(crate) fn parse_schemas(text: &str) -> Result<HashMap<String, IndexSchema>, String> {
    let mut schemas = HashMap::new();
    if text.trim().is_empty() {
        return Ok(schemas);
    }
    let declared: Json = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let Json::Array(declared) = declared else {
        return Err("queryIndexes must be a JSON array".to_owned());
    };
    for schema in &declared {
        let name = string_field(schema, "name");
        if name.is_empty() {
            return Err("empty query schema name".to_owned());
        }
        if schemas.contains_key(name) {
            return Err(format!("duplicate schema name {name}"));
        }
        let mut create = vec![
            name.to_owned(),
            "ON".to_owned(),
            "JSON".to_owned(),
            "SCHEMA".to_owned(),
        ];
        let mut aliases = HashMap::new();
        let indexes = match schema.get("indexes") {
            None | Some(Json::Null) => &Vec::new(),
            Some(Json::Array(indexes)) => indexes,
            Some(_) => return Err(format!("indexes of query schema {name} must be a list")),
        };
        for (position, index) in indexes.iter().enumerate() {
            let key = string_field(index, "key");
            let kind = string_field(index, "type");
            if key.is_empty() {
                return Err(format!("empty key in query schema {name}"));
            }
            if kind.is_empty() {
                return Err(format!("empty type in query schema {name}"));
            }
            let alias = format!("var{position}");
            create.extend([
                format!("$.data.{key}"),
                "AS".to_owned(),
                alias.clone(),
                kind.to_owned(),
                "SORTABLE".to_owned(),
            ]);
            aliases.insert(key.to_owned(), alias);
        }
        schemas.insert(name.to_owned(), IndexSchema { create, aliases });
    }
    Ok(schemas)
}

fn string_field<'a>(value: &'a Json, name: &str) -> &'a str {
    value.get(name).and_then(Json::as_str).unwrap_or_default()
}

/// A translated query: the `FT.SEARCH` arguments after the index name, and the paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Search {
    /// Query text, `SORTBY`, `LIMIT` (without `RETURN`).
    pub arguments: Vec<String>,
    /// The page size, 0 for none.
    pub limit: usize,
    /// The offset this page starts at.
    pub offset: u64,
}

impl IndexSchema {
    fn alias(&self, key: &str) -> Result<&str, StateError> {
        self.aliases
            .get(field_path(key))
            .map(String::as_str)
            .ok_or_else(|| StateError::InvalidRequest(format!("JSON path {key:?} is not indexed")))
    }

    /// Translates a query into RediSearch syntax.
    pub(crate) fn translate(&self, query: &Query) -> Result<Search, StateError> {
        let text = match &query.filter {
            None => "*".to_owned(),
            Some(filter) => self.filter(filter, true)?,
        };
        let mut arguments = vec![text];
        match query.sort.as_slice() {
            [] => {}
            [sorting] => {
                arguments.extend(["SORTBY".to_owned(), self.alias(&sorting.key)?.to_owned()]);
                if sorting.order == Order::Desc {
                    arguments.push("DESC".to_owned());
                }
            }
            _ => {
                return Err(StateError::InvalidRequest(
                    "multiple SORTBY steps are not allowed. Sort multiple fields in a single step"
                        .to_owned(),
                ));
            }
        }
        let mut offset = 0;
        if query.limit > 0 {
            if !query.token.is_empty() {
                offset = query.token.parse::<u64>().map_err(|_| {
                    StateError::InvalidRequest(format!("invalid page token {:?}", query.token))
                })?;
            }
            arguments.extend([
                "LIMIT".to_owned(),
                offset.to_string(),
                query.limit.to_string(),
            ]);
        }
        Ok(Search {
            arguments,
            limit: query.limit,
            offset,
        })
    }

    /// One filter; `top` is true for the outermost one (which upstream leaves unwrapped).
    fn filter(&self, filter: &Filter, top: bool) -> Result<String, StateError> {
        let wrap = |text: String| if top { text } else { format!("({text})") };
        Ok(match filter {
            Filter::Eq(key, value) => wrap(self.equals(key, value)?),
            Filter::Neq(key, value) => format!("-({})", self.equals(key, value)?),
            Filter::Gt(key, value) => wrap(self.range(key, value, "[(", " +inf]", "GT")?),
            Filter::Gte(key, value) => wrap(self.range(key, value, "[", " +inf]", "GTE")?),
            Filter::Lt(key, value) => wrap(self.range(key, value, "[-inf (", "]", "LT")?),
            Filter::Lte(key, value) => wrap(self.range(key, value, "[-inf ", "]", "LTE")?),
            Filter::In(key, values) => wrap(self.one_of(key, values)?),
            Filter::And(filters) => self.combine(filters, " ")?,
            Filter::Or(filters) => self.combine(filters, "|")?,
        })
    }

    fn combine(&self, filters: &[Filter], separator: &str) -> Result<String, StateError> {
        let parts = filters
            .iter()
            .map(|filter| self.filter(filter, false))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(separator)))
    }

    fn equals(&self, key: &str, value: &Json) -> Result<String, StateError> {
        let alias = self.alias(key)?;
        Ok(match value {
            Json::String(text) => format!("@{alias}:({text})"),
            Json::Number(_) => {
                let number = number(key, value)?;
                format!("@{alias}:[{number} {number}]")
            }
            other => return Err(unsupported_value(key, other)),
        })
    }

    fn range(
        &self,
        key: &str,
        value: &Json,
        before: &str,
        after: &str,
        operator: &str,
    ) -> Result<String, StateError> {
        let alias = self.alias(key)?;
        if let Json::String(text) = value {
            return Err(StateError::InvalidRequest(format!(
                "unsupported type of value {text} for {operator}; string type not permitted"
            )));
        }
        Ok(format!("@{alias}:{before}{}{after}", number(key, value)?))
    }

    fn one_of(&self, key: &str, values: &[Json]) -> Result<String, StateError> {
        if values.len() < 2 {
            return Err(StateError::InvalidRequest(format!(
                "too few values in IN operator for key {key:?}"
            )));
        }
        if let Some(Json::String(_)) = values.first() {
            let alias = self.alias(key)?;
            let texts = values
                .iter()
                .map(|value| match value {
                    Json::String(text) => Ok(text.as_str()),
                    other => Err(unsupported_value(key, other)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(format!("@{alias}:({})", texts.join("|")));
        }
        let alternatives = values
            .iter()
            .map(|value| Filter::Eq(key.to_owned(), value.clone()))
            .collect::<Vec<_>>();
        self.combine(&alternatives, "|")
    }
}

/// A number the way upstream prints decoded JSON numbers (Go's `%f`: six decimals).
fn number(key: &str, value: &Json) -> Result<String, StateError> {
    value
        .as_f64()
        .map(|number| format!("{number:.6}"))
        .ok_or_else(|| unsupported_value(key, value))
}

fn unsupported_value(key: &str, value: &Json) -> StateError {
    StateError::InvalidRequest(format!(
        "unsupported value {value} for key {key:?}: use a string or a number"
    ))
}

/// Reads an `FT.SEARCH ... RETURN 2 $.data $.version` reply (RESP2: the total, then
/// key and `[field, value, ...]` pairs).
pub(crate) fn parse_results(reply: Value) -> Result<Vec<QueryItem>, StateError> {
    let invalid = || StateError::Backend("invalid FT.SEARCH output".to_owned());
    let Value::Array(entries) = reply else {
        return Err(invalid());
    };
    if entries.len() % 2 != 1 {
        return Err(invalid());
    }
    let mut results = Vec::with_capacity(entries.len() / 2);
    let mut rest = entries.into_iter().skip(1);
    while let (Some(key), Some(fields)) = (rest.next(), rest.next()) {
        let key = text(&key).ok_or_else(invalid)?;
        let mut item = QueryItem {
            key,
            ..QueryItem::default()
        };
        let mut data = None;
        if let Value::Array(fields) = fields {
            for pair in fields.chunks(2) {
                if let [name, value] = pair {
                    match text(name).as_deref() {
                        Some("$.data") => data = text(value),
                        Some("$.version") => item.etag = text(value),
                        _ => {}
                    }
                }
            }
        }
        match data {
            Some(data) => item.data = Bytes::from(data),
            None => item.error = Some(format!("no $.data returned for key {}", item.key)),
        }
        results.push(item);
    }
    Ok(results)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        Value::Int(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> IndexSchema {
        let schemas = parse_schemas(
            r#"[{"name": "orgIndx", "indexes": [
                {"key": "person.org", "type": "TEXT"},
                {"key": "person.id", "type": "NUMERIC"},
                {"key": "state", "type": "TEXT"}]}]"#,
        )
        .unwrap();
        schemas["orgIndx"].clone()
    }

    fn translate(query: &str) -> Result<Vec<String>, StateError> {
        schema()
            .translate(&Query::parse(query.as_bytes()).unwrap())
            .map(|search| search.arguments)
    }

    #[test]
    fn schemas_become_ft_create_arguments() {
        let schema = schema();
        assert_eq!(
            schema.create.join(" "),
            "orgIndx ON JSON SCHEMA $.data.person.org AS var0 TEXT SORTABLE \
             $.data.person.id AS var1 NUMERIC SORTABLE $.data.state AS var2 TEXT SORTABLE"
        );
        assert_eq!(
            parse_schemas(r#"[{"name": ""}]"#).unwrap_err(),
            "empty query schema name"
        );
        assert_eq!(
            parse_schemas(r#"[{"name": "a"}, {"name": "a"}]"#).unwrap_err(),
            "duplicate schema name a"
        );
        assert_eq!(
            parse_schemas(r#"[{"name": "a", "indexes": [{"key": "k"}]}]"#).unwrap_err(),
            "empty type in query schema a"
        );
        assert!(parse_schemas("{not json").is_err());
        assert!(parse_schemas("").unwrap().is_empty());
    }

    #[test]
    fn queries_translate_like_upstream() {
        assert_eq!(
            translate(r#"{"page": {"limit": 2}}"#).unwrap(),
            ["*", "LIMIT", "0", "2"]
        );
        assert_eq!(
            translate(r#"{"filter": {"EQ": {"state": "CA"}}, "page": {"limit": 2}}"#).unwrap(),
            ["@var2:(CA)", "LIMIT", "0", "2"]
        );
        assert_eq!(
            translate(
                r#"{"filter": {"OR": [{"EQ": {"person.id": 123}},
                    {"AND": [{"EQ": {"person.org": "B"}}, {"IN": {"person.id": [567, 890]}}]}]},
                    "sort": [{"key": "person.id"}], "page": {"limit": 2, "token": "4"}}"#
            )
            .unwrap(),
            [
                "((@var1:[123.000000 123.000000])|((@var0:(B)) \
                 (((@var1:[567.000000 567.000000])|(@var1:[890.000000 890.000000])))))",
                "SORTBY",
                "var1",
                "LIMIT",
                "4",
                "2"
            ]
        );
        assert_eq!(
            translate(
                r#"{"filter": {"OR": [{"LT": {"person.id": 123}},
                    {"AND": [{"NEQ": {"person.org": "B"}}, {"GTE": {"value.person.id": 2}}]}]},
                    "sort": [{"key": "state", "order": "DESC"}]}"#
            )
            .unwrap(),
            [
                "((@var1:[-inf (123.000000])|(-(@var0:(B)) (@var1:[2.000000 +inf])))",
                "SORTBY",
                "var2",
                "DESC"
            ]
        );
        assert_eq!(
            translate(r#"{"filter": {"IN": {"state": ["CA", "WA"]}}}"#).unwrap(),
            ["@var2:(CA|WA)"]
        );
    }

    #[test]
    fn untranslatable_queries_are_invalid_requests() {
        let error = translate(r#"{"sort": [{"key": "state"}, {"key": "person.id"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("multiple SORTBY"), "{error}");
        let error = translate(r#"{"filter": {"EQ": {"person.name": "x"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not indexed"), "{error}");
        let error = translate(r#"{"filter": {"GT": {"state": "x"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("string type not permitted"), "{error}");
        let error = translate(r#"{"filter": {"IN": {"state": ["CA"]}}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("too few values"), "{error}");
        assert!(translate(r#"{"filter": {"EQ": {"state": true}}}"#).is_err());
        assert!(translate(r#"{"page": {"limit": 1, "token": "x"}}"#).is_err());
    }

    #[test]
    fn search_replies_become_items() {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let reply = Value::Array(vec![
            Value::Int(2),
            bulk("app||1"),
            Value::Array(vec![
                bulk("$.data"),
                bulk(r#"{"a":1}"#),
                bulk("$.version"),
                bulk("3"),
            ]),
            bulk("app||2"),
            Value::Array(vec![]),
        ]);
        let items = parse_results(reply).unwrap();
        assert_eq!(items[0].key, "app||1");
        assert_eq!(items[0].data, Bytes::from_static(br#"{"a":1}"#));
        assert_eq!(items[0].etag.as_deref(), Some("3"));
        assert!(items[1].error.is_some());
        assert!(parse_results(Value::Array(vec![Value::Int(1), bulk("k")])).is_err());
    }
}
