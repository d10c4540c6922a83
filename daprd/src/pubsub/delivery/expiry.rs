//! Whether a received CloudEvent's `expiration` (RFC 3339, as publishers with a TTL set
//! it) has passed. Text that is not an RFC 3339 time never expires, as upstream treats it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Whether `expiration` names an instant before `now`.
pub fn has_expired(expiration: &str, now: SystemTime) -> bool {
    let Some(at) = parse_rfc3339(expiration) else {
        return false;
    };
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => (
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            since.subsec_nanos(),
        ),
        Err(_) => return false,
    };
    at < now
}

/// Seconds since the epoch and the nanoseconds within the second of an RFC 3339 time
/// (`2026-11-22T10:00:00Z`, `...T10:00:00.25+01:00`).
fn parse_rfc3339(text: &str) -> Option<(i64, u32)> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    if bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut nanos: u32 = 0;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        let fraction = &text[start..at.min(start + 9)];
        let scale = 10u32.pow(9 - u32::try_from(fraction.len()).ok()?);
        nanos = fraction.parse::<u32>().ok()? * scale;
    }
    let offset = match text.get(at..)? {
        "Z" | "z" => 0,
        zone if zone.len() == 6
            && matches!(zone.as_bytes()[0], b'+' | b'-')
            && zone.as_bytes()[3] == b':' =>
        {
            let hours = number(at + 1..at + 3)?;
            let minutes = number(at + 4..at + 6)?;
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3_600 + minutes * 60)
        }
        _ => return None,
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset;
    Some((seconds, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_times_parse_with_fractions_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00Z"),
            Some((951_782_400, 0))
        );
        assert_eq!(
            parse_rfc3339("2026-11-18T11:06:40.5Z"),
            Some((1_795_000_000, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2026-11-18T12:06:40+01:00"),
            Some((1_795_000_000, 0))
        );
        for bad in [
            "",
            "soon",
            "2026-11-18 11:06:40Z",
            "2026-13-18T11:06:40Z",
            "2026-11-18T11:06:40",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_past_rfc3339_instants_have_expired() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert!(has_expired("2026-11-18T11:06:39Z", now));
        assert!(!has_expired("2026-11-18T11:06:41Z", now));
        assert!(!has_expired("not a time", now));
    }
}
