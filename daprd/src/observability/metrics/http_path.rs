//! The `path` and `method` labels of HTTP metrics, kept low-cardinality by upstream's
//! rules: without `increasedCardinality` only configured `pathMatching` patterns (or
//! nothing) become labels; with it, paths are labelled with their variable parts (actor
//! ids, state keys, workflow instance ids, ...) folded away.

use std::borrow::Cow;

use http::Method;

use super::HttpMetricsSettings;

/// Paths always labelled as they are.
const STATIC_PATHS: [&str; 4] = [
    "/dapr/config",
    "/dapr/metrics",
    "/dapr/subscribe",
    "/healthz",
];

/// Prefix under which every configured pattern is matched too.
const INVOKE_PREFIX: &str = "/v1.0/invoke/{app_id}/method";

/// Turns request paths and methods into label values.
#[derive(Debug)]
pub(crate) struct HttpPathLabels {
    legacy: bool,
    exclude_verbs: bool,
    matcher: Option<PathMatcher>,
}

impl HttpPathLabels {
    pub(crate) fn new(settings: &HttpMetricsSettings) -> Self {
        HttpPathLabels {
            legacy: settings.increased_cardinality,
            exclude_verbs: settings.exclude_verbs,
            matcher: PathMatcher::new(&settings.path_matching, settings.increased_cardinality),
        }
    }

    /// The method label: empty when verbs are excluded, `UNKNOWN` for non-standard ones.
    pub(crate) fn method<'m>(&self, method: &'m Method) -> &'m str {
        if self.exclude_verbs {
            return "";
        }
        match *method {
            Method::GET
            | Method::PUT
            | Method::POST
            | Method::PATCH
            | Method::DELETE
            | Method::HEAD
            | Method::OPTIONS
            | Method::CONNECT
            | Method::TRACE => method.as_str(),
            _ => "UNKNOWN",
        }
    }

    /// The path label of a request the sidecar served.
    pub(crate) fn server_path<'p>(&self, raw: &'p str) -> Cow<'p, str> {
        let path = if self.matcher.is_some() {
            normalize(raw)
        } else if self.legacy {
            legacy_label(raw)
        } else {
            return Cow::Borrowed("");
        };
        match path {
            Cow::Borrowed(path) => self.metrics_path(path),
            Cow::Owned(path) => Cow::Owned(self.metrics_path(&path).into_owned()),
        }
    }

    /// The path label of a call the sidecar made to its app.
    pub(crate) fn client_path<'p>(&self, raw: &'p str) -> Cow<'p, str> {
        let label = self.metrics_path(raw);
        if self.legacy || self.matcher.is_some() {
            Cow::Owned(legacy_label(&label).into_owned())
        } else {
            label
        }
    }

    /// Upstream's `getMetricsPath`: a static path, else the matched pattern, else (legacy
    /// only) the folded path, else nothing.
    fn metrics_path<'p>(&self, path: &'p str) -> Cow<'p, str> {
        if STATIC_PATHS.contains(&path) {
            return Cow::Borrowed(path);
        }
        if let Some(matcher) = &self.matcher {
            let matched = matcher.label(path);
            if !matched.is_empty() && (!self.legacy || matched != path) {
                return Cow::Owned(matched.into_owned());
            }
            let folded = legacy_label(path);
            if folded != path {
                let matched = matcher.label(&folded);
                if !matched.is_empty() && matched != "/" {
                    return Cow::Owned(matched.into_owned());
                }
            }
        }
        if !self.legacy {
            return Cow::Borrowed("");
        }
        legacy_label(path)
    }
}

/// Merges repeated slashes and makes sure the path starts with one.
pub(crate) fn normalize(path: &str) -> Cow<'_, str> {
    if path.starts_with('/') && !path.contains("//") {
        return Cow::Borrowed(path);
    }
    let mut normalized = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        normalized.push('/');
    }
    for character in path.chars() {
        if character == '/' && normalized.ends_with('/') {
            continue;
        }
        normalized.push(character);
    }
    Cow::Owned(normalized)
}

