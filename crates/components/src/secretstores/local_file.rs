//! `secretstores.local.file`: secrets from a JSON file, for local development.
//!
//! The file is read once, when the component opens, as upstream does at `Init`; a changed
//! file takes effect when the component is loaded again. Settings: `secretsFile` (required;
//! a relative path resolves against the process's working directory), `nestedSeparator`
//! (default `:`) and `multiValued` (default false).
//!
//! Without `multiValued`, nested objects and arrays flatten into one secret per leaf, named
//! by the path joined with the separator (`db:users:0`), each holding `{name: value}`. With
//! it, every top-level key is a secret: a string holds `{key: value}`, an object holds its
//! flattened leaves, and other top-level values are left out, as upstream leaves them out.
//!
//! Leaf values are text the way upstream's Go `%s` formatting renders them: strings as
//! they are, other scalars as `%!s(bool=true)`, `%!s(float64=42)` or `%!s(<nil>)`. Where
//! two leaves flatten to the same name, the first one visited is kept (upstream's choice
//! depends on Go's random map order, and it stops flattening there).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::{Feature, Secret, SecretError, SecretStore};
use crate::metadata::Properties;

/// The separator joining nested names when `nestedSeparator` is unset or empty.
pub const DEFAULT_NESTED_SEPARATOR: &str = ":";

/// Upstream's error text when `secretsFile` is missing.
const MISSING_FILE: &str = "missing local secrets file in metadata";

/// A secret store serving the secrets of one JSON file, read when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFileSecretStore {
    /// Every secret by name.
    secrets: BTreeMap<String, Secret>,
    /// Whether `multiValued` is on: secrets may hold several values.
    multi_valued: bool,
}

impl LocalFileSecretStore {
    /// Reads the settings and the secrets file.
    pub fn open(properties: &Properties) -> Result<Self, SecretError> {
        let secrets_file = properties
            .text("secretsFile", &[])
            .filter(|path| !path.is_empty())
            .ok_or_else(|| SecretError::InvalidMetadata(MISSING_FILE.to_owned()))?;
        let separator = properties
            .text("nestedSeparator", &[])
            .filter(|separator| !separator.is_empty())
            .unwrap_or(DEFAULT_NESTED_SEPARATOR);
        let multi_valued = properties
            .bool("multiValued", &[])
            .map_err(|error| SecretError::InvalidMetadata(error.to_string()))?
            .unwrap_or(false);

        let document = read_document(secrets_file)?;
        let secrets = if multi_valued {
            multi_valued_secrets(&document, separator)
        } else {
            single_valued_secrets(&document, separator)
        };
        tracing::debug!(
            file = secrets_file,
            count = secrets.len(),
            multi_valued,
            "read local secrets file"
        );
        Ok(Self {
            secrets,
            multi_valued,
        })
    }
}

#[async_trait::async_trait]
impl SecretStore for LocalFileSecretStore {
    fn features(&self) -> &[Feature] {
        if self.multi_valued {
            &[Feature::MultipleKeyValuesPerSecret]
        } else {
            &[]
        }
    }

    async fn get_secret(
        &self,
        name: &str,
        _metadata: &HashMap<String, String>,
    ) -> Result<Secret, SecretError> {
        self.secrets
            .get(name)
            .cloned()
            .ok_or_else(|| SecretError::NotFound(name.to_owned()))
    }

