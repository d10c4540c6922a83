//! SPIFFE ids as Dapr uses them: `spiffe://<trust-domain>/ns/<namespace>/<app-id>`.

use std::fmt;
use std::str::FromStr;

/// The identity of one app (or control-plane service) in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    namespace: String,
    app_id: String,
}

/// Why text is not a Dapr SPIFFE id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpiffeIdError {
    /// The text does not start with `spiffe://`.
    #[error("invalid SPIFFE id {0:?}: scheme must be spiffe://")]
    Scheme(String),
    /// The path is not `/ns/<namespace>/<app-id>`.
    #[error("invalid SPIFFE id {0:?}: path must be /ns/<namespace>/<app-id>")]
    Path(String),
    /// The trust domain is empty or has characters SPIFFE forbids.
    #[error("invalid SPIFFE id {0:?}: bad trust domain")]
    TrustDomain(String),
}

/// SPIFFE trust domains: lower-case letters, digits, `.`, `-` and `_`.
fn valid_trust_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// Path segments: non-empty, no `/`, not `.` or `..`.
fn valid_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && !segment.contains('/')
}

impl SpiffeId {
    /// Builds an id, checking each part.
    pub fn new(trust_domain: &str, namespace: &str, app_id: &str) -> Result<Self, SpiffeIdError> {
        let id = Self {
            trust_domain: trust_domain.to_string(),
            namespace: namespace.to_string(),
            app_id: app_id.to_string(),
        };
        if !valid_trust_domain(trust_domain) {
            return Err(SpiffeIdError::TrustDomain(id.to_string()));
        }
        if !valid_segment(namespace) || !valid_segment(app_id) {
            return Err(SpiffeIdError::Path(id.to_string()));
        }
        Ok(id)
    }

    /// The trust domain (`public` for apps by default, `cluster.local` for the control plane).
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The Kubernetes namespace (or `default` in standalone mode).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The app id or control-plane service name.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/{}",
            self.trust_domain, self.namespace, self.app_id
        )
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text
            .strip_prefix("spiffe://")
            .ok_or_else(|| SpiffeIdError::Scheme(text.to_string()))?;
        let (trust_domain, path) = rest
            .split_once('/')
            .ok_or_else(|| SpiffeIdError::Path(text.to_string()))?;
        let mut segments = path.split('/');
        match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) {
            (Some("ns"), Some(namespace), Some(app_id), None) => {
                Self::new(trust_domain, namespace, app_id)
            }
            _ => Err(SpiffeIdError::Path(text.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dapr_ids() {
        let id: SpiffeId = "spiffe://cluster.local/ns/dapr-system/dapr-sentry"
            .parse()
            .unwrap();
        assert_eq!(
            (id.trust_domain(), id.namespace(), id.app_id()),
            ("cluster.local", "dapr-system", "dapr-sentry")
        );
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/dapr-system/dapr-sentry"
        );
        assert_eq!(
            SpiffeId::new("public", "default", "orders")
                .unwrap()
                .to_string(),
            "spiffe://public/ns/default/orders"
        );
    }

    #[test]
    fn rejects_malformed_ids() {
        for text in [
            "http://public/ns/default/app",
            "spiffe://public",
            "spiffe://public/ns/default",
            "spiffe://public/namespace/default/app",
            "spiffe://public/ns/default/app/extra",
            "spiffe://public/ns//app",
            "spiffe://public/ns/../app",
            "spiffe://Public/ns/default/app",
            "spiffe:///ns/default/app",
        ] {
            assert!(
                text.parse::<SpiffeId>().is_err(),
                "{text} should be rejected"
            );
        }
    }
}
