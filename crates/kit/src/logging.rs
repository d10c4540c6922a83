//! Process-wide log output shaped like upstream Dapr's: either logrus-style `key=value`
//! text or one JSON object per line, written to stdout.
//!
//! Every line carries `time`, `level`, `msg`, `scope` (the event's target, `::` written
//! as `.`), `type` ("log"), `ver`, `instance` (host name) and, when known, `app_id`;
//! event fields are added beside them. `--log-level` takes upstream's values.

mod format;
mod timestamp;

use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use format::{LineFormat, LineStyle, ProcessLabels};

/// The version written in every line's `ver` field.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the process logs: the `--log-level` and `--log-as-json` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// One of debug, info, warn, error, fatal (any letter case); upstream's default is info.
    pub level: String,
    /// One JSON object per line instead of `key=value` text.
    pub json: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            level: LogLevel::Info.as_str().to_owned(),
            json: false,
        }
    }
}

/// The `--log-level` values upstream accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything, including debug detail.
    Debug,
    /// Informational lines and above (the default).
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
    /// Same threshold as `Error`.
    Fatal,
}

impl LogLevel {
    /// Every accepted spelling, lowest threshold first.
    pub const NAMES: [&'static str; 5] = ["debug", "info", "warn", "error", "fatal"];

    /// The flag value naming this level.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
        }
    }

    /// The most verbose events this level lets through.
    pub fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error | LogLevel::Fatal => LevelFilter::ERROR,
        }
    }
}

impl FromStr for LogLevel {
    type Err = LoggingError;

