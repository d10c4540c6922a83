//! What a caller names when it invokes: an app id (`orders`), an app id in a namespace
//! (`orders.production`), or a full URL (`http://host:8080`); and the method path, which
//! is cleaned of traversal before it is matched or sent anywhere.

/// A parsed invocation target, before name resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An app behind a sidecar; an `HTTPEndpoint` resource when one has this name.
    App {
        /// The app id (the part before the dot).
        id: String,
        /// The namespace: the part after the dot, else the caller's own.
        namespace: String,
    },
    /// A base URL given in place of an app id.
    Url(String),
}

/// Why a target or method is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// No target was given.
    #[error("app id is empty")]
    Empty,
    /// More than one dot: neither `id` nor `id.namespace`.
    #[error("invalid app id {0}")]
    Invalid(String),
}

impl Target {
    /// Parses `target` the way upstream does, with `own_namespace` for bare ids.
    pub fn parse(target: &str, own_namespace: &str) -> Result<Self, TargetError> {
        if target.is_empty() {
            return Err(TargetError::Empty);
        }
        if target.starts_with("http://") || target.starts_with("https://") {
            return Ok(Self::Url(target.to_string()));
        }
        let mut parts = target.split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), None, None) => Ok(Self::App {
                id: id.to_string(),
                namespace: own_namespace.to_string(),
            }),
            (Some(id), Some(namespace), None) => Ok(Self::App {
                id: id.to_string(),
                namespace: namespace.to_string(),
            }),
            _ => Err(TargetError::Invalid(target.to_string())),
        }
    }
}

/// Lexically cleans a slash-separated path like Go's `path.Clean`: repeated slashes
/// collapse, `.` segments go, `..` removes the segment before it. An empty result is `.`.
pub fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.last().is_some_and(|last| *last != "..") {
                    segments.pop();
                } else if !rooted {
                    segments.push("..");
                }
            }
            other => segments.push(other),
        }
    }
    let joined = segments.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Validates and cleans a method path as upstream does at the invocation edge: rejects
/// `#`, `?`, NUL and control characters, resolves traversal and drops leading `../`.
pub fn normalize_method(method: &str) -> Result<String, String> {
    if method.contains(['#', '?', '\0']) {
        return Err(format!("method contains forbidden character: {method:?}"));
    }
    if let Some(position) = method.bytes().position(|b| b < 0x20 || b == 0x7f) {
        return Err(format!(
            "method contains control character at position {position}: {method:?}"
        ));
    }
    let mut cleaned = clean_path(method);
    while let Some(rest) = cleaned.strip_prefix("../") {
        cleaned = rest.to_string();
    }
    if cleaned == ".." || cleaned == "." {
        cleaned.clear();
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_like_upstream() {
        let app = |id: &str, namespace: &str| Target::App {
            id: id.into(),
            namespace: namespace.into(),
        };
        assert_eq!(
            Target::parse("orders", "default"),
            Ok(app("orders", "default"))
        );
        assert_eq!(
            Target::parse("orders.prod", "default"),
            Ok(app("orders", "prod"))
        );
        assert_eq!(
            Target::parse("http://h:1/x.y", "default"),
            Ok(Target::Url("http://h:1/x.y".into()))
        );
        assert_eq!(Target::parse("", "default"), Err(TargetError::Empty));
        assert_eq!(
            Target::parse("a.b.c", "default").unwrap_err().to_string(),
            "invalid app id a.b.c"
        );
    }

    #[test]
    fn paths_clean_like_go() {
        assert_eq!(clean_path("a//b/./c/.."), "a/b");
        assert_eq!(clean_path("/../a"), "/a");
        assert_eq!(clean_path("../a"), "../a");
        assert_eq!(clean_path(""), ".");
        assert_eq!(clean_path("a/"), "a");
    }

    #[test]
    fn methods_are_normalized_or_rejected() {
        assert_eq!(normalize_method("orders/42").unwrap(), "orders/42");
        assert_eq!(normalize_method("../../admin").unwrap(), "admin");
        assert_eq!(normalize_method("a/../../b").unwrap(), "b");
        assert_eq!(normalize_method("..").unwrap(), "");
        assert_eq!(normalize_method("").unwrap(), "");
        assert!(normalize_method("a?b").is_err());
        assert!(
            normalize_method("a\u{1}b")
                .unwrap_err()
                .contains("position 1")
        );
    }
}
