//! `cargo xtask`: the project's developer commands.
//!
//! - `test`: install what the tests need (Debian packages when root, the official Dapr
//!   Python SDK in a venv), build every binary, then run every test in the workspace.
//! - `proto-check`: compare our wire contracts with the official Python SDK's compiled
//!   descriptors, or with a folder of upstream `.proto` files.
//! - `gen`: regenerate the CRD manifests in `charts/dapr/crds/` from `crates/resources`.
//! - `bench`: measure the release binaries on loopback and rewrite `docs/benchmarks.md`.

mod bench;
mod gen_crds;
mod prereqs;
mod proto_check;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Developer commands for this workspace")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install test prerequisites, build all binaries and run every test.
    Test {
        /// Only check prerequisites; do not install anything.
        #[arg(long)]
        no_install: bool,
        /// Extra arguments passed to the test runner (a test-name filter, for example).
        #[arg(trailing_var_arg = true)]
        runner_args: Vec<String>,
    },
    /// Compare our protos with the official SDK's descriptors (or with --reference DIR).
    ProtoCheck {
        /// A folder of upstream `.proto` files (for example `dapr/proto` of dapr/dapr) to
        /// compare with, instead of the SDK.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Restrict the comparison to these protobuf packages.
        #[arg(long = "package")]
        packages: Vec<String>,
    },
    /// Build release binaries, run the benchmarks and rewrite docs/benchmarks.md.
    Bench {
        /// Scenarios to run (invoke-http, invoke-grpc, state, pubsub, startup); all when none.
        scenarios: Vec<String>,
        /// Rounds per variant (medians are taken over them).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Regenerate generated files (CRD manifests).
    Gen {
        /// Fail instead of writing when a generated file is out of date.
        #[arg(long)]
        check: bool,
    },
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// Cargo's target directory for this workspace (honours `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// Runs `cargo` with `args` in the workspace root, failing when it fails.
fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    println!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn has_nextest() -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    Command::new(cargo)
        .args(["nextest", "--version"])
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false)
}

fn run_tests(no_install: bool, runner_args: &[String]) -> Result<()> {
    let python = prereqs::ensure(&target_dir(), !no_install)?;
    // The cross-process tests start our binaries and the SDK's Python.
    cargo(&["build", "--workspace", "--bins"])?;
    let mut args: Vec<&str> = if has_nextest() {
        vec!["nextest", "run", "--workspace", "--no-fail-fast"]
    } else {
        vec!["test", "--workspace", "--no-fail-fast"]
    };
    args.extend(runner_args.iter().map(String::as_str));
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    println!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo_bin)
        .args(&args)
        .env("DAPR_SDK_PYTHON", &python)
        .current_dir(workspace_root())
        .status()
        .context("cannot run the test runner")?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Task::Test {
            no_install,
            runner_args,
        } => run_tests(no_install, &runner_args),
        Task::ProtoCheck {
            reference,
            packages,
        } => {
            let python = prereqs::ensure_sdk_venv(&target_dir(), true)?;
            proto_check::run(&python, reference.as_deref(), &packages)
        }
        Task::Gen { check } => gen_crds::run(&workspace_root(), check),
        Task::Bench {
            scenarios,
            rounds,
            seconds,
        } => bench::run(
            &workspace_root(),
            &target_dir(),
            &scenarios,
            rounds,
            seconds,
        ),
    }
}
