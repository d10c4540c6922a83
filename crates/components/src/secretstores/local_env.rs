//! `secretstores.local.env`: the process's environment variables as secrets.
//!
//! Every call reads the environment afresh, as upstream does. The optional `prefix`
//! setting limits the store to variables starting with it and strips it from the returned
//! names; it matches case-sensitively, except on Windows, where variable names ignore case.
//! Variables that would hand out the sidecar's own credentials (`APP_API_TOKEN` and every
//! `DAPR_*` name, in any case, prefix included) are never returned.
//!
//! As upstream, a missing or forbidden variable is not an error: `get` returns
//! `{name: ""}`. Variables whose name or value is not UTF-8 are skipped.

use std::collections::{BTreeMap, HashMap};

use super::{Feature, Secret, SecretError, SecretStore};
use crate::metadata::Properties;

/// Where the store reads the environment from: a list of name/value pairs, fresh per call.
type Environment = Box<dyn Fn() -> Vec<(String, String)> + Send + Sync>;

/// A secret store serving environment variables.
pub struct LocalEnvSecretStore {
    /// `prefix`: only variables starting with it are served, under the rest of their name.
    prefix: String,
    /// Whether names match without regard to case (Windows).
    ignore_case: bool,
    /// The environment's variables.
    environment: Environment,
}

impl std::fmt::Debug for LocalEnvSecretStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LocalEnvSecretStore")
            .field("prefix", &self.prefix)
            .field("ignore_case", &self.ignore_case)
            .finish_non_exhaustive()
    }
}

impl LocalEnvSecretStore {
    /// Reads the settings; the store serves this process's environment.
    pub fn open(properties: &Properties) -> Result<Self, SecretError> {
        Ok(Self::with_environment(
            properties,
            cfg!(windows),
            process_environment,
        ))
    }

    /// A store over any source of variables, matching names as `ignore_case` says.
    fn with_environment(
        properties: &Properties,
        ignore_case: bool,
        environment: impl Fn() -> Vec<(String, String)> + Send + Sync + 'static,
    ) -> Self {
        Self {
            prefix: properties
                .text("prefix", &[])
                .unwrap_or_default()
                .to_owned(),
            ignore_case,
            environment: Box::new(environment),
        }
    }

    /// The name a variable is served under, if the prefix lets it be served at all.
    /// A variable named exactly the prefix is not served, as upstream.
    fn served_name<'a>(&self, variable: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(variable);
        }
        if variable.len() <= self.prefix.len() {
            return None;
        }
        let head = variable.get(..self.prefix.len())?;
        self.same_name(head, &self.prefix)
            .then(|| variable.get(self.prefix.len()..))
            .flatten()
    }

    fn same_name(&self, left: &str, right: &str) -> bool {
        if self.ignore_case {
            left.to_uppercase() == right.to_uppercase()
        } else {
            left == right
        }
    }
}

#[async_trait::async_trait]
impl SecretStore for LocalEnvSecretStore {
    fn features(&self) -> &[Feature] {
        &[]
    }

    async fn get_secret(
        &self,
        name: &str,
        _metadata: &HashMap<String, String>,
    ) -> Result<Secret, SecretError> {
        let variable = format!("{}{name}", self.prefix);
        let value = if is_allowed(&variable) {
            (self.environment)()
                .into_iter()
                .find(|(key, _)| self.same_name(key, &variable))
                .map(|(_, value)| value)
                .unwrap_or_default()
        } else {
            tracing::warn!("Access to env var {name} is forbidden");
            String::new()
        };
        Ok(Secret::from([(name.to_owned(), value)]))
    }

    async fn bulk_get_secret(
        &self,
        _metadata: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, SecretError> {
        let mut secrets = BTreeMap::new();
        for (variable, value) in (self.environment)() {
            let Some(name) = self.served_name(&variable) else {
                continue;
            };
            if !is_allowed(&variable) {
                continue;
            }
            secrets.insert(name.to_owned(), Secret::from([(name.to_owned(), value)]));
        }
        Ok(secrets)
    }
}

/// Whether a variable may be served: not the app's API token, nor any `DAPR_*` variable.
fn is_allowed(variable: &str) -> bool {
    let upper = variable.to_uppercase();
    upper != "APP_API_TOKEN" && !upper.starts_with("DAPR_")
}

/// This process's variables whose name and value are both UTF-8.
fn process_environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn store(settings: Value, ignore_case: bool, pairs: &[(&str, &str)]) -> LocalEnvSecretStore {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        LocalEnvSecretStore::with_environment(
            &Properties::from_json(&settings).unwrap(),
            ignore_case,
            move || pairs.clone(),
        )
    }

    async fn get(store: &LocalEnvSecretStore, name: &str) -> Secret {
        store.get_secret(name, &HashMap::new()).await.unwrap()
    }

    async fn bulk(store: &LocalEnvSecretStore) -> BTreeMap<String, Secret> {
        store.bulk_get_secret(&HashMap::new()).await.unwrap()
    }

    fn secret(name: &str, value: &str) -> Secret {
        Secret::from([(name.to_owned(), value.to_owned())])
    }

    fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, Secret> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), secret(name, value)))
            .collect()
    }

    const ENVIRONMENT: &[(&str, &str)] = &[
        ("TEST_SECRET", "test1"),
        ("test_secret2", "test2"),
        ("FOO_SECRET", "foo1"),
        ("FOO", "bar"),
        ("EMPTY", ""),
        ("TEST_", "exactly the prefix"),
        ("APP_API_TOKEN", "ciao"),
        ("app_api_token", "ciao too"),
        ("DAPR_API_TOKEN", "mondo"),
        ("dapr_notallowed", "notallowed"),
        ("DAPR_SECRET", "hidden"),
    ];

    #[tokio::test]
    async fn get_returns_the_variable_or_an_empty_value() {
        // (prefix, ignore case, requested name, expected value)
        let cases = [
            ("", false, "TEST_SECRET", "test1"),
            ("", false, "FOO", "bar"),
            ("", false, "EMPTY", ""),
            ("", false, "MISSING", ""),
            ("", false, "test_secret", ""),
            ("", true, "test_secret", "test1"),
            ("", false, "APP_API_TOKEN", ""),
            ("", false, "app_api_token", ""),
            ("", false, "DAPR_API_TOKEN", ""),
            ("", false, "dapr_notallowed", ""),
            ("", false, "DAPR_NOTALLOWED", ""),
            ("TEST_", false, "SECRET", "test1"),
            ("TEST_", false, "secret2", ""),
            ("TEST_", true, "secret2", "test2"),
            ("TEST_", false, "", "exactly the prefix"),
            ("FOO_", false, "SECRET", "foo1"),
            ("DAPR_", false, "API_TOKEN", ""),
            ("dapr_", false, "API_TOKEN", ""),
            ("dapr_", false, "notallowed", ""),
        ];
        for (prefix, ignore_case, name, expected) in cases {
            let store = store(json!({ "prefix": prefix }), ignore_case, ENVIRONMENT);
            assert_eq!(
                get(&store, name).await,
                secret(name, expected),
                "prefix {prefix:?}, ignore case {ignore_case}, name {name:?}"
            );
        }
    }

    #[tokio::test]
    async fn bulk_returns_every_allowed_variable_under_its_unprefixed_name() {
        let everything = secrets(&[
            ("TEST_SECRET", "test1"),
            ("test_secret2", "test2"),
            ("FOO_SECRET", "foo1"),
            ("FOO", "bar"),
            ("EMPTY", ""),
            ("TEST_", "exactly the prefix"),
        ]);
        let cases = [
            ("", false, everything.clone()),
            ("", true, everything),
            ("TEST_", false, secrets(&[("SECRET", "test1")])),
            (
                "TEST_",
                true,
                secrets(&[("SECRET", "test1"), ("secret2", "test2")]),
            ),
            (
                "test_",
                true,
                secrets(&[("SECRET", "test1"), ("secret2", "test2")]),
            ),
            ("FOO", false, secrets(&[("_SECRET", "foo1")])),
            ("DAPR_", false, BTreeMap::new()),
            ("dapr_", true, BTreeMap::new()),
            ("NOPE_", false, BTreeMap::new()),
        ];
        for (prefix, ignore_case, expected) in cases {
            let store = store(json!({ "prefix": prefix }), ignore_case, ENVIRONMENT);
            assert_eq!(
                bulk(&store).await,
                expected,
                "prefix {prefix:?}, ignore case {ignore_case}"
            );
        }
    }

    #[tokio::test]
    async fn prefixes_compare_bytes_and_never_split_a_character() {
        let cases = [
            ("\u{e9}", false, secrets(&[("t\u{e9}", "summer")])),
            ("e", true, BTreeMap::new()),
            ("\u{e9}t", false, secrets(&[("\u{e9}", "summer")])),
        ];
        for (prefix, ignore_case, expected) in cases {
            let accented = store(
                json!({ "prefix": prefix }),
                ignore_case,
                &[("\u{e9}t\u{e9}", "summer")],
            );
            assert_eq!(bulk(&accented).await, expected, "prefix {prefix:?}");
        }
        let split = store(json!({"prefix": "ab"}), false, &[("a\u{e9}", "x")]);
        assert_eq!(bulk(&split).await, BTreeMap::new());
    }

    #[tokio::test]
    async fn the_environment_is_read_on_every_call() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let store =
            LocalEnvSecretStore::with_environment(&Properties::default(), false, move || {
                let call = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                vec![("VALUE".to_owned(), call.to_string())]
            });
        assert_eq!(get(&store, "VALUE").await, secret("VALUE", "0"));
        assert_eq!(bulk(&store).await, secrets(&[("VALUE", "1")]));
        assert!(store.features().is_empty());
    }

    #[tokio::test]
    async fn open_serves_the_process_environment() {
        let store = LocalEnvSecretStore::open(&Properties::default()).unwrap();
        let served = bulk(&store).await;
        let allowed: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(name, _)| is_allowed(name))
            .collect();
        assert!(!allowed.is_empty(), "the test process has no variables");
        for (name, value) in &allowed {
            assert_eq!(served.get(name), Some(&secret(name, value)), "{name}");
            assert_eq!(get(&store, name).await, secret(name, value), "{name}");
        }
        assert!(served.keys().all(|name| is_allowed(name)));
        assert_eq!(
            get(&store, "NO_SUCH_VARIABLE_FOR_THE_LOCAL_ENV_STORE").await,
            secret("NO_SUCH_VARIABLE_FOR_THE_LOCAL_ENV_STORE", "")
        );
    }
}
