//! MQTT broker (`mosquitto`).

use crate::error::{Result, TestkitError};
use crate::process::{self, GuardedProcess, Launch};
use crate::ready::{retry_port_races, wait_until_ready};
use crate::{probe, programs};

use super::{READY_TIMEOUT, one_port};

/// A Mosquitto broker allowing anonymous clients on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    port: u16,
    process: GuardedProcess,
}

impl Mosquitto {
    /// Starts Mosquitto and returns once an MQTT `CONNECT` is accepted.
    pub async fn start() -> Result<Self> {
        retry_port_races(Self::start_once).await
    }

    async fn start_once() -> Result<Self> {
        let program = programs::find("mosquitto", "mosquitto")?;
        let port = one_port()?;
        let dir = process::temp_dir("mosquitto")?;
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
        )
        .map_err(|err| TestkitError::io(format!("writing {}", config.display()), err))?;
        let launch = Launch::new("mosquitto", program).arg("-c").arg(&config);
        let process = GuardedProcess::spawn(launch, dir)?;
        wait_until_ready(&process, READY_TIMEOUT, || probe::mqtt_connect(port)).await?;
        Ok(Self { port, process })
    }

    /// The MQTT port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `tcp://127.0.0.1:PORT`, the value of the Dapr MQTT `url` metadata.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// The guarded broker process.
    pub fn process(&self) -> &GuardedProcess {
        &self.process
    }
}
