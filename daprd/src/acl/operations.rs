//! The operation rules of one caller's policy, matched as upstream matches them: paths
//! are split into `/segment`s; a segment rule may be literal, contain `*` globs, be `/*`
//! (any one last segment) or `/**` (anything below). A rule on a path also covers the
//! paths below it; when two rules share a path, the first one written wins.

/// What a rule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRule {
    /// The action for calls with a verb the rule lists (upper-case verb, or `*`).
    pub verbs: Vec<(String, String)>,
    /// The action for calls without a verb (non-HTTP apps).
    pub action: String,
}

impl OperationRule {
    /// The action for `verb`: the verb's own, else the `*` rule's.
    pub fn for_verb(&self, verb: &str) -> Option<&str> {
        let find = |wanted: &str| {
            self.verbs
                .iter()
                .find(|(rule, _)| rule == wanted)
                .map(|(_, action)| action.as_str())
        };
        find(verb).or_else(|| find("*"))
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    segment: String,
    rule: Option<OperationRule>,
    children: Vec<Node>,
}

/// The rules of one policy, as a tree of path segments.
#[derive(Debug, Clone, Default)]
pub struct OperationRules {
    root: Node,
}

/// `/a/b` as `["/a", "/b"]` (the path must start with `/`).
fn segments(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/').skip(1).map(|part| format!("/{part}"))
}

/// Whether `target` matches `pattern`, where `*` stands for any run of characters.
fn glob_matches(target: &str, pattern: &str) -> bool {
    let target = target.as_bytes();
    let pattern = pattern.as_bytes();
    // matches[j]: whether target[..i] matches pattern[..j], for the current i.
    let mut matches = vec![false; pattern.len() + 1];
    matches[0] = true;
    for j in 1..=pattern.len() {
        matches[j] = matches[j - 1] && pattern[j - 1] == b'*';
    }
    for &byte in target {
        let mut previous_diagonal = matches[0];
        matches[0] = false;
        for j in 1..=pattern.len() {
            let above = matches[j];
            matches[j] = if pattern[j - 1] == b'*' {
                matches[j - 1] || above
            } else {
                previous_diagonal && pattern[j - 1] == byte
            };
            previous_diagonal = above;
        }
    }
    matches[pattern.len()]
}

impl Node {
    /// The child `segment` leads to, as upstream picks it (first match in rule order).
    fn child_for(&self, segment: &str, last: bool) -> Option<&Node> {
        for child in &self.children {
            if child.segment == segment {
                return Some(child);
            }
            match child.segment.as_str() {
                "/*" if last => return Some(child),
                "/*" => continue,
                "/**" => return Some(child),
                pattern if glob_matches(segment, pattern) => return Some(child),
                _ => {}
            }
        }
        None
    }
}

impl OperationRules {
    /// Adds the rule for `path` (starting with `/`); an earlier rule for the same path
    /// is kept.
    pub fn insert(&mut self, path: &str, rule: OperationRule) {
        let parts: Vec<String> = segments(path).collect();
        let mut node = &mut self.root;
        for (index, segment) in parts.iter().enumerate() {
            let position = match node
                .children
                .iter()
                .position(|child| &child.segment == segment)
            {
                Some(position) => position,
                None => {
                    node.children.push(Node {
                        segment: segment.clone(),
                        ..Node::default()
                    });
                    node.children.len() - 1
                }
            };
            node = &mut node.children[position];
            if index == parts.len() - 1 && node.rule.is_none() {
                node.rule = Some(rule.clone());
            }
        }
    }

    /// The rule covering `path` (starting with `/`), if any.
    pub fn find(&self, path: &str) -> Option<&OperationRule> {
        let parts: Vec<String> = segments(path).collect();
        let mut node = &self.root;
        for (index, segment) in parts.iter().enumerate() {
            let last = index == parts.len() - 1;
            node = node.child_for(segment, last)?;
            if let Some(rule) = &node.rule {
                // A `/*` rule reached by a literal `*` segment before the end only
                // leads further down, as upstream.
                if !last && node.segment == "/*" {
                    continue;
                }
                return Some(rule);
            }
            if last {
                return node
                    .child_for("/*", true)
                    .and_then(|wildcard| wildcard.rule.as_ref());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: &str) -> OperationRule {
        OperationRule {
            verbs: vec![("*".into(), action.into())],
            action: action.into(),
        }
    }

    fn rules(paths: &[(&str, &str)]) -> OperationRules {
        let mut rules = OperationRules::default();
        for (path, action) in paths {
            rules.insert(path, rule(action));
        }
        rules
    }

    fn found<'a>(rules: &'a OperationRules, path: &str) -> Option<&'a str> {
        rules.find(path).map(|rule| rule.action.as_str())
    }

    #[test]
    fn globs_match_within_a_segment() {
        for (target, pattern, expected) in [
            ("/orders", "/ord*", true),
            ("/orders", "/*ers", true),
            ("/orders", "/o*d*s", true),
            ("/orders", "/order", false),
            ("/", "/*", true),
            ("/a", "/b*", false),
        ] {
            assert_eq!(
                glob_matches(target, pattern),
                expected,
                "{target} ~ {pattern}"
            );
        }
    }

    #[test]
    fn rules_match_as_upstreams_trie() {
        let rules = rules(&[
            ("/orders", "allow"),
            ("/payments/*", "allow"),
            ("/admin/**", "deny"),
            ("/reports/2024*", "allow"),
            ("/orders", "deny"),
        ]);
        // The first rule for a path wins; it covers everything below it.
        assert_eq!(found(&rules, "/orders"), Some("allow"));
        assert_eq!(found(&rules, "/orders/42"), Some("allow"));
        // `/*` covers one last segment, not deeper ones.
        assert_eq!(found(&rules, "/payments/1"), Some("allow"));
        assert_eq!(found(&rules, "/payments"), Some("allow"));
        assert_eq!(found(&rules, "/payments/1/refund"), None);
        // `/**` covers everything below.
        assert_eq!(found(&rules, "/admin/users/7"), Some("deny"));
        assert_eq!(found(&rules, "/reports/2024-01"), Some("allow"));
        assert_eq!(found(&rules, "/reports/2023-01"), None);
        assert_eq!(found(&rules, "/unknown"), None);
    }

    #[test]
    fn a_literal_star_segment_walks_past_a_single_segment_wildcard() {
        let rules = rules(&[("/a/*", "allow"), ("/a/*/b", "deny")]);
        assert_eq!(found(&rules, "/a/x"), Some("allow"));
        assert_eq!(found(&rules, "/a/*/b"), Some("deny"));
        assert_eq!(found(&rules, "/a/*/c"), None);
        // Only the last segment matches `/*` otherwise.
        assert_eq!(found(&rules, "/a/x/b"), None);
    }

    #[test]
    fn verb_actions_fall_back_to_the_star_rule() {
        let rule = OperationRule {
            verbs: vec![("POST".into(), "deny".into()), ("*".into(), "allow".into())],
            action: "allow".into(),
        };
        assert_eq!(rule.for_verb("POST"), Some("deny"));
        assert_eq!(rule.for_verb("GET"), Some("allow"));
        let only_get = OperationRule {
            verbs: vec![("GET".into(), "allow".into())],
            action: "allow".into(),
        };
        assert_eq!(only_get.for_verb("PUT"), None);
    }
}
