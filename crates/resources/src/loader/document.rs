//! Turning the text of one file into resources: splitting it into YAML
//! documents, dispatching each on `apiVersion` + `kind`, decoding and
//! validating it.

use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use tracing::{debug, warn};

use super::validate::Validate;
use super::{Loaded, LoadedResources, Problem, Source};
use crate::subscription::{v1alpha1, v2alpha1};
use crate::{Component, Configuration, HttpEndpoint, Resiliency};

/// Adds the resources of one file to `resources`, and its problems to
/// `problems`. A YAML syntax error ends the file (later documents cannot be
/// located reliably); other problems only skip their document.
pub(super) fn parse_file(
    file: &Path,
    text: &str,
    resources: &mut LoadedResources,
    problems: &mut Vec<Problem>,
) {
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let source = Source {
            file: file.to_owned(),
            document: index + 1,
        };
        let mut value = match Value::deserialize(document) {
            Ok(value) => value,
            Err(error) => {
                problems.push(source.problem(None, format!("invalid YAML: {error}")));
                return;
            }
        };
        if let Err(error) = value.apply_merge() {
            problems.push(source.problem(None, format!("invalid YAML merge key: {error}")));
            continue;
        }
        if let Err(found) = decode_document(&value, &source, resources) {
            problems.extend(
                found
                    .into_iter()
                    .map(|(field, message)| source.problem(field, message)),
            );
        }
    }
}

/// A problem inside one document: optional field path and message.
type DocumentProblem = (Option<String>, String);

/// Decodes one document into `resources`; documents that are not Dapr
/// resources of a supported kind are logged and skipped.
fn decode_document(
    value: &Value,
    source: &Source,
    resources: &mut LoadedResources,
) -> Result<(), Vec<DocumentProblem>> {
    let mapping = match value {
        Value::Null => {
            debug!(
                file = %source.file.display(),
                document = source.document,
                "skipping empty YAML document"
            );
            return Ok(());
        }
        Value::Mapping(mapping) => mapping,
        other => {
            return Err(vec![(
                None,
                format!(
                    "expected a mapping with `apiVersion` and `kind`, found {}",
                    describe(other)
                ),
            )]);
        }
    };
    let (Some(api_version), Some(kind)) = (
        type_meta_field(mapping, "apiVersion")?,
        type_meta_field(mapping, "kind")?,
    ) else {
        debug!(
            file = %source.file.display(),
            document = source.document,
            "skipping YAML document without apiVersion and kind"
        );
        return Ok(());
    };
    match (api_version, kind) {
        (Component::API_VERSION, Component::KIND) => {
            push(&mut resources.components, decode(value)?, source);
        }
        (Configuration::API_VERSION, Configuration::KIND) => {
            push(&mut resources.configurations, decode(value)?, source);
        }
        (Resiliency::API_VERSION, Resiliency::KIND) => {
            push(&mut resources.resiliencies, decode(value)?, source);
        }
        (HttpEndpoint::API_VERSION, HttpEndpoint::KIND) => {
            push(&mut resources.http_endpoints, decode(value)?, source);
        }
        (v1alpha1::Subscription::API_VERSION, v1alpha1::Subscription::KIND) => {
            let subscription: v1alpha1::Subscription = decode(value)?;
            push(&mut resources.subscriptions, subscription.into(), source);
        }
        (v2alpha1::Subscription::API_VERSION, v2alpha1::Subscription::KIND) => {
            push(&mut resources.subscriptions, decode(value)?, source);
        }
        _ if api_version.starts_with("dapr.io/") => {
            warn!(
                file = %source.file.display(),
                document = source.document,
                api_version,
                kind,
                "skipping Dapr resource of an unsupported kind or version"
            );
        }
        _ => {
            debug!(
                file = %source.file.display(),
                document = source.document,
                api_version,
                kind,
                "skipping non-Dapr resource"
            );
        }
    }
    Ok(())
}

fn push<T>(list: &mut Vec<Loaded<T>>, resource: T, source: &Source) {
    list.push(Loaded {
        resource,
        source: source.clone(),
    });
}

/// `apiVersion` or `kind` of a document: `None` when absent, a problem when
/// not a string.
fn type_meta_field<'a>(
    mapping: &'a Mapping,
    key: &str,
) -> Result<Option<&'a str>, Vec<DocumentProblem>> {
    match mapping.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(vec![(
            Some(key.to_owned()),
            format!("expected a string, found {}", describe(other)),
        )]),
    }
}

/// Decodes a resource and validates it, reporting problems by field path.
fn decode<T: DeserializeOwned + Validate>(value: &Value) -> Result<T, Vec<DocumentProblem>> {
    let resource: T = serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        vec![(field_path(&path, &message), message)]
    })?;
    let problems = resource.problems();
    if problems.is_empty() {
        Ok(resource)
    } else {
        Err(problems
            .into_iter()
            .map(|problem| (Some(problem.field), problem.message))
            .collect())
    }
}

/// The field a decoding error is about. serde reports a missing field at
/// the enclosing object, so its name is appended to the path.
fn field_path(path: &str, message: &str) -> Option<String> {
    let enclosing = (path != ".").then_some(path);
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    match (enclosing, missing) {
        (Some(enclosing), Some(missing)) => Some(format!("{enclosing}.{missing}")),
        (None, Some(missing)) => Some(missing.to_owned()),
        (enclosing, None) => enclosing.map(str::to_owned),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
