//! Go `time.Duration` text: parsing with `time.ParseDuration` rules and formatting like
//! `Duration.String()`, plus serde adapters so resource fields read and write Go strings.
//!
//! Differences from Go, both forced by `std::time::Duration` being unsigned:
//! negative durations (other than a negative zero such as "-0s") are rejected with
//! [`DurationError::Negative`], and the upper limit is Go's (`i64::MAX` nanoseconds,
//! see [`MAX`]) so every accepted value round-trips through Go.

use std::time::Duration;

/// The largest duration Go can represent: `i64::MAX` nanoseconds (about 292 years).
pub const MAX: Duration = Duration::from_nanos(i64::MAX as u64);

/// Go's magnitude limit while accumulating: 1<<63 (fits a negative `i64::MIN`).
const MAGNITUDE_LIMIT: u64 = 1 << 63;

const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1_000 * NANOSECOND;
const MILLISECOND: u64 = 1_000 * MICROSECOND;
const SECOND: u64 = 1_000 * MILLISECOND;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// Why a duration string was rejected. Messages quote the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty or not of the form `[sign](number unit)+`.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A number had no unit after it (only a lone "0" may omit the unit).
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit other than ns, us, µs, μs, ms, s, m, h.
    #[error("unknown unit {unit:?} in duration {text:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        text: String,
    },
    /// The value exceeds Go's largest duration (`i64::MAX` nanoseconds).
    #[error("duration {0:?} is larger than the maximum of 2562047h47m16.854775807s")]
    Overflow(String),
    /// The value is below zero, which no Dapr setting accepts.
    #[error("duration {0:?} is negative")]
    Negative(String),
}

/// Parses a Go duration string such as "1m30s", "500ms", "1.5h", ".5s" or "0".
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
    let overflow = || DurationError::Overflow(text.to_owned());

    let mut rest = text;
    let mut negative = false;
    if let Some(sign) = rest.chars().next()
        && (sign == '-' || sign == '+')
    {
        negative = sign == '-';
        rest = &rest[1..];
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }

    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }

        let (whole, consumed) = leading_int(rest.as_bytes()).ok_or_else(overflow)?;
        let has_whole = consumed > 0;
        rest = &rest[consumed..];

        let mut fraction = Fraction::default();
        let mut has_fraction = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            fraction = leading_fraction(after_dot.as_bytes());
            has_fraction = fraction.consumed > 0;
            rest = &after_dot[fraction.consumed..];
        }
        if !has_whole && !has_fraction {
            return Err(invalid());
        }

        let unit_len = rest
            .bytes()
            .position(|b| b == b'.' || b.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(text.to_owned()));
        }
        let unit_text = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit = unit_nanos(unit_text).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_text.to_owned(),
            text: text.to_owned(),
        })?;

        if whole > MAGNITUDE_LIMIT / unit {
            return Err(overflow());
        }
        let mut value = whole * unit;
        if fraction.digits > 0 {
            // Go scales the fraction in float64 and truncates; keep that rounding exactly.
            let scaled = (fraction.digits as f64 * (unit as f64 / fraction.scale)) as u64;
            value = value.checked_add(scaled).ok_or_else(overflow)?;
            if value > MAGNITUDE_LIMIT {
                return Err(overflow());
            }
        }
        total = total.checked_add(value).ok_or_else(overflow)?;
        if total > MAGNITUDE_LIMIT {
            return Err(overflow());
        }
    }

    if negative {
        return if total == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(DurationError::Negative(text.to_owned()))
        };
    }
    if total > i64::MAX as u64 {
        return Err(overflow());
    }
    Ok(Duration::from_nanos(total))
}

/// Nanoseconds per unit, for the units Go accepts.
fn unit_nanos(unit: &str) -> Option<u64> {
    match unit {
        "ns" => Some(NANOSECOND),
        // U+00B5 micro sign and U+03BC Greek small letter mu are both accepted.
        "us" | "\u{b5}s" | "\u{3bc}s" => Some(MICROSECOND),
        "ms" => Some(MILLISECOND),
        "s" => Some(SECOND),
        "m" => Some(MINUTE),
        "h" => Some(HOUR),
        _ => None,
    }
}

