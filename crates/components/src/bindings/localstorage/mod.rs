//! `bindings.localstorage`: an output binding reading and writing files below `rootPath`,
//! with upstream's operations and answers.
//!
//! - `create`: writes the request's data (see [`data`] for the unquoting and base64 rules)
//!   to metadata `fileName`, or to a new UUID name, creating missing directories; answers
//!   `{"fileName": "<name relative to the root>"}`.
//! - `get`: answers the content of `fileName`.
//! - `list`: answers a JSON array of the absolute paths of all files below the directory
//!   `fileName` (the root when unset), in name order, not following linked directories;
//!   `null` when there are none, as upstream's encoder writes an empty list.
//! - `delete`: removes the file (or empty directory) `fileName`.
//!
//! File names must stay inside the root (see [`paths`]).

mod data;
mod paths;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{BindingError, InvokeRequest, InvokeResponse, Operation, OutputBinding, operations};
use crate::metadata::Properties;

/// The request metadata naming the file.
pub const FILE_NAME_METADATA_KEY: &str = "fileName";

/// A configured local storage binding.
#[derive(Debug)]
pub struct LocalStorage {
    /// The root directory: absolute, existing, its links resolved.
    root: Arc<PathBuf>,
}

/// Reads `rootPath`, checks it and creates the directory.
pub fn open(properties: &Properties) -> Result<LocalStorage, BindingError> {
    let root_path = properties.text("rootPath", &[]).unwrap_or_default();
    let root = paths::resolve_root(root_path, &paths::disallowed_roots())
        .map_err(|err| BindingError::InvalidMetadata(format!("failed to parse metadata: {err}")))?;
    fs::create_dir_all(&root).map_err(|err| {
        BindingError::InvalidMetadata(format!(
            "unable to create directory specified by 'rootPath' {}: {err}",
            root.display()
        ))
    })?;
    Ok(LocalStorage {
        root: Arc::new(root),
    })
}

#[async_trait::async_trait]
impl OutputBinding for LocalStorage {
    fn operations(&self) -> Vec<Operation> {
        [
            operations::CREATE,
            operations::GET,
            operations::LIST,
            operations::DELETE,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, BindingError> {
        let mut name = request
            .metadata
            .get(FILE_NAME_METADATA_KEY)
            .cloned()
            .unwrap_or_default();
        let operation = request.operation.as_str();
        if name.is_empty() && operation == operations::CREATE {
            name = uuid::Uuid::new_v4().to_string();
        }
        let run: fn(&Path, &str, &[u8]) -> Result<InvokeResponse, BindingError> = match operation {
            operations::CREATE => create,
            operations::GET => get,
            operations::LIST => list,
            operations::DELETE => delete,
            other => return Err(BindingError::UnsupportedOperation(other.to_owned())),
        };
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || run(&root, &name, &request.data))
            .await
            .map_err(|err| BindingError::Backend(format!("file operation failed: {err}")))?
    }
}

/// Where `name` points below `root`, or the request error upstream words this way.
fn locate(root: &Path, name: &str) -> Result<paths::Confined, BindingError> {
    paths::confine(root, name).map_err(|reason| {
        BindingError::InvalidRequest(format!(
            "error getting absolute path for file {name}: {reason}"
        ))
    })
}

fn create(root: &Path, name: &str, data: &[u8]) -> Result<InvokeResponse, BindingError> {
    let content = data::file_content(data);
    let target = locate(root, name)?;
    let absolute = &target.absolute;
    if let Some(directory) = absolute.parent() {
        fs::create_dir_all(directory).map_err(|err| {
            BindingError::Backend(format!(
                "error creating directory {}: {err}",
                directory.display()
            ))
        })?;
    }
    let mut file = fs::File::create(absolute).map_err(|err| {
        BindingError::Backend(format!("error creating file {}: {err}", absolute.display()))
    })?;
    file.write_all(&content).map_err(|err| {
        BindingError::Backend(format!(
            "error writing to file {}: {err}",
            absolute.display()
        ))
    })?;
    tracing::debug!(
        "wrote file {} ({} bytes)",
        absolute.display(),
        content.len()
    );
    let answer = serde_json::json!({ "fileName": target.relative });
    Ok(InvokeResponse {
        data: Bytes::from(answer.to_string()),
        ..InvokeResponse::default()
    })
}

fn get(root: &Path, name: &str, _data: &[u8]) -> Result<InvokeResponse, BindingError> {
    let absolute = locate(root, name)?.absolute;
    let mut file = fs::File::open(&absolute).map_err(|err| {
        if err.kind() == ErrorKind::NotFound {
            BindingError::InvalidRequest(format!("file not found: {}", absolute.display()))
        } else {
            BindingError::Backend(format!("error opening path {}: {err}", absolute.display()))
        }
    })?;
    let mut content = Vec::new();
    file.read_to_end(&mut content).map_err(|err| {
        BindingError::Backend(format!("error reading file {}: {err}", absolute.display()))
    })?;
    Ok(InvokeResponse {
        data: Bytes::from(content),
        ..InvokeResponse::default()
    })
}

fn delete(root: &Path, name: &str, _data: &[u8]) -> Result<InvokeResponse, BindingError> {
    let target = locate(root, name)?;
    if target.is_root() {
        return Err(BindingError::InvalidRequest(format!(
            "error deleting file {name}: the name designates rootPath itself"
        )));
    }
    let absolute = &target.absolute;
    let is_directory = fs::symlink_metadata(absolute).is_ok_and(|metadata| metadata.is_dir());
    let removed = if is_directory {
        fs::remove_dir(absolute)
    } else {
        fs::remove_file(absolute)
    };
    removed.map_err(|err| {
        BindingError::Backend(format!("error deleting file {}: {err}", absolute.display()))
    })?;
    tracing::debug!("removed file {}", absolute.display());
    Ok(InvokeResponse::default())
}

fn list(root: &Path, name: &str, _data: &[u8]) -> Result<InvokeResponse, BindingError> {
    let absolute = locate(root, name)?.absolute;
    let metadata = fs::metadata(&absolute).map_err(|err| {
        BindingError::Backend(format!(
            "error getting stats for path {}: {err}",
            absolute.display()
        ))
    })?;
    if !metadata.is_dir() {
        return Err(BindingError::InvalidRequest(format!(
            "unable to list files as the file specified is not a directory: {}",
            absolute.display()
        )));
    }
    let mut files = Vec::new();
    walk(&absolute, &mut files).map_err(|err| {
        BindingError::Backend(format!(
            "error listing files in the directory {}: {err}",
            absolute.display()
        ))
    })?;
    let answer = if files.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::from(files)
    };
    Ok(InvokeResponse {
        data: Bytes::from(answer.to_string()),
        ..InvokeResponse::default()
    })
}