    async fn bulk_get_secret(
        &self,
        _metadata: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, SecretError> {
        Ok(self.secrets.clone())
    }
}

/// The file's top-level object; `null` counts as an empty object, as in upstream.
fn read_document(path: &str) -> Result<Map<String, Value>, SecretError> {
    let bytes = std::fs::read(path).map_err(|error| {
        SecretError::Backend(format!("could not read secrets file {path}: {error}"))
    })?;
    let document: Value = serde_json::from_slice(&bytes).map_err(|error| {
        SecretError::Backend(format!("secrets file {path} is not valid JSON: {error}"))
    })?;
    match document {
        Value::Object(object) => Ok(object),
        Value::Null => Ok(Map::new()),
        other => Err(SecretError::Backend(format!(
            "secrets file {path} must hold a JSON object, found {}",
            json_kind(&other)
        ))),
    }
}

/// One secret per flattened leaf, each holding `{name: value}`.
fn single_valued_secrets(
    document: &Map<String, Value>,
    separator: &str,
) -> BTreeMap<String, Secret> {
    flatten(document, separator)
        .into_iter()
        .map(|(name, value)| (name.clone(), Secret::from([(name, value)])))
        .collect()
}

/// One secret per top-level string or object; other top-level values are skipped.
fn multi_valued_secrets(
    document: &Map<String, Value>,
    separator: &str,
) -> BTreeMap<String, Secret> {
    let mut secrets = BTreeMap::new();
    for (name, value) in document {
        match value {
            Value::String(text) => {
                secrets.insert(name.clone(), Secret::from([(name.clone(), text.clone())]));
            }
            Value::Object(object) => {
                secrets.insert(name.clone(), flatten(object, separator));
            }
            other => tracing::warn!(
                secret = name.as_str(),
                kind = json_kind(other),
                "multi-valued secrets file: top-level value is neither a string nor an object; skipped"
            ),
        }
    }
    secrets
}

/// Every leaf of `object` by its path, the path's parts joined with `separator`; array
/// items are named by their index.
fn flatten(object: &Map<String, Value>, separator: &str) -> BTreeMap<String, String> {
    let mut leaves = BTreeMap::new();
    for (key, value) in object {
        visit(key.clone(), value, separator, &mut leaves);
    }
    leaves
}

fn visit(path: String, value: &Value, separator: &str, leaves: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                visit(format!("{path}{separator}{key}"), child, separator, leaves);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                visit(format!("{path}{separator}{index}"), item, separator, leaves);
            }
        }
        Value::String(text) => add_leaf(leaves, path, text.clone()),
        Value::Bool(flag) => add_leaf(leaves, path, format!("%!s(bool={flag})")),
        Value::Number(number) => add_leaf(leaves, path, go_number(number)),
        Value::Null => add_leaf(leaves, path, "%!s(<nil>)".to_owned()),
    }
}

fn add_leaf(leaves: &mut BTreeMap<String, String>, path: String, text: String) {
    match leaves.entry(path) {
        Entry::Vacant(entry) => {
            entry.insert(text);
        }
        Entry::Occupied(entry) => tracing::warn!(
            secret = entry.key().as_str(),
            "secrets file flattens two values to the same name; keeping the first"
        ),
    }
}

/// A JSON number as Go's `fmt.Sprintf("%s", v)` renders the `float64` that
/// `encoding/json` decodes it to: a `%!s(float64=...)` formatting error. Other scalars
/// render the same way (`%!s(bool=true)`, `%!s(<nil>)`); strings stay as they are.
fn go_number(number: &serde_json::Number) -> String {
    match number.as_f64() {
        Some(float) => format!("%!s(float64={})", go_float(float)),
        None => format!("%!s(float64={number})"),
    }
}

