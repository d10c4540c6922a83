//! Turning one tracing event into one log line, in upstream's JSON or text shape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::timestamp::rfc3339_nanos;

/// Keys every line writes itself; event fields with these names get a `fields.` prefix.
const RESERVED_KEYS: [&str; 8] = [
    "app_id", "instance", "level", "msg", "scope", "time", "type", "ver",
];

/// Which shape lines take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineStyle {
    /// `time="..." level=info msg="..." key=value ...`
    Text,
    /// One JSON object per line, keys sorted.
    Json,
}

/// What every line says about the process.
#[derive(Debug, Clone)]
pub(crate) struct ProcessLabels {
    /// The Dapr app id, written when known.
    pub(crate) app_id: Option<String>,
    /// The host name.
    pub(crate) instance: String,
    /// The software version.
    pub(crate) version: &'static str,
}

/// The event formatter installed by `logging::build_subscriber`.
#[derive(Debug, Clone)]
pub(crate) struct LineFormat {
    style: LineStyle,
    labels: ProcessLabels,
}

impl LineFormat {
    pub(crate) fn new(style: LineStyle, labels: ProcessLabels) -> Self {
        LineFormat { style, labels }
    }

    fn render(&self, record: &LogRecord) -> String {
        match self.style {
            LineStyle::Json => render_json(&self.labels, record),
            LineStyle::Text => render_text(&self.labels, record),
        }
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'fields> FormatFields<'fields> + 'static,
{
    fn format_event(
        &self,
        _context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let metadata = event.metadata();
        let mut fields = FieldCollector::default();
        event.record(&mut fields);
        let target = fields
            .log_target
            .take()
            .unwrap_or_else(|| metadata.target().to_owned());
        let record = LogRecord {
            time: SystemTime::now(),
            level: *metadata.level(),
            scope: target.replace("::", "."),
            message: fields.message,
            fields: fields.values,
        };
        writeln!(writer, "{}", self.render(&record))
    }
}

/// One event, ready to be written.
#[derive(Debug, Clone, PartialEq)]
struct LogRecord {
    time: SystemTime,
    level: Level,
    scope: String,
    message: String,
    fields: Vec<(String, FieldValue)>,
}

/// An event field's value, keeping numbers and booleans typed for JSON.
#[derive(Debug, Clone, PartialEq)]
enum FieldValue {
    Text(String),
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
}

impl FieldValue {
    fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Text(text) => serde_json::Value::from(text.as_str()),
            FieldValue::Signed(value) => serde_json::Value::from(*value),
            FieldValue::Unsigned(value) => serde_json::Value::from(*value),
            // Non-finite floats have no JSON number; write them as text.
            FieldValue::Float(value) => serde_json::Number::from_f64(*value)
                .map_or_else(|| value.to_string().into(), serde_json::Value::Number),
            FieldValue::Bool(value) => serde_json::Value::from(*value),
        }
    }

    fn to_text(&self) -> String {
        match self {
            FieldValue::Text(text) => text.clone(),
            FieldValue::Signed(value) => value.to_string(),
            FieldValue::Unsigned(value) => value.to_string(),
            FieldValue::Float(value) => value.to_string(),
            FieldValue::Bool(value) => value.to_string(),
        }
    }
}

/// Collects an event's message and fields; `log` crate records contribute their target.
#[derive(Debug, Default)]
struct FieldCollector {
    message: String,
    log_target: Option<String>,
    values: Vec<(String, FieldValue)>,
}

impl FieldCollector {
    fn push(&mut self, field: &Field, value: FieldValue) {
        match field.name() {
            "message" => self.message = value.to_text(),
            "log.target" => self.log_target = Some(value.to_text()),
            // The rest of a `log` record's metadata (module, file, line) is not logged.
            name if name.starts_with("log.") => {}
            name => self.values.push((name.to_owned(), value)),
        }
    }
}