/// Upstream's legacy path folding: `/v1.0/state/{store}/{key}` keeps the store,
/// actor ids become `{id}`, workflow instance ids `{instanceId}` and raised event names
/// `{eventName}`. Other paths (service invocation included) are kept.
pub(crate) fn legacy_label(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        return Cow::Borrowed(path);
    }
    let normalized = normalize(path);
    let trimmed = normalized.strip_prefix('/').unwrap_or(&normalized);
    let mut parts: Vec<&str> = trimmed.splitn(6, '/').collect();
    if parts.len() < 3 {
        return normalized;
    }
    if parts[0] == "actors" {
        // App callback paths: actors/{type}/{id}/method/{name}; upstream drops the slash.
        parts[2] = "{id}";
        return Cow::Owned(parts.join("/"));
    }
    let joined = |parts: &[&str]| Cow::Owned(format!("/{}", parts.join("/")));
    match parts[1] {
        "state" | "secrets" => joined(&parts[..3]),
        "actors" => {
            if parts.len() < 5 {
                return normalized;
            }
            parts[3] = "{id}";
            joined(&parts[..5])
        }
        "workflows" => {
            if parts.len() < 4 {
                return normalized;
            }
            if parts.len() == 4 {
                parts[3] = "{instanceId}";
                return joined(&parts[..4]);
            }
            if parts.len() == 5 && parts[4].starts_with("start") {
                return Cow::Owned(format!("/{}/start", parts[..4].join("/")));
            }
            parts[3] = "{instanceId}";
            if parts.len() == 6 && parts[4] == "raiseEvent" && !parts[5].is_empty() {
                parts[5] = "{eventName}";
                return joined(&parts[..6]);
            }
            joined(&parts[..5])
        }
        _ => normalized,
    }
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this text.
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Wildcard,
    /// `{name...}` or a trailing slash: the rest of the path.
    Rest,
    /// `{$}`: the end of a path that ends in a slash.
    End,
}

impl Segment {
    /// Lower is more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) | Segment::End => 0,
            Segment::Wildcard => 1,
            Segment::Rest => 2,
        }
    }
}

/// A registered pattern.
#[derive(Debug)]
struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    fn parse(text: String) -> Self {
        let body = text.strip_prefix('/').unwrap_or(&text);
        let mut segments = Vec::new();
        if !body.is_empty() {
            let pieces: Vec<&str> = body.split('/').collect();
            let last = pieces.len() - 1;
            for (index, piece) in pieces.iter().enumerate() {
                let segment = match *piece {
                    "" if index == last => Segment::Rest,
                    "{$}" if index == last => Segment::End,
                    wildcard if wildcard.starts_with('{') && wildcard.ends_with('}') => {
                        if wildcard.ends_with("...}") {
                            Segment::Rest
                        } else {
                            Segment::Wildcard
                        }
                    }
                    literal => Segment::Literal(literal.to_string()),
                };
                segments.push(segment);
            }
        } else {
            segments.push(Segment::Rest);
        }
        Pattern { text, segments }
    }

    fn is_rest(&self) -> bool {
        matches!(self.segments.last(), Some(Segment::Rest))
    }

    /// Whether `pieces` (a path split on `/`, without the leading empty piece) matches.
    fn matches(&self, pieces: &[&str]) -> bool {
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Rest => return index < pieces.len(),
                Segment::End => return index == pieces.len() - 1 && pieces[index].is_empty(),
                Segment::Wildcard => match pieces.get(index) {
                    Some(piece) if !piece.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(literal) => match pieces.get(index) {
                    Some(piece) if piece == literal => {}
                    _ => return false,
                },
            }
        }
        self.segments.len() == pieces.len()
    }

    /// Orders patterns most specific first: literals before wildcards before rests,
    /// segment by segment, then longer before shorter.
    fn specificity(&self, other: &Pattern) -> std::cmp::Ordering {
        let ranks = |pattern: &Pattern| {
            pattern
                .segments
                .iter()
                .map(Segment::rank)
                .collect::<Vec<u8>>()
        };
        ranks(self)
            .cmp(&ranks(other))
            .then(other.segments.len().cmp(&self.segments.len()))
    }

    /// Go's `exactMatch`: a rest pattern only counts as exact on a path ending in a slash
    /// with as many segments as the pattern.
    fn matches_exactly(&self, path: &str) -> bool {
        if !self.is_rest() {
            return true;
        }
        path.ends_with('/') && self.segments.len() == path.matches('/').count()
    }
}

