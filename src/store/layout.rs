//! Where media lives on the card (DESIGN section 4) and how names map to times.
//!
//! `<storage>/media/<camera>/<YYYY>/<MM>/<DD>/<YYYYMMDDTHHMMSS.mmmZ>.mp4`, all UTC. The start time
//! in the file name is the segment's start, so the index can be rebuilt from the files alone.

use time::OffsetDateTime;

/// Directory under the storage root that holds all media.
pub const MEDIA_DIR: &str = "media";

/// UTC nanoseconds since 1970 to a date-time (saturating at the representable range).
pub fn utc(ns: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// File name stem of a segment starting at `start_utc_ns`, e.g. `20191221T040108.123Z`
/// (millisecond precision, as in DESIGN section 4).
pub fn segment_stem(start_utc_ns: i64) -> String {
    let t = utc(start_utc_ns);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Path of a segment relative to the storage root.
pub fn segment_rel_path(camera: &str, start_utc_ns: i64) -> String {
    let t = utc(start_utc_ns);
    format!(
        "{MEDIA_DIR}/{camera}/{:04}/{:02}/{:02}/{}.mp4",
        t.year(),
        u8::from(t.month()),
        t.day(),
        segment_stem(start_utc_ns)
    )
}

/// Parses a segment file name (`20191221T040108.123Z.mp4`) to its start in UTC ns.
pub fn parse_segment_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".mp4")?;
    let b = stem.as_bytes();
    if b.len() != 20 || b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = stem.get(r)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let date = time::Date::from_calendar_date(
        num(0..4)? as i32,
        time::Month::try_from(num(4..6)? as u8).ok()?,
        num(6..8)? as u8,
    )
    .ok()?;
    let t = time::Time::from_hms_milli(
        num(9..11)? as u8,
        num(11..13)? as u8,
        num(13..15)? as u8,
        num(16..19)? as u16,
    )
    .ok()?;
    let dt = time::PrimitiveDateTime::new(date, t).assume_utc();
    i64::try_from(dt.unix_timestamp_nanos()).ok()
}

/// `root/rel` if `rel` is a plain relative path (no `..`, not absolute): index paths are
/// joined through this before they are opened.
pub fn safe_join(root: &std::path::Path, rel: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(rel);
    p.components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
        .then(|| root.join(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        // 2019-12-21T04:01:08.123Z, the DESIGN example.
        let ns = 1_576_900_868_123_000_000i64;
        assert_eq!(segment_stem(ns), "20191221T040108.123Z");
        assert_eq!(
            segment_rel_path("cam", ns),
            "media/cam/2019/12/21/20191221T040108.123Z.mp4"
        );
        assert_eq!(parse_segment_name("20191221T040108.123Z.mp4"), Some(ns));
        assert_eq!(parse_segment_name("20191221T040108.123Z.mp4.tmp"), None);
        assert_eq!(parse_segment_name("20191321T040108.123Z.mp4"), None);
    }
}
