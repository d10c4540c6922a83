//! Loads resources from resource directories, as daprd does in standalone
//! mode (`--resources-path`, repeatable).
//!
//! Behaviour, following upstream:
//! - each directory is read non-recursively; files whose name ends in
//!   `.yaml` or `.yml` (any case) are loaded in file name order, directories
//!   in the order given; other files are skipped with a warning;
//! - a file may hold several YAML documents separated by `---`;
//! - documents are dispatched on `apiVersion` + `kind`: Component,
//!   Configuration, Resiliency and HTTPEndpoint `dapr.io/v1alpha1`,
//!   Subscription `dapr.io/v1alpha1` and `dapr.io/v2alpha1`. Other `dapr.io`
//!   kinds are skipped with a warning; empty documents and non-Dapr
//!   documents are skipped with a debug line;
//! - Subscriptions are handed out as `v2alpha1` (`v1alpha1` ones are
//!   converted: `route` becomes `routes.default`);
//! - names must be unique per kind across all directories.
//!
//! Unlike upstream, which logs broken documents and carries on, any problem
//! (unreadable file, YAML syntax, wrong field type, missing or empty
//! required field, bad name, bad component type, duplicate name) fails the
//! load, and every problem found is reported, each naming its file,
//! document and field. Durations are not checked here (see the crate docs).
//! Scopes and namespaces are applied afterwards, by
//! [`LoadedResources::retain_in_scope`] and
//! [`LoadedResources::retain_namespace`].

mod document;
mod error;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

pub use error::{LoadError, Problem};

use crate::resource::DaprResource;
use crate::subscription::v2alpha1;
use crate::{Component, Configuration, HttpEndpoint, Resiliency};

/// Where a resource was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file.
    pub file: PathBuf,
    /// 1-based index of the YAML document in the file.
    pub document: usize,
}

impl Source {
    fn problem(&self, field: Option<String>, message: String) -> Problem {
        Problem {
            file: self.file.clone(),
            document: Some(self.document),
            field,
            message,
        }
    }
}

/// A resource and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The resource.
    pub resource: T,
    /// Where it was read from.
    pub source: Source,
}

/// Every resource found, per kind, in load order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadedResources {
    /// Components.
    pub components: Vec<Loaded<Component>>,
    /// Configurations.
    pub configurations: Vec<Loaded<Configuration>>,
    /// Resiliencies.
    pub resiliencies: Vec<Loaded<Resiliency>>,
    /// HTTP endpoints.
    pub http_endpoints: Vec<Loaded<HttpEndpoint>>,
    /// Subscriptions of both versions, as `v2alpha1`.
    pub subscriptions: Vec<Loaded<v2alpha1::Subscription>>,
}

impl LoadedResources {
    /// Keeps only the resources the app `app_id` may use: those whose
    /// `scopes` are empty or list `app_id`. Configurations have no scopes
    /// and are all kept.
    pub fn retain_in_scope(&mut self, app_id: &str) {
        self.retain(&InScope(app_id));
    }

    /// Keeps only the resources without a namespace or in `namespace`.
    /// Upstream applies this when the sidecar's `NAMESPACE` is set.
    pub fn retain_namespace(&mut self, namespace: &str) {
        self.retain(&InNamespace(namespace));
    }

    fn retain(&mut self, filter: &impl Filter) {
        fn retain_kind<T: DaprResource>(list: &mut Vec<Loaded<T>>, filter: &impl Filter) {
            list.retain(|loaded| filter.keeps(&loaded.resource));
        }
        retain_kind(&mut self.components, filter);
        retain_kind(&mut self.configurations, filter);
        retain_kind(&mut self.resiliencies, filter);
        retain_kind(&mut self.http_endpoints, filter);
        retain_kind(&mut self.subscriptions, filter);
    }
}

/// A condition on resources of any kind.
trait Filter {
    fn keeps<T: DaprResource>(&self, resource: &T) -> bool;
}

/// Resources the app with this ID may use.
struct InScope<'a>(&'a str);

impl Filter for InScope<'_> {
    fn keeps<T: DaprResource>(&self, resource: &T) -> bool {
        resource.is_in_scope(self.0)
    }
}

/// Resources without a namespace or in this one.
struct InNamespace<'a>(&'a str);

impl Filter for InNamespace<'_> {
    fn keeps<T: DaprResource>(&self, resource: &T) -> bool {
        resource
            .meta()
            .namespace
            .as_deref()
            .is_none_or(|own| own.is_empty() || own == self.0)
    }
}

/// Loads every resource in `dirs` (see the [module docs](self) for the rules).
pub fn load_dirs<P: AsRef<Path>>(dirs: &[P]) -> Result<LoadedResources, LoadError> {
    let mut resources = LoadedResources::default();
    let mut problems = Vec::new();
    for dir in dirs {
        for file in yaml_files(dir.as_ref())? {
            match fs::read_to_string(&file) {
                Ok(text) => document::parse_file(&file, &text, &mut resources, &mut problems),
                Err(error) => problems.push(Problem {
                    file,
                    document: None,
                    field: None,
                    message: format!("cannot read file: {error}"),
                }),
            }
        }
    }
    finish(resources, problems)
}

/// Loads the resources in `text`, the contents of `file` (used in messages
/// and [`Source`]s; it is not read). For callers that read or preprocess a
/// file themselves, e.g. the `--config` file.
pub fn parse_str(file: &Path, text: &str) -> Result<LoadedResources, LoadError> {
    let mut resources = LoadedResources::default();
    let mut problems = Vec::new();
    document::parse_file(file, text, &mut resources, &mut problems);
    finish(resources, problems)
}

fn finish(
    resources: LoadedResources,
    mut problems: Vec<Problem>,
) -> Result<LoadedResources, LoadError> {
    duplicate_names(&resources.components, &mut problems);
    duplicate_names(&resources.configurations, &mut problems);
    duplicate_names(&resources.resiliencies, &mut problems);
    duplicate_names(&resources.http_endpoints, &mut problems);
    duplicate_names(&resources.subscriptions, &mut problems);
    if problems.is_empty() {
        Ok(resources)
    } else {
        Err(LoadError::Invalid { problems })
    }
}

/// Reports every resource whose name an earlier one of the same kind has.
fn duplicate_names<T: DaprResource>(resources: &[Loaded<T>], problems: &mut Vec<Problem>) {
    let mut first_by_name: HashMap<&str, &Source> = HashMap::new();
    for loaded in resources {
        let name = loaded.resource.name();
        match first_by_name.get(name) {
            Some(first) => problems.push(loaded.source.problem(
                Some("metadata.name".to_owned()),
                format!(
                    "duplicate {} name {name:?}, first defined in {} (document {})",
                    T::kind(&()),
                    first.file.display(),
                    first.document
                ),
            )),
            None => {
                first_by_name.insert(name, &loaded.source);
            }
        }
    }
}

/// The YAML files directly in `dir`, in file name order.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read_dir_error = |source| LoadError::ReadDir {
        dir: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let path = entry.map_err(read_dir_error)?.path();
        if path.is_dir() {
            debug!(path = %path.display(), "not descending into a subdirectory of a resources directory");
        } else if is_yaml(&path) {
            files.push(path);
        } else {
            warn!(file = %path.display(), "skipping a file without a .yaml or .yml extension in a resources directory");
        }
    }
    files.sort();
    Ok(files)
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            extension.eq_ignore_ascii_case("yaml") || extension.eq_ignore_ascii_case("yml")
        })
}
