//! The `operator` binary: parses upstream's flags and runs [`dapr_operator::run`].

use std::process::ExitCode;

use clap::Parser;
use dapr_operator::{COMPONENT, Options, SHUTDOWN_GRACE};

fn main() -> ExitCode {
    let options = Options::parse_from(dapr_kit::cli::normalize_args(std::env::args_os()));
    let log = options.log.clone();
    dapr_kit::cli::run(COMPONENT, None, &log, SHUTDOWN_GRACE, |shutdown| {
        dapr_operator::run(options, shutdown)
    })
}
