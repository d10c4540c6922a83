//! `cargo xtask bench [SCENARIO...]`: builds the release binaries and measures them on
//! loopback against baselines in the same run, interleaving the compared variants round
//! by round so a noisy machine hits them alike; medians (and min/max) over the rounds go
//! into the table of `docs/benchmarks.md`, which a run of every scenario rewrites.
//!
//! Scenarios: `invoke-http` (with the nginx hop), `invoke-grpc`, `state`, `pubsub`,
//! `startup`; none named runs them all.

mod apps;
mod invoke;
mod load;
mod procs;
mod pubsub;
mod report;
mod startup;
mod state;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dapr_testkit::{Daprd, ports};

pub use load::Sample;

/// Every scenario, in the order they run.
pub const SCENARIOS: [&str; 5] = ["invoke-http", "invoke-grpc", "state", "pubsub", "startup"];

/// How a run is shaped, and where the binaries and scratch files are.
pub struct Bench {
    /// `<target>/release`.
    release_dir: PathBuf,
    /// Scratch files (configurations, databases).
    scratch: tempfile::TempDir,
    /// Rounds per variant.
    pub rounds: usize,
    /// Length of one measurement.
    pub window: Duration,
}

/// What one variant of a scenario measured, round by round.
#[derive(Debug, Clone, Default)]
pub struct VariantResult {
    /// The variant's name (`direct`, `two sidecars`, ...).
    pub name: String,
    /// Fixed-rate samples.
    pub fixed: Vec<Sample>,
    /// Maximum-throughput samples.
    pub maximum: Vec<Sample>,
    /// Cores per 1000 requests a second of each sidecar, per round.
    pub cores_per_1000: Vec<Vec<f64>>,
    /// Peak resident memory of each sidecar after the runs, MiB.
    pub peak_rss_mib: Vec<f64>,
}

impl VariantResult {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }
}

/// Median, minimum and maximum of per-round values.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut values: Vec<f64> = values
            .into_iter()
            .filter(|value| value.is_finite())
            .collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Self {
            median: load::median(&mut values),
            min,
            max,
        }
    }
}

/// What the whole run produced, by scenario.
#[derive(Debug, Default)]
pub struct Results {
    /// `invoke-http` variants.
    pub invoke_http: Vec<VariantResult>,
    /// `invoke-grpc` variants.
    pub invoke_grpc: Vec<VariantResult>,
    /// `state` rows.
    pub state: Vec<state::StateRow>,
    /// `pubsub` rows.
    pub pubsub: Vec<pubsub::PubSubRow>,
    /// `startup` rows.
    pub startup: Vec<startup::StartupRow>,
}

impl Bench {
    fn binary(&self, name: &str) -> PathBuf {
        self.release_dir.join(name)
    }

    /// A configuration using the SQLite name resolver on a file shared by every sidecar.
    fn config(&self) -> Result<PathBuf> {
        let path = self.scratch.path().join("config.yaml");
        if !path.exists() {
            std::fs::write(
                &path,
                format!(
                    "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: bench\nspec:\n  \
                     nameResolution:\n    component: sqlite\n    version: v1\n    configuration:\n      \
                     connectionString: \"{}\"\n",
                    self.scratch.path().join("names.db").display()
                ),
            )?;
        }
        Ok(path)
    }

    /// A fresh resources folder holding `documents`.
    fn resources(&self, name: &str, documents: &[String]) -> Result<PathBuf> {
        let dir = self.scratch.path().join(name);
        std::fs::create_dir_all(&dir)?;
        for (index, document) in documents.iter().enumerate() {
            std::fs::write(dir.join(format!("{index}.yaml")), document)?;
        }
        Ok(dir)
    }

    /// Starts a release daprd for `app_id` (with its app at `app` = (port, protocol)).
    async fn sidecar(
        &self,
        app_id: &str,
        app: Option<(u16, &str)>,
        resources: Option<&Path>,
    ) -> Result<Daprd> {
        let mut builder = Daprd::builder(app_id)
            .binary(self.binary("daprd"))
            .config(self.config()?)
            .log_level("warn");
        if let Some((port, protocol)) = app {
            builder = builder.app_port(port).app_protocol(protocol);
        }
        if let Some(resources) = resources {
            builder = builder.resources_path(resources);
        }
        builder
            .start()
            .await
            .with_context(|| format!("starting daprd {app_id}"))
    }
}

/// One nginx reverse proxy in front of an app, stopped when dropped.
pub struct Nginx {
    /// Its port.
    pub port: u16,
    _process: tokio::process::Child,
}

impl Nginx {
    /// Starts nginx (one process without a master, so stopping it stops everything;
    /// keep-alive to the app) proxying to `app_port`.
    async fn start(bench: &Bench, app_port: u16) -> Result<Self> {
        let program = which::which("nginx")
            .or_else(|_| which::which("/usr/sbin/nginx"))
            .context("nginx is not installed (Debian package nginx-light)")?;
        let dir = bench.scratch.path().join("nginx");
        std::fs::create_dir_all(dir.join("logs"))?;
        let port = ports::free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "master_process off;\nworker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log warn;\n\
                 events {{ worker_connections 4096; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
                 upstream app {{ server 127.0.0.1:{app_port}; keepalive 256; }}\n  \
                 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://app;\n      \
                 proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
            ),
        )?;
        let process = tokio::process::Command::new(program)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting nginx")?;
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("nginx did not listen within 10s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            port,
            _process: process,
        })
    }
}

/// The machine the numbers come from.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|name| name.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or_else(
            || "?".into(),
            |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0),
        );
    format!("{cpu}, {cores} cores, {memory} RAM")
}

/// Runs the named scenarios (all when none) and rewrites `docs/benchmarks.md`.
pub fn run(
    workspace: &Path,
    target: &Path,
    scenarios: &[String],
    rounds: usize,
    window_secs: u64,
) -> Result<()> {
    for scenario in scenarios {
        if !SCENARIOS.contains(&scenario.as_str()) {
            bail!(
                "unknown scenario {scenario}; known: {}",
                SCENARIOS.join(", ")
            );
        }
    }
    let selected: Vec<&str> = if scenarios.is_empty() {
        SCENARIOS.to_vec()
    } else {
        scenarios.iter().map(String::as_str).collect()
    };
    let started = Instant::now();
    super::prereqs::ensure_bench_tools()?;
    // The workspace's default members are daprd and the five control-plane binaries.
    super::cargo(&["build", "--release", "--bins"])?;
    let bench = Bench {
        release_dir: target.join("release"),
        scratch: tempfile::tempdir()?,
        rounds: rounds.max(1),
        window: Duration::from_secs(window_secs.max(1)),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut results = Results::default();
    runtime.block_on(async {
        for scenario in &selected {
            println!("xtask bench: {scenario}");
            match *scenario {
                "invoke-http" => results.invoke_http = invoke::http(&bench).await?,
                "invoke-grpc" => results.invoke_grpc = invoke::grpc(&bench).await?,
                "state" => results.state = state::run(&bench).await?,
                "pubsub" => results.pubsub = pubsub::run(&bench).await?,
                "startup" => results.startup = startup::run(&bench).await?,
                _ => {}
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    let table = report::render(&results, &bench, &machine(), started.elapsed());
    println!("{table}");
    if selected.len() == SCENARIOS.len() {
        report::write(&workspace.join("docs/benchmarks.md"), &table)?;
        println!(
            "xtask bench: wrote docs/benchmarks.md in {:.0?}",
            started.elapsed()
        );
    } else {
        println!("xtask bench: a partial run; docs/benchmarks.md is rewritten by full runs only");
    }
    Ok(())
}
