//! RabbitMQ (Debian package `rabbitmq-server`), one instance shared per test process.
//!
//! The broker takes several seconds to boot, so tests share one through
//! [`RabbitMq::shared`]. It runs with its own `epmd` (Erlang's port mapper) on a free port
//! so that no system-wide `epmd` daemon is started that would outlive the tests; both run
//! under [`GuardedProcess`] guards, which stop them when the test process exits (the shared
//! instance is never dropped: its keep-alive pipes close at process exit).
//!
//! The Debian `/usr/sbin/rabbitmq-server` switches to the `rabbitmq` user with `su` and logs
//! to `/var/log`; the kit runs the real script in `/usr/lib/rabbitmq/bin` instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::error::{Result, TestkitError};
use crate::process::{self, GuardedProcess, Launch};
use crate::ready::{retry_port_races, wait_until_ready};
use crate::{ports, probe, programs};

use super::READY_TIMEOUT;

/// Bound on the broker's boot (it usually takes 5–20 s).
const BROKER_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Where Debian installs the unwrapped start script.
const DEBIAN_SCRIPT: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// The default user, allowed to connect from loopback.
const USER: &str = "guest";

/// A RabbitMQ broker on 127.0.0.1 (user `guest`/`guest`, vhost `/`).
#[derive(Debug)]
pub struct RabbitMq {
    port: u16,
    // Field order is drop order: the broker stops before its port mapper.
    broker: GuardedProcess,
    epmd: GuardedProcess,
}

impl RabbitMq {
    /// The broker shared by every test of this process, started on first use.
    pub async fn shared() -> Result<&'static Self> {
        static SHARED: OnceCell<RabbitMq> = OnceCell::const_new();
        SHARED.get_or_try_init(Self::start).await
    }

    /// Starts a broker of its own (prefer [`RabbitMq::shared`]: this takes seconds) and
    /// returns once the AMQP protocol header is answered by `connection.start`.
    pub async fn start() -> Result<Self> {
        retry_port_races(Self::start_once).await
    }

    async fn start_once() -> Result<Self> {
        let script = broker_script()?;
        let epmd_program = programs::find("epmd", "erlang-base")?;
        let chosen = ports::try_free_ports(3)?;
        let (port, epmd_port, dist_port) = (chosen[0], chosen[1], chosen[2]);

        let epmd_dir = process::temp_dir("epmd")?;
        let epmd = GuardedProcess::spawn(
            Launch::new("epmd", epmd_program).args([
                "-port",
                &epmd_port.to_string(),
                "-address",
                "127.0.0.1",
            ]),
            epmd_dir,
        )?;
        wait_until_ready(&epmd, READY_TIMEOUT, || probe::epmd_names(epmd_port)).await?;

        let dir = process::temp_dir("rabbitmq")?;
        let base = dir.path().to_owned();
        let empty_file = |name: &str| -> Result<PathBuf> {
            let path = base.join(name);
            std::fs::write(&path, "")
                .map_err(|err| TestkitError::io(format!("writing {}", path.display()), err))?;
            Ok(path)
        };
        let plugins = empty_file("enabled_plugins")?;
        let env_file = empty_file("rabbitmq-env.conf")?;
        let launch = Launch::new("rabbitmq", script)
            .env("HOME", &base)
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_NODENAME", format!("testkit-{port}@localhost"))
            .env("RABBITMQ_MNESIA_BASE", base.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", base.join("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", plugins)
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", base.join("plugins-expand"))
            .env("RABBITMQ_CONF_ENV_FILE", env_file)
            .env("RABBITMQ_CONFIG_FILE", base.join("rabbitmq"))
            .env(
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                base.join("advanced.config"),
            )
            // Never start a system-wide epmd daemon (it would outlive the tests), not even
            // when ours is stopped before the broker at exit.
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
            );
        let broker = GuardedProcess::spawn(launch, dir)?;
        wait_until_ready(&broker, BROKER_READY_TIMEOUT, || probe::amqp_header(port)).await?;
        Ok(Self { port, broker, epmd })
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `amqp://guest:guest@127.0.0.1:PORT`, the value of the Dapr RabbitMQ
    /// `connectionString` metadata.
    pub fn url(&self) -> String {
        format!("amqp://{USER}:{USER}@127.0.0.1:{}", self.port)
    }

    /// The guarded broker process.
    pub fn process(&self) -> &GuardedProcess {
        &self.broker
    }

    /// The guarded port-mapper (`epmd`) process.
    pub fn epmd_process(&self) -> &GuardedProcess {
        &self.epmd
    }
}

/// The unwrapped broker start script, or the one on `PATH`.
fn broker_script() -> Result<PathBuf> {
    let debian = Path::new(DEBIAN_SCRIPT);
    if debian.is_file() {
        Ok(debian.to_owned())
    } else {
        programs::find("rabbitmq-server", "rabbitmq-server")
    }
}
