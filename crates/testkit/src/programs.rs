//! Locating installed system programs (backing servers and their tools).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, TestkitError};

/// Directories searched after `PATH` (sbin dirs are often missing from a non-root `PATH`).
const EXTRA_DIRS: [&str; 5] = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Finds `program` on `PATH` or in the usual system dirs; the error names the Debian
/// `package` to install.
pub fn find(program: &str, package: &str) -> Result<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .iter()
        .map(PathBuf::as_path)
        .chain(EXTRA_DIRS.iter().map(Path::new))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| missing(program, package))
}

/// Finds a PostgreSQL server program (`initdb`, `postgres`, ...) in the newest
/// `/usr/lib/postgresql/<version>/bin`, falling back to `PATH`.
pub fn find_postgres(program: &str) -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin").join(program)))
        })
        .filter(|(_, path)| is_executable(path))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, path)) => Ok(path),
        None => find(program, "postgresql"),
    }
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn missing(program: &str, package: &str) -> TestkitError {
    TestkitError::MissingProgram {
        program: program.to_owned(),
        package: package.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_names_the_package_for_missing_programs() {
        assert!(find("sh", "dash").unwrap().ends_with("sh"));
        let err = find("no-such-server-xyz", "no-such-package").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`no-such-server-xyz` not found: install the Debian package `no-such-package` (apt-get install no-such-package)"
        );
    }
}
