//! The `daprd` binary: parses flags and runs the sidecar.

use std::process::ExitCode;

use daprd::config::RuntimeConfig;
use daprd::options::Options;

fn main() -> ExitCode {
    let options = dapr_kit::cli::parse_command_line::<Options>();
    let config = match RuntimeConfig::from_options(&options) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("daprd: {err}");
            return ExitCode::FAILURE;
        }
    };
    let grace = config.graceful_shutdown;
    let app_id = config.app_id.clone();
    let unimplemented = options.unimplemented_flags();
    dapr_kit::cli::run(
        "dapr.runtime",
        Some(&app_id),
        &options.log,
        grace,
        |shutdown| async move {
            dapr_kit::cli::warn_unimplemented("dapr.runtime", &unimplemented);
            daprd::run(config, shutdown).await
        },
    )
}
