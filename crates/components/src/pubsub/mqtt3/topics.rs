//! Which subscription a received message belongs to: MQTT topic filters with the `+`
//! (one level) and `#` (the rest, including the parent level) wildcards, and shared
//! subscriptions (`$share/GROUP/filter`) matched by their filter, as upstream does.

/// A compiled topic filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    /// The filter as subscribed (with any `$share/GROUP/` prefix).
    subscribed: String,
    /// The filter's levels without the shared-subscription prefix.
    levels: Vec<String>,
}

impl TopicFilter {
    /// Compiles the filter a subscription was made with.
    pub fn new(subscribed: &str) -> Self {
        let filter = shared_filter(subscribed).unwrap_or(subscribed);
        Self {
            subscribed: subscribed.to_owned(),
            levels: filter.split('/').map(str::to_owned).collect(),
        }
    }

    /// The filter as subscribed.
    pub fn subscribed(&self) -> &str {
        &self.subscribed
    }

    /// Whether the filter names exactly `topic` (no wildcard needed).
    pub fn is_exactly(&self, topic: &str) -> bool {
        self.subscribed == topic
    }

    /// Whether a message published to `topic` matches the filter.
    pub fn matches(&self, topic: &str) -> bool {
        let mut topic_levels = topic.split('/');
        // Wildcards at the first level do not match topics starting with `$`.
        let first_is_wildcard = matches!(self.levels.first().map(String::as_str), Some("+" | "#"));
        if first_is_wildcard && topic.starts_with('$') {
            return false;
        }
        for level in &self.levels {
            match level.as_str() {
                "#" => return true,
                "+" => {
                    if topic_levels.next().is_none() {
                        return false;
                    }
                }
                exact => {
                    if topic_levels.next() != Some(exact) {
                        return false;
                    }
                }
            }
        }
        topic_levels.next().is_none()
    }
}

/// The filter part of `$share/GROUP/filter`, if `subscribed` is a shared subscription.
fn shared_filter(subscribed: &str) -> Option<&str> {
    let rest = subscribed.strip_prefix("$share/")?;
    let (group, filter) = rest.split_once('/')?;
    (!group.is_empty() && !filter.is_empty()).then_some(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_levels() {
        let plus = TopicFilter::new("orders/+/created");
        assert!(plus.matches("orders/eu/created"));
        assert!(!plus.matches("orders/eu/x/created"));
        assert!(!plus.matches("orders/created"));
        let hash = TopicFilter::new("orders/#");
        assert!(hash.matches("orders"));
        assert!(hash.matches("orders/eu/created"));
        assert!(!hash.matches("order"));
        let exact = TopicFilter::new("a/b");
        assert!(exact.matches("a/b") && exact.is_exactly("a/b"));
        assert!(!exact.matches("a/b/c") && !exact.matches("a"));
        assert!(!TopicFilter::new("#").matches("$SYS/load"));
        assert!(TopicFilter::new("+/x").matches("a/x"));
    }

    #[test]
    fn shared_subscriptions_match_by_their_filter() {
        let shared = TopicFilter::new("$share/group/sensors/+");
        assert!(shared.matches("sensors/t1"));
        assert!(!shared.matches("$share/group/sensors/t1"));
        assert_eq!(shared.subscribed(), "$share/group/sensors/+");
    }
}