/// Reads leading ASCII digits; `None` when the number exceeds 1<<63.
fn leading_int(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut consumed = 0;
    for &byte in bytes {
        if !byte.is_ascii_digit() {
            break;
        }
        if value > MAGNITUDE_LIMIT / 10 {
            return None;
        }
        value = value * 10 + u64::from(byte - b'0');
        if value > MAGNITUDE_LIMIT {
            return None;
        }
        consumed += 1;
    }
    Some((value, consumed))
}

/// The digits after a decimal point: `digits / scale` is the fractional value.
#[derive(Debug, Default)]
struct Fraction {
    digits: u64,
    scale: f64,
    consumed: usize,
}

/// Reads fraction digits; like Go, digits beyond `i64` precision are consumed but ignored.
fn leading_fraction(bytes: &[u8]) -> Fraction {
    let mut fraction = Fraction {
        digits: 0,
        scale: 1.0,
        consumed: 0,
    };
    let mut saturated = false;
    for &byte in bytes {
        if !byte.is_ascii_digit() {
            break;
        }
        fraction.consumed += 1;
        if saturated {
            continue;
        }
        if fraction.digits > i64::MAX as u64 / 10 {
            saturated = true;
            continue;
        }
        let next = fraction.digits * 10 + u64::from(byte - b'0');
        if next > i64::MAX as u64 {
            saturated = true;
            continue;
        }
        fraction.digits = next;
        fraction.scale *= 10.0;
    }
    fraction
}

/// Formats like Go's `Duration.String()`: "0s", "1ns", "1.5µs", "500ms", "1m30s", "1h0m0s".
pub fn format(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < u128::from(MICROSECOND) {
        return format!("{nanos}ns");
    }
    if nanos < u128::from(MILLISECOND) {
        return format!(
            "{}{}\u{b5}s",
            nanos / 1_000,
            fraction_text(nanos % 1_000, 3)
        );
    }
    if nanos < u128::from(SECOND) {
        return format!(
            "{}{}ms",
            nanos / 1_000_000,
            fraction_text(nanos % 1_000_000, 6)
        );
    }

    let total_seconds = nanos / u128::from(SECOND);
    let seconds = format!(
        "{}{}s",
        total_seconds % 60,
        fraction_text(nanos % u128::from(SECOND), 9)
    );
    let total_minutes = total_seconds / 60;
    if total_minutes == 0 {
        return seconds;
    }
    let hours = total_minutes / 60;
    if hours == 0 {
        return format!("{total_minutes}m{seconds}");
    }
    format!("{hours}h{}m{seconds}", total_minutes % 60)
}

/// ".5", ".25" etc. for `value` of `precision` digits; empty when the fraction is zero.
fn fraction_text(value: u128, precision: usize) -> String {
    if value == 0 {
        return String::new();
    }
    let padded = format!("{value:0precision$}");
    format!(".{}", padded.trim_end_matches('0'))
}

/// Reads a Go duration from a string, or (as Go's JSON does for `time.Duration`) from an
/// integer count of nanoseconds.
struct GoDurationVisitor;

impl serde::de::Visitor<'_> for GoDurationVisitor {
    type Value = Duration;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a Go duration string such as \"1m30s\" or integer nanoseconds")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Duration, E> {
        parse(value).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Duration, E> {
        if value > i64::MAX as u64 {
            return Err(E::custom(DurationError::Overflow(value.to_string())));
        }
        Ok(Duration::from_nanos(value))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Duration, E> {
        u64::try_from(value)
            .map(Duration::from_nanos)
            .map_err(|_| E::custom(DurationError::Negative(value.to_string())))
    }
}

/// A `Duration` that deserializes from Go duration text (used for the optional adapter).
struct GoDuration(Duration);

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(GoDurationVisitor)
            .map(GoDuration)
    }
}

/// `#[serde(with = "dapr_kit::duration::serde_go")]` for a `Duration` field written as a
/// Go duration string ("5s"); integers are read as nanoseconds.
pub mod serde_go {
    use std::time::Duration;