impl Visit for FieldCollector {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, FieldValue::Text(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, FieldValue::Text(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, FieldValue::Text(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, FieldValue::Signed(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, FieldValue::Unsigned(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, FieldValue::Float(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, FieldValue::Bool(value));
    }
}

/// Level names as upstream's logger writes them.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warning",
        Level::ERROR => "error",
    }
}

/// The label and event fields besides time, level and msg, sorted by key.
fn data_fields(labels: &ProcessLabels, record: &LogRecord) -> BTreeMap<String, FieldValue> {
    let mut data = BTreeMap::new();
    for (name, value) in &record.fields {
        let key = if RESERVED_KEYS.contains(&name.as_str()) {
            format!("fields.{name}")
        } else {
            name.clone()
        };
        data.insert(key, value.clone());
    }
    if let Some(app_id) = &labels.app_id {
        data.insert("app_id".to_owned(), FieldValue::Text(app_id.clone()));
    }
    data.insert(
        "instance".to_owned(),
        FieldValue::Text(labels.instance.clone()),
    );
    data.insert("scope".to_owned(), FieldValue::Text(record.scope.clone()));
    data.insert("type".to_owned(), FieldValue::Text("log".to_owned()));
    data.insert(
        "ver".to_owned(),
        FieldValue::Text(labels.version.to_owned()),
    );
    data
}

/// One JSON object with every key sorted.
fn render_json(labels: &ProcessLabels, record: &LogRecord) -> String {
    let mut object: BTreeMap<String, serde_json::Value> = data_fields(labels, record)
        .into_iter()
        .map(|(key, value)| (key, value.to_json()))
        .collect();
    object.insert("time".to_owned(), rfc3339_nanos(record.time).into());
    object.insert("level".to_owned(), level_name(record.level).into());
    object.insert("msg".to_owned(), record.message.clone().into());
    serde_json::Value::Object(object.into_iter().collect()).to_string()
}

/// `time=... level=... msg=...` followed by the other keys sorted, values quoted when
/// they contain anything beyond letters, digits and `-._/@^+`.
fn render_text(labels: &ProcessLabels, record: &LogRecord) -> String {
    let mut line = String::new();
    let fixed = [
        ("time", rfc3339_nanos(record.time)),
        ("level", level_name(record.level).to_owned()),
        ("msg", record.message.clone()),
    ];
    let data = data_fields(labels, record)
        .into_iter()
        .map(|(key, value)| (key, value.to_text()));
    for (key, value) in fixed
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .chain(data)
    {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&key);
        line.push('=');
        push_text_value(&mut line, &value);
    }
    line
}

fn push_text_value(line: &mut String, value: &str) {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '@' | '^' | '+'));
    if plain {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() && u32::from(c) < 0x80 => {
                let _ = write!(line, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(line, "\\u{:04x}", u32::from(c));
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn labels(app_id: Option<&str>) -> ProcessLabels {
        ProcessLabels {
            app_id: app_id.map(str::to_owned),
            instance: "node-1".to_owned(),
            version: "1.2.3",
        }
    }

    fn record(level: Level, message: &str, fields: Vec<(&str, FieldValue)>) -> LogRecord {
        LogRecord {
            time: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            level,
            scope: "dapr.runtime".to_owned(),
            message: message.to_owned(),
            fields: fields
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
        }
    }

    #[test]
    fn json_matches_upstream_shape_exactly() {
        let line = render_json(
            &labels(Some("myapp")),
            &record(
                Level::INFO,
                "dapr initialized. Status: Running. Init Elapsed 9ms",
                vec![],
            ),
        );
        assert_eq!(
            line,
            "{\"app_id\":\"myapp\",\"instance\":\"node-1\",\"level\":\"info\",\
             \"msg\":\"dapr initialized. Status: Running. Init Elapsed 9ms\",\
             \"scope\":\"dapr.runtime\",\"time\":\"2023-11-14T22:13:20.123456789Z\",\
             \"type\":\"log\",\"ver\":\"1.2.3\"}"
        );
    }

    #[test]
    fn json_keeps_field_types_and_prefixes_clashes() {
        let line = render_json(
            &labels(None),
            &record(
                Level::WARN,
                "m",
                vec![
                    ("count", FieldValue::Unsigned(3)),
                    ("delta", FieldValue::Signed(-2)),
                    ("ratio", FieldValue::Float(0.5)),
                    ("nan", FieldValue::Float(f64::NAN)),
                    ("ok", FieldValue::Bool(true)),
                    ("scope", FieldValue::Text("mine".into())),
                ],
            ),
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "warning");
        assert_eq!(value["count"], 3);
        assert_eq!(value["delta"], -2);
        assert_eq!(value["ratio"], 0.5);
        assert_eq!(value["nan"], "NaN");
        assert_eq!(value["ok"], true);
        assert_eq!(value["scope"], "dapr.runtime");
        assert_eq!(value["fields.scope"], "mine");
        assert!(value.get("app_id").is_none());
    }

    #[test]
    fn text_matches_upstream_shape_exactly() {
        let line = render_text(
            &labels(Some("myapp")),
            &record(
                Level::ERROR,
                "failed: \"x\"\nnext",
                vec![
                    ("port", FieldValue::Unsigned(3500)),
                    ("path", FieldValue::Text("/v1.0/state".into())),
                ],
            ),
        );
        assert_eq!(
            line,
            "time=\"2023-11-14T22:13:20.123456789Z\" level=error msg=\"failed: \\\"x\\\"\\nnext\" \
             app_id=myapp instance=node-1 path=/v1.0/state port=3500 scope=dapr.runtime type=log ver=1.2.3"
        );
    }

    #[test]
    fn text_quotes_values_with_spaces_and_controls() {
        let mut line = String::new();
        push_text_value(&mut line, "a b\u{1b}\u{85}é");
        assert_eq!(line, "\"a b\\x1b\\u0085é\"");
        line.clear();
        push_text_value(&mut line, "plain-value_1.2/x@y^z+w");
        assert_eq!(line, "plain-value_1.2/x@y^z+w");
        line.clear();
        push_text_value(&mut line, "");
        assert_eq!(line, "");
    }
}
