//! Routing of delivered pub/sub events: a subscription's rules, compiled once into
//! [`Routes`], pick the app path an event goes to. Each rule's match is a CEL expression
//! over one variable, `event` (the CloudEvent as a JSON object); rules are tried in order,
//! the first whose expression is `true` wins, and a rule without an expression (the
//! default route, always last) matches every event. No matching rule means the event is
//! not for the app; what to do then is the caller's business.
//!
//! As upstream, a match that cannot be parsed fails the subscription when it is created,
//! evaluation errors (a missing key, an unknown variable, a missing overload) fail the
//! event, and so does a result that is not a boolean.
//!
//! JSON numbers become CEL doubles, all of them, as upstream sees them after Go's JSON
//! decoding (`float64`): `event.data.amount > 100` and `event.data.amount > 100.5` both
//! hold for `150` (CEL compares doubles with ints), `event.data.amount == 150` too, and
//! arithmetic mixing a field with an int literal fails as it does upstream
//! (`event.data.count + 1` has no overload; `event.data.count + 1.0` works).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::types::{CelBool, CelDouble, CelList, CelMap, CelMapKey, CelNull, CelString};
use cel::common::value::Val;
use cel::{Context, Env, ExecutionError, Program, Value};

use super::subscriptions::Rule;

/// The variable the CloudEvent is bound to in match expressions.
const EVENT_VARIABLE: &str = "event";

/// CEL's standard library without optional values (`a.?b`), which upstream's CEL
/// environment does not enable either; built once, shared by every evaluation.
static ENVIRONMENT: LazyLock<Arc<Env>> =
    LazyLock::new(|| Arc::new(Env::stdlib().with_optional_support(false)));

/// Why a routing rule could not be compiled or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// The match expression is not valid CEL.
    #[error("invalid match expression {expression}: {reason}")]
    Compile {
        /// The expression.
        expression: String,
        /// The parser's account of what is wrong.
        reason: String,
    },
    /// Evaluating the match expression over an event failed.
    #[error("failed to evaluate match expression {expression}: {source}")]
    Evaluate {
        /// The expression.
        expression: String,
        /// CEL's error.
        #[source]
        source: ExecutionError,
    },
    /// The match expression evaluated to something other than a boolean.
    #[error("the result of match expression {expression} was not a boolean")]
    NotBoolean {
        /// The expression.
        expression: String,
    },
}

/// One rule, compiled.
#[derive(Debug)]
struct CompiledRule {
    /// The expression as written (trimmed); empty for the default route.
    expression: String,
    /// The compiled expression; `None` for the default route, which always matches.
    program: Option<Program>,
    /// Where matching events go.
    path: String,
}

/// A subscription's routing rules, compiled once and evaluated per event.
#[derive(Debug)]
pub struct Routes {
    rules: Vec<CompiledRule>,
}

impl Routes {
    /// Compiles `rules` in order; fails on the first expression that is not valid CEL.
    pub fn compile(rules: &[Rule]) -> Result<Self, RoutingError> {
        let rules = rules
            .iter()
            .map(|rule| {
                let expression = rule.match_expression.trim();
                let program = if expression.is_empty() {
                    None
                } else {
                    let program = ENVIRONMENT.compile(expression).map_err(|errors| {
                        RoutingError::Compile {
                            expression: expression.to_owned(),
                            reason: errors.to_string(),
                        }
                    })?;
                    Some(program)
                };
                Ok(CompiledRule {
                    expression: expression.to_owned(),
                    program,
                    path: rule.path.clone(),
                })
            })
            .collect::<Result<_, RoutingError>>()?;
        Ok(Self { rules })
    }

