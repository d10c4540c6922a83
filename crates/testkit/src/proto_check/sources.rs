//! Producing the descriptor sets to compare: the official Python SDK's, and one compiled
//! from a directory of `.proto` files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use prost::Message;
use prost_types::FileDescriptorSet;

use crate::error::{Result, TestkitError};

/// The script that dumps the SDK's descriptors, in the workspace's xtask.
fn dump_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/python/dump_sdk_descriptors.py")
}

/// Runs `xtask/python/dump_sdk_descriptors.py` with `python` (the SDK venv's interpreter,
/// see [`crate::python::sdk_python`]) and decodes the descriptors it writes.
pub fn sdk_descriptor_set(python: &Path) -> Result<FileDescriptorSet> {
    let script = dump_script();
    let origin = format!("{} {}", python.display(), script.display());
    let out_dir = tempfile::tempdir()
        .map_err(|err| TestkitError::io("creating a temp dir for SDK descriptors", err))?;
    let out_file = out_dir.path().join("sdk.pb");
    let output = Command::new(python)
        .arg(&script)
        .arg(&out_file)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| TestkitError::io(format!("running {origin}"), err))?;
    if !output.status.success() {
        return Err(TestkitError::CommandFailed {
            command: origin,
            status: output.status.to_string(),
            output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let bytes = std::fs::read(&out_file)
        .map_err(|err| TestkitError::io(format!("reading {}", out_file.display()), err))?;
    decode_descriptor_set(&bytes, &origin)
}

/// Decodes a serialized `google.protobuf.FileDescriptorSet`; `origin` names the source for
/// errors.
pub fn decode_descriptor_set(bytes: &[u8], origin: &str) -> Result<FileDescriptorSet> {
    FileDescriptorSet::decode(bytes).map_err(|err| TestkitError::Descriptors {
        origin: origin.to_owned(),
        reason: err.to_string(),
    })
}

/// Compiles every `.proto` file under `dir` (recursively; imports resolved against `dir`
/// and protox's bundled well-known types) into one descriptor set that includes imports.
pub fn compile_reference_dir(dir: &Path) -> Result<FileDescriptorSet> {
    let mut files = Vec::new();
    collect_protos(dir, dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(TestkitError::Descriptors {
            origin: dir.display().to_string(),
            reason: "no .proto files found".into(),
        });
    }
    protox::compile(&files, [dir]).map_err(|err| TestkitError::Descriptors {
        origin: dir.display().to_string(),
        reason: err.to_string(),
    })
}

/// Adds the paths (relative to `root`) of the `.proto` files under `dir`.
fn collect_protos(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|err| TestkitError::io(format!("listing {}", dir.display()), err))?;
    for entry in entries {
        let path = entry
            .map_err(|err| TestkitError::io(format!("listing {}", dir.display()), err))?
            .path();
        if path.is_dir() {
            collect_protos(root, &path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_owned();
            files.push(relative);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_a_directory_of_protos_with_imports() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("demo/v1")).unwrap();
        std::fs::write(
            dir.path().join("demo/v1/common.proto"),
            "syntax = \"proto3\";\npackage demo.v1;\nimport \"google/protobuf/any.proto\";\n\
             message Item { string key = 1; google.protobuf.Any data = 2; }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("demo/v1/store.proto"),
            "syntax = \"proto3\";\npackage demo.v1;\nimport \"demo/v1/common.proto\";\n\
             service Store { rpc Get(Item) returns (stream Item); }\n",
        )
        .unwrap();
        let set = compile_reference_dir(dir.path()).unwrap();
        let names: Vec<&str> = set.file.iter().map(|file| file.name()).collect();
        assert!(names.contains(&"demo/v1/common.proto"), "{names:?}");
        assert!(names.contains(&"demo/v1/store.proto"), "{names:?}");
        assert!(names.contains(&"google/protobuf/any.proto"), "{names:?}");
        // A set compared with itself has no differences.
        assert_eq!(crate::proto_check::compare(&set, &set, None), vec![]);
    }

    #[test]
    fn compile_errors_name_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("broken.proto"),
            "syntax = \"proto3\"; message {",
        )
        .unwrap();
        let err = compile_reference_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn the_dump_script_exists() {
        assert!(dump_script().is_file(), "{}", dump_script().display());
    }
}
