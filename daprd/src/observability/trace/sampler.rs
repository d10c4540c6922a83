//! `spec.tracing.samplingRate`: a decimal string from "0" (tracing off) to "1" (every
//! trace). Like upstream, a rate that does not parse (including an unset one) means
//! 1 in 10,000, and a call continuing a trace follows its parent's sampling decision.

use opentelemetry_sdk::trace::Sampler;

/// The rate used when `samplingRate` is unset or not a number.
pub const DEFAULT_SAMPLING_RATE: f64 = 1e-4;

/// The sampling rate `text` asks for.
pub fn sampling_rate(text: &str) -> f64 {
    text.parse().unwrap_or(DEFAULT_SAMPLING_RATE)
}

/// Whether tracing is on at all: only an explicit rate of zero turns it off.
pub fn is_tracing_enabled(text: &str) -> bool {
    sampling_rate(text) != 0.0
}

/// The sampler: the parent's decision when there is a parent, else the rate.
pub fn sampler(text: &str) -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(sampling_rate(text))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_like_upstream() {
        assert_eq!(sampling_rate("1"), 1.0);
        assert_eq!(sampling_rate("0.5"), 0.5);
        assert_eq!(sampling_rate(""), DEFAULT_SAMPLING_RATE);
        assert_eq!(sampling_rate("often"), DEFAULT_SAMPLING_RATE);
        assert!(is_tracing_enabled(""));
        assert!(!is_tracing_enabled("0"));
        assert!(!is_tracing_enabled("0.0"));
    }
}
