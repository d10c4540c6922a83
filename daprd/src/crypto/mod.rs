//! The cryptography API's core, shared by the HTTP and gRPC edges: finding the crypto
//! component a request names (upstream's checks and errors), the streaming Encrypt and
//! Decrypt operations in the `dapr.io/enc/v1` format ([`stream`]), and the `Subtle*`
//! operations on single small values ([`subtle`]).

pub mod errors;
pub mod stream;
pub mod subtle;

use std::sync::Arc;

use dapr_components::crypto::CryptoProvider;

use crate::error::ApiError;
use crate::resiliency::{ComponentKind, Direction, Policy};
use crate::runtime::Runtime;

/// A crypto component and its name.
pub struct CryptoProviderHandle {
    /// The component's name.
    pub name: String,
    /// Its `spec.type`.
    pub component_type: String,
    /// The component.
    pub provider: Arc<dyn CryptoProvider>,
}

impl std::fmt::Debug for CryptoProviderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoProviderHandle")
            .field("name", &self.name)
            .field("component_type", &self.component_type)
            .finish_non_exhaustive()
    }
}

/// The crypto component called `name`, checked as upstream: some component must be
/// loaded, the name given, and a component of that name loaded.
pub fn provider(runtime: &Runtime, name: &str) -> Result<Arc<CryptoProviderHandle>, ApiError> {
    let components = runtime.components.snapshot();
    if components.crypto_providers.is_empty() {
        return Err(errors::logged(errors::providers_not_configured()));
    }
    if name.is_empty() {
        return Err(errors::logged(ApiError::bad_request(
            "missing component name",
        )));
    }
    components
        .crypto_providers
        .get(name)
        .cloned()
        .ok_or_else(|| errors::logged(errors::provider_not_found(name)))
}

/// The outbound resiliency policy of a crypto component (upstream applies it to every
/// call into the component, key wrapping of the streams included).
pub fn outbound_policy(runtime: &Runtime, handle: &CryptoProviderHandle) -> Policy {
    runtime
        .resiliency
        .component_policy(&handle.name, ComponentKind::Crypto, Direction::Outbound)
}
