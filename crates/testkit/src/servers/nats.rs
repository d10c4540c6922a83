//! NATS with JetStream (`nats-server`).

use crate::error::Result;
use crate::process::{self, GuardedProcess, Launch};
use crate::ready::{retry_port_races, wait_until_ready};
use crate::{probe, programs};

use super::{READY_TIMEOUT, one_port};

/// A NATS server with JetStream enabled on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Nats {
    port: u16,
    process: GuardedProcess,
}

impl Nats {
    /// Starts NATS and returns once its `INFO` advertises JetStream and `PING` gets `PONG`.
    pub async fn start() -> Result<Self> {
        retry_port_races(Self::start_once).await
    }

    async fn start_once() -> Result<Self> {
        let program = programs::find("nats-server", "nats-server")?;
        let port = one_port()?;
        let dir = process::temp_dir("nats")?;
        let launch = Launch::new("nats", program)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path().join("jetstream"));
        let process = GuardedProcess::spawn(launch, dir)?;
        wait_until_ready(&process, READY_TIMEOUT, || probe::nats_ping(port, true)).await?;
        Ok(Self { port, process })
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:PORT`, the value of the Dapr `natsURL` metadata.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The guarded server process.
    pub fn process(&self) -> &GuardedProcess {
        &self.process
    }
}
