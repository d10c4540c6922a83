//! The building-block contracts and the built-in components behind them, named with
//! upstream's type strings and reading upstream's metadata so existing YAML and existing
//! data keep working.
//!
//! Modules: [`nameresolution`] (how sidecars find each other), [`state`] (state stores),
//! [`secretstores`] (secret stores), [`metadata`] and [`version`] (upstream's rules for
//! reading component settings and matching versions), [`sqlite`] (the SQLite connection
//! rules both SQLite components share), [`pubsub`] (brokers), [`bindings`] (input and
//! output bindings), [`lock`] (distributed locks), [`configuration`] (configuration
//! stores), [`crypto`] (crypto providers and the `dapr.io/enc/v1` format) and
//! [`middleware`] (HTTP pipeline stages).

pub mod bindings;
pub mod configuration;
pub mod crypto;
mod document_fetch;
pub mod lock;
pub mod metadata;
pub mod middleware;
pub mod nameresolution;
pub mod pubsub;
pub mod secretstores;
pub mod sqlite;
pub mod state;
pub mod version;
