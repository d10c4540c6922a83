//! Retry policies: the delay sequence (`constant` or `exponential`) and which failures are
//! worth another attempt (`matching.httpStatusCodes` / `gRPCStatusCodes`).

use std::ops::RangeInclusive;

use dapr_kit::backoff::{BackoffPolicy, ConstantBackoff, Delays, ExponentialBackoff};
use dapr_resources::resiliency::Retry;

use super::errors::FieldError;

/// HTTP status codes a matching list may name.
const HTTP_CODES: RangeInclusive<i32> = 100..=599;
/// gRPC status codes a matching list may name.
const GRPC_CODES: RangeInclusive<i32> = 0..=16;

/// A compiled retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    backoff: BackoffPolicy,
    matching: StatusMatching,
}

/// The status codes that are retried; `None` for a protocol retries every code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusMatching {
    http: Option<Vec<RangeInclusive<i32>>>,
    grpc: Option<Vec<RangeInclusive<i32>>>,
}

impl StatusMatching {
    /// Whether a failure with status `code` is retried: codes 0-16 are gRPC codes,
    /// 100-599 HTTP statuses (upstream's rule); other codes never are.
    pub fn retries(&self, code: i32) -> bool {
        let ranges = if GRPC_CODES.contains(&code) {
            &self.grpc
        } else if HTTP_CODES.contains(&code) {
            &self.http
        } else {
            return false;
        };
        ranges
            .as_ref()
            .is_none_or(|ranges| ranges.iter().any(|range| range.contains(&code)))
    }
}

impl RetryPolicy {
    /// A policy from its delays, retrying every failure.
    pub fn new(backoff: BackoffPolicy) -> Self {
        Self {
            backoff,
            matching: StatusMatching::default(),
        }
    }

    /// Compiles `retry` as upstream reads it; errors name the field (relative to the
    /// policy) and why.
    pub fn compile(retry: &Retry) -> Result<Self, FieldError> {
        let max_retries = match retry.max_retries {
            None => None,
            Some(count) if count < 0 => None,
            Some(count) => Some(count.unsigned_abs()),
        };
        let backoff = match retry.policy.to_ascii_lowercase().as_str() {
            "" | "constant" => {
                let mut constant = ConstantBackoff {
                    max_retries,
                    ..ConstantBackoff::default()
                };
                if !retry.duration.is_empty() {
                    constant.interval = duration("duration", &retry.duration)?;
                }
                BackoffPolicy::Constant(constant)
            }
            "exponential" => {
                let mut exponential = ExponentialBackoff {
                    max_retries,
                    ..ExponentialBackoff::default()
                };
                if !retry.max_interval.is_empty() {
                    exponential.max_interval = duration("maxInterval", &retry.max_interval)?;
                }
                if !retry.initial_interval.is_empty() {
                    exponential.initial_interval =
                        duration("initialInterval", &retry.initial_interval)?;
                }
                if let Some(multiplier) = retry.multiplier {
                    if !(multiplier.is_finite() && multiplier >= 1.0) {
                        return Err(FieldError::new(
                            "multiplier",
                            format!("{multiplier} must be a number of at least 1"),
                        ));
                    }
                    exponential.multiplier = multiplier;
                }
                if let Some(factor) = retry.randomization_factor {
                    if !(0.0..=1.0).contains(&factor) {
                        return Err(FieldError::new(
                            "randomizationFactor",
                            format!("{factor} must be between 0 and 1"),
                        ));
                    }
                    exponential.randomization_factor = factor;
                }
                BackoffPolicy::Exponential(exponential)
            }
            other => {
                return Err(FieldError::new(
                    "policy",
                    format!("unexpected back off policy type: {other}"),
                ));
            }
        };
        let mut matching = StatusMatching::default();
        if let Some(conditions) = &retry.matching {
            matching.http = code_ranges(
                "matching.httpStatusCodes",
                &conditions.http_status_codes,
                &HTTP_CODES,
            )?;
            matching.grpc = code_ranges(
                "matching.gRPCStatusCodes",
                &conditions.grpc_status_codes,
                &GRPC_CODES,
            )?;
        }
        Ok(Self { backoff, matching })
    }

    /// A fresh sequence of waits between attempts.
    pub fn delays(&self) -> Delays {
        self.backoff.delays()
    }

    /// The delays alone, for callers that run their own loop.
    pub fn backoff(&self) -> &BackoffPolicy {
        &self.backoff
    }

    /// Which status codes are retried.
    pub fn matching(&self) -> &StatusMatching {
        &self.matching
    }

    /// Whether the policy allows any retry (`maxRetries` is not 0).
    pub fn retries_at_all(&self) -> bool {
        let max_retries = match &self.backoff {
            BackoffPolicy::Constant(constant) => constant.max_retries,
            BackoffPolicy::Exponential(exponential) => exponential.max_retries,
        };
        max_retries != Some(0)
    }

    /// Raises a policy's retry count to at least `minimum` (built-in policies may not be
    /// weakened below upstream's floor).
    pub fn with_minimum_retries(mut self, minimum: u64) -> Self {
        let max_retries = match &mut self.backoff {
            BackoffPolicy::Constant(constant) => &mut constant.max_retries,
            BackoffPolicy::Exponential(exponential) => &mut exponential.max_retries,
        };
        if let Some(count) = max_retries
            && *count < minimum
        {
            *count = minimum;
        }
        self
    }
}

/// A Go duration, or a whole number of milliseconds as upstream also accepts.
pub(super) fn duration(field: &'static str, text: &str) -> Result<std::time::Duration, FieldError> {
    if let Ok(millis) = text.trim().parse::<u64>() {
        return Ok(std::time::Duration::from_millis(millis));
    }
    dapr_kit::duration::parse(text.trim())
        .map_err(|error| FieldError::new(field, format!("invalid duration {text:?}: {error}")))
}

/// `500,502-504` as ranges within `valid`; `None` when the list is empty.
fn code_ranges(
    field: &'static str,
    text: &str,
    valid: &RangeInclusive<i32>,
) -> Result<Option<Vec<RangeInclusive<i32>>>, FieldError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let invalid = |reason: String| FieldError::new(field, reason);
    let mut ranges = Vec::new();
    for pattern in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let mut bounds = pattern.split('-');
        let parse = |bound: Option<&str>| -> Result<Option<i32>, FieldError> {
            bound
                .map(|bound| {
                    bound.trim().parse::<i32>().map_err(|_| {
                        invalid(format!(
                            "invalid pattern {pattern}: {bound:?} is not a code"
                        ))
                    })
                })
                .transpose()
        };
        let start = parse(bounds.next())?.unwrap_or_default();
        let end = parse(bounds.next())?.unwrap_or(start);
        if bounds.next().is_some() {
            return Err(invalid(format!(
                "invalid pattern {pattern}, more than one '-' exists"
            )));
        }
        for code in [start, end] {
            if !valid.contains(&code) {
                return Err(invalid(format!(
                    "invalid pattern {pattern}, code {code} is not valid"
                )));
            }
        }
        if end < start {
            return Err(invalid(format!(
                "invalid pattern {pattern}, start value should not be bigger than end value"
            )));
        }
        ranges.push(start..=end);
    }
    Ok(Some(ranges))
}
