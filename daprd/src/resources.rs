//! Reads the sidecar's resources at start: the YAML files under `--resources-path` and the
//! `--config` file (standalone mode), validated and filtered to this app's scopes.

use std::path::{Path, PathBuf};

use dapr_resources::loader::{self, LoadError, LoadedResources};
use dapr_resources::{Configuration, DaprResource};

use crate::config::{Mode, RuntimeConfig};

/// Why the resources could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResourcesError {
    /// A resources directory or one of its files is invalid.
    #[error("failed to load resources: {0}")]
    Load(#[from] LoadError),
    /// The `--config` file could not be read.
    #[error("failed to read configuration file {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The `--config` file holds no Configuration.
    #[error("configuration file {0} holds no Configuration resource")]
    NoConfiguration(PathBuf),
}

/// What the sidecar starts from.
#[derive(Debug, Default)]
pub struct StartupResources {
    /// Components, resiliency policies, subscriptions and HTTP endpoints in this app's scope.
    pub resources: LoadedResources,
    /// The first `--config` Configuration, when one was given.
    pub configuration: Option<Configuration>,
}

fn read_configuration(path: &Path) -> Result<Configuration, ResourcesError> {
    let text = std::fs::read_to_string(path).map_err(|source| ResourcesError::ReadConfig {
        path: path.to_path_buf(),
        source,
    })?;
    let parsed = loader::parse_str(path, &text)?;
    parsed
        .configurations
        .into_iter()
        .next()
        .map(|loaded| loaded.resource)
        .ok_or_else(|| ResourcesError::NoConfiguration(path.to_path_buf()))
}

/// Loads the start-up resources for `config` (standalone mode; Kubernetes mode receives
/// them from the operator instead).
pub fn load(config: &RuntimeConfig) -> Result<StartupResources, ResourcesError> {
    if config.mode != Mode::Standalone {
        return Ok(StartupResources::default());
    }
    let mut resources = loader::load_dirs(&config.resources_paths)?;
    // Configurations are chosen with --config, not picked up from the resources folders.
    resources.configurations.clear();
    resources.retain_in_scope(&config.app_id);
    for component in &resources.components {
        let spec = &component.resource.spec;
        tracing::info!(
            "found component {} ({}/{})",
            component.resource.name(),
            spec.type_,
            spec.version
        );
    }
    let configuration = match config.config.first() {
        Some(path) => {
            let configuration = read_configuration(Path::new(path))?;
            tracing::info!("loaded configuration {} from {path}", configuration.name());
            Some(configuration)
        }
        None => None,
    };
    Ok(StartupResources {
        resources,
        configuration,
    })
}
