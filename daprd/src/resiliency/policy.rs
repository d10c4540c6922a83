//! Running one operation under the policies that apply to its target, nested as upstream
//! nests them: each attempt is bounded by the timeout and passes the circuit breaker; the
//! retry policy repeats failed attempts. A breaker that refuses a call ends the retries.
//! Metrics record each timeout that fired, each operation that needed retries, and each
//! breaker state change.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::breaker::{CircuitBreaker, Rejection, Transition};
use super::retry::RetryPolicy;
use crate::observability::metrics::{PolicyFlowDirection, PolicyRef, PolicyType, SidecarMetrics};

/// A policy with the name and namespace of the Resiliency resource defining it.
#[derive(Debug, Clone)]
pub struct Named<T> {
    /// The resource's name.
    pub resource: Arc<str>,
    /// The resource's namespace.
    pub namespace: Arc<str>,
    /// The policy.
    pub value: T,
}

/// A failed attempt, as the operation reports it.
#[derive(Debug)]
pub struct Failure<E> {
    /// The error to return if no attempt succeeds.
    pub error: E,
    /// The HTTP status or gRPC code of the failure, checked against the retry policy's
    /// `matching` lists; `None` for failures without one (always retried).
    pub status: Option<i32>,
    /// Whether trying again cannot help (the request cannot be replayed, the input is
    /// invalid); such failures still count for the circuit breaker.
    pub permanent: bool,
}

impl<E> Failure<E> {
    /// A failure another attempt may fix.
    pub fn transient(error: E) -> Self {
        Self {
            error,
            status: None,
            permanent: false,
        }
    }

    /// A failure with a status code, retried when the policy's `matching` lists allow.
    pub fn with_status(error: E, status: i32) -> Self {
        Self {
            error,
            status: Some(status),
            permanent: false,
        }
    }

    /// A failure not worth another attempt.
    pub fn permanent(error: E) -> Self {
        Self {
            error,
            status: None,
            permanent: true,
        }
    }
}

/// Why an operation run under a policy failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError<E> {
    /// The last attempt failed with this error.
    #[error("{0}")]
    Failed(E),
    /// The last attempt outlived the timeout policy.
    #[error("context deadline exceeded")]
    TimedOut,
    /// The circuit breaker is open.
    #[error("circuit breaker is open")]
    BreakerOpen,
    /// The circuit breaker is half-open and its trial calls are taken.
    #[error("too many requests")]
    TooManyRequests,
}

/// The policies that apply to one call, and where their metrics go.
#[derive(Debug, Clone)]
pub struct Policy {
    /// For logs: `app[orders]`, `component[store] output`.
    pub(super) name: String,
    /// The metrics `target` label.
    pub(super) target: String,
    pub(super) direction: PolicyFlowDirection,
    pub(super) timeout: Option<Named<Duration>>,
    pub(super) retry: Option<Named<Arc<RetryPolicy>>>,
    pub(super) breaker: Option<Named<Arc<CircuitBreaker>>>,
    pub(super) metrics: SidecarMetrics,
}

impl Policy {
    /// No policy: the operation runs once, as it is.
    pub fn none() -> Self {
        Self {
            name: String::new(),
            target: String::new(),
            direction: PolicyFlowDirection::Outbound,
            timeout: None,
            retry: None,
            breaker: None,
            metrics: SidecarMetrics::disabled(),
        }
    }

    /// Whether no policy applies.
    pub fn is_empty(&self) -> bool {
        self.timeout.is_none() && self.retry.is_none() && self.breaker.is_none()
    }

    /// Whether a failed attempt may be repeated (the request must then be replayable).
    pub fn has_retries(&self) -> bool {
        self.retry
            .as_ref()
            .is_some_and(|retry| retry.value.retries_at_all())
    }

    fn reference<'a, T>(&'a self, named: &'a Named<T>, policy: PolicyType) -> PolicyRef<'a> {
        PolicyRef {
            resiliency: &named.resource,
            namespace: &named.namespace,
            policy,
            direction: self.direction,
            target: &self.target,
        }
    }

    /// Counts the application of each policy (`dapr_resiliency_count`), as upstream does
    /// when it looks a policy up.
    pub(super) fn record_executed(&self) {
        if let Some(timeout) = &self.timeout {
            self.metrics
                .record_resiliency_executed(self.reference(timeout, PolicyType::Timeout), None);
        }
        if let Some(retry) = &self.retry {
            self.metrics
                .record_resiliency_executed(self.reference(retry, PolicyType::Retry), None);
        }
        if let Some(breaker) = &self.breaker {
            let (state, transition) = breaker.value.state();
            self.report(transition);
            self.metrics.record_resiliency_executed(
                self.reference(breaker, PolicyType::CircuitBreaker),
                Some(state),
            );
        }
    }