    /// Writes the duration as Go text.
    pub fn serialize<S: serde::Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*duration))
    }

    /// Reads Go duration text (or integer nanoseconds).
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(super::GoDurationVisitor)
    }
}

/// `#[serde(default, with = "dapr_kit::duration::serde_go_opt")]` for an `Option<Duration>`
/// field: null or absent is `None` (absence needs `default`), otherwise as [`serde_go`].
pub mod serde_go_opt {
    use std::time::Duration;

    use serde::Deserialize;

    /// Writes `Some` as Go text and `None` as null.
    pub fn serialize<S: serde::Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_some(&super::format(*duration)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads null as `None` and Go duration text (or integer nanoseconds) as `Some`.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<super::GoDuration>::deserialize(deserializer)?.map(|go| go.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn parses_go_examples() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("-0s", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("30s", Duration::from_secs(30)),
            ("1478s", Duration::from_secs(1478)),
            ("+5s", Duration::from_secs(5)),
            ("5.0s", Duration::from_secs(5)),
            ("5.6s", ms(5600)),
            ("5.s", Duration::from_secs(5)),
            (".5s", ms(500)),
            ("1.0s", Duration::from_secs(1)),
            ("1.00s", Duration::from_secs(1)),
            ("1.004s", ms(1004)),
            ("1.0040s", ms(1004)),
            ("100.00100s", Duration::from_micros(100_001_000)),
            ("10ns", Duration::from_nanos(10)),
            ("11us", Duration::from_micros(11)),
            ("12\u{b5}s", Duration::from_micros(12)),
            ("12\u{3bc}s", Duration::from_micros(12)),
            ("13ms", ms(13)),
            ("300ms", ms(300)),
            ("14s", Duration::from_secs(14)),
            ("15m", Duration::from_secs(15 * 60)),
            ("16h", Duration::from_secs(16 * 3600)),
            ("1.5h", Duration::from_secs(5400)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("1m30s", Duration::from_secs(90)),
            ("3h30m", Duration::from_secs(3 * 3600 + 30 * 60)),
            ("10.5s4m", Duration::from_secs(4 * 60) + ms(10_500)),
            ("1h2m3s4ms5us6ns", Duration::from_nanos(3_723_004_005_006)),
            ("39h9m14.425s", ms(140_954_425)),
            ("52763797000ns", Duration::from_nanos(52_763_797_000)),
            ("0.3333333333333333333h", Duration::from_secs(20 * 60)),
            (
                "9007199254740993ns",
                Duration::from_nanos(9_007_199_254_740_993),
            ),
            ("9223372036854775807ns", MAX),
            ("9223372036854775.807us", MAX),
            ("9223372036s854ms775us807ns", MAX),
            // Fraction digits beyond int64 precision are ignored, not an error.
            ("0.100000000000000000000h", Duration::from_secs(6 * 60)),
            (
                "0.830103483285477580700h",
                Duration::from_nanos(2_988_372_539_827),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(*expected), "parse({text:?})");
        }
    }

    #[test]
    fn rejects_bad_input() {
        let invalid = [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "\u{85}\u{85}",
            "1.5.s",
        ];
        for text in invalid {
            assert!(parse(text).is_err(), "parse({text:?}) should fail");
        }
        assert_eq!(parse(""), Err(DurationError::Invalid(String::new())));
        assert_eq!(parse("-"), Err(DurationError::Invalid("-".into())));
        assert_eq!(parse("s"), Err(DurationError::Invalid("s".into())));
        assert_eq!(parse(".s"), Err(DurationError::Invalid(".s".into())));
        assert_eq!(parse("3"), Err(DurationError::MissingUnit("3".into())));
        assert_eq!(parse("1h3"), Err(DurationError::MissingUnit("1h3".into())));
        assert_eq!(
            parse("1d"),
            Err(DurationError::UnknownUnit {
                unit: "d".into(),
                text: "1d".into()
            })
        );
        assert_eq!(
            parse("5 s"),
            Err(DurationError::UnknownUnit {
                unit: " s".into(),
                text: "5 s".into()
            })
        );
        assert_eq!(
            parse("1.5.s"),
            Err(DurationError::MissingUnit("1.5.s".into()))
        );
    }

    #[test]
    fn rejects_overflow() {
        for text in [
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "3000000h",
            "2562048h",
            "9223372036854775807ns1ns",
            "99999999999999999999999s",
            "0.9223372036854775808s9223372036s",
        ] {
            assert_eq!(
                parse(text),
                Err(DurationError::Overflow(text.into())),
                "parse({text:?})"
            );
        }
        assert_eq!(
            parse("2562047h47m16.854775807s"),
            Ok(MAX),
            "the largest Go duration parses"
        );
    }

    #[test]
    fn rejects_negative_values() {
        for text in ["-2s", "-1ns", "-1.5h", "-0.1s"] {
            assert_eq!(parse(text), Err(DurationError::Negative(text.into())));
        }
    }

    #[test]
    fn error_messages_quote_the_input() {
        assert_eq!(
            parse("1d").unwrap_err().to_string(),
            "unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(parse("").unwrap_err().to_string(), "invalid duration \"\"");
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_100), "1.1\u{b5}s"),
            (Duration::from_micros(2), "2\u{b5}s"),
            (Duration::from_nanos(2_200_000), "2.2ms"),
            (ms(500), "500ms"),
            (ms(300), "300ms"),
            (Duration::from_nanos(999_999_999), "999.999999ms"),
            (Duration::from_nanos(3_300_000_000), "3.3s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(4 * 60 + 5), "4m5s"),
            (Duration::from_millis(4 * 60_000 + 5_001), "4m5.001s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (
                Duration::from_secs(5 * 3600 + 6 * 60 + 7) + ms(1),
                "5h6m7.001s",
            ),
            (
                Duration::from_secs(8 * 3600) + Duration::from_nanos(1),
                "8h0m0.000000001s",
            ),
            (MAX, "2562047h47m16.854775807s"),
        ];
        for (duration, expected) in cases {
            assert_eq!(format(*duration), *expected, "format({duration:?})");
        }
    }