/// A float as Go's `%v` prints it: the shortest digits that round-trip, in exponent form
/// (`1.5e+06`, `1e-05`) when the decimal exponent is below -4 or at least 6.
fn go_float(float: f64) -> String {
    let scientific = format!("{float:e}");
    let parts = scientific
        .split_once('e')
        .and_then(|(mantissa, exponent)| Some((mantissa, exponent.parse::<i32>().ok()?)));
    match parts {
        Some((mantissa, exponent)) if !(-4..6).contains(&exponent) => {
            let sign = if exponent < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
        }
        _ => float.to_string(),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn properties(value: Value) -> Properties {
        Properties::from_json(&value).unwrap()
    }

    fn write(dir: &Path, name: &str, contents: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn open(contents: &str, settings: Value) -> Result<LocalFileSecretStore, SecretError> {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "secrets.json", contents);
        let mut settings = settings;
        settings["secretsFile"] = json!(file);
        LocalFileSecretStore::open(&properties(settings))
    }

    async fn bulk(store: &LocalFileSecretStore) -> BTreeMap<String, Secret> {
        store.bulk_get_secret(&HashMap::new()).await.unwrap()
    }

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn single(pairs: &[(&str, &str)]) -> BTreeMap<String, Secret> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), secret(&[(name, value)])))
            .collect()
    }

    #[tokio::test]
    async fn single_valued_files_flatten_into_one_secret_per_leaf() {
        let cases: &[(&str, &str, Value, BTreeMap<String, Secret>)] = &[
            (
                "flat strings",
                r#"{"a": "1", "b": "2"}"#,
                json!({}),
                single(&[("a", "1"), ("b", "2")]),
            ),
            (
                "nested objects use the default separator",
                r#"{"db": {"user": "u", "conn": {"host": "h"}}}"#,
                json!({}),
                single(&[("db:user", "u"), ("db:conn:host", "h")]),
            ),
            (
                "a custom separator",
                r#"{"root": {"key1": "value1", "key2": "value2"}}"#,
                json!({"nestedSeparator": "."}),
                single(&[("root.key1", "value1"), ("root.key2", "value2")]),
            ),
            (
                "an empty separator means the default",
                r#"{"a": {"b": "c"}}"#,
                json!({"nestedSeparator": ""}),
                single(&[("a:b", "c")]),
            ),
            (
                "a multi-character separator",
                r#"{"a": {"b": "c"}}"#,
                json!({"nestedSeparator": "__"}),
                single(&[("a__b", "c")]),
            ),
            (
                "arrays are named by index",
                r#"{"list": ["x", {"y": "z"}]}"#,
                json!({}),
                single(&[("list:0", "x"), ("list:1:y", "z")]),
            ),
            (
                "empty containers hold nothing",
                r#"{"a": {}, "b": [], "c": "d"}"#,
                json!({}),
                single(&[("c", "d")]),
            ),
            (
                "non-string scalars render as Go's %s does",
                r#"{"t": true, "f": false, "n": null, "i": 42, "neg": -7, "x": 1.5,
                    "big": 1234567, "small": 0.00001, "edge": 123456, "tiny": 0.0001,
                    "huge": 1e100, "zero": 0, "unicode": "é"}"#,
                json!({}),
                single(&[
                    ("t", "%!s(bool=true)"),
                    ("f", "%!s(bool=false)"),
                    ("n", "%!s(<nil>)"),
                    ("i", "%!s(float64=42)"),
                    ("neg", "%!s(float64=-7)"),
                    ("x", "%!s(float64=1.5)"),
                    ("big", "%!s(float64=1.234567e+06)"),
                    ("small", "%!s(float64=1e-05)"),
                    ("edge", "%!s(float64=123456)"),
                    ("tiny", "%!s(float64=0.0001)"),
                    ("huge", "%!s(float64=1e+100)"),
                    ("zero", "%!s(float64=0)"),
                    ("unicode", "é"),
                ]),
            ),
            (
                "a flattened name that collides keeps the first visited value",
                r#"{"a": {"b": "nested"}, "a:b": "flat"}"#,
                json!({}),
                single(&[("a:b", "nested")]),
            ),
            (
                "a null document holds nothing",
                "null",
                json!({}),
                BTreeMap::new(),
            ),
            (
                "multiValued false is explicit",
                r#"{"a": {"b": "c"}}"#,
                json!({"multiValued": "false"}),
                single(&[("a:b", "c")]),
            ),
        ];
        for (case, contents, settings, expected) in cases {
            let store = open(contents, settings.clone()).unwrap();
            assert_eq!(&bulk(&store).await, expected, "{case}");
            assert!(store.features().is_empty(), "{case}");
            for (name, secret) in expected {
                let got = store.get_secret(name, &HashMap::new()).await.unwrap();
                assert_eq!(&got, secret, "{case}: {name}");
            }
        }
    }

    #[tokio::test]
    async fn multi_valued_files_hold_one_secret_per_top_level_key() {
        let cases: &[(&str, &str, Value, BTreeMap<String, Secret>)] = &[
            (
                "nested children flatten inside the secret",
                r#"{"parent": {"child1": "12345",
                               "child2": {"child3": "67890", "child4": "00000"}}}"#,
                json!({}),
                BTreeMap::from([(
                    "parent".to_owned(),
                    secret(&[
                        ("child1", "12345"),
                        ("child2:child3", "67890"),
                        ("child2:child4", "00000"),
                    ]),
                )]),
            ),
            (
                "a top-level string is a one-value secret",
                r#"{"plain": "v", "obj": {"k": "w"}}"#,
                json!({}),
                BTreeMap::from([
                    ("plain".to_owned(), secret(&[("plain", "v")])),
                    ("obj".to_owned(), secret(&[("k", "w")])),
                ]),
            ),
            (
                "other top-level values are skipped",
                r#"{"n": 1, "b": true, "z": null, "l": ["x"], "s": "kept"}"#,
                json!({}),
                BTreeMap::from([("s".to_owned(), secret(&[("s", "kept")]))]),
            ),
            (
                "children use the separator and render scalars as Go does",
                r#"{"cfg": {"port": 8080, "tls": {"on": true}, "hosts": ["a", "b"]}}"#,
                json!({"nestedSeparator": "/"}),
                BTreeMap::from([(
                    "cfg".to_owned(),
                    secret(&[
                        ("port", "%!s(float64=8080)"),
                        ("tls/on", "%!s(bool=true)"),
                        ("hosts/0", "a"),
                        ("hosts/1", "b"),
                    ]),
                )]),
            ),
            (
                "an empty object is an empty secret",
                r#"{"empty": {}}"#,
                json!({}),
                BTreeMap::from([("empty".to_owned(), Secret::new())]),
            ),
        ];
        for (case, contents, settings, expected) in cases {
            let mut settings = settings.clone();
            settings["multiValued"] = json!(true);
            let store = open(contents, settings).unwrap();
            assert_eq!(&bulk(&store).await, expected, "{case}");
            assert_eq!(
                store.features(),
                &[Feature::MultipleKeyValuesPerSecret],
                "{case}"
            );
            for (name, secret) in expected {
                let got = store.get_secret(name, &HashMap::new()).await.unwrap();
                assert_eq!(&got, secret, "{case}: {name}");
            }
        }
    }

    #[tokio::test]
    async fn a_missing_name_is_not_found_with_upstreams_text() {
        for multi_valued in [false, true] {
            let store = open(
                r#"{"parent": {"child": "v"}}"#,
                json!({"multiValued": multi_valued}),
            )
            .unwrap();
            let error = store
                .get_secret("NoSecret", &HashMap::new())
                .await
                .unwrap_err();
            assert_eq!(error, SecretError::NotFound("NoSecret".into()));
            assert_eq!(error.to_string(), "secret NoSecret not found");
        }
        // Without multiValued only leaves are secrets, not the objects above them.
        let store = open(r#"{"parent": {"child": "v"}}"#, json!({})).unwrap();
        let error = store
            .get_secret("parent", &HashMap::new())
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "secret parent not found");
    }

    #[test]
    fn bad_settings_and_bad_files_fail_to_open() {
        let error = LocalFileSecretStore::open(&properties(json!({"dummy": "a"}))).unwrap_err();
        assert_eq!(
            error,
            SecretError::InvalidMetadata("missing local secrets file in metadata".into())
        );
        let error =
            LocalFileSecretStore::open(&properties(json!({"secretsFile": ""}))).unwrap_err();
        assert_eq!(
            error,
            SecretError::InvalidMetadata("missing local secrets file in metadata".into())
        );
        let error = open("{}", json!({"multiValued": "maybe"})).unwrap_err();
        assert!(
            matches!(&error, SecretError::InvalidMetadata(text) if text.contains("multiValued")),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.json");
        let missing = missing.to_str().unwrap();
        let error =
            LocalFileSecretStore::open(&properties(json!({"secretsFile": missing}))).unwrap_err();
        assert!(
            matches!(&error, SecretError::Backend(text)
                if text.starts_with(&format!("could not read secrets file {missing}: "))),
            "{error}"
        );

        let cases = [
            ("malformed", r#"{"a": "#, "is not valid JSON: "),
            ("trailing", r#"{"a": "b"} x"#, "is not valid JSON: "),
            ("empty", "", "is not valid JSON: "),
            ("list", r#"["a"]"#, "must hold a JSON object, found a list"),
            ("text", r#""a""#, "must hold a JSON object, found a string"),
        ];
        for (name, contents, expected) in cases {
            let file = write(dir.path(), name, contents);
            let error =
                LocalFileSecretStore::open(&properties(json!({"secretsFile": file}))).unwrap_err();
            assert!(
                matches!(&error, SecretError::Backend(text)
                    if text.starts_with(&format!("secrets file {file} {expected}"))),
                "{name}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn the_file_is_read_once_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "secrets.json", r#"{"a": "before"}"#);
        let store = LocalFileSecretStore::open(&properties(json!({"secretsFile": file}))).unwrap();
        write(dir.path(), "secrets.json", r#"{"a": "after"}"#);
        let got = store.get_secret("a", &HashMap::new()).await.unwrap();
        assert_eq!(got, secret(&[("a", "before")]));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_relative_path_resolves_against_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "secrets.json", r#"{"a": "b"}"#);
        let absolute = std::fs::canonicalize(dir.path().join("secrets.json")).unwrap();
        let cwd = std::env::current_dir().unwrap();
        let ups = "../".repeat(cwd.components().count().saturating_sub(1));
        let relative = format!(
            "{ups}{}",
            absolute.strip_prefix("/").unwrap().to_str().unwrap()
        );
        let store =
            LocalFileSecretStore::open(&properties(json!({"SecretsFile": relative}))).unwrap();
        assert_eq!(bulk(&store).await, single(&[("a", "b")]));
    }
}
