//! Where `bindings.localstorage` may touch the file system: the `rootPath` (made absolute,
//! its symbolic links resolved, never inside `/proc`, `/sys`, `/boot` or
//! `/var/run/secrets`, as upstream) and the file names requests give, which must stay
//! inside it.
//!
//! Upstream clamps a file name into the root as if the root were `/` (`../x` and `/x`
//! both become `<root>/x`); this binding refuses such names instead: absolute names,
//! names whose `..` climb above the root, and names that pass through a symbolic link
//! leading outside the root (or to nothing) are errors, checked before anything is read,
//! written or removed.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

/// Roots upstream refuses, with everything below them.
pub const DISALLOWED_ROOTS: &[&str] = &["/proc", "/sys", "/boot", "/var/run/secrets"];

/// [`DISALLOWED_ROOTS`] as written and with their symbolic links resolved (`/var/run` is
/// often a link to `/run`).
pub fn disallowed_roots() -> Vec<PathBuf> {
    DISALLOWED_ROOTS
        .iter()
        .flat_map(|refused| {
            let literal = PathBuf::from(refused);
            let resolved = resolve_links(&literal).ok();
            [Some(literal), resolved]
        })
        .flatten()
        .collect()
}

/// `root_path` made absolute (against the working directory) and lexically cleaned, with
/// the symbolic links of its existing part resolved; refused when it is a file or lies
/// in one of `disallowed`. The directory may not exist yet.
pub fn resolve_root(root_path: &str, disallowed: &[PathBuf]) -> Result<PathBuf, String> {
    if root_path.is_empty() {
        return Err("property rootPath must not be empty".into());
    }
    let absolute = if Path::new(root_path).is_absolute() {
        PathBuf::from(root_path)
    } else {
        std::env::current_dir()
            .map_err(|err| format!("failed to obtain current working directory: {err}"))?
            .join(root_path)
    };
    let root = resolve_links(&clean(&absolute))?;
    if disallowed.iter().any(|refused| root.starts_with(refused)) {
        return Err("property rootPath points to a disallowed location".into());
    }
    Ok(root)
}

/// `cleaned` (absolute, clean) with the links of its longest existing ancestor resolved
/// and the rest appended; an error when that ancestor is not a directory.
fn resolve_links(cleaned: &Path) -> Result<PathBuf, String> {
    let mut existing = cleaned;
    loop {
        match std::fs::metadata(existing) {
            Ok(metadata) if metadata.is_dir() => break,
            Ok(_) => return Err("property rootPath represents a file and not a directory".into()),
            Err(err) if err.kind() == ErrorKind::NotFound => match existing.parent() {
                Some(parent) => existing = parent,
                None => break,
            },
            Err(err) => {
                return Err(format!(
                    "error getting stat for path {}: {err}",
                    existing.display()
                ));
            }
        }
    }
    let resolved = std::fs::canonicalize(existing)
        .map_err(|err| format!("failed to evaluate symlinks in rootPath: {err}"))?;
    let missing = cleaned.strip_prefix(existing).unwrap_or(Path::new(""));
    Ok(resolved.join(missing))
}

/// `path` with `.` removed and each `..` taking away the component before it (`/..` is
/// `/`), as Go's `filepath.Clean` does for absolute paths.
fn clean(path: &Path) -> PathBuf {
    let mut cleaned = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                cleaned.pop();
            }
            other => cleaned.push(other),
        }
    }
    cleaned
}

/// A file name checked to lie inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confined {
    /// The path to operate on (the root joined with the cleaned name).
    pub absolute: PathBuf,
    /// The cleaned name relative to the root (`.` for the root itself), `/`-separated.
    pub relative: String,
}

impl Confined {
    /// Whether the name designates the root directory itself.
    pub fn is_root(&self) -> bool {
        self.relative == "."
    }
}

