//! Checks serde cannot express: required values being non-empty, name
//! syntax, component type shape.

use crate::common::NameValuePair;
use crate::resource::DaprResource;
use crate::subscription::{v1alpha1, v2alpha1};
use crate::{Component, Configuration, HttpEndpoint, Resiliency};

/// A problem with one field of a decoded resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldProblem {
    /// Path of the field, e.g. `spec.type`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldProblem {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Validation of one decoded resource.
pub(super) trait Validate: DaprResource {
    /// Every problem found, in field order; empty when valid.
    fn problems(&self) -> Vec<FieldProblem>;
}

impl Validate for Component {
    fn problems(&self) -> Vec<FieldProblem> {
        let mut problems = name_problems(self);
        if let Some(problem) = component_type_problem(&self.spec.type_) {
            problems.push(FieldProblem::new("spec.type", problem));
        }
        require_non_empty(&mut problems, "spec.version", &self.spec.version);
        problems.extend(name_value_problems("spec.metadata", &self.spec.metadata));
        problems
    }
}

impl Validate for Configuration {
    fn problems(&self) -> Vec<FieldProblem> {
        name_problems(self)
    }
}

impl Validate for Resiliency {
    fn problems(&self) -> Vec<FieldProblem> {
        name_problems(self)
    }
}

impl Validate for HttpEndpoint {
    fn problems(&self) -> Vec<FieldProblem> {
        let mut problems = name_problems(self);
        require_non_empty(&mut problems, "spec.baseUrl", &self.spec.base_url);
        problems.extend(name_value_problems("spec.headers", &self.spec.headers));
        problems
    }
}

impl Validate for v1alpha1::Subscription {
    fn problems(&self) -> Vec<FieldProblem> {
        let mut problems = name_problems(self);
        require_non_empty(&mut problems, "spec.pubsubname", &self.spec.pubsubname);
        require_non_empty(&mut problems, "spec.topic", &self.spec.topic);
        problems
    }
}

impl Validate for v2alpha1::Subscription {
    fn problems(&self) -> Vec<FieldProblem> {
        let mut problems = name_problems(self);
        require_non_empty(&mut problems, "spec.pubsubname", &self.spec.pubsubname);
        require_non_empty(&mut problems, "spec.topic", &self.spec.topic);
        problems
    }
}

/// `metadata.name` must be set and usable as one URL path segment (the
/// rule upstream applies to names in resource files).
fn name_problems(resource: &impl DaprResource) -> Vec<FieldProblem> {
    let name = resource.name();
    let problem = if name.is_empty() {
        Some("a name is required".to_owned())
    } else if name == "." || name == ".." {
        Some(format!("name {name:?} is not allowed"))
    } else if name.contains(['/', '%']) {
        Some(format!("name {name:?} may not contain '/' or '%'"))
    } else {
        None
    };
    problem
        .map(|message| FieldProblem::new("metadata.name", message))
        .into_iter()
        .collect()
}

/// A component type is `<building block>.<implementation>`, e.g.
/// `state.redis` or `bindings.azure.blobstorage`.
fn component_type_problem(component_type: &str) -> Option<String> {
    if component_type.is_empty() {
        return Some("a component type is required".to_owned());
    }
    let well_formed = !component_type.contains(char::is_whitespace)
        && component_type
            .split_once('.')
            .is_some_and(|(block, implementation)| !block.is_empty() && !implementation.is_empty());
    (!well_formed).then(|| {
        format!(
            "component type {component_type:?} is not of the form \
             `<building block>.<implementation>` (e.g. `state.redis`)"
        )
    })
}

fn require_non_empty(problems: &mut Vec<FieldProblem>, field: &str, value: &str) {
    if value.is_empty() {
        problems.push(FieldProblem::new(field, "must not be empty"));
    }
}

fn name_value_problems(list_field: &str, entries: &[NameValuePair]) -> Vec<FieldProblem> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.name.is_empty())
        .map(|(index, _)| {
            FieldProblem::new(format!("{list_field}[{index}].name"), "must not be empty")
        })
        .collect()
}
