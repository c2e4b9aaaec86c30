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

use super::catalog::{Catalog, Recordings};
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
/// `start` and `end` are the raw query values. `clips_only`: an EVR camera, whose media is
/// what its clips keep ([`super::kept`]).
pub fn available_media(
    cat: &dyn Recordings,
    camera: &str,
    precision: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    clips_only: bool,
) -> Result<Vec<TimeRange>, ApiError> {
    let precision = precision.ok_or_else(|| {
        ApiError::bad(
            "MissingPrecision",
            "the precision query parameter is required: year, month, day or full",
        )
    })?;
    match precision {
        "year" => units(cat, camera, Unit::Year, start, end, None, clips_only),
        "month" => units(
            cat,
            camera,
            Unit::Month,
            start,
            end,
            Some(MAX_MONTHS),
            clips_only,
        ),
        "day" => units(
            cat,
            camera,
            Unit::Day,
            start,
            end,
            Some(MAX_DAYS),
            clips_only,
        ),
        "full" => full(cat, camera, start, end, clips_only),
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
    cat: &dyn Recordings,
    camera: &str,
    unit: Unit,
    start: Option<&str>,
    end: Option<&str>,
    max_span: Option<i64>,
    clips_only: bool,
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
    if lo <= hi && clips_only {
        // A unit is available when a clip with media lies in it.
        let mut avail = vec![false; (hi - lo + 1) as usize];
        for c in cat.clips(camera, unit.start_ns(lo), unit.start_ns(hi + 1))? {
            if !cat.has_media(camera, c.requested_start_utc_ns, c.end_utc_ns)? {
                continue;
            }
            let (a, b) = (unit.of(c.requested_start_utc_ns), unit.of(c.end_utc_ns));
            for u in a.max(lo)..=b.min(hi) {
                avail[(u - lo) as usize] = true;
            }
        }
        for (i, _) in (lo..=hi).zip(avail).filter(|(_, a)| *a) {
            match out.last_mut() {
                Some(r) if r.1 + 1 == i => r.1 = i,
                _ => out.push((i, i)),
            }
        }
    } else if lo <= hi {
        let avail = cat.units_with_media(camera, unit, lo, hi)?;
        for (i, _) in (lo..=hi).zip(avail).filter(|(_, a)| *a) {
            match out.last_mut() {
                Some(r) if r.1 + 1 == i => r.1 = i,
                _ => out.push((i, i)),
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(a, b)| TimeRange {
            start: unit.format(a),
            end: unit.format(b),
        })
        .collect())
}

/// Which units `lo..=hi` hold media, from the camera's discontinuities rather than one lookup
/// per unit; `lo` and `hi` must lie within the camera's media bounds. Between two consecutive
/// discontinuities media is continuous (holes of at most 50 ms), so a unit can only be empty if
/// it lies wholly inside the gap before a discontinuity; that gap's start (the end of the media
/// before it) is looked up only when at least one whole unit fits between the discontinuity and
/// the previous one. Returns `None` when the range holds more discontinuities than twice its
/// units (a flapping camera): the caller then asks unit by unit, which is bounded.
pub(crate) fn units_from_gaps(
    cat: &Catalog,
    camera: &str,
    unit: Unit,
    lo: i64,
    hi: i64,
) -> Result<Option<Vec<bool>>, ApiError> {
    let n = (hi - lo + 1) as usize;
    let limit = 2 * n + 2;
    let (range_start, range_end) = (unit.start_ns(lo), unit.start_ns(hi + 1));
    let discs = cat.disc_starts_after(camera, range_start, limit)?;
    let inside = discs.iter().take_while(|&&d| d < range_end).count();
    if inside == limit {
        return Ok(None);
    }
    let mut avail = vec![true; n];
    // The unit of the previous discontinuity, known to hold media (none yet: `lo` is unknown).
    let mut prev: Option<i64> = None;
    // The discontinuities in range and the first one after it (its gap may reach into range).
    for &d in discs.iter().take(inside + 1) {
        let ud = unit.of(d);
        // Units that might lie wholly inside the gap before `d`.
        let first_candidate = prev.map_or(lo, |p| p + 1);
        // Unit `ud` holds `d` itself; every earlier unit ends at or before `d`.
        let last_candidate = (ud - 1).min(hi);
        if first_candidate <= last_candidate {
            let gap_start = cat.media_end_before(camera, d)?.unwrap_or(i64::MIN);
            for u in first_candidate..=last_candidate {
                if unit.start_ns(u) >= gap_start {
                    avail[(u - lo) as usize] = false;
                }
            }
        }
        prev = Some(ud);
        if d >= range_end {
            break;
        }
    }
    Ok(Some(avail))
}

fn full(
    cat: &dyn Recordings,
    camera: &str,
    start: Option<&str>,
    end: Option<&str>,
    clips_only: bool,
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
    let segs = cat.span_bounds(camera, s, e)?;
    let mut found = spans(&segs, s, e);
    if clips_only {
        found = super::kept::intersect(&found, &super::kept::windows_between(cat, camera, s, e)?);
    }
    Ok(found
        .into_iter()
        .map(|(a, b)| TimeRange {
            start: format_full(a),
            end: format_full(b),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;
    use crate::playback::timeline::tests::seg;
    use crate::store::live::LiveSegments;

    /// The discontinuity walk gives the same units as asking unit by unit, on a timeline with
    /// holes from 10 ms to 40 days, for every unit and many ranges.
    #[test]
    fn units_from_gaps_agrees_with_one_lookup_per_unit() {
        const S: i64 = 1_000_000_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.sqlite3");
        let mut ix = Index::open(&path).unwrap();
        let mut run = ix.insert_run("cam", 0, "connect").unwrap();
        let mut t = 1_700_000_000 * S;
        let mut rows = Vec::new();
        let holes = [
            0,
            S / 100,
            2 * S,
            3 * 3600 * S,
            2 * 86400 * S,
            40 * 86400 * S,
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for i in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let hole = holes[(x % 6) as usize] * i64::from(x % 7 < 3);
            if hole > 50_000_000 || x.is_multiple_of(11) {
                run = ix.insert_run("cam", t, "reconnect").unwrap();
            }
            t += hole;
            let mut r = seg(i, run, t, 15, 2);
            r.path = format!("p{i}");
            t = r.end_utc_ns();
            rows.push(r);
        }
        ix.insert_segments(&rows).unwrap();
        drop(ix);
        let cat = Catalog::open(&path, LiveSegments::new()).unwrap();
        let (first, last) = cat.bounds("cam").unwrap().unwrap();
        let mut checked = 0;
        for unit in [Unit::Year, Unit::Month, Unit::Day] {
            let (a, b) = (unit.of(first), unit.of(last - 1));
            for lo in a..=b {
                for hi in [lo, lo + 1, lo + 5, lo + 31] {
                    let hi = hi.min(b);
                    let slow: Vec<bool> = (lo..=hi)
                        .map(|i| {
                            cat.has_media("cam", unit.start_ns(i), unit.start_ns(i + 1))
                                .unwrap()
                        })
                        .collect();
                    let fast = units_from_gaps(&cat, "cam", unit, lo, hi).unwrap();
                    if let Some(fast) = fast {
                        assert_eq!(fast, slow, "{unit:?} {lo}..={hi}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000, "only {checked} ranges compared");
    }
}
