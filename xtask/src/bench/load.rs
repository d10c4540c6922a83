//! Load generation: an open-loop generator that sends at a fixed rate and measures each
//! latency from the moment the request was due (so a stalled server is charged for the
//! requests it delayed: no coordinated omission), and a closed-loop one that keeps a fixed
//! number of requests in flight for maximum throughput. Both drive any async call.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Most requests in flight in open-loop mode; beyond it the generator itself waits (and
/// the waiting is charged to the latencies).
const MAX_IN_FLIGHT: usize = 512;

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Latencies of the successful calls, in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// Calls that failed.
    pub errors: u64,
    /// The run's wall time.
    pub elapsed: Duration,
}

impl Sample {
    /// Successful calls per second.
    pub fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `quantile` (0-1) latency in milliseconds.
    pub fn percentile_ms(&self, quantile: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((self.latencies_us.len() as f64 - 1.0) * quantile).round() as usize;
        self.latencies_us[rank.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }
}

fn finish(mut latencies_us: Vec<u64>, errors: u64, elapsed: Duration) -> Sample {
    latencies_us.sort_unstable();
    Sample {
        latencies_us,
        errors,
        elapsed,
    }
}

/// Calls `call` `rate` times a second for `duration`.
pub async fn open_loop<F, Fut>(rate: u32, duration: Duration, call: F) -> Sample
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let call = Arc::new(call);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let total = (duration.as_secs_f64() * f64::from(rate)) as u64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..total {
        let due = started + interval.mul_f64(index as f64);
        tokio::time::sleep_until(due.into()).await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let call = call.clone();
        tasks.spawn(async move {
            let succeeded = call().await;
            drop(slot);
            (succeeded, due.elapsed())
        });
    }
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((true, latency)) => latencies.push(latency.as_micros() as u64),
            _ => errors += 1,
        }
    }
    finish(latencies, errors, started.elapsed())
}

/// Keeps `concurrency` calls in flight for `duration`.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, call: F) -> Sample
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let call = call.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                if call().await {
                    latencies.push(sent.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(joined) = workers.join_next().await {
        if let Ok((mut worker_latencies, worker_errors)) = joined {
            latencies.append(&mut worker_latencies);
            errors += worker_errors;
        }
    }
    finish(latencies, errors, started.elapsed())
}

/// The median of `values` (NaN when empty).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => values[len / 2],
        len => (values[len / 2 - 1] + values[len / 2]) / 2.0,
    }
}
