//! Cron schedules as upstream's `bindings.cron` reads them (dapr/kit's cron parser with
//! optional seconds and descriptors), and the pure computation of the next fire time.
//!
//! A schedule is either five fields (`minute hour day-of-month month day-of-week`) or six
//! (a leading `second`), each a comma list of `*`, `?`, `N`, `N-M`, with an optional
//! `/step`; months and weekdays also take three-letter names (`jan`, `mon`). A leading
//! `TZ=<zone>` or `CRON_TZ=<zone>` evaluates the fields in that IANA zone instead of the
//! local one. Descriptors: `@yearly`/`@annually`, `@monthly`, `@weekly`,
//! `@daily`/`@midnight`, `@hourly` and `@every <Go duration>` (measured from the previous
//! fire, not aligned to the clock).
//!
//! Day-of-month and day-of-week combine like classic cron: when either field is
//! unrestricted (written with `*` or `?`), a day must match both; otherwise a day matching
//! either fires.

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, ToSpan, Zoned};

/// Why a schedule was rejected; the text names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// `@every <duration>`: fires `duration` after the previous fire (or the start).
    Every(Duration),
    /// Fires at the instants whose wall-clock fields match.
    Calendar(Calendar),
}

/// The fields of a calendar schedule and the zone they are read in.
#[derive(Debug, Clone)]
pub struct Calendar {
    second: Field,
    minute: Field,
    hour: Field,
    day_of_month: Field,
    month: Field,
    day_of_week: Field,
    /// The zone of a `TZ=` prefix; `None` reads the fields in the zone of the instant
    /// the next fire is computed from (the local zone when the binding runs).
    zone: Option<TimeZone>,
}

/// The values one field matches, as bits, and whether it was written unrestricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    bits: u64,
    star: bool,
}

impl Field {
    /// Every value within `bounds`, as a descriptor's unrestricted field.
    fn all(bounds: &Bounds) -> Self {
        Self {
            bits: bits(bounds.min, bounds.max, 1),
            star: true,
        }
    }

    /// Only `value`.
    fn only(value: u32) -> Self {
        Self {
            bits: 1 << value,
            star: false,
        }
    }

    fn matches(self, value: i8) -> bool {
        u32::try_from(value).is_ok_and(|value| value < 64 && self.bits & (1 << value) != 0)
    }
}