/// Checks that `name` stays inside `root` (an absolute path with its links resolved) and
/// returns where it points; the error says why it does not.
pub fn confine(root: &Path, name: &str) -> Result<Confined, String> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for component in Path::new(name).components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(
                    "absolute file names are not allowed; names are relative to rootPath".into(),
                );
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err("the file name points outside rootPath".into());
                }
            }
            Component::Normal(part) => parts.push(part),
        }
    }
    let mut absolute = root.to_path_buf();
    for part in &parts {
        absolute.push(part);
        match std::fs::symlink_metadata(&absolute) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = std::fs::canonicalize(&absolute).map_err(|_| {
                    "the file name passes through a symbolic link that cannot be resolved"
                        .to_owned()
                })?;
                if !target.starts_with(root) {
                    return Err(
                        "the file name passes through a symbolic link leading outside rootPath"
                            .into(),
                    );
                }
            }
            Ok(_) => {}
            // Nothing further exists: what the operation creates stays below this point.
            Err(err) if err.kind() == ErrorKind::NotFound => break,
            Err(err) if err.kind() == ErrorKind::NotADirectory => break,
            Err(err) => return Err(format!("error checking {}: {err}", absolute.display())),
        }
    }
    let absolute = parts
        .iter()
        .fold(root.to_path_buf(), |path, part| path.join(part));
    let relative = if parts.is_empty() {
        ".".to_owned()
    } else {
        parts
            .iter()
            .map(|part| part.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    };
    Ok(Confined { absolute, relative })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn canonical(path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap()
    }

    #[test]
    fn root_paths_are_resolved_and_checked_like_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = canonical(dir.path());
        std::fs::create_dir_all(tmp.join("aaa/bbb")).unwrap();
        std::fs::create_dir_all(tmp.join("zzz/aaa")).unwrap();
        std::fs::create_dir_all(tmp.join("notgood")).unwrap();
        symlink(tmp.join("aaa/bbb"), tmp.join("zzz/link")).unwrap();
        symlink(tmp.join("notgood"), tmp.join("aaa/notgood")).unwrap();
        std::fs::write(tmp.join("aaa/file"), b"").unwrap();
        let notgood = tmp.join("notgood");
        let disallowed = [PathBuf::from("/notgood"), notgood];
        let cwd = std::env::current_dir().unwrap();
        let path = |relative: &str| tmp.join(relative).to_string_lossy().into_owned();

        for (root, expected) in [
            ("path".to_owned(), Ok(cwd.join("path"))),
            ("../path".to_owned(), Ok(clean(&cwd.join("../path")))),
            (path("aaa/bbb"), Ok(tmp.join("aaa/bbb"))),
            (path("zzz/foo"), Ok(tmp.join("zzz/foo"))),
            (path("zzz/aaa/deep/deep"), Ok(tmp.join("zzz/aaa/deep/deep"))),
            (path("zzz/./aaa/../aaa"), Ok(tmp.join("zzz/aaa"))),
            (path("zzz/link"), Ok(tmp.join("aaa/bbb"))),
            (path("zzz/link/sub"), Ok(tmp.join("aaa/bbb/sub"))),
            (String::new(), Err("property rootPath must not be empty")),
            (
                path("aaa/file"),
                Err("property rootPath represents a file and not a directory"),
            ),
            (
                "/notgood".to_owned(),
                Err("property rootPath points to a disallowed location"),
            ),
            (
                "/notgood/foo".to_owned(),
                Err("property rootPath points to a disallowed location"),
            ),
            (
                path("notgood/foo"),
                Err("property rootPath points to a disallowed location"),
            ),
            (
                path("aaa/notgood"),
                Err("property rootPath points to a disallowed location"),
            ),
            (
                path("aaa/notgood/foo"),
                Err("property rootPath points to a disallowed location"),
            ),
        ] {
            let got = resolve_root(&root, &disallowed);
            match expected {
                Ok(expected) => assert_eq!(got, Ok(expected), "{root}"),
                Err(error) => assert_eq!(got, Err(error.to_owned()), "{root}"),
            }
        }
        let error = resolve_root(&path("aaa/file/2"), &disallowed).unwrap_err();
        assert!(error.starts_with("error getting stat for path"), "{error}");
        assert!(error.to_lowercase().contains("not a directory"), "{error}");
        // Upstream's list, also where a link leads to one of its entries.
        let refused = disallowed_roots();
        let mut roots = vec!["/proc", "/sys/kernel", "/boot", "/var/run/secrets/x"];
        if std::fs::canonicalize("/var/run").is_ok_and(|run| run == Path::new("/run")) {
            roots.push("/run/secrets/x");
        }
        for root in roots {
            let error = resolve_root(root, &refused).unwrap_err();
            assert_eq!(
                error, "property rootPath points to a disallowed location",
                "{root}"
            );
        }
    }

    #[test]
    fn names_inside_the_root_are_confined_and_escapes_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = canonical(dir.path());
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        symlink(root.join("sub"), root.join("inner-link")).unwrap();
        symlink(outside.path(), root.join("outer-link")).unwrap();
        symlink(outside.path().join("file"), root.join("outer-file")).unwrap();
        symlink(root.join("missing"), root.join("dangling")).unwrap();
        symlink("../..", root.join("sub/up-link")).unwrap();

        for (name, relative) in [
            ("a.txt", "a.txt"),
            ("./a.txt", "a.txt"),
            ("sub/a.txt", "sub/a.txt"),
            ("sub//deeper/./a.txt", "sub/deeper/a.txt"),
            ("sub/../a.txt", "a.txt"),
            ("new/dirs/a.txt", "new/dirs/a.txt"),
            ("inner-link/a.txt", "inner-link/a.txt"),
            ("sub/", "sub"),
            ("", "."),
            (".", "."),
            ("sub/..", "."),
        ] {
            let confined = confine(&root, name).unwrap();
            assert_eq!(confined.relative, relative, "{name}");
            let expected = if relative == "." {
                root.clone()
            } else {
                root.join(relative)
            };
            assert_eq!(confined.absolute, expected, "{name}");
        }

        for (name, error) in [
            ("/etc/passwd", "absolute file names are not allowed"),
            ("/", "absolute file names are not allowed"),
            ("..", "points outside rootPath"),
            ("../a.txt", "points outside rootPath"),
            ("sub/../../a.txt", "points outside rootPath"),
            ("a/../../b", "points outside rootPath"),
            ("outer-link", "symbolic link leading outside rootPath"),
            ("outer-link/a.txt", "symbolic link leading outside rootPath"),
            ("outer-file", "symbolic link that cannot be resolved"),
            ("dangling", "symbolic link that cannot be resolved"),
            (
                "sub/up-link/a.txt",
                "symbolic link leading outside rootPath",
            ),
        ] {
            let got = confine(&root, name).unwrap_err();
            assert!(got.contains(error), "{name}: {got}");
        }
    }
}
