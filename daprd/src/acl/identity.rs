//! Who is calling, for access control. Today the calling sidecar says so in the internal
//! call's metadata (`dapr-caller-app-id`, `dapr-caller-namespace`; it overwrites whatever
//! its app sent), in the default trust domain. Once sentry issues workload certificates,
//! [`CallerIdentity::of_internal_call`] is the one place that reads the mTLS peer's SPIFFE
//! id instead.

use axum::http::HeaderMap;

use crate::invoke::metadata::{CALLER_APP_ID_HEADER, CALLER_NAMESPACE_HEADER};

/// The trust domain of callers without a certificate, as upstream's default.
pub const DEFAULT_TRUST_DOMAIN: &str = "public";

/// A caller's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The caller's app id.
    pub app_id: String,
    /// The caller's namespace.
    pub namespace: String,
    /// The caller's trust domain.
    pub trust_domain: String,
}

impl CallerIdentity {
    /// The identity of the sidecar that sent an internal call with `headers`; `None` when
    /// it did not say. This is the only place the caller's identity is read: with mTLS it
    /// becomes the SPIFFE id of the peer certificate
    /// (`spiffe://<trust domain>/ns/<namespace>/<app id>`), and the headers are no longer
    /// trusted.
    pub fn of_internal_call(headers: &HeaderMap) -> Option<Self> {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        Some(Self {
            app_id: text(CALLER_APP_ID_HEADER)?,
            namespace: text(CALLER_NAMESPACE_HEADER).unwrap_or_default(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
        })
    }

    /// The SPIFFE id naming this identity, as upstream's denial message shows it.
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/{}",
            self.trust_domain, self.namespace, self.app_id
        )
    }
}
