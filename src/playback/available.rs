//! `availableMedia` (seed `004_*` "Query API"; DESIGN section 6): which years, months, days or
//! exact time ranges of a camera hold media.
//!
//! Rules, each with the message a client gets when it breaks one (HTTP 400):
//! - `precision` is required: `year`, `month`, `day` or `full`.
//! - year: `YYYY`; `startTime` and `endTime` optional (missing start = the first year with media,
//!   missing end = the last); any span.
//! - month: `YYYY-MM`, both required, at most 12 months apart.
//! - day: `YYYY-MM-DD`, both required, at most 31 days apart.
//! - full: ISO 8601 date-times, both required, start < end, at most 25 hours apart.
//! - start <= end; boundaries inclusive.
//!
//! Answers: a unit is available when any media lies in it, adjacent available units merge; full
//! precision gives continuous spans clipped to the query (exactly `[startTime, endTime]` when there
//! is no gap). No media: an empty list, never an error.

use super::catalog::Catalog;
use super::time::{format_full, parse_datetime, Unit, NS_PER_S};
use super::timeline::spans;
use super::ApiError;

/// Longest full-precision query, ns (25 hours).
pub const MAX_FULL_NS: i64 = 25 * 3600 * NS_PER_S;
/// Most months between start and end at month precision.
pub const MAX_MONTHS: i64 = 12;
/// Most days between start and end at day precision.
pub const MAX_DAYS: i64 = 31;

/// One answer entry: `start` and `end` in the precision's format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TimeRange {
    /// First unit (or instant) with media.
    pub start: String,
    /// Last unit (or instant) with media.
    pub end: String,
}

/// Answers `availableMedia?precision=..&startTime=..&endTime=..` for `camera`; `precision`,
/// `start` and `end` are the raw query values.
pub fn available_media(
    cat: &Catalog,
    camera: &str,
    precision: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
) -> Result<Vec<TimeRange>, ApiError> {
    let precision = precision.ok_or_else(|| {
        ApiError::bad(
            "MissingPrecision",
            "the precision query parameter is required: year, month, day or full",
        )
    })?;
    match precision {
        "year" => units(cat, camera, Unit::Year, start, end, None),
        "month" => units(cat, camera, Unit::Month, start, end, Some(MAX_MONTHS)),
        "day" => units(cat, camera, Unit::Day, start, end, Some(MAX_DAYS)),
        "full" => full(cat, camera, start, end),
        other => Err(ApiError::bad(
            "InvalidPrecision",
            format!("precision must be year, month, day or full, got {other:?}"),
        )),
    }
}

fn bad_format(name: &str, msg: String) -> ApiError {
    ApiError::bad("InvalidTimeFormat", format!("{name}: {msg}"))
}

fn units(
    cat: &Catalog,
    camera: &str,
    unit: Unit,
    start: Option<&str>,
    end: Option<&str>,
    max_span: Option<i64>,
) -> Result<Vec<TimeRange>, ApiError> {
    let name = unit.format_name();
    if max_span.is_some() && (start.is_none() || end.is_none()) {
        return Err(ApiError::bad(
            "MissingTimeRange",
            format!("startTime and endTime are required at this precision (format {name})"),
        ));
    }
    let s = start
        .map(|v| unit.parse(v).map_err(|m| bad_format("startTime", m)))
        .transpose()?;
    let e = end
        .map(|v| unit.parse(v).map_err(|m| bad_format("endTime", m)))
        .transpose()?;
    if let (Some(s), Some(e)) = (s, e) {
        if s > e {
            return Err(ApiError::bad(
                "InvalidTimeRange",
                "startTime must not be after endTime",
            ));
        }
        if let Some(max) = max_span {
            if e - s > max {
                let what = if unit == Unit::Month {
                    "months"
                } else {
                    "days"
                };
                return Err(ApiError::bad(
                    "TimeRangeTooLong",
                    format!(
                        "startTime and endTime may be at most {max} {what} apart at this precision"
                    ),
                ));
            }
        }
    }
    // Only units that can hold media are looked at: clamp to the camera's first and last media.
    let Some((first, last)) = cat.bounds(camera)? else {
        return Ok(Vec::new());
    };
    let lo = s.unwrap_or(i64::MIN).max(unit.of(first));
    let hi = e.unwrap_or(i64::MAX).min(unit.of(last.max(first + 1) - 1));
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut i = lo;
    while i <= hi {
        if cat.has_media(camera, unit.start_ns(i), unit.start_ns(i + 1))? {
            match out.last_mut() {
                Some(r) if r.1 + 1 == i => r.1 = i,
                _ => out.push((i, i)),
            }
        }
        i += 1;
    }
    Ok(out
        .into_iter()
        .map(|(a, b)| TimeRange {
            start: unit.format(a),
            end: unit.format(b),
        })
        .collect())
}

fn full(
    cat: &Catalog,
    camera: &str,
    start: Option<&str>,
    end: Option<&str>,
) -> Result<Vec<TimeRange>, ApiError> {
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ApiError::bad(
            "MissingTimeRange",
            "startTime and endTime are required at precision full (ISO 8601 date-times in UTC)",
        ));
    };
    let s = parse_datetime(start).map_err(|m| bad_format("startTime", m))?;
    let e = parse_datetime(end).map_err(|m| bad_format("endTime", m))?;
    if s >= e {
        return Err(ApiError::bad(
            "InvalidTimeRange",
            "startTime must be before endTime at precision full",
        ));
    }
    if e - s > MAX_FULL_NS {
        return Err(ApiError::bad(
            "TimeRangeTooLong",
            "startTime and endTime may be at most 25 hours apart at precision full",
        ));
    }
    // Inclusive end: media that starts exactly at endTime does not widen the answer.
    let segs = cat.segment_times(camera, s, e)?;
    Ok(spans(&segs, s, e)
        .into_iter()
        .map(|(a, b)| TimeRange {
            start: format_full(a),
            end: format_full(b),
        })
        .collect())
}
