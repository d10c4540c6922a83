//! Standalone hot reload (upstream's `HotReload` preview feature): the resources folders
//! are checked every [`POLL_INTERVAL`]; when a YAML file appears, changes or goes away,
//! the components are loaded again and the new set replaces the old one. Unchanged
//! components carry over untouched; the stores of removed or changed ones are closed once
//! the calls that were using them have finished.
//!
//! Polling (file names, sizes and modification times) is used instead of file-system
//! notifications: it behaves the same on every file system, including network and
//! container mounts where notifications are unreliable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dapr_kit::shutdown::ShutdownSignal;
use dapr_resources::loader;

use super::{Components, LoadContext, load};
use crate::config::Mode;
use crate::observability::metrics::SidecarMetrics;

/// The name of the preview feature turning hot reload on.
pub const HOT_RELOAD_FEATURE: &str = "HotReload";
/// How often the folders are checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for calls still using a replaced set before its stores are closed.
const RETIRE_WAIT: Duration = Duration::from_secs(30);

/// What the watcher needs.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The `--resources-path` folders.
    pub paths: Vec<PathBuf>,
    /// This app's id (resources are filtered to its scope).
    pub app_id: String,
    /// This app's namespace.
    pub namespace: String,
    /// The pod's name, empty when unknown.
    pub pod_name: String,
    /// The published components.
    pub components: Arc<Components>,
    /// Where component start-ups are counted.
    pub metrics: SidecarMetrics,
}

/// One file's identity for change detection.
type Stamp = (PathBuf, u64, Option<SystemTime>);

/// The YAML files under `paths` with their sizes and modification times, sorted.
fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    let mut found = Vec::new();
    for path in paths {
        collect(path, &mut found);
    }
    found.sort();
    found
}

fn collect(dir: &Path, found: &mut Vec<Stamp>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.is_dir() {
            collect(&path, found);
        } else if matches!(
            path.extension().and_then(|extension| extension.to_str()),
            Some("yaml" | "yml")
        ) {
            found.push((path, metadata.len(), metadata.modified().ok()));
        }
    }
}

/// Watches until `stop`, reloading components whenever the files change.
pub async fn run(watch: Watch, stop: ShutdownSignal) {
    tracing::info!(
        "hot reload enabled: watching {} for component changes",
        watch
            .paths
            .iter()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut seen = stamps(&watch.paths);
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = stop.wait() => return,
        }
        let now = stamps(&watch.paths);
        if now == seen {
            continue;
        }
        seen = now;
        reload(&watch).await;
    }
}

/// Loads the components again and publishes the result; a failure keeps the current set.
pub async fn reload(watch: &Watch) {
    let mut resources = match loader::load_dirs(&watch.paths) {
        Ok(resources) => resources,
        Err(error) => {
            tracing::error!("hot reload: resources not reloaded: {error}");
            return;
        }
    };
    resources.retain_in_scope(&watch.app_id);
    let current = watch.components.snapshot();
    let context = LoadContext {
        mode: Mode::Standalone,
        metrics: &watch.metrics,
        app_id: &watch.app_id,
        namespace: &watch.namespace,
        pod_name: &watch.pod_name,
    };
    let next = match load(&resources.components, context, Some(&current)).await {
        Ok(next) => next,
        Err(error) => {
            tracing::error!("hot reload: components not reloaded: {error}");
            return;
        }
    };
    let replaced = watch.components.replace(next);
    drop(current);
    let successor = watch.components.snapshot();
    tracing::info!(
        "hot reload: {} component(s) active",
        successor
            .statuses
            .iter()
            .filter(|status| status.error.is_none())
            .count()
    );
    tokio::spawn(retire(replaced, successor));
}

/// Closes the stores of `replaced` that `successor` dropped, once no call holds
/// `replaced` any more (or after [`RETIRE_WAIT`]).
async fn retire(replaced: Arc<super::ComponentSet>, successor: Arc<super::ComponentSet>) {
    let deadline = tokio::time::Instant::now() + RETIRE_WAIT;
    while Arc::strong_count(&replaced) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replaced.close_unless_in(&successor).await;
}
