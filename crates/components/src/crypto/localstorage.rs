//! `crypto.dapr.localstorage`: keys are files in the folder named by the `path` metadata,
//! each holding one key (PEM, a JWK, or raw symmetric bytes, as dapr/kit's `ParseKey`
//! reads them; a `.json` extension forces a JWK, `.pem` forces PEM). A key's name is its
//! file name, extension included, relative to the folder; names containing `..` are
//! refused so no key is read from outside the folder. Files are read on every use, so
//! keys can be added or replaced while the sidecar runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::local::{KeySource, LocalProvider};
use super::{CryptoError, Key};
use crate::metadata::Properties;

/// Keys read from files in one folder.
pub(crate) struct FolderKeys {
    root: PathBuf,
}

/// Reads the metadata and checks that `path` is a folder.
pub(crate) fn open(properties: &Properties) -> Result<LocalProvider<FolderKeys>, CryptoError> {
    let invalid =
        |reason: String| CryptoError::InvalidMetadata(format!("failed to load metadata: {reason}"));
    let path = properties
        .text("path", &[])
        .filter(|path| !path.is_empty())
        .ok_or_else(|| invalid("metadata property 'path' is required".to_owned()))?;
    let root = clean(Path::new(path));
    let info = std::fs::metadata(&root).map_err(|error| {
        invalid(format!(
            "could not stat path '{}': {}",
            root.display(),
            go_io_error("stat", &root, &error)
        ))
    })?;
    if !info.is_dir() {
        return Err(invalid(format!(
            "path '{}' is not a directory",
            root.display()
        )));
    }
    Ok(LocalProvider::new(FolderKeys { root }))
}

/// `path` without `.` components, as Go's `filepath.Clean` leaves it for existing paths.
fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|component| !matches!(component, std::path::Component::CurDir))
        .collect::<PathBuf>()
}

/// An I/O error worded as Go's `*PathError` (`open /keys/a: no such file or directory`).
fn go_io_error(operation: &str, path: &Path, error: &std::io::Error) -> String {
    let reason = match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        _ => error.to_string(),
    };
    format!("{operation} {}: {reason}", path.display())
}

impl FolderKeys {
    /// The file of key `name`: joined under the folder the way Go's `filepath.Join` does,
    /// so a leading `/` stays inside the folder.
    fn file(&self, name: &str) -> Result<PathBuf, CryptoError> {
        if name.contains("..") {
            return Err(CryptoError::Failed(
                "invalid key path: cannot contain '..'".to_owned(),
            ));
        }
        Ok(self
            .root
            .join(clean(Path::new(name.trim_start_matches('/')))))
    }
}

#[async_trait::async_trait]
impl KeySource for FolderKeys {
    async fn retrieve(&self, name: &str) -> Result<Arc<Key>, CryptoError> {
        let file = self.file(name)?;
        let data = tokio::fs::read(&file).await.map_err(|error| {
            let operation = if error.kind() == std::io::ErrorKind::IsADirectory {
                "read"
            } else {
                "open"
            };
            CryptoError::Failed(format!(
                "failed to load key '{name}': {}",
                go_io_error(operation, &file, &error)
            ))
        })?;
        let content_type = match file
            .extension()
            .map(|extension| extension.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("json") => Some("application/json"),
            Some("pem") => Some("application/x-pem-file"),
            _ => None,
        };
        Key::parse(&data, content_type)
            .map(Arc::new)
            .map_err(|error| {
                CryptoError::Failed(format!("failed to parse key from secret: {error}"))
            })
    }
}
