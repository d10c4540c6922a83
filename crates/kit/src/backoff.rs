//! Retry delay sequences as upstream resiliency retry policies define them: a constant
//! interval, or an exponentially growing, randomized one, each optionally capped by a
//! number of retries (and, for exponential, by total elapsed time).
//!
//! A policy hands out [`Delays`], an iterator of the waits between attempts; `None` means
//! "stop retrying". With a randomization factor of 0 the sequence is deterministic.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// Which delay sequence a retry policy uses.
#[derive(Debug, Clone, PartialEq)]
pub enum BackoffPolicy {
    /// The same wait before every retry (upstream `policy: constant`).
    Constant(ConstantBackoff),
    /// Growing, randomized waits (upstream `policy: exponential`).
    Exponential(ExponentialBackoff),
}

impl BackoffPolicy {
    /// A fresh delay sequence; its elapsed-time clock starts now.
    pub fn delays(&self) -> Delays {
        match self {
            BackoffPolicy::Constant(constant) => constant.delays(),
            BackoffPolicy::Exponential(exponential) => exponential.delays(),
        }
    }
}

/// A fixed wait between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstantBackoff {
    /// The wait before each retry (upstream `duration`, default 5s).
    pub interval: Duration,
    /// How many retries at most; `None` retries forever (upstream `maxRetries: -1`).
    pub max_retries: Option<u64>,
}

impl Default for ConstantBackoff {
    fn default() -> Self {
        ConstantBackoff {
            interval: Duration::from_secs(5),
            max_retries: None,
        }
    }
}

impl ConstantBackoff {
    /// A fresh delay sequence.
    pub fn delays(&self) -> Delays {
        Delays::new(DelayState::Constant(self.interval), self.max_retries)
    }
}

/// Exponentially growing waits with jitter, capped per wait and in total.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialBackoff {
    /// The first wait before randomization (upstream `initialInterval`, default 500ms).
    pub initial_interval: Duration,
    /// Each wait is drawn uniformly from `interval * (1 ± factor)` (default 0.5; 0 disables
    /// jitter).
    pub randomization_factor: f64,
    /// How much the interval grows after each retry (default 1.5).
    pub multiplier: f64,
    /// The interval stops growing at this value (upstream `maxInterval`, default 60s);
    /// jitter can still take a single wait above it.
    pub max_interval: Duration,
    /// Stop once the time since the sequence started plus the next wait would exceed
    /// this (default 15m); `None` never stops for time (upstream `maxElapsedTime: 0`).
    pub max_elapsed_time: Option<Duration>,
    /// How many retries at most; `None` retries forever (upstream `maxRetries: -1`).
    pub max_retries: Option<u64>,
}

impl Default for ExponentialBackoff {
    fn default() -> Self {
        ExponentialBackoff {
            initial_interval: Duration::from_millis(500),
            randomization_factor: 0.5,
            multiplier: 1.5,
            max_interval: Duration::from_secs(60),
            max_elapsed_time: Some(Duration::from_secs(15 * 60)),
            max_retries: None,
        }
    }
}

impl ExponentialBackoff {
    /// A fresh delay sequence; its elapsed-time clock starts now.
    pub fn delays(&self) -> Delays {
        Delays::new(
            DelayState::Exponential {
                config: self.clone(),
                current_interval: self.initial_interval,
                jitter: Jitter::seeded(),
            },
            self.max_retries,
        )
    }
}

/// The waits between attempts of one operation. Once it yields `None` it stays exhausted.
#[derive(Debug, Clone)]
pub struct Delays {
    state: DelayState,
    max_retries: Option<u64>,
    retries_handed_out: u64,
    started: Instant,
    exhausted: bool,
}

#[derive(Debug, Clone)]
enum DelayState {
    Constant(Duration),
    Exponential {
        config: ExponentialBackoff,
        current_interval: Duration,
        jitter: Jitter,
    },
}

impl Delays {
    fn new(state: DelayState, max_retries: Option<u64>) -> Self {
        Delays {
            state,
            max_retries,
            retries_handed_out: 0,
            started: Instant::now(),
            exhausted: false,
        }
    }

    /// The next wait given how long the operation has been retried so far, or `None` to
    /// stop. The [`Iterator`] implementation passes the real time since creation or reset.
    pub fn next_delay(&mut self, elapsed: Duration) -> Option<Duration> {
        if self.exhausted {
            return None;
        }
        if self
            .max_retries
            .is_some_and(|max| self.retries_handed_out >= max)
        {
            self.exhausted = true;
            return None;
        }
        self.retries_handed_out += 1;

        let delay = match &mut self.state {
            DelayState::Constant(interval) => Some(*interval),
            DelayState::Exponential {
                config,
                current_interval,
                jitter,
            } => {
                let delay = randomized(
                    *current_interval,
                    config.randomization_factor,
                    jitter.next(),
                );
                *current_interval = grown(*current_interval, config);
                match config.max_elapsed_time {
                    Some(limit) if elapsed.saturating_add(delay) > limit => None,
                    _ => Some(delay),
                }
            }
        };
        self.exhausted = delay.is_none();
        delay
    }

