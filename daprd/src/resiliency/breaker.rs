//! Circuit breakers with upstream's semantics (those of the breaker library it uses):
//! closed until the `trip` condition holds after a failure, then open for `timeout`, then
//! half-open letting `maxRequests` trial calls through; that many successes in a row close
//! it, one failure opens it again. While closed, the counts restart every `interval`
//! (never when it is 0). The `trip` condition is a CEL expression over `requests`,
//! `totalSuccesses`, `totalFailures`, `consecutiveSuccesses` and `consecutiveFailures`.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use cel::common::types::CelInt;
use cel::{Context, Env, Program, Value};
use dapr_resources::resiliency::CircuitBreaker as BreakerSpec;

use super::errors::FieldError;
use super::retry::duration;
use crate::observability::metrics::CircuitBreakerState;

/// Time spent open when the policy sets no `timeout` (upstream's library default).
const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(60);

static ENVIRONMENT: LazyLock<Arc<Env>> =
    LazyLock::new(|| Arc::new(Env::stdlib().with_optional_support(false)));

/// The counts a `trip` expression sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls let through in this generation.
    pub requests: u64,
    /// Successes in this generation.
    pub total_successes: u64,
    /// Failures in this generation.
    pub total_failures: u64,
    /// Successes since the last failure.
    pub consecutive_successes: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
}

impl Counts {
    fn succeeded(&mut self) {
        self.total_successes += 1;
        self.consecutive_successes += 1;
        self.consecutive_failures = 0;
    }

    fn failed(&mut self) {
        self.total_failures += 1;
        self.consecutive_failures += 1;
        self.consecutive_successes = 0;
    }
}

/// The condition that opens a closed breaker.
#[derive(Debug)]
enum Trip {
    /// A CEL expression.
    Expression(Program),
    /// Upstream's default: more than 5 failures in a row.
    Default,
}

impl Trip {
    fn holds(&self, counts: &Counts) -> bool {
        let Trip::Expression(program) = self else {
            return counts.consecutive_failures > 5;
        };
        match program.execute(&trip_context(counts)) {
            Ok(Value::Bool(holds)) => holds,
            // As upstream: an expression that fails or is not boolean never trips.
            _ => false,
        }
    }
}

fn trip_context(counts: &Counts) -> Context<'static, 'static> {
    let mut context = Context::with_env(Arc::clone(&ENVIRONMENT));
    let variables = [
        ("requests", counts.requests),
        ("totalSuccesses", counts.total_successes),
        ("totalFailures", counts.total_failures),
        ("consecutiveSuccesses", counts.consecutive_successes),
        ("consecutiveFailures", counts.consecutive_failures),
    ];
    for (name, value) in variables {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        context.add_variable_as_val(name, Box::new(CelInt::from(value)));
    }
    context
}

/// A breaker policy as written, shared by every breaker made from it.
#[derive(Debug)]
pub struct BreakerTemplate {
    max_requests: u64,
    interval: Duration,
    timeout: Duration,
    trip: Trip,
}

impl BreakerTemplate {
    /// Compiles `spec`; errors name the field (relative to the policy).
    pub fn compile(spec: &BreakerSpec) -> Result<Self, FieldError> {
        let max_requests = match spec.max_requests {
            count if count < 0 => {
                return Err(FieldError::new(
                    "maxRequests",
                    format!("{count} must not be negative"),
                ));
            }
            0 => 1,
            count => count.unsigned_abs(),
        };
        let interval = if spec.interval.is_empty() {
            Duration::ZERO
        } else {
            duration("interval", &spec.interval)?
        };
        let timeout = match spec.timeout.as_str() {
            "" => DEFAULT_OPEN_TIMEOUT,
            text => match duration("timeout", text)? {
                Duration::ZERO => DEFAULT_OPEN_TIMEOUT,
                timeout => timeout,
            },
        };
        let trip = match spec.trip.trim() {
            "" => Trip::Default,
            expression => {
                let program = ENVIRONMENT.compile(expression).map_err(|errors| {
                    FieldError::new(
                        "trip",
                        format!("invalid expression {expression:?}: {errors}"),
                    )
                })?;
                // Evaluated once on empty counts so unknown names and non-boolean results
                // are refused now rather than silently never tripping.
                match program.execute(&trip_context(&Counts::default())) {
                    Ok(Value::Bool(_)) => {}
                    Ok(other) => {
                        return Err(FieldError::new(
                            "trip",
                            format!(
                                "expression {expression:?} gives {:?}, not a boolean",
                                other.type_of()
                            ),
                        ));
                    }
                    Err(error) => {
                        return Err(FieldError::new(
                            "trip",
                            format!("expression {expression:?} cannot be evaluated: {error}"),
                        ));
                    }
                }
                Trip::Expression(program)
            }
        };
        Ok(Self {
            max_requests,
            interval,
            timeout,
            trip,
        })
    }
}

