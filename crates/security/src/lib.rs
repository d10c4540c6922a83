//! Workload identity and transport security: SPIFFE ids for apps and control-plane
//! services, shared rustls pieces ([`tls`]), and (as sentry and mTLS arrive) trust
//! bundles and certificate rotation. Every listener and client will take its TLS settings from here.

pub mod spiffe;
pub mod tls;

pub use spiffe::{SpiffeId, SpiffeIdError};
