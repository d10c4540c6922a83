//! Which topics an app may use on a pub/sub component, from the component's metadata as
//! upstream reads it: `allowedTopics` (every app may use only these), `protectedTopics`
//! (only apps granted them by a scope may use these), and `publishingScopes` /
//! `subscriptionScopes` (`app1=t1,t2;app2=t3`: the topics each app may publish or
//! subscribe to; an app named there with no topics may use none). Names of the settings
//! are matched in any case; spaces in the values are ignored.

use std::collections::BTreeMap;

/// The setting listing the topics every app may use.
const ALLOWED_TOPICS: &str = "allowedTopics";
/// The setting listing the topics only scoped apps may use.
const PROTECTED_TOPICS: &str = "protectedTopics";
/// The setting granting apps topics to publish to.
const PUBLISHING_SCOPES: &str = "publishingScopes";
/// The setting granting apps topics to subscribe to.
const SUBSCRIPTION_SCOPES: &str = "subscriptionScopes";

/// One component's topic rules for this app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicScopes {
    /// `allowedTopics`: when not empty, the only topics anyone may use.
    pub allowed_topics: Vec<String>,
    /// `protectedTopics`: topics usable only with a scope granting them.
    pub protected_topics: Vec<String>,
    /// The topics `publishingScopes` grants this app.
    pub publishing_scopes: Vec<String>,
    /// The topics `subscriptionScopes` grants this app (for subscriptions).
    pub subscription_scopes: Vec<String>,
}

impl TopicScopes {
    /// Reads the rules for `app_id` from a component's settings.
    pub fn from_settings(settings: &BTreeMap<String, String>, app_id: &str) -> Self {
        Self {
            allowed_topics: topics(setting(settings, ALLOWED_TOPICS)),
            protected_topics: topics(setting(settings, PROTECTED_TOPICS)),
            publishing_scopes: scoped_topics(setting(settings, PUBLISHING_SCOPES), app_id),
            subscription_scopes: scoped_topics(setting(settings, SUBSCRIPTION_SCOPES), app_id),
        }
    }

    /// Whether this app may publish to `topic`.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.is_allowed(topic, &self.publishing_scopes)
    }

    /// Whether this app may subscribe to `topic`.
    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.is_allowed(topic, &self.subscription_scopes)
    }

    /// Upstream's `IsOperationAllowed`.
    fn is_allowed(&self, topic: &str, scoped: &[String]) -> bool {
        let listed = |list: &[String]| list.iter().any(|item| item == topic);
        if !self.allowed_topics.is_empty() && !listed(&self.allowed_topics) {
            return false;
        }
        let protected = listed(&self.protected_topics);
        if !protected && scoped.is_empty() {
            return true;
        }
        listed(scoped)
    }
}

/// A setting's value, its name matched in any case.
fn setting<'a>(settings: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    settings
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map_or("", |(_, value)| value.as_str())
}

/// `t1,t2,...` without spaces or repeats, in order (an empty value lists nothing).
fn topics(value: &str) -> Vec<String> {
    let mut listed = Vec::new();
    if value.is_empty() {
        return listed;
    }
    add_topics(&mut listed, &value.replace(' ', ""));
    listed
}

/// The topics `app1=t1,t2;app2=t3` grants `app_id`.
fn scoped_topics(value: &str, app_id: &str) -> Vec<String> {
    let mut listed = Vec::new();
    for grant in value.replace(' ', "").split(';') {
        let mut parts = grant.split('=');
        if let (Some(app), Some(granted)) = (parts.next(), parts.next())
            && app == app_id
        {
            add_topics(&mut listed, granted);
        }
    }
    listed
}

fn add_topics(listed: &mut Vec<String>, value: &str) {
    for topic in value.split(',') {
        if !listed.iter().any(|seen| seen == topic) {
            listed.push(topic.to_owned());
        }
    }
}