    /// The path of the first rule matching `event` (a CloudEvent as JSON), `None` when no
    /// rule matches.
    pub fn route(&self, event: &serde_json::Value) -> Result<Option<&str>, RoutingError> {
        let mut context = None;
        for rule in &self.rules {
            let Some(program) = &rule.program else {
                return Ok(Some(&rule.path));
            };
            let context = context.get_or_insert_with(|| event_context(event));
            match program.execute(context) {
                Ok(Value::Bool(true)) => return Ok(Some(&rule.path)),
                Ok(Value::Bool(false)) => {}
                Ok(_) => {
                    return Err(RoutingError::NotBoolean {
                        expression: rule.expression.clone(),
                    });
                }
                Err(source) => {
                    return Err(RoutingError::Evaluate {
                        expression: rule.expression.clone(),
                        source,
                    });
                }
            }
        }
        Ok(None)
    }
}

/// The evaluation context: `event` bound to the CloudEvent.
fn event_context(event: &serde_json::Value) -> Context<'_, '_> {
    let mut context = Context::with_env(Arc::clone(&ENVIRONMENT));
    context.add_variable_as_val(EVENT_VARIABLE, to_cel(event));
    context
}

/// `value` as CEL sees it, borrowing its strings: objects become maps with string keys,
/// arrays lists, and every number a double (see the module's documentation).
fn to_cel(value: &serde_json::Value) -> Box<dyn Val + '_> {
    match value {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(flag) => Box::new(CelBool::from(*flag)),
        // Only a number beyond f64's range has no f64 form, and such a number is not
        // valid JSON for Go (nor for serde_json without arbitrary precision): NaN,
        // equal to nothing, stands in for it.
        serde_json::Value::Number(number) => {
            Box::new(CelDouble::from(number.as_f64().unwrap_or(f64::NAN)))
        }
        serde_json::Value::String(text) => Box::new(CelString::from(text.as_str())),
        serde_json::Value::Array(items) => {
            Box::new(CelList::from(items.iter().map(to_cel).collect::<Vec<_>>()))
        }
        serde_json::Value::Object(fields) => Box::new(CelMap::from(
            fields
                .iter()
                .map(|(key, value)| (CelMapKey::from(key.as_str()), to_cel(value)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(expression: &str, path: &str) -> Rule {
        Rule {
            match_expression: expression.to_owned(),
            path: path.to_owned(),
        }
    }

    /// The path `expression` routes `event` to, with a single rule to `/matched`.
    fn single(expression: &str, event: &serde_json::Value) -> Result<bool, RoutingError> {
        let routes = Routes::compile(&[rule(expression, "/matched")])?;
        Ok(routes.route(event)?.is_some())
    }

    fn widget() -> serde_json::Value {
        json!({
            "specversion": "1.0",
            "id": "5929aaac-a5e2-4ca1-859c-edfe73f11565",
            "type": "widget",
            "source": "app-orders",
            "topic": "orders",
            "pubsubname": "pubsub",
            "datacontenttype": "application/json",
            "data": {
                "amount": 150,
                "price": 99.5,
                "big": 18_446_744_073_709_551_615_u64,
                "negative": -3,
                "flag": false,
                "nothing": null,
                "items": ["a", "b", "c"],
                "customer": {"name": "Ada", "address": {"city": "London"}},
                "lines": [{"sku": "x1", "qty": 2}, {"sku": "y2", "qty": 5}]
            }
        })
    }

    #[test]
    fn routes_and_errors_are_shareable_between_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Routes>();
        shareable::<RoutingError>();
    }

    #[test]
    fn string_equality() {
        assert!(single(r#"event.type == "widget""#, &widget()).unwrap());
        assert!(!single(r#"event.type == "gadget""#, &widget()).unwrap());
        assert!(single(r#"event.type != "gadget""#, &widget()).unwrap());
    }

    #[test]
    fn numbers_compare_with_int_and_double_literals() {
        let event = widget();
        for expression in [
            "event.data.amount > 100",
            "event.data.amount > 100.5",
            "event.data.amount >= 150",
            "event.data.amount == 150",
            "event.data.amount == 150.0",
            "event.data.amount < 151",
            "event.data.price < 100",
            "event.data.price == 99.5",
            "event.data.negative < 0",
            "event.data.negative == -3",
            "event.data.big > 9223372036854775807",
            "event.data.amount + 0.5 == 150.5",
            "int(event.data.amount) % 7 == 3",
            "type(event.data.amount) == double",
            "event.data.amount in [100, 150]",
        ] {
            assert!(single(expression, &event).unwrap(), "{expression}");
        }
        for expression in [
            "event.data.amount > 150",
            "event.data.amount > 150.5",
            "event.data.amount == 151",
            "event.data.price > 100",
        ] {
            assert!(!single(expression, &event).unwrap(), "{expression}");
        }
    }

    #[test]
    fn numbers_are_doubles_in_arithmetic_as_upstream() {
        // Go decodes every JSON number to float64, and CEL has no `double + int`.
        let error = single("event.data.amount + 1 > 100", &widget()).unwrap_err();
        assert!(
            matches!(&error, RoutingError::Evaluate { expression, .. }
                if expression == "event.data.amount + 1 > 100"),
            "{error}"
        );
    }

    #[test]
    fn string_functions() {
        let event = widget();
        for expression in [
            r#"event.source.startsWith("app")"#,
            r#"event.source.endsWith("orders")"#,
            r#"event.source.contains("-ord")"#,
            r#"event.source.matches("^app-[a-z]+$")"#,
            r#"matches(event.source, "orders$")"#,
            "size(event.source) == 10",
            r#"event.source + "/x" == "app-orders/x""#,
        ] {
            assert!(single(expression, &event).unwrap(), "{expression}");
        }
        assert!(!single(r#"event.source.startsWith("web")"#, &event).unwrap());
    }

    #[test]
    fn presence_tests() {
        let event = widget();
        assert!(single("has(event.data.flag)", &event).unwrap());
        assert!(single("has(event.data.nothing)", &event).unwrap());
        assert!(!single("has(event.data.missing)", &event).unwrap());
        assert!(single("!has(event.data.missing) && event.type == 'widget'", &event).unwrap());
        assert!(single(r#""flag" in event.data"#, &event).unwrap());
        assert!(single("event.data.flag == false", &event).unwrap());
        assert!(single("event.data.nothing == null", &event).unwrap());
    }

    #[test]
    fn nested_maps() {
        let event = widget();
        assert!(single(r#"event.data.customer.address.city == "London""#, &event).unwrap());
        assert!(single(r#"event.data["customer"]["name"] == "Ada""#, &event).unwrap());
        assert!(!single(r#"has(event.data.customer.address.zip)"#, &event).unwrap());
    }

    #[test]
    fn lists() {
        let event = widget();
        for expression in [
            "size(event.data.items) > 2",
            "event.data.items.size() == 3",
            r#""b" in event.data.items"#,
            r#"event.data.items[0] == "a""#,
            r#"event.data.items.exists(item, item == "c")"#,
            "event.data.lines.all(line, line.qty > 1)",
            r#"event.data.lines.filter(line, line.qty > 3)[0].sku == "y2""#,
        ] {
            assert!(single(expression, &event).unwrap(), "{expression}");
        }
        assert!(!single("size(event.data.items) > 3", &event).unwrap());
    }

    #[test]
    fn first_matching_rule_wins() {
        let routes = Routes::compile(&[
            rule(r#"event.type == "gadget""#, "/gadgets"),
            rule("event.data.amount > 100", "/large"),
            rule(r#"event.type == "widget""#, "/widgets"),
            rule("", "/default"),
        ])
        .unwrap();
        assert_eq!(routes.route(&widget()).unwrap(), Some("/large"));
    }

    #[test]
    fn default_route_catches_the_rest() {
        let routes = Routes::compile(&[
            rule(r#"event.type == "gadget""#, "/gadgets"),
            rule("", "/default"),
        ])
        .unwrap();
        assert_eq!(routes.route(&widget()).unwrap(), Some("/default"));
        let gadget = json!({"type": "gadget"});
        assert_eq!(routes.route(&gadget).unwrap(), Some("/gadgets"));
    }

    #[test]
    fn default_route_matches_any_payload() {
        let routes = Routes::compile(&[rule("  ", "/default")]).unwrap();
        assert_eq!(
            routes.route(&json!("not an object")).unwrap(),
            Some("/default")
        );
        assert_eq!(routes.route(&json!(null)).unwrap(), Some("/default"));
    }

    #[test]
    fn no_match_is_none() {
        let routes = Routes::compile(&[
            rule(r#"event.type == "gadget""#, "/gadgets"),
            rule("event.data.amount > 1000", "/huge"),
        ])
        .unwrap();
        assert_eq!(routes.route(&widget()).unwrap(), None);
        assert_eq!(
            Routes::compile(&[]).unwrap().route(&widget()).unwrap(),
            None
        );
    }

    #[test]
    fn non_boolean_result_is_an_error() {
        let routes = Routes::compile(&[rule("event.type", "/x"), rule("", "/d")]).unwrap();
        let error = routes.route(&widget()).unwrap_err();
        assert!(matches!(error, RoutingError::NotBoolean { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            "the result of match expression event.type was not a boolean"
        );
    }

    #[test]
    fn missing_key_is_an_error_not_a_miss() {
        // cel-go fails with `no such key: missing`; the default route is not reached.
        let routes =
            Routes::compile(&[rule("event.data.missing == 1", "/x"), rule("", "/d")]).unwrap();
        let error = routes.route(&widget()).unwrap_err();
        let RoutingError::Evaluate { expression, source } = &error else {
            panic!("unexpected error: {error}");
        };
        assert_eq!(expression, "event.data.missing == 1");
        assert_eq!(source, &ExecutionError::no_such_key("missing"));
        assert!(
            error.to_string().contains("event.data.missing == 1"),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .to_lowercase()
                .contains("no such key: missing")
        );
    }

    #[test]
    fn missing_key_behind_a_false_conjunct_is_no_error() {
        let event = widget();
        assert!(!single(r#"event.type == "gadget" && event.data.missing"#, &event).unwrap());
        assert!(
            single(
                r#"has(event.data.missing) || event.type == "widget""#,
                &event
            )
            .unwrap()
        );
    }

    #[test]
    fn unknown_variable_is_an_evaluation_error() {
        // Upstream declares unknown identifiers as `dyn`, so they compile and fail later.
        let routes = Routes::compile(&[rule("message.type == 'x'", "/x")]).unwrap();
        let error = routes.route(&widget()).unwrap_err();
        assert!(matches!(error, RoutingError::Evaluate { .. }), "{error}");
    }

    #[test]
    fn invalid_expression_fails_at_compile_time() {
        let error = Routes::compile(&[
            rule(r#"event.type == "widget""#, "/widgets"),
            rule("event.type ==", "/broken"),
        ])
        .unwrap_err();
        let RoutingError::Compile { expression, reason } = &error else {
            panic!("unexpected error: {error}");
        };
        assert_eq!(expression, "event.type ==");
        assert!(!reason.is_empty());
        assert!(error.to_string().contains("event.type =="), "{error}");
    }

    #[test]
    fn optional_syntax_is_not_enabled() {
        assert!(matches!(
            Routes::compile(&[rule("event.?data.hasValue()", "/x")]),
            Err(RoutingError::Compile { .. })
        ));
    }

    #[test]
    fn expressions_are_trimmed() {
        let routes = Routes::compile(&[rule("  event.type == 'widget'\n", "/w")]).unwrap();
        assert_eq!(routes.route(&widget()).unwrap(), Some("/w"));
    }
}
