//! Launching our `daprd` sidecar for a test, with upstream flag names.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use ::http::StatusCode;

use crate::error::Result;
use crate::launcher::{BinaryLaunch, DEFAULT_READY_TIMEOUT, Readiness};
use crate::ports;
use crate::process::{GuardedProcess, ProcessExit};

/// The four ports a sidecar listens on, all on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaprdPorts {
    /// Dapr HTTP API (`--dapr-http-port`).
    pub http: u16,
    /// Dapr gRPC API (`--dapr-grpc-port`).
    pub grpc: u16,
    /// Sidecar-to-sidecar gRPC (`--dapr-internal-grpc-port`).
    pub internal_grpc: u16,
    /// Prometheus metrics (`--metrics-port`).
    pub metrics: u16,
}

/// Builder for a [`Daprd`]; see [`Daprd::builder`].
#[derive(Debug, Clone)]
pub struct DaprdBuilder {
    app_id: String,
    resources_paths: Vec<PathBuf>,
    config: Option<PathBuf>,
    app_port: Option<u16>,
    app_protocol: Option<String>,
    log_level: String,
    extra_args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    binary: Option<PathBuf>,
    ready_timeout: Duration,
    internal_grpc: Option<(String, u16)>,
}

impl DaprdBuilder {
    /// Serves the internal API on `address:port` instead of 127.0.0.1 and a free port (two
    /// sidecars may share a port on different loopback addresses, as pods share 50002).
    pub fn internal_grpc(mut self, address: impl Into<String>, port: u16) -> Self {
        self.internal_grpc = Some((address.into(), port));
        self
    }

    /// Adds a `--resources-path` directory (repeatable).
    pub fn resources_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.resources_paths.push(dir.into());
        self
    }

    /// Sets `--config` (a Configuration resource file).
    pub fn config(mut self, file: impl Into<PathBuf>) -> Self {
        self.config = Some(file.into());
        self
    }

    /// Sets `--app-port`.
    pub fn app_port(mut self, port: u16) -> Self {
        self.app_port = Some(port);
        self
    }

    /// Sets `--app-protocol` (`http`, `grpc`, `https`, `grpcs`, `h2c`).
    pub fn app_protocol(mut self, protocol: impl Into<String>) -> Self {
        self.app_protocol = Some(protocol.into());
        self
    }

    /// Sets `--log-level` (default `info`).
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = level.into();
        self
    }

    /// Appends one extra command-line argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.extra_args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends extra command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.extra_args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the sidecar.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs this binary instead of our built `daprd` (e.g. for benchmark baselines).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Bound on the start-up (default 60 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The full command line for the given ports.
    pub fn command_line(&self, ports: &DaprdPorts) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut flag = |name: &str, value: &OsStr| {
            args.push(name.into());
            args.push(value.to_owned());
        };
        flag("--app-id", self.app_id.as_ref());
        flag("--dapr-http-port", ports.http.to_string().as_ref());
        flag("--dapr-grpc-port", ports.grpc.to_string().as_ref());
        flag(
            "--dapr-internal-grpc-port",
            ports.internal_grpc.to_string().as_ref(),
        );
        flag("--metrics-port", ports.metrics.to_string().as_ref());
        // Tests only ever listen on loopback.
        flag("--dapr-listen-addresses", "127.0.0.1".as_ref());
        flag("--metrics-listen-address", "127.0.0.1".as_ref());
        let internal_address = self
            .internal_grpc
            .as_ref()
            .map_or("127.0.0.1", |(address, _)| address.as_str());
        flag(
            "--dapr-internal-grpc-listen-address",
            internal_address.as_ref(),
        );
        for dir in &self.resources_paths {
            flag("--resources-path", dir.as_os_str());
        }
        if let Some(config) = &self.config {
            flag("--config", config.as_os_str());
        }
        if let Some(port) = self.app_port {
            flag("--app-port", port.to_string().as_ref());
        }
        if let Some(protocol) = &self.app_protocol {
            flag("--app-protocol", protocol.as_ref());
        }
        flag("--log-level", self.log_level.as_ref());
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Picks free ports, starts the sidecar and waits until `GET /v1.0/healthz/outbound`
    /// answers 204.
    pub async fn start(self) -> Result<Daprd> {
        let [http, grpc, internal_grpc, metrics] = match ports::try_free_ports(4)?.as_slice() {
            [a, b, c, d] => [*a, *b, *c, *d],
            _ => unreachable!("four ports were requested"),
        };
        let ports = DaprdPorts {
            http,
            grpc,
            internal_grpc: self
                .internal_grpc
                .as_ref()
                .map_or(internal_grpc, |(_, port)| *port),
            metrics,
        };
        let launch = BinaryLaunch {
            display_name: format!("daprd-{}", self.app_id),
            binary_name: "daprd".into(),
            binary_path: self.binary.clone(),
            args: self.command_line(&ports),
            envs: loopback_env()
                .into_iter()
                .chain(self.envs.iter().cloned())
                .collect(),
        };
        let process = launch
            .start(Readiness {
                url: format!("http://127.0.0.1:{http}/v1.0/healthz/outbound"),
                accept: |status| status == StatusCode::NO_CONTENT,
                timeout: self.ready_timeout,
            })
            .await?;
        Ok(Daprd {
            app_id: self.app_id,
            ports,
            process,
        })
    }
}