    /// Starts over: first interval again, retry count and elapsed clock back to zero.
    pub fn reset(&mut self) {
        if let DelayState::Exponential {
            config,
            current_interval,
            ..
        } = &mut self.state
        {
            *current_interval = config.initial_interval;
        }
        self.retries_handed_out = 0;
        self.started = Instant::now();
        self.exhausted = false;
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let elapsed = self.started.elapsed();
        self.next_delay(elapsed)
    }
}

/// A value drawn uniformly from `[interval - delta, interval + delta]`, `delta =
/// factor * interval`, computed in float nanoseconds and truncated as upstream does.
fn randomized(interval: Duration, factor: f64, random: f64) -> Duration {
    if factor == 0.0 {
        return interval;
    }
    let nanos = interval.as_nanos() as f64;
    let delta = factor * nanos;
    let low = nanos - delta;
    let high = nanos + delta;
    float_nanos(low + random * (high - low + 1.0))
}

/// The interval after one more retry: multiplied, but never beyond the maximum.
fn grown(interval: Duration, config: &ExponentialBackoff) -> Duration {
    let nanos = interval.as_nanos() as f64;
    if nanos >= config.max_interval.as_nanos() as f64 / config.multiplier {
        config.max_interval
    } else {
        float_nanos(nanos * config.multiplier)
    }
}

/// Float nanoseconds to a `Duration`, truncating; negatives and NaN become zero.
fn float_nanos(nanos: f64) -> Duration {
    Duration::from_nanos(nanos as u64)
}

/// A small SplitMix64 generator for jitter; seeded from the process's hash randomness.
#[derive(Debug, Clone)]
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        Jitter(hasher.finish())
    }

    /// A uniform value in `[0, 1)`.
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^= mixed >> 31;
        (mixed >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn exponential_without_jitter_is_deterministic() {
        let policy = ExponentialBackoff {
            initial_interval: ms(100),
            randomization_factor: 0.0,
            multiplier: 2.0,
            max_interval: ms(1000),
            max_elapsed_time: None,
            max_retries: Some(7),
        };
        let delays: Vec<Duration> = policy.delays().collect();
        assert_eq!(
            delays,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
    }

    #[test]
    fn exponential_upstream_defaults_grow_by_one_and_a_half() {
        let policy = ExponentialBackoff {
            randomization_factor: 0.0,
            ..ExponentialBackoff::default()
        };
        let mut delays = policy.delays();
        let first: Vec<Duration> = (0..4)
            .map(|_| delays.next_delay(Duration::ZERO).unwrap())
            .collect();
        assert_eq!(
            first,
            [
                ms(500),
                ms(750),
                ms(1125),
                ms(1687) + Duration::from_micros(500)
            ]
        );
        // The interval caps at 60s.
        let later: Vec<Duration> = (0..20)
            .map(|_| delays.next_delay(Duration::ZERO).unwrap())
            .collect();
        assert_eq!(later.last(), Some(&Duration::from_secs(60)));
        assert!(later.iter().all(|d| *d <= Duration::from_secs(60)));
    }

    #[test]
    fn exponential_jitter_stays_within_the_randomization_window() {
        let policy = ExponentialBackoff {
            initial_interval: ms(1000),
            randomization_factor: 0.5,
            multiplier: 1.0,
            max_interval: ms(1000),
            max_elapsed_time: None,
            max_retries: Some(500),
        };
        let delays: Vec<Duration> = policy.delays().collect();
        assert_eq!(delays.len(), 500);
        assert!(
            delays.iter().all(|d| *d >= ms(500) && *d <= ms(1500)),
            "{delays:?}"
        );
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 400, "jitter should vary the waits");
    }

    #[test]
    fn exponential_stops_when_elapsed_time_would_pass_the_limit() {
        let policy = ExponentialBackoff {
            initial_interval: ms(100),
            randomization_factor: 0.0,
            multiplier: 2.0,
            max_interval: ms(10_000),
            max_elapsed_time: Some(ms(1000)),
            max_retries: None,
        };
        let mut delays = policy.delays();
        assert_eq!(delays.next_delay(ms(0)), Some(ms(100)));
        assert_eq!(delays.next_delay(ms(100)), Some(ms(200)));
        assert_eq!(delays.next_delay(ms(600)), Some(ms(400)));
        // 900ms elapsed + 800ms next wait > 1s.
        assert_eq!(delays.next_delay(ms(900)), None);
        assert_eq!(delays.next_delay(ms(0)), None, "stays exhausted");

        delays.reset();
        assert_eq!(delays.next_delay(ms(0)), Some(ms(100)), "reset starts over");
    }

    #[test]
    fn constant_repeats_until_max_retries() {
        let policy = BackoffPolicy::Constant(ConstantBackoff {
            interval: ms(250),
            max_retries: Some(3),
        });
        let mut delays = policy.delays();
        assert_eq!(delays.by_ref().collect::<Vec<_>>(), [ms(250); 3]);
        assert_eq!(delays.next(), None);
        delays.reset();
        assert_eq!(delays.count(), 3);
    }

    #[test]
    fn zero_max_retries_never_retries_and_none_is_unbounded() {
        let none = ConstantBackoff {
            interval: ms(1),
            max_retries: Some(0),
        };
        assert_eq!(none.delays().next(), None);

        let unbounded = ConstantBackoff::default();
        assert_eq!(unbounded.interval, Duration::from_secs(5));
        assert_eq!(unbounded.delays().take(1000).count(), 1000);
    }
}