/// Why a breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The breaker is open.
    Open,
    /// The breaker is half-open and its trial calls are taken.
    TooManyRequests,
}

/// A state change, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: CircuitBreakerState,
    /// The state after.
    pub to: CircuitBreakerState,
}

/// Permission to make one call, to be handed back with its outcome.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    generation: u64,
}

#[derive(Debug)]
struct BreakerState {
    state: CircuitBreakerState,
    generation: u64,
    counts: Counts,
    /// When the closed state's counts restart, or the open state ends.
    expiry: Option<Instant>,
}

/// One circuit breaker instance (per app, component or actor type).
#[derive(Debug)]
pub struct CircuitBreaker {
    template: Arc<BreakerTemplate>,
    state: Mutex<BreakerState>,
}

impl CircuitBreaker {
    /// A closed breaker following `template`.
    pub fn new(template: Arc<BreakerTemplate>) -> Self {
        let expiry =
            (template.interval > Duration::ZERO).then(|| Instant::now() + template.interval);
        Self {
            template,
            state: Mutex::new(BreakerState {
                state: CircuitBreakerState::Closed,
                generation: 0,
                counts: Counts::default(),
                expiry,
            }),
        }
    }

    /// The current state (an expired open state reads as half-open).
    pub fn state(&self) -> (CircuitBreakerState, Option<Transition>) {
        let mut guard = self.lock();
        let transition = self.refresh(&mut guard, Instant::now());
        (guard.state, transition)
    }

    /// Asks to make a call. `Err` when the breaker refuses it; the transition is an open
    /// breaker turning half-open.
    pub fn admit(&self) -> (Result<Ticket, Rejection>, Option<Transition>) {
        let mut guard = self.lock();
        let transition = self.refresh(&mut guard, Instant::now());
        let admitted = match guard.state {
            CircuitBreakerState::Open => Err(Rejection::Open),
            CircuitBreakerState::HalfOpen
                if guard.counts.requests >= self.template.max_requests =>
            {
                Err(Rejection::TooManyRequests)
            }
            _ => {
                guard.counts.requests += 1;
                Ok(Ticket {
                    generation: guard.generation,
                })
            }
        };
        (admitted, transition)
    }

    /// Reports the outcome of an admitted call; returns the state change it caused.
    pub fn record(&self, ticket: Ticket, succeeded: bool) -> Option<Transition> {
        let now = Instant::now();
        let mut guard = self.lock();
        let refreshed = self.refresh(&mut guard, now);
        if guard.generation != ticket.generation {
            // The call started in an earlier state; its outcome no longer counts.
            return refreshed;
        }
        let next = match (guard.state, succeeded) {
            (CircuitBreakerState::HalfOpen, true) => {
                guard.counts.succeeded();
                (guard.counts.consecutive_successes >= self.template.max_requests)
                    .then_some(CircuitBreakerState::Closed)
            }
            (CircuitBreakerState::HalfOpen, false) => Some(CircuitBreakerState::Open),
            (_, true) => {
                guard.counts.succeeded();
                None
            }
            (_, false) => {
                guard.counts.failed();
                self.template
                    .trip
                    .holds(&guard.counts)
                    .then_some(CircuitBreakerState::Open)
            }
        };
        next.map(|state| self.enter(&mut guard, state, now))
            .or(refreshed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies what time alone changes: a closed generation's end, an open state's end.
    fn refresh(&self, state: &mut BreakerState, now: Instant) -> Option<Transition> {
        let expired = state.expiry.is_some_and(|expiry| expiry <= now);
        match state.state {
            CircuitBreakerState::Closed if expired => {
                self.new_generation(state, now);
                None
            }
            CircuitBreakerState::Open if expired => {
                Some(self.enter(state, CircuitBreakerState::HalfOpen, now))
            }
            _ => None,
        }
    }

    fn enter(&self, state: &mut BreakerState, to: CircuitBreakerState, now: Instant) -> Transition {
        let from = state.state;
        state.state = to;
        self.new_generation(state, now);
        Transition { from, to }
    }

    fn new_generation(&self, state: &mut BreakerState, now: Instant) {
        state.generation += 1;
        state.counts = Counts::default();
        state.expiry = match state.state {
            CircuitBreakerState::Closed if self.template.interval > Duration::ZERO => {
                Some(now + self.template.interval)
            }
            CircuitBreakerState::Open => Some(now + self.template.timeout),
            _ => None,
        };
    }
}
