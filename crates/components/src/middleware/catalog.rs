//! The HTTP middleware this build provides, created by upstream's component type and
//! version (`middleware.http.ratelimit` `v1`, ...).

use std::sync::Arc;

use super::{
    HttpMiddleware, MiddlewareError, bearer, ratelimit, routeralias, routerchecker, uppercase,
};
use crate::metadata::Properties;
use crate::version::is_initial;

/// Every `type` this build accepts, with the versions each has.
pub const MIDDLEWARE_TYPES: &[(&str, &[&str])] = &[
    ("middleware.http.bearer", &["v1"]),
    ("middleware.http.ratelimit", &["v1"]),
    ("middleware.http.routeralias", &["v1"]),
    ("middleware.http.routerchecker", &["v1"]),
    ("middleware.http.uppercase", &["v1"]),
];

/// Why a middleware could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No middleware of this type and version exists in this build.
    #[error("couldn't find middleware {component_type}/{version}")]
    Unknown {
        /// The component's `spec.type`.
        component_type: String,
        /// The component's `spec.version`.
        version: String,
    },
    /// The middleware refused its metadata or could not fetch what it needs.
    #[error(transparent)]
    Init(#[from] MiddlewareError),
}

/// Creates the middleware named by `component_type` and `version`.
pub async fn open(
    component_type: &str,
    version: &str,
    properties: &Properties,
) -> Result<Arc<dyn HttpMiddleware>, OpenError> {
    let unknown = || OpenError::Unknown {
        component_type: component_type.to_owned(),
        version: version.to_owned(),
    };
    if !is_initial(version) {
        return Err(unknown());
    }
    Ok(match component_type.to_ascii_lowercase().as_str() {
        "middleware.http.bearer" => Arc::new(bearer::open(properties).await?),
        "middleware.http.ratelimit" => Arc::new(ratelimit::open(properties)?),
        "middleware.http.routeralias" => Arc::new(routeralias::open(properties)?),
        "middleware.http.routerchecker" => Arc::new(routerchecker::open(properties)?),
        "middleware.http.uppercase" => Arc::new(uppercase::open(properties)),
        _ => return Err(unknown()),
    })
}
