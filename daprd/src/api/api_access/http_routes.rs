//! The public HTTP endpoints as upstream declares them for its API lists: each route
//! template (with upstream's parameter names), the verbs it answers and the API group
//! (`state` `v1`, `lock` `v1alpha1`, ...) it belongs to; and the matching of a request
//! path against them (literal segments, `{param}` for one non-empty segment, `*` for
//! the rest after a slash). Paths are matched as sent, as this sidecar's router matches
//! them, so that an endpoint found here is the one the router serves.
//!
//! The table lists the routes this sidecar serves (see `api::http`); a route missing here
//! is, while API lists are in force, handled as an unknown path. Keep it in step when a
//! route is added.

use axum::http::Method;

/// One HTTP endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// The verbs it answers; empty for any.
    pub methods: &'static [Method],
    /// The path's version segment (`v1.0`, `v1.0-alpha1`).
    pub version: &'static str,
    /// The route after the version, as upstream writes it.
    pub route: &'static str,
    /// The API group's name.
    pub group: &'static str,
    /// The API group's version (`v1`, `v1alpha1`).
    pub group_version: &'static str,
    /// Whether API lists never refuse it (health checks).
    pub always_allowed: bool,
    /// Whether it is the invocation endpoint, which also answers unknown paths.
    pub is_fallback: bool,
}

const GET: &[Method] = &[Method::GET];
const POST: &[Method] = &[Method::POST];
const PUT: &[Method] = &[Method::PUT];
const DELETE: &[Method] = &[Method::DELETE];
const POST_PUT: &[Method] = &[Method::POST, Method::PUT];

const fn endpoint(
    methods: &'static [Method],
    version: &'static str,
    route: &'static str,
    group: &'static str,
    group_version: &'static str,
) -> Endpoint {
    Endpoint {
        methods,
        version,
        route,
        group,
        group_version,
        always_allowed: false,
        is_fallback: false,
    }
}

const fn health(route: &'static str) -> Endpoint {
    Endpoint {
        always_allowed: true,
        ..endpoint(GET, "v1.0", route, "healthz", "v1")
    }
}

/// The endpoints; where two could match a path, the one with a literal segment earlier
/// comes first, as chi prefers it.
pub const ENDPOINTS: &[Endpoint] = &[
    health("healthz"),
    health("healthz/outbound"),
    endpoint(GET, "v1.0", "metadata", "metadata", "v1"),
    endpoint(PUT, "v1.0", "metadata/{key}", "metadata", "v1"),
    endpoint(POST, "v1.0", "shutdown", "shutdown", "v1"),
    endpoint(POST_PUT, "v1.0", "bindings/{name}", "bindings", "v1"),
    endpoint(
        GET,
        "v1.0-alpha1",
        "configuration/{storeName}",
        "configuration",
        "v1alpha1",
    ),
    endpoint(
        GET,
        "v1.0",
        "configuration/{storeName}",
        "configuration",
        "v1",
    ),
    endpoint(
        GET,
        "v1.0-alpha1",
        "configuration/{storeName}/subscribe",
        "configuration",
        "v1alpha1",
    ),
    endpoint(
        GET,
        "v1.0",
        "configuration/{storeName}/subscribe",
        "configuration",
        "v1",
    ),
    endpoint(
        GET,
        "v1.0-alpha1",
        "configuration/{storeName}/{configurationSubscribeID}/unsubscribe",
        "configuration",
        "v1alpha1",
    ),
    endpoint(
        GET,
        "v1.0",
        "configuration/{storeName}/{configurationSubscribeID}/unsubscribe",
        "configuration",
        "v1",
    ),
    endpoint(
        PUT,
        "v1.0-alpha1",
        "crypto/{name}/encrypt",
        "crypto",
        "v1alpha1",
    ),
    endpoint(
        PUT,
        "v1.0-alpha1",
        "crypto/{name}/decrypt",
        "crypto",
        "v1alpha1",
    ),
    endpoint(
        POST,
        "v1.0-alpha1",
        "subtlecrypto/{name}/getkey",
        "subtlecrypto",
        "v1alpha1",
    ),
    endpoint(
        POST,
        "v1.0-alpha1",
        "subtlecrypto/{name}/encrypt",
        "subtlecrypto",
        "v1alpha1",
    ),
    endpoint(
        POST,
        "v1.0-alpha1",
        "subtlecrypto/{name}/decrypt",
        "subtlecrypto",
        "v1alpha1",
    ),
    endpoint(
        POST,
        "v1.0-alpha1",
        "subtlecrypto/{name}/wrapkey",
        "subtlecrypto",
        "v1alpha1",
    ),
    endpoint(
        POST,
        "v1.0-alpha1",
        "subtlecrypto/{name}/unwrapkey",
        "subtlecrypto",
        "v1alpha1",
    ),
    endpoint(
        POST,
        "v1.0-alpha1",
        "subtlecrypto/{name}/sign",
        "subtlecrypto",
        "v1alpha1",
    ),
    endpoint(
        POST,
        "v1.0-alpha1",
        "subtlecrypto/{name}/verify",
        "subtlecrypto",
        "v1alpha1",
    ),
    endpoint(POST, "v1.0-alpha1", "lock/{storeName}", "lock", "v1alpha1"),
    endpoint(
        POST,
        "v1.0-alpha1",
        "unlock/{storeName}",
        "unlock",
        "v1alpha1",
    ),
    endpoint(
        POST_PUT,
        "v1.0-alpha1",
        "publish/bulk/{pubsubname}/*",
        "publish",
        "v1alpha1",
    ),
    endpoint(
        POST_PUT,
        "v1.0",
        "publish/bulk/{pubsubname}/*",
        "publish",
        "v1",
    ),
    endpoint(POST_PUT, "v1.0", "publish/{pubsubname}/*", "publish", "v1"),
    endpoint(
        GET,
        "v1.0",
        "secrets/{secretStoreName}/bulk",
        "secrets",
        "v1",
    ),
    endpoint(
        GET,
        "v1.0",
        "secrets/{secretStoreName}/{key}",
        "secrets",
        "v1",
    ),
    endpoint(POST_PUT, "v1.0", "state/{storeName}", "state", "v1"),
    endpoint(POST_PUT, "v1.0", "state/{storeName}/bulk", "state", "v1"),
    endpoint(
        POST_PUT,
        "v1.0",
        "state/{storeName}/transaction",
        "state",
        "v1",
    ),
    endpoint(GET, "v1.0", "state/{storeName}/{key}", "state", "v1"),
    endpoint(DELETE, "v1.0", "state/{storeName}/{key}", "state", "v1"),
    endpoint(
        POST_PUT,
        "v1.0-alpha1",
        "state/{storeName}/query",
        "state",
        "v1alpha1",
    ),
    Endpoint {
        is_fallback: true,
        ..endpoint(&[], "v1.0", "invoke/*", "invoke", "v1")
    },
];

