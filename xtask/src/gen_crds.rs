//! `cargo xtask gen`: writes the CRD manifests generated from `crates/resources`.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Writes every CRD into `charts/dapr/crds/`, or with `check` only reports stale files.
pub fn run(workspace_root: &Path, check: bool) -> Result<()> {
    let dir = workspace_root.join("charts/dapr/crds");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut stale = Vec::new();
    for file in dapr_resources::crd::crd_files()? {
        let path = dir.join(file.file_name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == file.contents {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            std::fs::write(&path, &file.contents)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("gen: wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "stale generated files (run `cargo xtask gen`): {}",
            stale.join(", ")
        );
    }
    Ok(())
}
