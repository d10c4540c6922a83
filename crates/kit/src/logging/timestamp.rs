//! RFC 3339 timestamps with nanoseconds in UTC, written like Go's `time.RFC3339Nano`
//! (trailing zeros of the fraction dropped, no fraction at all when it is zero).

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` as "2024-02-29T13:04:05.123456789Z"; times before 1970 are written as the epoch.
pub(crate) fn rfc3339_nanos(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_date(seconds / 86_400);
    let second_of_day = seconds % 86_400;
    let fraction = match since_epoch.subsec_nanos() {
        0 => String::new(),
        nanos => format!(".{}", format!("{nanos:09}").trim_end_matches('0')),
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    )
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_date(days_since_epoch: u64) -> (u64, u64, u64) {
    // Count from 0000-03-01 so leap days fall at the end of each 400-year era.
    let days = days_since_epoch + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(seconds, nanos)
    }

    #[test]
    fn formats_known_instants() {
        let cases = [
            (at(0, 0), "1970-01-01T00:00:00Z"),
            (at(951_782_400, 0), "2000-02-29T00:00:00Z"),
            (
                at(1_700_000_000, 123_456_789),
                "2023-11-14T22:13:20.123456789Z",
            ),
            (at(1_709_164_800, 500_000_000), "2024-02-29T00:00:00.5Z"),
            (at(1_709_164_800, 1_000), "2024-02-29T00:00:00.000001Z"),
            (at(4_102_444_799, 0), "2099-12-31T23:59:59Z"),
            (UNIX_EPOCH - Duration::from_secs(1), "1970-01-01T00:00:00Z"),
        ];
        for (time, expected) in cases {
            assert_eq!(rfc3339_nanos(time), expected);
        }
    }
}