impl Endpoint {
    /// `version/route`, the text upstream's path-prefix rules are matched against.
    pub fn full_route(&self) -> String {
        format!("{}/{}", self.version, self.route)
    }

    /// Whether it answers `method`.
    pub fn answers(&self, method: &Method) -> bool {
        self.methods.is_empty() || self.methods.contains(method)
    }

    /// Whether its template matches `path` (the request's path, as sent).
    pub fn matches_path(&self, path: &str) -> bool {
        let Some(rest) = path
            .strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(self.version))
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            return false;
        };
        let mut segments = rest.split('/');
        for part in self.route.split('/') {
            if part == "*" {
                // The rest, after the slash before it (possibly empty).
                return segments.next().is_some();
            }
            let Some(segment) = segments.next() else {
                return false;
            };
            let matched = if part.starts_with('{') {
                !segment.is_empty()
            } else {
                segment == part
            };
            if !matched {
                return false;
            }
        }
        segments.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(route: &str) -> &'static Endpoint {
        ENDPOINTS
            .iter()
            .find(|endpoint| endpoint.full_route() == route)
            .unwrap()
    }

    #[test]
    fn templates_match_paths_as_chi() {
        let key = find("v1.0/state/{storeName}/{key}");
        assert!(key.matches_path("/v1.0/state/store/k"));
        assert!(!key.matches_path("/v1.0/state/store"));
        assert!(!key.matches_path("/v1.0/state/store/"));
        assert!(!key.matches_path("/v1.0/state/store/k/x"));
        assert!(!key.matches_path("/v1.0/state//k"));
        assert!(!key.matches_path("/v1.0-alpha1/state/store/k"));
        let publish = find("v1.0/publish/{pubsubname}/*");
        assert!(publish.matches_path("/v1.0/publish/bus/topic"));
        assert!(publish.matches_path("/v1.0/publish/bus/a/b/c"));
        assert!(publish.matches_path("/v1.0/publish/bus/"));
        assert!(!publish.matches_path("/v1.0/publish/bus"));
        let invoke = find("v1.0/invoke/*");
        assert!(invoke.matches_path("/v1.0/invoke/app/method/m"));
        assert!(!invoke.matches_path("/v1.0/invoke"));
        assert!(!invoke.matches_path("/orders"));
        let metadata = find("v1.0/metadata");
        assert!(metadata.matches_path("/v1.0/metadata"));
        assert!(!metadata.matches_path("/v1.0/metadata/"));
        assert!(metadata.answers(&Method::GET));
        assert!(!metadata.answers(&Method::HEAD));
        assert!(invoke.answers(&Method::PATCH));
    }

    #[test]
    fn groups_follow_the_path_version_and_first_segment() {
        for endpoint in ENDPOINTS {
            let version = match endpoint.version {
                "v1.0" => "v1",
                "v1.0-alpha1" => "v1alpha1",
                other => panic!("unexpected version {other}"),
            };
            assert_eq!(endpoint.group_version, version, "{}", endpoint.route);
            assert!(
                endpoint.route.starts_with(endpoint.group),
                "{}",
                endpoint.route
            );
        }
    }
}
