//! What the test suite needs on the machine: backing servers from Debian packages, `protoc`
//! for etcd-client's build script, and a Python venv holding the official Dapr SDK.
//! Installs what is missing when it can (as root), otherwise names what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The official SDK release the tests are written against.
const SDK_REQUIREMENT: &str = "dapr[grpc,workflow]==1.19.*";

/// A program the tests run and the Debian package that ships it.
struct Requirement {
    program: &'static str,
    package: &'static str,
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        program: "protoc",
        package: "protobuf-compiler",
    },
    Requirement {
        program: "redis-server",
        package: "redis-server",
    },
    Requirement {
        program: "initdb",
        package: "postgresql",
    },
    Requirement {
        program: "etcd",
        package: "etcd-server",
    },
    Requirement {
        program: "nats-server",
        package: "nats-server",
    },
    Requirement {
        program: "mosquitto",
        package: "mosquitto",
    },
    Requirement {
        program: "rabbitmq-server",
        package: "rabbitmq-server",
    },
];

/// Looks for `program` on PATH, and for PostgreSQL's tools in Debian's versioned folder.
fn find_program(program: &str) -> Option<PathBuf> {
    if let Ok(path) = which::which(program) {
        return Some(path);
    }
    let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    versions
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join("bin").join(program))
        .find(|candidate| candidate.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(command: &mut Command) -> Result<()> {
    let description = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot run {description}"))?;
    if !status.success() {
        bail!("{description} failed ({status})");
    }
    Ok(())
}

/// What `cargo xtask bench` runs besides our binaries.
const BENCH_REQUIREMENTS: &[Requirement] = &[
    Requirement {
        program: "redis-server",
        package: "redis-server",
    },
    Requirement {
        program: "redis-benchmark",
        package: "redis-tools",
    },
    Requirement {
        program: "nginx",
        package: "nginx-light",
    },
];

/// Installs what the benchmarks need (Debian packages, when root); fails naming the
/// packages otherwise.
pub fn ensure_bench_tools() -> Result<()> {
    let missing: Vec<&str> = BENCH_REQUIREMENTS
        .iter()
        .filter(|req| find_program(req.program).is_none())
        .map(|req| req.package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing benchmark prerequisites; install the Debian packages: apt-get install {}",
            missing.join(" ")
        );
    }
    println!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"])
        .args(&missing))
}

/// Makes sure every backing server is installed, then the SDK venv; returns its Python.
pub fn ensure(target_dir: &Path, install: bool) -> Result<PathBuf> {
    let missing: Vec<&Requirement> = REQUIREMENTS
        .iter()
        .filter(|req| find_program(req.program).is_none())
        .collect();
    if !missing.is_empty() {
        let packages: Vec<&str> = missing.iter().map(|req| req.package).collect();
        if !install || !is_root() {
            bail!(
                "missing test prerequisites; install the Debian packages: apt-get install {}",
                packages.join(" ")
            );
        }
        println!("xtask: installing {}", packages.join(" "));
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        // Debian starts some servers as system services on install; tests start their own.
        for service in [
            "redis-server",
            "postgresql",
            "etcd",
            "nats-server",
            "mosquitto",
            "rabbitmq-server",
        ] {
            let _ = Command::new("service").args([service, "stop"]).output();
        }
    }
    ensure_sdk_venv(target_dir, install)
}

/// Creates (once) `<target>/sdk-venv` with the official Dapr Python SDK; returns its Python.
pub fn ensure_sdk_venv(target_dir: &Path, install: bool) -> Result<PathBuf> {
    let venv = target_dir.join("sdk-venv");
    let python = venv.join("bin").join("python");
    let has_sdk = |python: &Path| {
        Command::new(python)
            .args([
                "-c",
                "import dapr.clients, dapr.ext.grpc, dapr.ext.workflow",
            ])
            .output()
            .map(|output| output.status.success())
            .unwrap_or(false)
    };
    if python.is_file() && has_sdk(&python) {
        return Ok(python);
    }
    if !install {
        bail!(
            "the Dapr Python SDK venv is missing at {}; run `cargo xtask test` to create it",
            venv.display()
        );
    }
    let system_python =
        which::which("python3").context("python3 is needed to create the SDK venv")?;
    println!("xtask: creating {} with {SDK_REQUIREMENT}", venv.display());
    std::fs::create_dir_all(target_dir)?;
    run(Command::new(system_python).arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        SDK_REQUIREMENT,
    ]))?;
    if !has_sdk(&python) {
        bail!(
            "the Dapr SDK did not import after installing it into {}",
            venv.display()
        );
    }
    Ok(python)
}
