//! Workload identity and transport security: SPIFFE ids for apps and control-plane
//! services, and (as sentry and mTLS arrive) trust bundles, rustls configurations and
//! certificate rotation. Every listener and client will take its TLS settings from here.

pub mod spiffe;

pub use spiffe::{SpiffeId, SpiffeIdError};