/// Environment that keeps a test sidecar's name resolution on loopback: it announces
/// 127.0.0.1 to its peers and multicasts mDNS only on `lo` (set before the builder's own
/// variables, which may override them).
fn loopback_env() -> Vec<(OsString, OsString)> {
    vec![
        ("DAPR_HOST_IP".into(), "127.0.0.1".into()),
        ("DAPR_MDNS_INTERFACE".into(), "lo".into()),
    ]
}

/// A running `daprd`, stopped when dropped.
#[derive(Debug)]
pub struct Daprd {
    app_id: String,
    ports: DaprdPorts,
    process: GuardedProcess,
}

impl Daprd {
    /// A builder for a sidecar of `app_id`.
    pub fn builder(app_id: impl Into<String>) -> DaprdBuilder {
        DaprdBuilder {
            app_id: app_id.into(),
            resources_paths: Vec::new(),
            config: None,
            app_port: None,
            app_protocol: None,
            log_level: "info".into(),
            extra_args: Vec::new(),
            envs: Vec::new(),
            binary: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            internal_grpc: None,
        }
    }

    /// The app id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// All four ports.
    pub fn ports(&self) -> DaprdPorts {
        self.ports
    }

    /// The Dapr HTTP API port.
    pub fn http_port(&self) -> u16 {
        self.ports.http
    }

    /// The Dapr gRPC API port.
    pub fn grpc_port(&self) -> u16 {
        self.ports.grpc
    }

    /// The internal (sidecar-to-sidecar) gRPC port.
    pub fn internal_grpc_port(&self) -> u16 {
        self.ports.internal_grpc
    }

    /// The metrics port.
    pub fn metrics_port(&self) -> u16 {
        self.ports.metrics
    }

    /// `http://127.0.0.1:<http port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.http)
    }

    /// `http://127.0.0.1:<grpc port>`, the endpoint a gRPC client connects to.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.grpc)
    }

    /// The environment the official SDKs read: `DAPR_HTTP_PORT` and `DAPR_GRPC_PORT`.
    pub fn sdk_env(&self) -> [(String, String); 2] {
        [
            ("DAPR_HTTP_PORT".into(), self.ports.http.to_string()),
            ("DAPR_GRPC_PORT".into(), self.ports.grpc.to_string()),
        ]
    }

    /// The sidecar's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The last `lines` lines of the sidecar's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// The guarded process itself.
    pub fn process(&self) -> &GuardedProcess {
        &self.process
    }

    /// SIGKILLs the sidecar and waits for the exit to be reported.
    pub async fn kill(&self) -> Result<ProcessExit> {
        self.process.kill().await
    }

    /// Sends SIGTERM and returns the exit status, waiting at most `timeout`.
    pub async fn terminate(&self, timeout: Duration) -> Result<ProcessExit> {
        self.process.terminate(timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_uses_upstream_flags() {
        let builder = Daprd::builder("orders")
            .resources_path("/res/a")
            .resources_path("/res/b")
            .config("/cfg.yaml")
            .app_port(3000)
            .app_protocol("grpc")
            .log_level("debug")
            .args(["--enable-api-logging"]);
        let ports = DaprdPorts {
            http: 1,
            grpc: 2,
            internal_grpc: 3,
            metrics: 4,
        };
        let line: Vec<String> = builder
            .command_line(&ports)
            .into_iter()
            .map(|arg| arg.into_string().unwrap())
            .collect();
        assert_eq!(
            line.join(" "),
            "--app-id orders --dapr-http-port 1 --dapr-grpc-port 2 \
             --dapr-internal-grpc-port 3 --metrics-port 4 --dapr-listen-addresses 127.0.0.1 \
             --metrics-listen-address 127.0.0.1 --dapr-internal-grpc-listen-address 127.0.0.1 \
             --resources-path /res/a \
             --resources-path /res/b --config /cfg.yaml --app-port 3000 --app-protocol grpc \
             --log-level debug --enable-api-logging"
        );
    }
}