/// The range and names of one field.
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const SECONDS: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DAYS_OF_MONTH: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Parses a schedule (see the module documentation for the grammar).
pub fn parse(spec: &str) -> Result<Schedule, ScheduleError> {
    if spec.is_empty() {
        return Err(ScheduleError("empty spec string".into()));
    }
    let (zone, spec) = split_zone(spec)?;
    if spec.starts_with('@') {
        return descriptor(spec, zone);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    let fields: [&str; 6] = match fields.as_slice() {
        [minute, hour, dom, month, dow] => ["0", minute, hour, dom, month, dow],
        [second, minute, hour, dom, month, dow] => [second, minute, hour, dom, month, dow],
        other => {
            return Err(ScheduleError(format!(
                "expected 5 to 6 fields, found {}: [{}]",
                other.len(),
                other.join(" ")
            )));
        }
    };
    Ok(Schedule::Calendar(Calendar {
        second: field(fields[0], &SECONDS)?,
        minute: field(fields[1], &MINUTES)?,
        hour: field(fields[2], &HOURS)?,
        day_of_month: field(fields[3], &DAYS_OF_MONTH)?,
        month: field(fields[4], &MONTHS)?,
        day_of_week: field(fields[5], &DAYS_OF_WEEK)?,
        zone,
    }))
}

/// Splits off a `TZ=<zone> ` or `CRON_TZ=<zone> ` prefix.
fn split_zone(spec: &str) -> Result<(Option<TimeZone>, &str), ScheduleError> {
    let Some(prefixed) = spec
        .strip_prefix("TZ=")
        .or_else(|| spec.strip_prefix("CRON_TZ="))
    else {
        return Ok((None, spec));
    };
    let Some((name, rest)) = prefixed.split_once(' ') else {
        return Err(ScheduleError(format!(
            "missing schedule after time zone: {spec}"
        )));
    };
    let zone = match name {
        "" | "UTC" => TimeZone::UTC,
        "Local" => TimeZone::system(),
        name => TimeZone::get(name)
            .map_err(|err| ScheduleError(format!("provided bad location {name}: {err}")))?,
    };
    Ok((Some(zone), rest.trim()))
}

/// A named schedule (`@daily`, `@every 5m`, ...).
fn descriptor(text: &str, zone: Option<TimeZone>) -> Result<Schedule, ScheduleError> {
    let first = |bounds: &Bounds| Field::only(bounds.min);
    let calendar = |hour: Field, day_of_month: Field, month: Field, day_of_week: Field| {
        Schedule::Calendar(Calendar {
            second: first(&SECONDS),
            minute: first(&MINUTES),
            hour,
            day_of_month,
            month,
            day_of_week,
            zone: zone.clone(),
        })
    };
    let all = Field::all;
    let schedule = match text {
        "@yearly" | "@annually" => calendar(
            first(&HOURS),
            first(&DAYS_OF_MONTH),
            first(&MONTHS),
            all(&DAYS_OF_WEEK),
        ),
        "@monthly" => calendar(
            first(&HOURS),
            first(&DAYS_OF_MONTH),
            all(&MONTHS),
            all(&DAYS_OF_WEEK),
        ),
        "@weekly" => calendar(
            first(&HOURS),
            all(&DAYS_OF_MONTH),
            all(&MONTHS),
            first(&DAYS_OF_WEEK),
        ),
        "@daily" | "@midnight" => calendar(
            first(&HOURS),
            all(&DAYS_OF_MONTH),
            all(&MONTHS),
            all(&DAYS_OF_WEEK),
        ),
        "@hourly" => calendar(
            all(&HOURS),
            all(&DAYS_OF_MONTH),
            all(&MONTHS),
            all(&DAYS_OF_WEEK),
        ),
        other => {
            let Some(duration) = other.strip_prefix("@every ") else {
                return Err(ScheduleError(format!("unrecognized descriptor: {other}")));
            };
            let every = dapr_kit::duration::parse(duration)
                .map_err(|err| ScheduleError(format!("failed to parse duration {other}: {err}")))?;
            // Upstream would fire in a busy loop; a schedule must move forward.
            if every.is_zero() {
                return Err(ScheduleError(format!(
                    "the duration of {other} must be greater than zero"
                )));
            }
            Schedule::Every(every)
        }
    };
    Ok(schedule)
}

/// One field: a comma list of ranges (empty items are skipped, as upstream does).
fn field(text: &str, bounds: &Bounds) -> Result<Field, ScheduleError> {
    let mut field = Field {
        bits: 0,
        star: false,
    };
    for expr in text.split(',').filter(|expr| !expr.is_empty()) {
        let range = range(expr, bounds)?;
        field.bits |= range.bits;
        field.star |= range.star;
    }
    // Upstream accepts a field without values and then never fires; refuse it instead.
    if field.bits == 0 {
        return Err(ScheduleError(format!("field matches no values: {text}")));
    }
    Ok(field)
}

/// `*`, `?`, `N`, `N-M`, each with an optional `/step` (`N/step` runs to the maximum).
fn range(expr: &str, bounds: &Bounds) -> Result<Field, ScheduleError> {
    let mut parts = expr.split('/');
    let span = parts.next().unwrap_or_default();
    let step = parts.next();
    if parts.next().is_some() {
        return Err(ScheduleError(format!("too many slashes: {expr}")));
    }
    let ends: Vec<&str> = span.split('-').collect();
    let (start, mut end, mut star) = if ends[0] == "*" || ends[0] == "?" {
        (bounds.min, bounds.max, true)
    } else {
        let start = number_or_name(ends[0], bounds.names)?;
        let end = match ends.len() {
            1 => start,
            2 => number_or_name(ends[1], bounds.names)?,
            _ => return Err(ScheduleError(format!("too many hyphens: {expr}"))),
        };
        (start, end, false)
    };
    let step = match step {
        None => 1,
        Some(step) => {
            let step = number(step)?;
            if ends.len() == 1 {
                end = bounds.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
    };
    if start < bounds.min {
        return Err(ScheduleError(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        )));
    }
    if end > bounds.max {
        return Err(ScheduleError(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        )));
    }
    if start > end {
        return Err(ScheduleError(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(ScheduleError(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    Ok(Field {
        bits: bits(start, end, step),
        star,
    })
}

/// A value's number or (for months and weekdays) its name, in any case.
fn number_or_name(text: &str, names: &[(&str, u32)]) -> Result<u32, ScheduleError> {
    let lowered = text.to_ascii_lowercase();
    match names.iter().find(|(name, _)| *name == lowered) {
        Some((_, value)) => Ok(*value),
        None => number(text),
    }
}

/// A non-negative decimal number (an optional sign is accepted, as Go's `Atoi` does).
fn number(text: &str) -> Result<u32, ScheduleError> {
    let value: i64 = text.parse().map_err(|err: std::num::ParseIntError| {
        let reason = match err.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        ScheduleError(format!(
            "failed to parse int from {text}: strconv.Atoi: parsing {text:?}: {reason}"
        ))
    })?;
    if value < 0 {
        return Err(ScheduleError(format!(
            "negative number ({value}) not allowed: {text}"
        )));
    }
    // Values past any field's bounds are reported by the range check.
    Ok(u32::try_from(value).unwrap_or(u32::MAX))
}

/// The bits of `min..=max` taking every `step`th value (callers keep `max` below 64).
fn bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max)
        .step_by(step as usize)
        .fold(0, |bits, value| bits | (1 << value))
}

impl Schedule {
    /// The first fire time strictly after `now`, in `now`'s zone; `None` when the
    /// schedule has no fire time within five years.
    pub fn next_after(&self, now: &Zoned) -> Option<Zoned> {
        match self {
            Self::Every(every) => {
                let every = SignedDuration::try_from(*every).ok()?;
                now.checked_add(every).ok()
            }
            Self::Calendar(calendar) => calendar.next_after(now),
        }
    }
}

impl Calendar {
    fn next_after(&self, now: &Zoned) -> Option<Zoned> {
        let zone = self.zone.clone().unwrap_or_else(|| now.time_zone().clone());
        let start = now.with_time_zone(zone.clone());
        // The candidate: the next whole second.
        let to_next_second = 1_000_000_000 - i64::from(start.subsec_nanosecond());
        let mut t = start
            .checked_add(SignedDuration::from_nanos(to_next_second))
            .ok()?;
        let year_limit = t.year() + 5;
        // Each step moves `t` forward to the earliest instant that can still match, so
        // the first `t` that passes every check is the answer.
        while t.year() <= year_limit {
            if !self.month.matches(t.month()) {
                t = t
                    .date()
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .to_zoned(zone.clone())
                    .ok()?;
            } else if !self.day_matches(t.date()) {
                t = t.date().tomorrow().ok()?.to_zoned(zone.clone()).ok()?;
            } else if !self.hour.matches(t.hour()) {
                let into_hour = i64::from(t.minute()) * 60 + i64::from(t.second());
                t = t
                    .checked_add(SignedDuration::from_secs(3600 - into_hour))
                    .ok()?;
            } else if !self.minute.matches(t.minute()) {
                t = t
                    .checked_add(SignedDuration::from_secs(60 - i64::from(t.second())))
                    .ok()?;
            } else if !self.second.matches(t.second()) {
                t = t.checked_add(SignedDuration::from_secs(1)).ok()?;
            } else {
                return Some(t.with_time_zone(now.time_zone().clone()));
            }
        }
        None
    }

    fn day_matches(&self, date: Date) -> bool {
        let by_month = self.day_of_month.matches(date.day());
        let by_week = self
            .day_of_week
            .matches(date.weekday().to_sunday_zero_offset());
        if self.day_of_month.star || self.day_of_week.star {
            by_month && by_week
        } else {
            by_month || by_week
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn utc(year: i16, month: i8, day: i8, hour: i8, minute: i8, second: i8) -> Zoned {
        date(year, month, day)
            .at(hour, minute, second, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap()
    }

    fn next(spec: &str, now: &Zoned) -> Zoned {
        parse(spec).unwrap().next_after(now).unwrap()
    }

    #[test]
    fn accepted_schedules() {
        for spec in [
            "@every 1s",
            "@every 1h30m",
            "@every 500ms",
            "*/3 * * * * *",
            "*/15 * * * *",
            "0 0 1 * *",
            "0 0 */6 ? * *",
            "0 30 9 * * MON-FRI",
            "0 0 1 jan,Jul *",
            "  1   2 3 4 5  ",
            "5/10 * * * *",
            "1,,2 * * * *",
            "*-5 * * * *",
            "+5 * * * *",
            "0 0 * * 0-6",
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
            "TZ=UTC 0 9 * * *",
            "CRON_TZ=UTC @daily",
        ] {
            assert!(parse(spec).is_ok(), "{spec}: {:?}", parse(spec).err());
        }
    }

    #[test]
    fn rejected_schedules_say_why() {
        for (spec, error) in [
            ("", "empty spec string"),
            (
                "INVALID_SCHEDULE",
                "expected 5 to 6 fields, found 1: [INVALID_SCHEDULE]",
            ),
            ("* * * *", "expected 5 to 6 fields, found 4: [* * * *]"),
            (
                "* * * * * * *",
                "expected 5 to 6 fields, found 7: [* * * * * * *]",
            ),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* 24 * * *", "end of range (24) above maximum (23): 24"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            ("* * * 13 *", "end of range (13) above maximum (12): 13"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1/2/3 * * * *", "too many slashes: 1/2/3"),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "-1 * * * *",
                "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax",
            ),
            (
                "* * * * funday",
                "failed to parse int from funday: strconv.Atoi: parsing \"funday\": invalid syntax",
            ),
            (", * * * *", "field matches no values: ,"),
            ("@often", "unrecognized descriptor: @often"),
            ("@every", "unrecognized descriptor: @every"),
            (
                "@every soon",
                "failed to parse duration @every soon: invalid duration \"soon\"",
            ),
            (
                "@every 0s",
                "the duration of @every 0s must be greater than zero",
            ),
            ("TZ=UTC", "missing schedule after time zone: TZ=UTC"),
        ] {
            let got = parse(spec).err().map(|err| err.to_string());
            assert_eq!(got.as_deref(), Some(error), "{spec}");
        }
        let bad_zone = parse("TZ=Nowhere/City * * * * *").unwrap_err().to_string();
        assert!(
            bad_zone.starts_with("provided bad location Nowhere/City: "),
            "{bad_zone}"
        );
    }

    #[test]
    fn five_fields_fire_on_second_zero_and_six_fields_read_seconds() {
        let now = utc(2024, 1, 1, 10, 0, 30);
        assert_eq!(next("* * * * *", &now), utc(2024, 1, 1, 10, 1, 0));
        assert_eq!(next("* * * * * *", &now), utc(2024, 1, 1, 10, 0, 31));
        assert_eq!(next("*/15 * * * * *", &now), utc(2024, 1, 1, 10, 0, 45));
        assert_eq!(next("*/15 * * * *", &now), utc(2024, 1, 1, 10, 15, 0));
    }

    #[test]
    fn next_fire_is_strictly_after_now_even_between_seconds() {
        let now = utc(2024, 1, 1, 10, 0, 0);
        assert_eq!(next("0 * * * * *", &now), utc(2024, 1, 1, 10, 1, 0));
        let mid_second = now.checked_add(SignedDuration::from_millis(500)).unwrap();
        assert_eq!(next("* * * * * *", &mid_second), utc(2024, 1, 1, 10, 0, 1));
    }

    #[test]
    fn next_fire_for_fixed_instants() {
        let now = utc(2024, 2, 28, 23, 59, 59);
        for (spec, expected) in [
            ("@hourly", utc(2024, 2, 29, 0, 0, 0)),
            ("@daily", utc(2024, 2, 29, 0, 0, 0)),
            ("@midnight", utc(2024, 2, 29, 0, 0, 0)),
            // 2024-03-03 is the first Sunday after the 28th of February.
            ("@weekly", utc(2024, 3, 3, 0, 0, 0)),
            ("@monthly", utc(2024, 3, 1, 0, 0, 0)),
            ("@yearly", utc(2025, 1, 1, 0, 0, 0)),
            ("@annually", utc(2025, 1, 1, 0, 0, 0)),
            ("0 30 9 * * MON-FRI", utc(2024, 2, 29, 9, 30, 0)),
            ("0 0 29 2 *", utc(2024, 2, 29, 0, 0, 0)),
            ("0 0 30 * *", utc(2024, 3, 30, 0, 0, 0)),
            ("0 12 31 * *", utc(2024, 3, 31, 12, 0, 0)),
            ("0 0 1 jan,jul *", utc(2024, 7, 1, 0, 0, 0)),
            ("0 0 0 ? * SAT", utc(2024, 3, 2, 0, 0, 0)),
            ("@every 1s", utc(2024, 2, 29, 0, 0, 0)),
            ("@every 1h30m", utc(2024, 2, 29, 1, 29, 59)),
        ] {
            assert_eq!(next(spec, &now), expected, "{spec}");
        }
        // The 29th of February of a non-leap year is skipped to the next leap year.
        let now = utc(2025, 3, 1, 0, 0, 0);
        assert_eq!(next("0 0 29 2 *", &now), utc(2028, 2, 29, 0, 0, 0));
    }

    #[test]
    fn restricted_day_fields_combine_with_or_and_a_star_with_and() {
        // The 13th or any Friday: 2024-09-06 is a Friday, before the 13th.
        let now = utc(2024, 9, 1, 0, 0, 0);
        assert_eq!(next("0 0 13 * FRI", &now), utc(2024, 9, 6, 0, 0, 0));
        // An unrestricted weekday: only the day of the month counts.
        assert_eq!(next("0 0 13 * *", &now), utc(2024, 9, 13, 0, 0, 0));
        // `*/1` is still unrestricted: any day that is a Friday.
        assert_eq!(next("0 0 */1 * FRI", &now), utc(2024, 9, 6, 0, 0, 0));
        // Odd days or Fridays: the 3rd comes first (the 1st is `now` itself).
        assert_eq!(next("0 0 1-31/2 * FRI", &now), utc(2024, 9, 3, 0, 0, 0));
    }

    #[test]
    fn impossible_dates_have_no_next_fire() {
        let now = utc(2024, 1, 1, 0, 0, 0);
        assert!(parse("0 0 30 2 *").unwrap().next_after(&now).is_none());
        assert!(
            parse("0 0 31 4,6,9,11 *")
                .unwrap()
                .next_after(&now)
                .is_none()
        );
    }

    #[test]
    fn fields_are_read_in_the_zone_of_now_or_of_the_prefix() {
        let eastern = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        let now = date(2024, 1, 10)
            .at(8, 0, 0, 0)
            .to_zoned(eastern.clone())
            .unwrap();
        // Without a prefix, nine o'clock is nine o'clock in the zone of `now`.
        let fire = next("0 9 * * *", &now);
        assert_eq!(fire.datetime(), date(2024, 1, 10).at(9, 0, 0, 0));
        assert_eq!(fire.timestamp(), utc(2024, 1, 10, 14, 0, 0).timestamp());
        // With TZ=UTC, nine o'clock UTC, reported in the zone of `now`.
        let fire = next("TZ=UTC 0 9 * * *", &now);
        assert_eq!(fire.timestamp(), utc(2024, 1, 11, 9, 0, 0).timestamp());
        assert_eq!(fire.time_zone(), &eastern);
    }

    #[test]
    fn daylight_saving_gaps_and_folds_move_forward() {
        let eastern = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        // 2024-03-10: 02:00 EST jumps to 03:00 EDT, so that day has no 02:30 and the
        // daily 02:30 fire is skipped (as upstream skips it).
        let now = date(2024, 3, 9)
            .at(12, 0, 0, 0)
            .to_zoned(eastern.clone())
            .unwrap();
        let fire = next("0 30 2 * * *", &now);
        assert_eq!(fire.datetime(), date(2024, 3, 11).at(2, 30, 0, 0));
        // A daily midnight fire is unaffected and lands exactly one day apart in wall time.
        let fire = next("@daily", &now);
        assert_eq!(fire.datetime(), date(2024, 3, 10).at(0, 0, 0, 0));
        assert_eq!(
            next("@daily", &fire).datetime(),
            date(2024, 3, 11).at(0, 0, 0, 0)
        );
        // 2024-11-03: 02:00 EDT falls back to 01:00 EST; hourly fires keep one hour apart.
        let now = date(2024, 11, 3).at(0, 30, 0, 0).to_zoned(eastern).unwrap();
        let mut fire = now;
        let mut fires = Vec::new();
        for _ in 0..3 {
            fire = next("@hourly", &fire);
            fires.push(fire.timestamp());
        }
        for pair in fires.windows(2) {
            assert_eq!(
                pair[1].duration_since(pair[0]),
                SignedDuration::from_hours(1)
            );
        }
    }
}
