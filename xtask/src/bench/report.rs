//! The results as the Markdown table of `docs/benchmarks.md`, between two marker lines
//! that the command rewrites (the rest of the document is kept as written).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Bench, Results, Sample, Spread, VariantResult};

/// The line before the generated part.
const START: &str = "<!-- bench:results:start -->";
/// The line after it.
const END: &str = "<!-- bench:results:end -->";

fn number(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "n/a".into()
    }
}

/// `median (min–max)`.
fn spread(spread: Spread, decimals: usize) -> String {
    if !spread.median.is_finite() {
        return "n/a".into();
    }
    if (spread.max - spread.min).abs() < f64::EPSILON {
        return number(spread.median, decimals);
    }
    format!(
        "{} ({}–{})",
        number(spread.median, decimals),
        number(spread.min, decimals),
        number(spread.max, decimals)
    )
}

fn latency(samples: &[Sample], quantile: f64) -> Spread {
    Spread::of(samples.iter().map(|sample| sample.percentile_ms(quantile)))
}

fn invocation_table(out: &mut String, title: &str, variants: &[VariantResult]) {
    if variants.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### {title}\n");
    let _ = writeln!(
        out,
        "| path | p50 ms @1000/s | p90 ms @1000/s | p99 ms @1000/s | errors | max throughput req/s | p50 ms @max |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    for variant in variants {
        let errors: u64 = variant
            .fixed
            .iter()
            .chain(&variant.maximum)
            .map(|sample| sample.errors)
            .sum();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {errors} | {} | {} |",
            variant.name,
            spread(latency(&variant.fixed, 0.5), 3),
            spread(latency(&variant.fixed, 0.9), 3),
            spread(latency(&variant.fixed, 0.99), 3),
            spread(
                Spread::of(variant.maximum.iter().map(Sample::throughput)),
                0
            ),
            spread(latency(&variant.maximum, 0.5), 3),
        );
    }
    let direct = variants.iter().find(|variant| variant.name == "direct");
    let sidecars = variants
        .iter()
        .find(|variant| variant.name == "two sidecars");
    if let (Some(direct), Some(sidecars)) = (direct, sidecars) {
        let added = |quantile: f64| {
            latency(&sidecars.fixed, quantile).median - latency(&direct.fixed, quantile).median
        };
        let _ = writeln!(
            out,
            "\nAdded by the two sidecars at 1000 req/s (median of rounds): p50 **{} ms**, p90 **{} ms**, p99 **{} ms** \
             (upstream publishes ~1.40 ms at p90 and ~2.10 ms at p99; our target: p90 below 0.35 ms).",
            number(added(0.5), 3),
            number(added(0.9), 3),
            number(added(0.99), 3),
        );
        for (index, side) in ["A (caller)", "B (callee)"].iter().enumerate() {
            let cores = Spread::of(
                sidecars
                    .cores_per_1000
                    .iter()
                    .filter_map(|round| round.get(index).copied()),
            );
            let rss = sidecars
                .peak_rss_mib
                .get(index)
                .copied()
                .unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "\ndaprd {side}: **{}** cores per 1000 req/s, peak RSS **{} MiB** (upstream: 0.48 vCPU and 23 MB per 1000 req/s; \
                 our targets: below 0.1 cores and 15 MB).",
                spread(cores, 3),
                number(rss, 1),
            );
        }
    }
}

/// Renders the generated part of the document.
pub fn render(results: &Results, bench: &Bench, machine: &str, took: Duration) -> String {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Latest run: {} on {machine}; {} rounds of {} s per variant; the whole command took {:.1} min.",
        date.trim(),
        bench.rounds,
        bench.window.as_secs(),
        took.as_secs_f64() / 60.0
    );
    let _ = writeln!(out, "Cells read `median (min–max)` over the rounds.");
    invocation_table(
        &mut out,
        "Service invocation over HTTP (1 KiB request and reply)",
        &results.invoke_http,
    );
    invocation_table(
        &mut out,
        "Service invocation over gRPC (1 KiB, `InvokeService` → gRPC app)",
        &results.invoke_grpc,
    );
    if !results.state.is_empty() {
        let _ = writeln!(out, "\n### State, 1 KiB values, 16 in flight\n");
        let _ = writeln!(out, "| path | operation | ops/s | p50 ms | p99 ms |");
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for row in &results.state {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                row.path,
                row.operation,
                spread(row.throughput, 0),
                spread(row.p50, 3),
                spread(row.p99, 3)
            );
        }
    }
    if !results.pubsub.is_empty() {
        let _ = writeln!(
            out,
            "\n### Pub/sub, publish over HTTP to delivery to an HTTP app\n"
        );
        let _ = writeln!(out, "| broker | delivered msg/s | p50 ms | p99 ms |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for row in &results.pubsub {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                row.broker,
                spread(row.throughput, 0),
                spread(row.p50, 2),
                spread(row.p99, 2)
            );
        }
    }
    if !results.startup.is_empty() {
        let _ = writeln!(out, "\n### Start-up and idle memory\n");
        let _ = writeln!(
            out,
            "| binary | exec to healthy, ms | idle RSS, MiB | upstream RSS |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for row in &results.startup {
            let upstream = match row.binary.as_str() {
                "operator" => "12.5 MB",
                "sentry" => "13.6 MB",
                "injector" => "14.6 MB",
                "placement" => "20.9 MB",
                _ => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {upstream} |",
                row.binary,
                spread(row.ready_ms, 1),
                spread(row.idle_rss_mib, 1)
            );
        }
    }
    out
}

/// Replaces the generated part of `path` with `table` (appending the markers when the
/// document has none).
pub fn write(path: &Path, table: &str) -> Result<()> {
    let document = std::fs::read_to_string(path).unwrap_or_default();
    let generated = format!("{START}\n{table}{END}\n");
    let updated = match (document.find(START), document.find(END)) {
        (Some(start), Some(end)) if end > start => {
            let after = &document[end + END.len()..];
            format!(
                "{}{generated}{}",
                &document[..start],
                after.strip_prefix('\n').unwrap_or(after)
            )
        }
        _ => format!("{document}\n{generated}"),
    };
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}
