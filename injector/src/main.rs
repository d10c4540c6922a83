//! The `injector` binary: parses upstream's flags and runs [`dapr_injector::run`].

use std::process::ExitCode;

use dapr_injector::{COMPONENT, Options, SHUTDOWN_GRACE};

fn main() -> ExitCode {
    let options = dapr_kit::cli::parse_command_line::<Options>();
    let log = options.log.clone();
    dapr_kit::cli::run(COMPONENT, None, &log, SHUTDOWN_GRACE, |shutdown| {
        dapr_injector::run(options, shutdown)
    })
}
