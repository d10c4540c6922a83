//! The development-only test harness of the workspace: it owns everything our cross-process
//! tests (and `cargo xtask bench` / `proto-check`) need to run real programs: free loopback
//! ports, a guard that stops every child process (even if the test process is SIGKILLed),
//! the backing servers from Debian packages (Redis, PostgreSQL, etcd, NATS, Mosquitto,
//! RabbitMQ) started and probed with real protocol exchanges, launchers for our own `daprd`
//! and control-plane binaries, a tiny HTTP client, Python SDK helpers, and the protobuf API
//! comparer behind `proto-check`.
//!
//! Async functions run on tokio; [`proto_check`] is synchronous.

pub mod binaries;
pub mod control_plane;
pub mod daprd;
pub mod error;
pub mod http;
mod launcher;
pub mod ports;
pub mod probe;
pub mod process;
pub mod programs;
pub mod proto_check;
pub mod python;
pub mod ready;
pub mod servers;

pub use control_plane::{ControlPlane, ControlPlaneBuilder};
pub use daprd::{Daprd, DaprdBuilder, DaprdPorts};
pub use error::{Result, TestkitError};
pub use launcher::DEFAULT_READY_TIMEOUT;
pub use process::{GuardedProcess, Launch, ProcessExit};
pub use servers::{Etcd, Mosquitto, Nats, Postgres, RabbitMq, Redis};
