//! Command-line conventions shared by every binary.
//!
//! Upstream parses flags with Go's pflag, so users and manifests write `--app-id x`,
//! `--app-id=x`, and the older single-dash form `-app-id x`; booleans are `--flag`,
//! `--flag=true` or `--flag=false` and never consume the next argument. This module gives
//! clap the same behaviour, holds the logging and metrics flags every binary accepts, and
//! runs a binary's main future with logging, signal handling and a bounded graceful stop.

use std::ffi::OsString;
use std::fmt::Display;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use crate::logging::{self, LogOptions};
use crate::shutdown::{self, Shutdown, ShutdownSignal};

/// Rewrites Go-style single-dash long flags (`-app-id`) to the double-dash form clap
/// expects, leaving everything else (values, `--flags`, `-` and `--`) untouched.
pub fn normalize_args<I>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = OsString>,
{
    args.into_iter()
        .enumerate()
        .map(|(index, arg)| {
            // The first argument is the program name.
            if index == 0 {
                return arg;
            }
            match arg.to_str() {
                Some(text)
                    if text.len() > 2 && text.starts_with('-') && !text.starts_with("--") =>
                {
                    let mut doubled = OsString::from("-");
                    doubled.push(&arg);
                    doubled
                }
                _ => arg,
            }
        })
        .collect()
}

/// Parses this process' command line with upstream's flag spellings; on bad input clap
/// prints the error (or `--help`) and exits, as pflag does.
pub fn parse_command_line<T: clap::Parser>() -> T {
    T::parse_from(normalize_args(std::env::args_os()))
}

/// Parses `args` (without the program name) as `program`'s command line would be.
pub fn try_parse_args<T: clap::Parser>(program: &str, args: &[&str]) -> Result<T, clap::Error> {
    let argv = std::iter::once(program)
        .chain(args.iter().copied())
        .map(OsString::from);
    T::try_parse_from(normalize_args(argv))
}

/// Parses a boolean the way Go's `strconv.ParseBool` does (`1`, `t`, `true`, `TRUE`, ...).
pub fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!(
            "invalid boolean value {other:?} (use true or false)"
        )),
    }
}

/// Parses a Go duration (`1m30s`) as a clap value parser.
pub fn parse_go_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(text).map_err(|err| err.to_string())
}

/// Logging flags every binary accepts (`--log-level`, `--log-as-json`).
#[derive(clap::Args, Debug, Clone)]
pub struct LogFlags {
    /// Log verbosity: debug, info, warn, error or fatal.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
    /// Write logs as one JSON object per line instead of text.
    #[arg(long = "log-as-json", default_value = "false", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub log_as_json: bool,
}

impl LogFlags {
    /// The logging options these flags describe.
    pub fn options(&self) -> LogOptions {
        LogOptions {
            level: self.log_level.clone(),
            json: self.log_as_json,
        }
    }
}

/// Metrics flags every binary accepts (`--metrics-port`, `--metrics-listen-address`,
/// `--enable-metrics`).
#[derive(clap::Args, Debug, Clone)]
pub struct MetricsFlags {
    /// Port of the Prometheus metrics server.
    #[arg(long = "metrics-port", default_value_t = 9090)]
    pub metrics_port: u16,
    /// Address the metrics server binds to.
    #[arg(long = "metrics-listen-address", default_value = "0.0.0.0")]
    pub metrics_listen_address: IpAddr,
    /// Serve Prometheus metrics.
    #[arg(long = "enable-metrics", default_value = "true", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub enable_metrics: bool,
}

impl MetricsFlags {
    /// The socket address of the metrics server, or `None` when metrics are disabled.
    pub fn listen_address(&self) -> Option<SocketAddr> {
        self.enable_metrics
            .then(|| SocketAddr::new(self.metrics_listen_address, self.metrics_port))
    }
}

/// Logs, once, each flag that was given but that this build does not act on yet.
///
/// `given` pairs a flag name with whether the user set it to a non-default value.
pub fn warn_unimplemented(component: &str, given: &[(&str, bool)]) {
    for (flag, set) in given {
        if *set {
            tracing::warn!(
                component,
                flag = *flag,
                "flag --{flag} is accepted but not implemented yet; it has no effect"
            );
        }
    }
}

/// Runs a binary: builds the Tokio runtime, installs logging, turns SIGTERM/SIGINT into a
/// shutdown, and drives `body` until it returns or, once shutdown has started, for at most
/// `grace`. Returns the process exit code: success when `body` ended with `Ok` in time.
pub fn run<F, Fut, E>(
    component: &str,
    app_id: Option<&str>,
    log: &LogFlags,
    grace: Duration,
    body: F,
) -> ExitCode
where
    F: FnOnce(ShutdownSignal) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    if let Err(err) = logging::init(component, app_id, &log.options()) {
        eprintln!("{component}: {err}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = Shutdown::new();
        if let Err(err) = shutdown::trigger_on_os_signals(&shutdown) {
            tracing::error!("cannot install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
        let signal = shutdown.signal();
        let work = body(shutdown.signal());
        tokio::pin!(work);
        let finished = tokio::select! {
            result = &mut work => Some(result),
            () = signal.wait() => None,
        };
        let result = match finished {
            Some(result) => result,
            None => match shutdown::drain_within(grace, work).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!("{component} did not stop within the {grace:?} grace period");
                    return ExitCode::FAILURE;
                }
            },
        };
        match result {
            Ok(()) => {
                tracing::info!("{component} stopped");
                ExitCode::SUCCESS
            }
            Err(err) => {
                tracing::error!("{component} failed: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn single_dash_long_flags_are_doubled() {
        let normalized = normalize_args(args(&[
            "daprd",
            "-app-id",
            "x",
            "--app-port=3000",
            "-",
            "--",
            "-1",
        ]));
        assert_eq!(
            normalized,
            args(&["daprd", "--app-id", "x", "--app-port=3000", "-", "--", "-1"])
        );
    }

    #[test]
    fn go_booleans_parse_like_strconv() {
        for yes in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_go_bool(yes), Ok(true));
        }
        for no in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_go_bool(no), Ok(false));
        }
        assert!(parse_go_bool("yes").is_err());
    }

    #[derive(clap::Parser, Debug)]
    struct Sample {
        #[command(flatten)]
        log: LogFlags,
        #[command(flatten)]
        metrics: MetricsFlags,
        #[arg(long)]
        name: Option<String>,
    }

    #[test]
    fn boolean_flags_do_not_swallow_the_next_argument() {
        use clap::Parser;
        let parsed = Sample::try_parse_from(normalize_args(args(&[
            "bin",
            "-log-as-json",
            "--enable-metrics=false",
            "-name",
            "n",
            "--metrics-port",
            "9999",
        ])))
        .unwrap();
        assert!(parsed.log.log_as_json);
        assert!(!parsed.metrics.enable_metrics);
        assert_eq!(parsed.metrics.listen_address(), None);
        assert_eq!(parsed.metrics.metrics_port, 9999);
        assert_eq!(parsed.name.as_deref(), Some("n"));
        assert_eq!(parsed.log.log_level, "info");
    }
}
