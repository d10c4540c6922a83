//! etcd (`etcd`, Debian package `etcd-server`).

use crate::error::Result;
use crate::process::{self, GuardedProcess, Launch};
use crate::ready::{retry_port_races, wait_until_ready};
use crate::{ports, probe, programs};

use super::READY_TIMEOUT;

/// A single-member etcd cluster on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Etcd {
    port: u16,
    process: GuardedProcess,
}

impl Etcd {
    /// Starts etcd and returns once `GET /health` reports healthy.
    pub async fn start() -> Result<Self> {
        retry_port_races(Self::start_once).await
    }

    async fn start_once() -> Result<Self> {
        let program = programs::find("etcd", "etcd-server")?;
        let chosen = ports::try_free_ports(2)?;
        let (port, peer_port) = (chosen[0], chosen[1]);
        let dir = process::temp_dir("etcd")?;
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let launch = Launch::new("etcd", program)
            .args(["--name", "testkit"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("testkit={peer_url}")]);
        let process = GuardedProcess::spawn(launch, dir)?;
        wait_until_ready(&process, READY_TIMEOUT, || probe::etcd_health(port)).await?;
        Ok(Self { port, process })
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, the value of the Dapr etcd `endpoints` metadata.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, the client URL (also serves the v3 JSON gateway).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The guarded server process.
    pub fn process(&self) -> &GuardedProcess {
        &self.process
    }
}
