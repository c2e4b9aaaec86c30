//! Time formats of the playback API (seed `004_*`, "all times are UTC"): parsing the query
//! values of `availableMedia` (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, ISO 8601 date-times) and of the
//! manifest filters, and formatting answers. Times inside edgerec are UTC ns since 1970.

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime};

use crate::store::layout::utc;

/// Nanoseconds per second.
pub const NS_PER_S: i64 = 1_000_000_000;

/// A calendar unit index: years count from year 0, months as `year * 12 + month - 1`, days as
/// Julian day numbers. Consecutive units have consecutive indices.
pub type UnitIndex = i64;

/// Parses an ISO 8601 / RFC 3339 date-time: `2019-12-21T08:00:00Z`, with or without fractional
/// seconds, with `Z` or a numeric offset (converted to UTC), or with no offset (read as UTC, as in
/// the seed's own examples). Returns UTC ns since 1970, or a message naming the expected form.
pub fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad =
        || format!("{s:?} is not an ISO 8601 UTC date-time (expected YYYY-MM-DDThh:mm:ss[.sss]Z)");
    let has_offset = s.ends_with('Z')
        || s.ends_with('z')
        || s.get(19..)
            .is_some_and(|t| t.contains('+') || t.contains('-'));
    let dt = if has_offset {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|_| bad())?
    } else {
        OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339).map_err(|_| bad())?
    };
    i64::try_from(dt.unix_timestamp_nanos()).map_err(|_| bad())
}

/// Formats UTC ns as `YYYY-MM-DDThh:mm:ss.sssZ` (milliseconds, truncated).
pub fn format_full(ns: i64) -> String {
    let t = utc(ns);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A calendar precision of `availableMedia`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `YYYY`.
    Year,
    /// `YYYY-MM`.
    Month,
    /// `YYYY-MM-DD`.
    Day,
}

impl Unit {
    /// The format, as named in error messages.
    pub fn format_name(self) -> &'static str {
        match self {
            Unit::Year => "YYYY",
            Unit::Month => "YYYY-MM",
            Unit::Day => "YYYY-MM-DD",
        }
    }

    /// Parses a unit value in exactly this unit's format.
    pub fn parse(self, s: &str) -> Result<UnitIndex, String> {
        let bad = || format!("{s:?} is not in {} format", self.format_name());
        let digits = |p: &str, n: usize| -> Result<i64, String> {
            if p.len() == n && p.bytes().all(|b| b.is_ascii_digit()) {
                Ok(p.parse().unwrap())
            } else {
                Err(bad())
            }
        };
        let parts: Vec<&str> = s.split('-').collect();
        match (self, parts.as_slice()) {
            (Unit::Year, [y]) => digits(y, 4),
            (Unit::Month, [y, m]) => {
                let (y, m) = (digits(y, 4)?, digits(m, 2)?);
                if !(1..=12).contains(&m) {
                    return Err(bad());
                }
                Ok(y * 12 + m - 1)
            }
            (Unit::Day, [y, m, d]) => {
                let (y, m, d) = (digits(y, 4)?, digits(m, 2)?, digits(d, 2)?);
                let month = Month::try_from(m as u8).map_err(|_| bad())?;
                let date = Date::from_calendar_date(y as i32, month, d as u8).map_err(|_| bad())?;
                Ok(i64::from(date.to_julian_day()))
            }
            _ => Err(bad()),
        }
    }

    /// UTC ns at the start of unit `i`.
    pub fn start_ns(self, i: UnitIndex) -> i64 {
        let date = match self {
            Unit::Year => Date::from_calendar_date(i.clamp(-9999, 9999) as i32, Month::January, 1),
            Unit::Month => Date::from_calendar_date(
                i.div_euclid(12).clamp(-9999, 9999) as i32,
                Month::try_from((i.rem_euclid(12) + 1) as u8).unwrap(),
                1,
            ),
            Unit::Day => Date::from_julian_day(i as i32),
        }
        .unwrap_or(Date::MIN);
        let t = PrimitiveDateTime::new(date, time::Time::MIDNIGHT).assume_utc();
        i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MIN)
    }

    /// The unit that holds UTC ns `t`.
    pub fn of(self, t: i64) -> UnitIndex {
        let d = utc(t);
        match self {
            Unit::Year => i64::from(d.year()),
            Unit::Month => i64::from(d.year()) * 12 + i64::from(u8::from(d.month())) - 1,
            Unit::Day => i64::from(d.date().to_julian_day()),
        }
    }

    /// Formats unit `i` (`2019`, `2019-06`, `2019-06-17`).
    pub fn format(self, i: UnitIndex) -> String {
        match self {
            Unit::Year => format!("{i:04}"),
            Unit::Month => format!("{:04}-{:02}", i.div_euclid(12), i.rem_euclid(12) + 1),
            Unit::Day => {
                let d = Date::from_julian_day(i as i32).unwrap_or(Date::MIN);
                format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        let a = parse_datetime("2019-12-21T00:00:00Z").unwrap();
        assert_eq!(a, 1_576_886_400 * NS_PER_S);
        assert_eq!(parse_datetime("2019-12-21T00:00:00.000Z").unwrap(), a);
        assert_eq!(parse_datetime("2019-12-21T01:00:00+01:00").unwrap(), a);
        assert_eq!(parse_datetime("2019-12-21T00:00:00").unwrap(), a);
        assert_eq!(format_full(a + 123_456_789), "2019-12-21T00:00:00.123Z");
        for bad in ["2019-12-21", "yesterday", "2019-13-01T00:00:00Z", ""] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn units() {
        assert_eq!(Unit::Year.parse("2019").unwrap(), 2019);
        assert!(Unit::Year.parse("19").is_err());
        assert!(Unit::Year.parse("2019-01").is_err());
        let m = Unit::Month.parse("2019-06").unwrap();
        assert_eq!(Unit::Month.format(m), "2019-06");
        assert_eq!(Unit::Month.format(m + 7), "2020-01");
        assert!(Unit::Month.parse("2019-13").is_err());
        let d = Unit::Day.parse("2020-02-28").unwrap();
        assert_eq!(Unit::Day.format(d + 1), "2020-02-29");
        assert_eq!(Unit::Day.format(d + 2), "2020-03-01");
        assert!(Unit::Day.parse("2019-02-29").is_err());
        let t = parse_datetime("2019-06-17T12:00:00Z").unwrap();
        assert_eq!(Unit::Day.of(t), Unit::Day.parse("2019-06-17").unwrap());
        assert_eq!(Unit::Month.of(t), m);
        assert_eq!(
            Unit::Day.start_ns(Unit::Day.of(t)),
            parse_datetime("2019-06-17T00:00:00Z").unwrap()
        );
        assert_eq!(
            Unit::Month.start_ns(m + 1),
            parse_datetime("2019-07-01T00:00:00Z").unwrap()
        );
    }
}
