//! Backing servers (Redis, PostgreSQL, etcd, NATS, Mosquitto, RabbitMQ) started from their
//! Debian packages on free loopback ports, each in its own temp dir under a
//! [`GuardedProcess`](crate::process::GuardedProcess).
//!
//! Every `start()` returns only after a real protocol exchange with the server succeeded
//! (see [`crate::probe`]), within a bounded time, and retries with fresh ports when a port
//! was taken between choosing and binding it.

mod etcd;
mod mosquitto;
mod nats;
mod postgres;
mod rabbitmq;
mod redis;

pub use etcd::Etcd;
pub use mosquitto::Mosquitto;
pub use nats::Nats;
pub use postgres::Postgres;
pub use rabbitmq::RabbitMq;
pub use redis::Redis;

use std::time::Duration;

/// Bound on the start-up of the quick servers (all but RabbitMQ).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Picks one free port, as a fallible step of a server start.
fn one_port() -> crate::error::Result<u16> {
    let ports = crate::ports::try_free_ports(1)?;
    Ok(ports[0])
}
