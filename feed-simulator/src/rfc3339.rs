//! RFC 3339 UTC timestamps (`2026-01-05T14:30:00.000100Z`), both ways, for
//! `inspect`'s report and the CSV importer's `ts` column.
//!
//! Written out here (days from the civil date and back, after Howard
//! Hinnant's `days_from_civil`) rather than taken from a date crate: these
//! two functions are all the library needs, and a library that embeds the
//! simulator should not pull in a date or CLI crate for them. Only UTC is
//! accepted (`Z` or `+00:00`), as in a feed file every time is UTC.

use std::time::Duration;

const NANOS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: u64 = 86_400;

/// Why a text is not an RFC 3339 UTC timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rfc3339Error {
    /// Not of the shape `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`.
    #[error("timestamp format is invalid")]
    Format,
    /// A character other than a digit where a digit belongs.
    #[error("bad character where digit is expected")]
    Digit,
    /// A field out of its range (month 13, 31 April, a year before 1970).
    #[error("numeric component is out of range")]
    Range,
}

/// Parses an RFC 3339 UTC time into the time since the Unix epoch.
///
/// Any number of fractional digits is accepted (beyond nine they are
/// truncated); a leap second (`:60`) counts as `:59`.
pub fn parse(text: &str) -> Result<Duration, Rfc3339Error> {
    let b = text.as_bytes();
    if b.len() < "2026-01-05T14:30:00Z".len() {
        return Err(Rfc3339Error::Format);
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return Err(Rfc3339Error::Format);
    }
    let rest = &b[19..];
    let fraction = if let Some(f) = rest.strip_suffix(b"Z") {
        f
    } else if let Some(f) = rest.strip_suffix(b"+00:00") {
        f
    } else {
        return Err(Rfc3339Error::Format);
    };
    let nanos = match fraction {
        [] => 0,
        [b'.', digits @ ..] => fraction_nanos(digits)?,
        _ => return Err(Rfc3339Error::Format),
    };
    let year = digits(&b[0..4])?;
    let (month, day) = (digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute) = (digits(&b[11..13])?, digits(&b[14..16])?);
    let second = digits(&b[17..19])?;
    if year < 1970 || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 60 {
        return Err(Rfc3339Error::Range);
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(Rfc3339Error::Range);
    }
    let secs = days_from_civil(year, month, day) * SECS_PER_DAY
        + hour * 3600
        + minute * 60
        + second.min(59);
    Ok(Duration::new(secs, nanos))
}

/// Formats nanoseconds since the Unix epoch with all nine fractional
/// digits: `2026-01-05T14:30:00.000100000Z`.
pub fn format(ts_ns: u64) -> String {
    let secs = ts_ns / NANOS_PER_SEC;
    let nanos = ts_ns % NANOS_PER_SEC;
    let (year, month, day) = civil_from_days(secs / SECS_PER_DAY);
    let of_day = secs % SECS_PER_DAY;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The value of a run of ASCII digits.
fn digits(text: &[u8]) -> Result<u64, Rfc3339Error> {
    text.iter().try_fold(0, |acc, &c| match c {
        b'0'..=b'9' => Ok(acc * 10 + u64::from(c - b'0')),
        _ => Err(Rfc3339Error::Digit),
    })
}

/// Nanoseconds from the digits after the decimal point.
fn fraction_nanos(text: &[u8]) -> Result<u32, Rfc3339Error> {
    let mut nanos = 0;
    let mut unit = 100_000_000;
    for &c in text {
        if !c.is_ascii_digit() {
            return Err(Rfc3339Error::Digit);
        }
        nanos += unit * u32::from(c - b'0');
        unit /= 10;
    }
    Ok(nanos)
}

fn is_leap(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(crate) fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date from 1970 on. The year is counted from
/// March, so the leap day is the last day of its year.
pub(crate) fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let year_of_era = y % 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719,468 days from 0000-03-01 to 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_NS: u64 = 1_767_623_400 * NANOS_PER_SEC;

    fn ns(text: &str) -> u64 {
        u64::try_from(parse(text).unwrap().as_nanos()).unwrap()
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format(OPEN_NS), "2026-01-05T14:30:00.000000000Z");
        assert_eq!(format(OPEN_NS + 100_250), "2026-01-05T14:30:00.000100250Z");
        // 2024-02-29 (a leap day) and 2100-03-01 (2100 is not a leap year).
        assert_eq!(
            format(1_709_164_800 * NANOS_PER_SEC),
            "2024-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            format(4_107_542_400 * NANOS_PER_SEC),
            "2100-03-01T00:00:00.000000000Z"
        );
        assert_eq!(format(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn parses_what_it_formats_over_the_whole_u64_range() {
        let mut ts = 1u64;
        while ts < u64::MAX / 3 {
            assert_eq!(ns(&format(ts)), ts, "{}", format(ts));
            ts = ts * 3 + 7;
        }
        assert_eq!(ns(&format(u64::MAX)), u64::MAX);
    }

    #[test]
    fn accepts_short_fractions_offsets_and_leap_seconds() {
        assert_eq!(ns("2026-01-05T14:30:00Z"), OPEN_NS);
        assert_eq!(ns("2026-01-05T14:30:00+00:00"), OPEN_NS);
        assert_eq!(ns("2026-01-05T14:30:00.0015Z"), OPEN_NS + 1_500_000);
        assert_eq!(ns("2026-01-05T14:30:00.5+00:00"), OPEN_NS + 500_000_000);
        assert_eq!(ns("2026-01-05T14:30:00.0000000019Z"), OPEN_NS + 1);
        assert_eq!(ns("2016-12-31T23:59:60Z"), ns("2016-12-31T23:59:59Z"));
    }

    #[test]
    fn rejects_other_shapes_zones_and_impossible_dates() {
        for (text, want) in [
            ("2026-01-05 14:30:00Z", Rfc3339Error::Format),
            ("2026-01-05T14:30:00", Rfc3339Error::Format),
            ("2026-01-05T14:30:00+01:00", Rfc3339Error::Format),
            ("2026-01-05T14:30:00,5Z", Rfc3339Error::Format),
            ("2026-01-05", Rfc3339Error::Format),
            ("2026-01-05T14:30:0xZ", Rfc3339Error::Digit),
            ("2026-01-05T14:30:00.1x5Z", Rfc3339Error::Digit),
            ("2026-13-05T14:30:00Z", Rfc3339Error::Range),
            ("2026-04-31T14:30:00Z", Rfc3339Error::Range),
            ("2025-02-29T14:30:00Z", Rfc3339Error::Range),
            ("2026-01-00T14:30:00Z", Rfc3339Error::Range),
            ("2026-01-05T24:00:00Z", Rfc3339Error::Range),
            ("1969-12-31T23:59:59Z", Rfc3339Error::Range),
            ("2026-01-05T14:30:00ZÄ", Rfc3339Error::Format),
        ] {
            assert_eq!(parse(text), Err(want), "{text}");
        }
        assert_eq!(ns("2024-02-29T00:00:00Z"), 1_709_164_800 * NANOS_PER_SEC);
    }
}
