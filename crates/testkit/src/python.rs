//! Running Python against a sidecar: the interpreter of the venv holding the official Dapr
//! SDK, one-shot scripts with a timeout, and long-lived Python apps under a guard.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::binaries;
use crate::error::{Result, TestkitError};
use crate::probe;
use crate::process::{self, GuardedProcess, Launch};
use crate::ready::wait_until_ready;

/// Environment variable naming the SDK interpreter explicitly.
pub const SDK_PYTHON_ENV: &str = "DAPR_SDK_PYTHON";

/// The Python interpreter of the venv with the official Dapr SDK: `$DAPR_SDK_PYTHON` if
/// set, else `<target>/sdk-venv/bin/python` (created by `cargo xtask test`).
pub fn sdk_python() -> Result<PathBuf> {
    let target = binaries::target_dir()?;
    sdk_python_from(std::env::var_os(SDK_PYTHON_ENV), &target)
}

fn sdk_python_from(explicit: Option<OsString>, target: &Path) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => target.join("sdk-venv").join("bin").join("python"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(TestkitError::MissingSdkPython { path })
    }
}

/// What Python runs: a script file or source text.
#[derive(Debug, Clone, Copy)]
pub enum Script<'a> {
    /// A `.py` file.
    File(&'a Path),
    /// Source text, run with `-c`.
    Source(&'a str),
}

impl Script<'_> {
    fn args(&self) -> Vec<OsString> {
        match self {
            Script::File(path) => vec![path.as_os_str().to_owned()],
            Script::Source(source) => vec!["-c".into(), (*source).into()],
        }
    }
}

/// The result of a finished script.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// Runs `script` with `python` (unbuffered) and extra environment `env` (for example
/// [`crate::daprd::Daprd::sdk_env`]), killing it after `timeout`.
pub async fn run<I, K, V>(
    python: &Path,
    script: Script<'_>,
    env: I,
    timeout: Duration,
) -> Result<ScriptOutput>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut child = tokio::process::Command::new(python)
        .arg("-u")
        .args(script.args())
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| TestkitError::io(format!("starting {}", python.display()), err))?;
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => {
            let status =
                status.map_err(|err| TestkitError::io("waiting for a Python script", err))?;
            Ok(ScriptOutput {
                status,
                stdout: joined(stdout).await,
                stderr: joined(stderr).await,
            })
        }
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            let stdout = joined(stdout).await;
            let stderr = joined(stderr).await;
            Err(TestkitError::Timeout {
                what: format!("Python script {script:?}"),
                timeout,
                details: format!("; stdout:\n{stdout}\nstderr:\n{stderr}"),
            })
        }
    }
}

/// Starts a long-lived Python app (unbuffered, logging to its guard's log) with extra
/// environment `env`. With `app_port`, returns only once that port accepts TCP connections
/// (bounded by `timeout`).
pub async fn spawn_app<I, K, V>(
    python: &Path,
    script: Script<'_>,
    env: I,
    app_port: Option<u16>,
    timeout: Duration,
) -> Result<GuardedProcess>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let dir = process::temp_dir("python-app")?;
    let launch = Launch::new("python-app", python)
        .arg("-u")
        .args(script.args())
        .envs(env);
    let app = GuardedProcess::spawn(launch, dir)?;
    if let Some(port) = app_port {
        wait_until_ready(&app, timeout, || probe::tcp_accepts(port)).await?;
    }
    Ok(app)
}

fn collect<R>(pipe: Option<R>) -> tokio::task::JoinHandle<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes).await;
        }
        bytes
    })
}

async fn joined(task: tokio::task::JoinHandle<Vec<u8>>) -> String {
    let bytes = task.await.unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_python_prefers_the_env_var_and_explains_a_missing_venv() {
        let target = tempfile::tempdir().unwrap();
        let err = sdk_python_from(None, target.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("sdk-venv/bin/python"), "{err}");
        assert!(
            err.contains("run `cargo xtask test`, which creates it"),
            "{err}"
        );

        let venv_python = target.path().join("sdk-venv/bin/python");
        std::fs::create_dir_all(venv_python.parent().unwrap()).unwrap();
        std::fs::write(&venv_python, "").unwrap();
        assert_eq!(sdk_python_from(None, target.path()).unwrap(), venv_python);

        let explicit = target.path().join("other-python");
        std::fs::write(&explicit, "").unwrap();
        assert_eq!(
            sdk_python_from(Some(explicit.clone().into()), target.path()).unwrap(),
            explicit
        );
    }
}
