//! Shared launch logic for our own binaries: locate, spawn guarded, wait for an HTTP
//! readiness endpoint.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use ::http::StatusCode;

use crate::binaries;
use crate::error::Result;
use crate::process::{self, GuardedProcess, Launch};
use crate::ready::wait_until_ready;

/// Default bound on a binary's start-up.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What decides readiness of a binary: `GET url` answering a status `accept` approves.
pub(crate) struct Readiness {
    pub url: String,
    pub accept: fn(StatusCode) -> bool,
    pub timeout: Duration,
}

/// One launch of a built binary.
pub(crate) struct BinaryLaunch {
    /// Name for logs and errors (e.g. `daprd app-a`).
    pub display_name: String,
    /// Binary name in the target dir.
    pub binary_name: String,
    /// Explicit binary path overriding the target-dir lookup.
    pub binary_path: Option<PathBuf>,
    pub args: Vec<OsString>,
    pub envs: Vec<(OsString, OsString)>,
}

impl BinaryLaunch {
    /// Spawns the binary and waits until it is ready.
    pub async fn start(self, readiness: Readiness) -> Result<GuardedProcess> {
        let program = match self.binary_path {
            Some(path) => path,
            None => binaries::path(&self.binary_name)?,
        };
        let dir = process::temp_dir(&self.binary_name)?;
        let launch = Launch::new(self.display_name, program)
            .args(self.args)
            .envs(self.envs);
        let guard = GuardedProcess::spawn(launch, dir)?;
        wait_until_ready(&guard, readiness.timeout, || {
            let url = readiness.url.clone();
            let accept = readiness.accept;
            async move {
                let response = crate::http::get(&url)
                    .await
                    .map_err(|err| err.to_string())?;
                if accept(response.status) {
                    Ok(())
                } else {
                    Err(format!("GET {url} answered {}", response.status))
                }
            }
        })
        .await?;
        Ok(guard)
    }
}
