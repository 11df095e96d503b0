//! Wall-clock time in New York (America/New_York), for what is defined by
//! it: ITCH timestamps count nanoseconds from midnight Eastern time, and
//! the US equity session runs 09:30–16:00 Eastern.
//!
//! No time-zone database: the US rule since 2007 is written out (daylight
//! time, UTC−4, from the second Sunday of March to the first Sunday of
//! November; standard time, UTC−5, otherwise). Both changes happen at
//! 02:00 local on a Sunday, when no US equity market is open, so a day's
//! offset is the one in force at its midnight. Dates before 2007 get the
//! same rule (wrong for 1987–2006 by a few weeks a year; no one imports
//! those days' ITCH 5.0, which began in 2013).

use crate::rfc3339::{days_from_civil, days_in_month};

const NS_PER_HOUR: u64 = 3_600_000_000_000;
const NS_PER_DAY: u64 = 24 * NS_PER_HOUR;

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    /// Year, 1970 or later.
    pub year: u64,
    /// Month, 1–12.
    pub month: u64,
    /// Day of the month, from 1.
    pub day: u64,
}

impl Date {
    /// Parses `YYYY-MM-DD` (a date from 1970 on).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("date `{text}` is not YYYY-MM-DD (from 1970-01-01 on)");
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |range: std::ops::Range<usize>| -> Result<u64, String> {
            let part = &text[range];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let date = Date {
            year: num(0..4)?,
            month: num(5..7)?,
            day: num(8..10)?,
        };
        let valid = date.year >= 1970
            && (1..=12).contains(&date.month)
            && (1..=days_in_month(date.year, date.month)).contains(&date.day);
        if valid {
            Ok(date)
        } else {
            Err(bad())
        }
    }

    /// Days since 1970-01-01.
    fn days(self) -> u64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// Day of the month of the `nth` (from 1) Sunday of `month` in `year`.
    fn nth_sunday(year: u64, month: u64, nth: u64) -> u64 {
        // 1970-01-01 was a Thursday: weekday 0 = Sunday when (days + 4) % 7 == 0.
        let first = days_from_civil(year, month, 1);
        let weekday = (first + 4) % 7;
        1 + (7 - weekday) % 7 + 7 * (nth - 1)
    }

    /// Whether New York keeps daylight time at this date's midnight.
    fn is_daylight_time(self) -> bool {
        let start = Date {
            year: self.year,
            month: 3,
            day: Self::nth_sunday(self.year, 3, 2),
        };
        let end = Date {
            year: self.year,
            month: 11,
            day: Self::nth_sunday(self.year, 11, 1),
        };
        // Midnight of the March Sunday is before 02:00: still standard time;
        // midnight of the November Sunday: still daylight time.
        self.days() > start.days() && self.days() <= end.days()
    }

    /// Nanoseconds since the Unix epoch of midnight in New York on this date.
    pub fn new_york_midnight(self) -> u64 {
        let offset_hours = if self.is_daylight_time() { 4 } else { 5 };
        self.days() * NS_PER_DAY + offset_hours * NS_PER_HOUR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn midnight(text: &str) -> u64 {
        Date::parse(text).unwrap().new_york_midnight()
    }

    #[test]
    fn midnight_in_new_york_follows_daylight_time() {
        // 2026-01-05 00:00 EST = 05:00 UTC.
        assert_eq!(midnight("2026-01-05"), 1_767_589_200_000_000_000);
        // 2026: daylight time from Sunday 8 March to Sunday 1 November.
        let utc_hour = |d: &str| (midnight(d) / NS_PER_HOUR) % 24;
        assert_eq!(utc_hour("2026-03-08"), 5, "the change is at 02:00");
        assert_eq!(utc_hour("2026-03-09"), 4);
        assert_eq!(utc_hour("2026-07-01"), 4);
        assert_eq!(utc_hour("2026-11-01"), 4, "still daylight time at midnight");
        assert_eq!(utc_hour("2026-11-02"), 5);
        // 2019-01-30, the date of NASDAQ's public ITCH sample: EST.
        assert_eq!(utc_hour("2019-01-30"), 5);
        assert_eq!(Date::nth_sunday(2024, 3, 2), 10);
        assert_eq!(Date::nth_sunday(2024, 11, 1), 3);
    }

    #[test]
    fn bad_dates_are_refused() {
        for bad in [
            "2026-1-05",
            "2026-02-30",
            "1969-12-31",
            "2026-13-01",
            "20260105",
            "2026-01-0x",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad}");
        }
        assert!(Date::parse("2024-02-29").is_ok());
    }
}