/// Appends the paths of the files below `directory` in name order, descending into
/// directories but not into links to them (which are listed like files).
fn walk(directory: &Path, files: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries = fs::read_dir(directory)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;
    use std::os::unix::fs::symlink;

    fn storage(root: &Path) -> LocalStorage {
        let properties =
            Properties::from_json(&json!({ "rootPath": root.to_string_lossy() })).unwrap();
        open(&properties).unwrap()
    }

    fn request(operation: &str, data: &[u8], file_name: Option<&str>) -> InvokeRequest {
        InvokeRequest {
            operation: operation.to_owned(),
            data: Bytes::copy_from_slice(data),
            metadata: file_name
                .map(|name| HashMap::from([(FILE_NAME_METADATA_KEY.to_owned(), name.to_owned())]))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn open_needs_a_root_and_creates_it() {
        let error = open(&Properties::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid metadata: failed to parse metadata: property rootPath must not be empty"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/b");
        let binding = storage(&root);
        assert!(root.is_dir());
        assert_eq!(*binding.root, fs::canonicalize(&root).unwrap());
        assert_eq!(binding.operations(), ["create", "get", "list", "delete"]);
    }

    #[tokio::test]
    async fn create_get_list_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let binding = storage(dir.path());
        let root = binding.root.clone();

        // A JSON string from the HTTP API arrives quoted and is written unquoted.
        let created = binding
            .invoke(request("create", b"\"Hello World\"", Some("greeting.txt")))
            .await
            .unwrap();
        assert_eq!(created.data, r#"{"fileName":"greeting.txt"}"#);
        assert!(created.metadata.is_empty());
        assert_eq!(fs::read(root.join("greeting.txt")).unwrap(), b"Hello World");

        // Base64 content is decoded; directories are created.
        let created = binding
            .invoke(request(
                "create",
                b"\"aGVsbG8=\"",
                Some("nested/dir/bin.dat"),
            ))
            .await
            .unwrap();
        assert_eq!(created.data, r#"{"fileName":"nested/dir/bin.dat"}"#);
        assert_eq!(fs::read(root.join("nested/dir/bin.dat")).unwrap(), b"hello");

        // Without a name, a UUID is chosen.
        let created = binding
            .invoke(request("create", b"{\"a\": 1}", None))
            .await
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&created.data).unwrap();
        let generated = answer["fileName"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
        assert_eq!(fs::read(root.join(generated)).unwrap(), b"{\"a\": 1}");

        // Creating again overwrites.
        binding
            .invoke(request("create", b"second", Some("greeting.txt")))
            .await
            .unwrap();
        let got = binding
            .invoke(request("get", b"", Some("greeting.txt")))
            .await
            .unwrap();
        assert_eq!(got.data, "second");

        let listed = binding.invoke(request("list", b"", None)).await.unwrap();
        let listed: Vec<String> = serde_json::from_slice(&listed.data).unwrap();
        let mut expected = [
            root.join("greeting.txt"),
            root.join("nested/dir/bin.dat"),
            root.join(generated),
        ];
        expected.sort();
        let expected: Vec<String> = expected
            .iter()
            .map(|path| path.to_string_lossy().into_owned())
            .collect();
        assert_eq!(listed, expected);
        let listed = binding
            .invoke(request("list", b"", Some("nested")))
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Vec<String>>(&listed.data).unwrap(),
            [root.join("nested/dir/bin.dat").to_string_lossy()]
        );

        let deleted = binding
            .invoke(request("delete", b"", Some("greeting.txt")))
            .await
            .unwrap();
        assert_eq!(deleted, InvokeResponse::default());
        assert!(!root.join("greeting.txt").exists());
        let error = binding
            .invoke(request("get", b"", Some("greeting.txt")))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("file not found: {}", root.join("greeting.txt").display())
        );
        let error = binding
            .invoke(request("delete", b"", Some("greeting.txt")))
            .await
            .unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "error deleting file {}: ",
                root.join("greeting.txt").display()
            )),
            "{error}"
        );
        // An empty directory can be deleted like a file.
        fs::create_dir(root.join("empty")).unwrap();
        binding
            .invoke(request("delete", b"", Some("empty")))
            .await
            .unwrap();
        assert!(!root.join("empty").exists());
    }

    #[tokio::test]
    async fn list_answers_null_when_empty_and_refuses_files() {
        let dir = tempfile::tempdir().unwrap();
        let binding = storage(dir.path());
        let listed = binding.invoke(request("list", b"", None)).await.unwrap();
        assert_eq!(listed.data, "null");
        fs::write(binding.root.join("file"), b"x").unwrap();
        let error = binding
            .invoke(request("list", b"", Some("file")))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "unable to list files as the file specified is not a directory: {}",
                binding.root.join("file").display()
            )
        );
        let error = binding
            .invoke(request("list", b"", Some("missing")))
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("error getting stats for path"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_catalog_opens_the_output_half() {
        let dir = tempfile::tempdir().unwrap();
        let properties =
            Properties::from_json(&json!({ "rootPath": dir.path().to_string_lossy() })).unwrap();
        let binding = crate::bindings::open("bindings.localstorage", "v1", &properties)
            .await
            .unwrap();
        assert!(binding.output.is_some() && binding.input.is_none());
        let error = crate::bindings::open("bindings.localstorage", "v2", &properties)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "couldn't find binding bindings.localstorage/v2"
        );
    }

    #[tokio::test]
    async fn unknown_operations_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let binding = storage(dir.path());
        let error = binding
            .invoke(request("append", b"", Some("a")))
            .await
            .unwrap_err();
        assert_eq!(error, BindingError::UnsupportedOperation("append".into()));
    }

    #[tokio::test]
    async fn names_escaping_the_root_touch_nothing() {
        let parent = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = parent.path().join("root");
        let binding = storage(&root);
        let root = binding.root.clone();
        fs::write(parent.path().join("victim.txt"), b"keep").unwrap();
        fs::write(outside.path().join("victim.txt"), b"keep").unwrap();
        symlink(outside.path(), root.join("outer-link")).unwrap();
        symlink(outside.path().join("victim.txt"), root.join("victim-link")).unwrap();
        let absolute_victim = outside.path().join("victim.txt");
        let absolute_victim = absolute_victim.to_string_lossy();

        for name in [
            "../victim.txt",
            "sub/../../victim.txt",
            absolute_victim.as_ref(),
            "outer-link/victim.txt",
            "outer-link/new.txt",
            "victim-link",
        ] {
            for operation in ["create", "get", "delete", "list"] {
                let error = binding
                    .invoke(request(operation, b"overwritten", Some(name)))
                    .await
                    .unwrap_err();
                let text = error.to_string();
                assert!(
                    text.starts_with(&format!("error getting absolute path for file {name}: ")),
                    "{operation} {name}: {text}"
                );
                assert!(matches!(error, BindingError::InvalidRequest(_)));
            }
        }
        assert_eq!(fs::read(parent.path().join("victim.txt")).unwrap(), b"keep");
        assert_eq!(
            fs::read(outside.path().join("victim.txt")).unwrap(),
            b"keep"
        );
        assert!(!outside.path().join("new.txt").exists());
        assert!(!root.join("sub").exists());
        // The root itself is never deleted.
        let error = binding
            .invoke(request("delete", b"", Some(".")))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("rootPath itself"), "{error}");
        assert!(root.is_dir());
    }
}
