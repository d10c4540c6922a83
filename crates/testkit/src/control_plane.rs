//! Launching one of our control-plane binaries (operator, placement, sentry, scheduler,
//! injector) for a test.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Result;
use crate::launcher::{BinaryLaunch, DEFAULT_READY_TIMEOUT, Readiness};
use crate::process::{GuardedProcess, ProcessExit};

/// Builder for a [`ControlPlane`] process; see [`ControlPlane::builder`].
#[derive(Debug, Clone)]
pub struct ControlPlaneBuilder {
    binary_name: String,
    readiness_url: String,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    binary: Option<PathBuf>,
    ready_timeout: Duration,
}

impl ControlPlaneBuilder {
    /// Appends one command-line argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs this program instead of the built binary of that name.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Bound on the start-up (default 60 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts the binary and waits until `GET <readiness url>` answers a 2xx status.
    pub async fn start(self) -> Result<ControlPlane> {
        let launch = BinaryLaunch {
            display_name: self.binary_name.clone(),
            binary_name: self.binary_name.clone(),
            binary_path: self.binary,
            args: self.args,
            envs: self.envs,
        };
        let process = launch
            .start(Readiness {
                url: self.readiness_url,
                accept: |status| status.is_success(),
                timeout: self.ready_timeout,
            })
            .await?;
        Ok(ControlPlane {
            name: self.binary_name,
            process,
        })
    }
}

/// A running control-plane binary, stopped when dropped.
#[derive(Debug)]
pub struct ControlPlane {
    name: String,
    process: GuardedProcess,
}

impl ControlPlane {
    /// A builder for binary `binary_name`, ready once `readiness_url` answers 2xx (the
    /// caller picks the ports, e.g. with [`crate::ports::free_ports`], and passes them in
    /// the args).
    pub fn builder(
        binary_name: impl Into<String>,
        readiness_url: impl Into<String>,
    ) -> ControlPlaneBuilder {
        ControlPlaneBuilder {
            binary_name: binary_name.into(),
            readiness_url: readiness_url.into(),
            args: Vec::new(),
            envs: Vec::new(),
            binary: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }

    /// The binary name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// The guarded process itself.
    pub fn process(&self) -> &GuardedProcess {
        &self.process
    }

    /// SIGKILLs the process and waits for the exit to be reported.
    pub async fn kill(&self) -> Result<ProcessExit> {
        self.process.kill().await
    }

    /// Sends SIGTERM and returns the exit status, waiting at most `timeout`.
    pub async fn terminate(&self, timeout: Duration) -> Result<ProcessExit> {
        self.process.terminate(timeout).await
    }
}
