//! The one error type of every name resolver.

/// Why a name resolver could not be built, could not register this instance, or could not
/// find another app's sidecar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The Configuration names a resolver (or version) that is not built in. The text is
    /// upstream's.
    #[error("couldn't find name resolver {component}/{version}")]
    UnknownComponent {
        /// The component as written in the Configuration.
        component: String,
        /// The version as written (may be empty).
        version: String,
    },
    /// A `spec.nameResolution.configuration` value is missing or wrong.
    #[error("name resolver {component}: invalid configuration: {reason}")]
    InvalidConfiguration {
        /// The resolver (`sqlite`, `mdns`, `kubernetes`).
        component: &'static str,
        /// What is wrong, naming the setting.
        reason: String,
    },
    /// The instance this sidecar announces lacks what the resolver needs (upstream's
    /// texts: `name is missing`, `address is missing`, `port is missing or invalid`).
    #[error("name resolver {component}: {reason}")]
    InvalidInstance {
        /// The resolver.
        component: &'static str,
        /// What is missing.
        reason: String,
    },
    /// SQLite: no live registration for the app id (upstream's text, plus the id).
    #[error("no host found with the given ID: {app_id}")]
    NoHost {
        /// The app id that was looked up.
        app_id: String,
    },
    /// mDNS: nobody answered for the app id within the browse timeout (upstream's text).
    #[error("couldn't find service: {app_id}")]
    ServiceNotFound {
        /// The app id that was looked up.
        app_id: String,
    },
    /// The lookup itself failed (database error, timeout).
    #[error("failed to look up address for app id {app_id}: {reason}")]
    Lookup {
        /// The app id that was looked up.
        app_id: String,
        /// The underlying failure.
        reason: String,
    },
    /// Setting up, announcing or withdrawing this instance failed (opening the database,
    /// migrations, registering, opening the multicast socket, ...).
    #[error("name resolver {component}: {reason}")]
    Backend {
        /// The resolver.
        component: &'static str,
        /// What failed, with the underlying error.
        reason: String,
    },
    /// `resolve` was called after `close`.
    #[error("name resolver {component} is closed")]
    Closed {
        /// The resolver.
        component: &'static str,
    },
}

impl ResolveError {
    /// The app id a failed lookup was for, if this error is about a lookup.
    pub fn app_id(&self) -> Option<&str> {
        match self {
            Self::NoHost { app_id }
            | Self::ServiceNotFound { app_id }
            | Self::Lookup { app_id, .. } => Some(app_id),
            _ => None,
        }
    }
}