    #[test]
    fn format_and_parse_round_trip() {
        for text in [
            "0s",
            "1ns",
            "1.5\u{b5}s",
            "500ms",
            "1m30s",
            "1h0m0s",
            "2h45m0s",
            "16.5s",
        ] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Policy {
        #[serde(with = "serde_go")]
        duration: Duration,
        #[serde(
            default,
            with = "serde_go_opt",
            skip_serializing_if = "Option::is_none"
        )]
        max_interval: Option<Duration>,
    }

    #[test]
    fn serde_adapters_read_and_write_go_strings() {
        let policy: Policy =
            serde_json::from_str(r#"{"duration":"1m30s","max_interval":"1.5h"}"#).unwrap();
        assert_eq!(
            policy,
            Policy {
                duration: Duration::from_secs(90),
                max_interval: Some(Duration::from_secs(5400)),
            }
        );
        assert_eq!(
            serde_json::to_string(&policy).unwrap(),
            r#"{"duration":"1m30s","max_interval":"1h30m0s"}"#
        );

        let absent: Policy = serde_json::from_str(r#"{"duration":"5s"}"#).unwrap();
        assert_eq!(absent.max_interval, None);
        let null: Policy =
            serde_json::from_str(r#"{"duration":"5s","max_interval":null}"#).unwrap();
        assert_eq!(null.max_interval, None);

        let nanos: Policy = serde_json::from_str(r#"{"duration":1500000000}"#).unwrap();
        assert_eq!(nanos.duration, ms(1500));

        let error = serde_json::from_str::<Policy>(r#"{"duration":"5x"}"#).unwrap_err();
        assert!(error.to_string().contains("unknown unit \"x\""), "{error}");
        assert!(serde_json::from_str::<Policy>(r#"{"duration":-5}"#).is_err());
        assert!(
            serde_json::from_str::<Policy>(r#"{"duration":"5s","max_interval":"-1s"}"#).is_err()
        );
    }
}