/// Upstream's `pathMatching`: request paths are matched against the configured patterns
/// the way Go's `http.ServeMux` routes, and the winning pattern is the label.
#[derive(Debug)]
struct PathMatcher {
    patterns: Vec<Pattern>,
    /// Legacy mode without a configured `/`: unmatched paths label as themselves.
    raw_fallback: bool,
}

impl PathMatcher {
    fn new(paths: &[String], legacy: bool) -> Option<Self> {
        if paths.is_empty() {
            return None;
        }
        let mut texts = Vec::with_capacity(paths.len() * 2);
        let mut has_root = false;
        for raw in paths {
            let path = normalize(raw).into_owned();
            has_root |= path == "/";
            if !path.starts_with("/v1.0/invoke/") {
                texts.push(format!("{INVOKE_PREFIX}{path}"));
            }
            texts.push(path);
        }
        let raw_fallback = !has_root && legacy;
        if raw_fallback {
            texts.push("/".to_string());
        }
        texts.sort();
        texts.dedup();
        Some(PathMatcher {
            patterns: texts.into_iter().map(Pattern::parse).collect(),
            raw_fallback,
        })
    }

    /// The most specific pattern matching `pieces`.
    fn best(&self, pieces: &[&str]) -> Option<&Pattern> {
        self.patterns
            .iter()
            .filter(|pattern| pattern.matches(pieces))
            .min_by(|left, right| left.specificity(right))
    }

