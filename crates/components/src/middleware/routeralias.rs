//! `middleware.http.routeralias`: rewrites request paths by a table of aliases, as
//! upstream. The `routes` metadata holds the table (a JSON or YAML object of alias to
//! target path); the deprecated form lists each alias as its own metadata entry. Aliases
//! are path templates (`/hello/{id}/info`, `{name}` matching one segment, `{name:regex}`
//! one segment matching the expression); the captured values are added to the query
//! string, which is then re-encoded with sorted keys.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use regex::Regex;

use super::{HttpMiddleware, MiddlewareError, Request, Response};
use crate::metadata::Properties;

/// What Go's `url.QueryEscape` leaves as it is.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One segment of an alias template.
#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Variable {
        name: String,
        pattern: Option<Regex>,
    },
}

/// One alias and where it leads.
#[derive(Debug, Clone)]
struct Alias {
    segments: Vec<Segment>,
    target: String,
}

/// The router alias middleware.
#[derive(Debug, Clone)]
pub struct RouterAlias {
    aliases: Vec<Alias>,
}

fn invalid(message: String) -> MiddlewareError {
    MiddlewareError::InvalidMetadata(message)
}

fn compile_template(template: &str) -> Result<Vec<Segment>, MiddlewareError> {
    template
        .trim_start_matches('/')
        .split('/')
        .map(|segment| {
            let Some(inner) = segment
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
            else {
                return Ok(Segment::Literal(segment.to_owned()));
            };
            let (name, pattern) = match inner.split_once(':') {
                Some((name, pattern)) => {
                    let pattern = Regex::new(&format!("^(?:{pattern})$"))
                        .map_err(|error| invalid(format!("invalid route {template:?}: {error}")))?;
                    (name, Some(pattern))
                }
                None => (inner, None),
            };
            Ok(Segment::Variable {
                name: name.to_owned(),
                pattern,
            })
        })
        .collect()
}

/// The routes table: the `routes` entry, else every entry (the deprecated form).
fn routes(properties: &Properties) -> Result<BTreeMap<String, String>, MiddlewareError> {
    if let Some(text) = properties
        .text("routes", &[])
        .filter(|text| !text.is_empty())
    {
        return serde_yaml::from_str::<BTreeMap<String, String>>(text).map_err(|error| {
            invalid(format!(
                "failed to decode 'routes' property as JSON or YAML: {error}"
            ))
        });
    }
    let mut table = BTreeMap::new();
    for (key, value) in properties.entries() {
        if key.is_empty() || value.is_empty() {
            return Err(invalid(
                "invalid key/value pair in metadata: must not be empty".to_owned(),
            ));
        }
        table.insert(key.to_owned(), value.to_owned());
    }
    Ok(table)
}

/// Reads the aliases.
pub fn open(properties: &Properties) -> Result<RouterAlias, MiddlewareError> {
    let aliases = routes(properties)?
        .into_iter()
        .map(|(alias, target)| {
            Ok(Alias {
                segments: compile_template(&alias)?,
                target,
            })
        })
        .collect::<Result<_, MiddlewareError>>()?;
    Ok(RouterAlias { aliases })
}

impl Alias {
    /// The captured variables when `path` matches the template.
    fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut captured = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Variable { name, pattern } => {
                    let fits = match pattern {
                        Some(pattern) => pattern.is_match(part),
                        None => !part.is_empty(),
                    };
                    if !fits {
                        return None;
                    }
                    captured.push((name.clone(), part.to_owned()));
                }
            }
        }
        Some(captured)
    }
}

/// `query` with `added` pairs, re-encoded with sorted keys as Go's `url.Values.Encode`.
fn merged_query(query: Option<&str>, added: Vec<(String, String)>) -> String {
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(&text.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        values.entry(decode(key)).or_default().push(decode(value));
    }
    for (key, value) in added {
        values.entry(key).or_default().push(value);
    }
    let escape = |text: &str| {
        utf8_percent_encode(text, QUERY_COMPONENT)
            .to_string()
            .replace("%20", "+")
    };
    values
        .iter()
        .flat_map(|(key, list)| {
            list.iter()
                .map(move |value| format!("{}={}", escape(key), escape(value)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[async_trait::async_trait]
impl HttpMiddleware for RouterAlias {
    async fn on_request(&self, mut request: Request) -> Result<Request, Response> {
        let path = request.uri().path().to_owned();
        let Some((alias, captured)) = self
            .aliases
            .iter()
            .find_map(|alias| alias.matches(&path).map(|captured| (alias, captured)))
        else {
            return Ok(request);
        };
        let query = if captured.is_empty() {
            request.uri().query().map(str::to_owned)
        } else {
            Some(merged_query(request.uri().query(), captured))
        };
        let path_and_query = match query {
            Some(query) => format!("{}?{query}", alias.target),
            None => alias.target.clone(),
        };
        let mut parts = request.uri().clone().into_parts();
        match path_and_query.parse() {
            Ok(rewritten) => parts.path_and_query = Some(rewritten),
            Err(error) => {
                tracing::warn!(
                    "router alias target {path_and_query:?} is not a valid path: {error}"
                );
                return Ok(request);
            }
        }
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
        Ok(request)
    }
}
