//! The building-block contracts and the built-in components behind them, named with
//! upstream's type strings and reading upstream's metadata so existing YAML and existing
//! data keep working.
//!
//! What is here today: [`nameresolution`], the resolvers a sidecar uses to find other
//! sidecars (`sqlite`, `mdns`, `kubernetes`), and [`metadata`], upstream's rules for
//! reading component settings. The other building blocks (state, pub/sub, bindings,
//! secrets, configuration, lock, crypto, HTTP middleware) get their modules here as they
//! are built.

pub mod metadata;
pub mod nameresolution;
