//! Redis (`redis-server`).

use crate::error::Result;
use crate::process::{self, GuardedProcess, Launch};
use crate::ready::{retry_port_races, wait_until_ready};
use crate::{probe, programs};

use super::{READY_TIMEOUT, one_port};

/// A Redis server on 127.0.0.1 without persistence, stopped when dropped.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    process: GuardedProcess,
}

impl Redis {
    /// Starts Redis and returns once it answers `PING` with `+PONG`.
    pub async fn start() -> Result<Self> {
        retry_port_races(Self::start_once).await
    }

    async fn start_once() -> Result<Self> {
        let program = programs::find("redis-server", "redis-server")?;
        let port = one_port()?;
        let dir = process::temp_dir("redis")?;
        let launch = Launch::new("redis", program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path());
        let process = GuardedProcess::spawn(launch, dir)?;
        wait_until_ready(&process, READY_TIMEOUT, || probe::redis_ping(port)).await?;
        Ok(Self { port, process })
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, the value of the Dapr `redisHost` metadata.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The guarded server process.
    pub fn process(&self) -> &GuardedProcess {
        &self.process
    }
}