    fn from_str(text: &str) -> Result<Self, LoggingError> {
        match text.to_ascii_lowercase().as_str() {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            "fatal" => Ok(LogLevel::Fatal),
            _ => Err(LoggingError::UnknownLevel {
                given: text.to_owned(),
            }),
        }
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level is not one of upstream's names.
    #[error("unknown log level {given:?}; valid levels are debug, info, warn, error, fatal")]
    UnknownLevel {
        /// The level as given.
        given: String,
    },
    /// A global subscriber was installed earlier in this process.
    #[error("a global log subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Installs the global subscriber writing to stdout, and routes `log` crate records into
/// it. `component` is a target prefix of the binary's own events (its logger name such as
/// "dapr.runtime", or its crate name): those, every `dapr*` target and the running
/// executable's own crate follow the level, while other crates (HTTP/2, TLS, Raft, ...)
/// never log below info. Errors on an unknown level or when called twice.
pub fn init(component: &str, app_id: Option<&str>, opts: &LogOptions) -> Result<(), LoggingError> {
    build_subscriber(component, app_id, opts, std::io::stdout)?
        .try_init()
        .map_err(|error| LoggingError::AlreadyInstalled(error.to_string()))
}

/// The subscriber [`init`] installs, writing to `writer` instead of stdout; use it with
/// `tracing::subscriber::with_default` to capture lines in tests.
pub fn build_subscriber<W>(
    component: &str,
    app_id: Option<&str>,
    opts: &LogOptions,
    writer: W,
) -> Result<impl Subscriber + Send + Sync + 'static, LoggingError>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let level: LogLevel = opts.level.parse()?;
    let style = if opts.json {
        LineStyle::Json
    } else {
        LineStyle::Text
    };
    let labels = ProcessLabels {
        app_id: app_id.map(str::to_owned),
        instance: crate::process::hostname(),
        version: VERSION,
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .event_format(LineFormat::new(style, labels))
        .with_writer(writer)
        .with_filter(level_filter(component, level));
    Ok(tracing_subscriber::registry().with(layer))
}

/// Our own targets follow `level`; everything else is held to info or quieter.
fn level_filter(component: &str, level: LogLevel) -> Targets {
    let own = level.filter();
    let own_prefixes = [Some(component.replace('-', "_")), executable_crate_name()];
    own_prefixes
        .into_iter()
        .flatten()
        .filter(|prefix| !prefix.is_empty())
        .fold(
            Targets::new()
                .with_default(own.min(LevelFilter::INFO))
                .with_target("dapr", own),
            |targets, prefix| targets.with_target(prefix, own),
        )
}

/// The crate name of the running binary (its file name, `-` as `_`), which is the target
/// prefix of events logged from its `main.rs`.
fn executable_crate_name() -> Option<String> {
    let executable = std::env::current_exe().ok()?;
    Some(executable.file_stem()?.to_str()?.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects written lines in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'writer> MakeWriter<'writer> for Captured {
        type Writer = Captured;

        fn make_writer(&'writer self) -> Captured {
            self.clone()
        }
    }

    fn capture(opts: LogOptions, app_id: Option<&str>, emit: impl FnOnce()) -> Vec<String> {
        let captured = Captured::default();
        let subscriber = build_subscriber("placement", app_id, &opts, captured.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, emit);
        captured.lines()
    }

    fn options(level: &str, json: bool) -> LogOptions {
        LogOptions {
            level: level.to_owned(),
            json,
        }
    }

    #[test]
    fn json_lines_use_upstream_field_names() {
        let lines = capture(options("info", true), Some("myapp"), || {
            tracing::info!(target: "dapr.runtime", port = 3500u64, "dapr initialized. Status: \"Running\"");
            tracing::warn!(target: "dapr_kit::healthz", ready = false, "not ready");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");

        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["level"], "info");
        assert_eq!(first["msg"], "dapr initialized. Status: \"Running\"");
        assert_eq!(first["scope"], "dapr.runtime");
        assert_eq!(first["type"], "log");
        assert_eq!(first["ver"], VERSION);
        assert_eq!(first["app_id"], "myapp");
        assert_eq!(first["instance"], crate::process::hostname());
        assert_eq!(first["port"], 3500);
        let time = first["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() >= 20, "{time}");
        assert_eq!(&time[4..5], "-");
        assert_eq!(&time[10..11], "T");
        // Keys are sorted, as upstream's encoder writes them.
        assert!(
            lines[0].starts_with("{\"app_id\":\"myapp\",\"instance\":"),
            "{}",
            lines[0]
        );

        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["level"], "warning");
        assert_eq!(second["scope"], "dapr_kit.healthz");
        assert_eq!(second["ready"], false);
    }

    #[test]
    fn json_lines_omit_app_id_when_unknown() {
        let lines = capture(options("info", true), None, || {
            tracing::error!(target: "dapr.sentry", "boom");
        });
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert!(line.get("app_id").is_none());
        assert_eq!(line["level"], "error");
    }

    #[test]
    fn text_lines_are_key_value_pairs() {
        let lines = capture(options("debug", false), Some("myapp"), || {
            tracing::debug!(target: "placement::raft", "leader elected");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(line.starts_with("time=\""), "{line}");
        assert!(
            line.contains("Z\" level=debug msg=\"leader elected\" app_id=myapp instance="),
            "{line}"
        );
        assert!(
            line.ends_with(&format!(" scope=placement.raft type=log ver={VERSION}")),
            "{line}"
        );
    }

    #[test]
    fn levels_filter_our_targets_and_hold_third_parties_to_info() {
        let lines = capture(options("debug", true), None, || {
            tracing::debug!(target: "daprd::runtime", "ours");
            tracing::debug!(target: "placement::raft", "component");
            tracing::debug!(target: "h2::proto", "third party debug");
            tracing::info!(target: "h2::proto", "third party info");
        });
        let messages: Vec<String> = lines
            .iter()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["msg"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(messages, ["ours", "component", "third party info"]);

        let lines = capture(options("FATAL", true), None, || {
            tracing::warn!(target: "dapr.runtime", "hidden");
            tracing::error!(target: "dapr.runtime", "shown");
            tracing::error!(target: "hyper", "shown too");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");

        let lines = capture(options("warn", false), None, || {
            tracing::info!(target: "dapr.runtime", "hidden");
            tracing::info!(target: "tonic", "hidden");
            tracing::warn!(target: "tonic", "shown");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
    }

    #[test]
    fn unknown_level_lists_the_valid_ones() {
        let error = build_subscriber("daprd", None, &options("verbose", false), std::io::sink)
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "unknown log level \"verbose\"; valid levels are debug, info, warn, error, fatal"
        );
        assert_eq!("Warn".parse::<LogLevel>().unwrap(), LogLevel::Warn);
        for name in LogLevel::NAMES {
            assert_eq!(name.parse::<LogLevel>().unwrap().as_str(), name);
        }
        assert_eq!(LogLevel::Fatal.filter(), LogLevel::Error.filter());
    }
}
