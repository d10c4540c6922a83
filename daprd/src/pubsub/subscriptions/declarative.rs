//! Declarative subscriptions: `Subscription` resources (`v1alpha1` documents arrive
//! converted to `v2alpha1`, `route` as the default route) in this app's scope.

use dapr_resources::subscription::v2alpha1;

use super::{BulkSubscribe, Rule, Subscription, SubscriptionType};

/// The subscriptions of `resources` whose `scopes` are empty or name `app_id`, in order:
/// the routing rules, then `routes.default` when set.
pub fn declarative<'a>(
    resources: impl IntoIterator<Item = &'a v2alpha1::Subscription>,
    app_id: &str,
) -> Vec<Subscription> {
    resources
        .into_iter()
        .filter(|resource| {
            resource.scopes.is_empty() || resource.scopes.iter().any(|id| id == app_id)
        })
        .map(|resource| {
            let spec = &resource.spec;
            let mut rules: Vec<Rule> = spec
                .routes
                .rules
                .iter()
                .map(|rule| Rule::new(&rule.match_expression, &rule.path))
                .collect();
            if !spec.routes.default.is_empty() {
                rules.push(Rule::default_route(&spec.routes.default));
            }
            Subscription {
                pubsub_name: spec.pubsubname.clone(),
                topic: spec.topic.clone(),
                metadata: spec.metadata.clone(),
                rules,
                dead_letter_topic: spec.dead_letter_topic.clone(),
                bulk_subscribe: Some(BulkSubscribe {
                    enabled: spec.bulk_subscribe.enabled,
                    max_messages_count: spec.bulk_subscribe.max_messages_count,
                    max_await_duration_ms: spec.bulk_subscribe.max_await_duration_ms,
                }),
                scopes: resource.scopes.clone(),
                kind: SubscriptionType::Declarative,
            }
        })
        .collect()
}
