//! Finding the workspace's own binaries (daprd and the control plane) in the cargo target
//! directory of the running test.
//!
//! A test binary lives at `<target>/<profile>/deps/<name>-<hash>`, a workspace binary such
//! as xtask at `<target>/<profile>/<name>`; both give the profile dir. `CARGO_TARGET_DIR`,
//! when set, is searched as well.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Result, TestkitError};

/// The `<target>/<profile>` directory the running executable belongs to.
pub fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|err| TestkitError::io("locating the running executable", err))?;
    Ok(profile_dir_of(&exe))
}

fn profile_dir_of(exe: &Path) -> PathBuf {
    let parent = exe.parent().unwrap_or(Path::new("."));
    if parent.file_name().is_some_and(|name| name == "deps") {
        parent.parent().unwrap_or(parent).to_owned()
    } else {
        parent.to_owned()
    }
}

/// The cargo target directory: the nearest ancestor of the profile dir that holds cargo's
/// `CACHEDIR.TAG` (so `<target>/<triple>/<profile>` works too), else the profile dir's
/// parent.
pub fn target_dir() -> Result<PathBuf> {
    let profile = profile_dir()?;
    Ok(target_dir_of(&profile))
}

fn target_dir_of(profile: &Path) -> PathBuf {
    profile
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .or_else(|| profile.parent())
        .unwrap_or(profile)
        .to_owned()
}

/// The path of our built binary `name` (`daprd`, `operator`, `placement`, `sentry`,
/// `scheduler`, `injector`).
pub fn path(name: &str) -> Result<PathBuf> {
    let profile = profile_dir()?;
    find_in(name, &profile, std::env::var_os("CARGO_TARGET_DIR"))
}

fn find_in(name: &str, profile: &Path, cargo_target_dir: Option<OsString>) -> Result<PathBuf> {
    let mut dirs = vec![profile.to_owned()];
    if let (Some(target), Some(profile_name)) = (cargo_target_dir, profile.file_name()) {
        dirs.push(PathBuf::from(target).join(profile_name));
    }
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| TestkitError::MissingBinary {
            name: name.to_owned(),
            searched: dirs
                .iter()
                .map(|dir| dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_from_test_and_plain_binaries() {
        assert_eq!(
            profile_dir_of(Path::new("/t/debug/deps/e2e-0123")),
            PathBuf::from("/t/debug")
        );
        assert_eq!(
            profile_dir_of(Path::new("/t/release/xtask")),
            PathBuf::from("/t/release")
        );
    }

    #[test]
    fn target_dir_is_found_by_its_cachedir_tag() {
        let root = tempfile::tempdir().unwrap();
        let profile = root.path().join("x86_64-unknown-linux-gnu").join("debug");
        std::fs::create_dir_all(&profile).unwrap();
        std::fs::write(root.path().join("CACHEDIR.TAG"), "Signature").unwrap();
        assert_eq!(target_dir_of(&profile), root.path());
    }

    #[test]
    fn binaries_are_found_in_profile_dir_or_cargo_target_dir() {
        let exe_target = tempfile::tempdir().unwrap();
        let env_target = tempfile::tempdir().unwrap();
        let profile = exe_target.path().join("debug");
        std::fs::create_dir_all(&profile).unwrap();
        std::fs::create_dir_all(env_target.path().join("debug")).unwrap();
        std::fs::write(profile.join("placement"), "").unwrap();
        std::fs::write(env_target.path().join("debug").join("sentry"), "").unwrap();
        let env = Some(env_target.path().as_os_str().to_owned());
        assert_eq!(
            find_in("placement", &profile, env.clone()).unwrap(),
            profile.join("placement")
        );
        assert_eq!(
            find_in("sentry", &profile, env.clone()).unwrap(),
            env_target.path().join("debug").join("sentry")
        );
        let err = find_in("scheduler", &profile, env).unwrap_err().to_string();
        assert!(
            err.contains("run `cargo build --bins` (cargo xtask test does)"),
            "{err}"
        );
    }

    #[test]
    fn the_running_test_has_a_target_dir() {
        let target = target_dir().unwrap();
        assert!(
            target.join("CACHEDIR.TAG").is_file(),
            "{}",
            target.display()
        );
    }
}