    /// Logs and counts a breaker's state change.
    fn report(&self, transition: Option<Transition>) {
        let (Some(transition), Some(breaker)) = (transition, &self.breaker) else {
            return;
        };
        tracing::info!(
            "circuit breaker {} of {} changed state from {} to {}",
            breaker.resource,
            self.name,
            transition.from.label(),
            transition.to.label()
        );
        let reference = self.reference(breaker, PolicyType::CircuitBreaker);
        self.metrics
            .record_resiliency_activated(reference, Some(transition.to));
        self.metrics
            .record_circuit_breaker_state(reference, transition.to);
    }

    /// A fresh sequence of waits of the retry policy; `None` without one.
    pub fn retry_delays(&self) -> Option<dapr_kit::backoff::Delays> {
        self.retry.as_ref().map(|retry| retry.value.delays())
    }

    /// Runs `operation` under the policy: each call of it is one attempt.
    pub async fn run<T, E, F, Fut>(&self, operation: F) -> Result<T, PolicyError<E>>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        self.run_until(None, operation).await
    }

    /// [`Policy::run`], except that no retry starts (and a pending wait ends) once `stop`
    /// turns true: the last failure is returned.
    pub async fn run_until<T, E, F, Fut>(
        &self,
        mut stop: Option<tokio::sync::watch::Receiver<bool>>,
        mut operation: F,
    ) -> Result<T, PolicyError<E>>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        let mut delays = self.retry.as_ref().map(|retry| retry.value.delays());
        let mut timeout_reported = false;
        let mut retry_reported = false;
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let (error, retryable) = match self.attempt(&mut operation, &mut timeout_reported).await
            {
                Ok(value) => {
                    if attempts > 1 {
                        tracing::info!(
                            "recovered processing operation {} after {attempts} attempts",
                            self.name
                        );
                    }
                    return Ok(value);
                }
                Err(failed) => failed,
            };
            let delay = match delays.as_mut() {
                Some(delays) if retryable => delays.next(),
                _ => None,
            };
            let Some(delay) = delay else {
                return Err(error);
            };
            if !retry_reported {
                retry_reported = true;
                if let Some(retry) = &self.retry {
                    self.metrics.record_resiliency_activated(
                        self.reference(retry, PolicyType::Retry),
                        None,
                    );
                }
                tracing::warn!(
                    "error processing operation {}, retrying in {delay:?}: {error}",
                    self.name
                );
            }
            match stop.as_mut() {
                Some(stop) => {
                    if *stop.borrow() {
                        return Err(error);
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stop.wait_for(|stopped| *stopped) => return Err(error),
                    }
                }
                None => tokio::time::sleep(delay).await,
            }
        }
    }

    /// One attempt; on failure, the error and whether the retry policy may repeat it.
    async fn attempt<T, E, F, Fut>(
        &self,
        operation: &mut F,
        timeout_reported: &mut bool,
    ) -> Result<T, (PolicyError<E>, bool)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        let ticket = match &self.breaker {
            Some(breaker) => {
                let (admitted, transition) = breaker.value.admit();
                self.report(transition);
                match admitted {
                    Ok(ticket) => Some(ticket),
                    Err(Rejection::Open) => return Err((PolicyError::BreakerOpen, false)),
                    Err(Rejection::TooManyRequests) => {
                        return Err((PolicyError::TooManyRequests, false));
                    }
                }
            }
            None => None,
        };
        let outcome = match &self.timeout {
            Some(timeout) => match tokio::time::timeout(timeout.value, operation()).await {
                Ok(outcome) => outcome.map_err(|failure| self.classify(failure)),
                Err(_) => {
                    if !*timeout_reported {
                        *timeout_reported = true;
                        self.metrics.record_resiliency_activated(
                            self.reference(timeout, PolicyType::Timeout),
                            None,
                        );
                    }
                    Err((PolicyError::TimedOut, true))
                }
            },
            None => operation().await.map_err(|failure| self.classify(failure)),
        };
        if let (Some(breaker), Some(ticket)) = (&self.breaker, ticket) {
            self.report(breaker.value.record(ticket, outcome.is_ok()));
        }
        outcome
    }

    fn classify<E>(&self, failure: Failure<E>) -> (PolicyError<E>, bool) {
        let retryable = !failure.permanent
            && match (failure.status, &self.retry) {
                (Some(status), Some(retry)) => retry.value.matching().retries(status),
                _ => true,
            };
        (PolicyError::Failed(failure.error), retryable)
    }
}