    /// The label for `path`: the pattern, the path itself (legacy fallback on `/`), or
    /// empty when nothing matched.
    fn label<'p>(&self, path: &'p str) -> Cow<'p, str> {
        if path.is_empty() {
            return Cow::Borrowed("");
        }
        let clean = normalize(path);
        let pieces: Vec<&str> = clean[1..].split('/').collect();
        let found = self.best(&pieces);
        if !found.is_some_and(|pattern| pattern.matches_exactly(&clean)) && !clean.ends_with('/') {
            // ServeMux redirects `/a` to `/a/` when only the latter is routed, and reports
            // the redirect target as the pattern.
            let slashed = format!("{clean}/");
            let slashed_pieces: Vec<&str> = slashed[1..].split('/').collect();
            if self
                .best(&slashed_pieces)
                .is_some_and(|pattern| pattern.matches_exactly(&slashed))
            {
                return Cow::Owned(slashed);
            }
        }
        match found {
            Some(pattern) if pattern.text == "/" && self.raw_fallback => clean,
            Some(pattern) => Cow::Owned(pattern.text.clone()),
            None => Cow::Borrowed(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(increased_cardinality: bool, path_matching: &[&str]) -> HttpPathLabels {
        HttpPathLabels::new(&HttpMetricsSettings {
            increased_cardinality,
            path_matching: path_matching.iter().map(|p| p.to_string()).collect(),
            exclude_verbs: false,
        })
    }

    #[test]
    fn legacy_folding_matches_upstream() {
        let cases = [
            ("", ""),
            ("/", "/"),
            ("v1.0//healthz", "/v1.0/healthz"),
            ("/v1.0/state/statestore/key1", "/v1.0/state/statestore"),
            ("/v1.0/secrets/vault/name", "/v1.0/secrets/vault"),
            (
                "/v1.0/actors/DemoActor/1/method/foo",
                "/v1.0/actors/DemoActor/{id}/method",
            ),
            ("/v1.0/actors/DemoActor/1", "/v1.0/actors/DemoActor/1"),
            (
                "/actors/DemoActor/1/method/foo",
                "actors/DemoActor/{id}/method/foo",
            ),
            (
                "/v1.0-beta1/workflows/dapr/abc",
                "/v1.0-beta1/workflows/dapr/{instanceId}",
            ),
            (
                "/v1.0-beta1/workflows/dapr/wf/start",
                "/v1.0-beta1/workflows/dapr/wf/start",
            ),
            (
                "/v1.0-beta1/workflows/dapr/abc/terminate",
                "/v1.0-beta1/workflows/dapr/{instanceId}/terminate",
            ),
            (
                "/v1.0-beta1/workflows/dapr/abc/raiseEvent/evt",
                "/v1.0-beta1/workflows/dapr/{instanceId}/raiseEvent/{eventName}",
            ),
            (
                "/v1.0/invoke/app/method/orders/1",
                "/v1.0/invoke/app/method/orders/1",
            ),
        ];
        for (path, label) in cases {
            assert_eq!(legacy_label(path), label, "{path}");
        }
    }

    #[test]
    fn low_cardinality_mode_labels_nothing_without_patterns() {
        let labels = labels(false, &[]);
        assert_eq!(labels.server_path("/v1.0/state/store/key"), "");
        assert_eq!(labels.server_path("/healthz"), "");
        assert_eq!(labels.client_path("/orders/1"), "");
    }

    #[test]
    fn legacy_mode_folds_server_and_client_paths() {
        let labels = labels(true, &[]);
        assert_eq!(
            labels.server_path("/v1.0/state/store/key"),
            "/v1.0/state/store"
        );
        assert_eq!(labels.server_path("/healthz"), "/healthz");
        assert_eq!(labels.client_path("orders"), "/orders");
    }

    #[test]
    fn path_matching_labels_with_patterns() {
        let labels = labels(
            false,
            &[
                "/orders/{orderID}",
                "/items/",
                "/v1.0/invoke/{app}/method/direct",
            ],
        );
        assert_eq!(labels.server_path("/orders/123"), "/orders/{orderID}");
        assert_eq!(
            labels.server_path("/v1.0/invoke/shop/method/orders/9"),
            "/v1.0/invoke/{app_id}/method/orders/{orderID}"
        );
        assert_eq!(labels.server_path("/items/a/b"), "/items/");
        assert_eq!(
            labels.server_path("/v1.0/invoke/x/method/direct"),
            "/v1.0/invoke/{app}/method/direct"
        );
        assert_eq!(labels.server_path("/unmatched"), "");
        assert_eq!(labels.server_path("/orders/1/extra"), "");
    }

    #[test]
    fn path_matching_in_legacy_mode_falls_back_to_folding() {
        let labels = labels(true, &["/orders/{orderID}"]);
        assert_eq!(labels.server_path("/orders/123"), "/orders/{orderID}");
        assert_eq!(
            labels.server_path("/v1.0/state/store/key"),
            "/v1.0/state/store"
        );
        assert_eq!(labels.server_path("/other/path"), "/other/path");
    }

    #[test]
    fn a_configured_root_catches_everything() {
        let labels = labels(false, &["/", "/orders/{id}"]);
        assert_eq!(labels.server_path("/orders/1"), "/orders/{id}");
        assert_eq!(labels.server_path("/anything/else"), "/");
    }

    #[test]
    fn methods_are_standard_or_unknown() {
        let labels = labels(true, &[]);
        assert_eq!(labels.method(&Method::POST), "POST");
        assert_eq!(
            labels.method(&Method::from_bytes(b"PURGE").unwrap()),
            "UNKNOWN"
        );
        let excluded = HttpPathLabels::new(&HttpMetricsSettings {
            exclude_verbs: true,
            ..HttpMetricsSettings::default()
        });
        assert_eq!(excluded.method(&Method::GET), "");
    }
}
