//! Object names of the cloud layout (docs/cloud.md) as the cloud side reads them: what one name
//! in a day folder is, and the media id that stands for a segment object in manifest URLs.
//! Writing the names is the uploader's (`crate::upload::target`, `crate::upload::hour_index`);
//! this module only parses, and shares the formats through those functions.

use crate::store::layout::parse_segment_name;

/// Milliseconds of duration a media id carries (a segment is at most PT5M).
const DURATION_SPACE: i64 = 1_000_000;

/// One object of a camera's day folder `<camera>/<YYYY>/<MM>/<DD>/`, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A segment (or an EVR clip piece): `<start>_<duration_ms>.mp4`. Start UTC ns
    /// (millisecond precision), duration ns.
    Segment {
        /// Start, UTC ns.
        start: i64,
        /// Duration, ns (millisecond precision).
        duration: i64,
    },
    /// An hour index object `index-<HH>.json`: the hour of the day.
    Index {
        /// Hour of the day, 0..=23.
        hour: u8,
    },
    /// An EVR clip description `<start>_clip<id>.json`.
    Clip {
        /// Requested start, UTC ns (millisecond precision).
        start: i64,
        /// The gateway's clip id.
        id: i64,
    },
}

/// What `name` (the last part of a key) is; `None`: not part of the layout (ignored).
pub fn parse(name: &str) -> Option<Entry> {
    if let Some(h) = name
        .strip_prefix("index-")
        .and_then(|r| r.strip_suffix(".json"))
    {
        if h.len() != 2 || !h.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let hour: u8 = h.parse().ok().filter(|v: &u8| *v < 24)?;
        return Some(Entry::Index { hour });
    }
    let (stem, rest) = name.split_once('_')?;
    let start = parse_segment_name(&format!("{stem}.mp4"))?;
    if let Some(ms) = rest.strip_suffix(".mp4") {
        if !ms_digits(ms) || ms.len() > 10 {
            return None;
        }
        let ms: i64 = ms.parse().ok()?;
        return Some(Entry::Segment {
            start,
            duration: ms * 1_000_000,
        });
    }
    let id = rest.strip_prefix("clip")?.strip_suffix(".json")?;
    Some(Entry::Clip {
        start,
        id: id.parse().ok()?,
    })
}

fn ms_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// The media id of a segment object in manifest URLs (`media/<id>.mp4`): its start in
/// milliseconds since 1970 times 10⁶ plus its duration in milliseconds (modulo 10⁶; a segment
/// is at most PT5M), so that the object follows from the id alone and every replica gives the
/// same URLs.
pub fn media_id(start_ns: i64, duration_ns: i64) -> i64 {
    start_ns.div_euclid(1_000_000) * DURATION_SPACE + (duration_ns / 1_000_000) % DURATION_SPACE
}

/// Start (UTC ns) and duration (ns) of a media id; `None` for an id no object can have.
pub fn of_media_id(id: i64) -> Option<(i64, i64)> {
    (id > 0).then(|| {
        (
            id / DURATION_SPACE * 1_000_000,
            id % DURATION_SPACE * 1_000_000,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_layout() {
        let t = 1_576_900_868_123_000_000;
        assert_eq!(
            parse("20191221T040108.123Z_30000.mp4"),
            Some(Entry::Segment {
                start: t,
                duration: 30_000_000_000
            })
        );
        assert_eq!(parse("index-04.json"), Some(Entry::Index { hour: 4 }));
        assert_eq!(
            parse("20191221T040108.123Z_clip17.json"),
            Some(Entry::Clip { start: t, id: 17 })
        );
        for other in [
            "index-4.json",
            "index-24.json",
            "20191221T040108.123Z.mp4",
            "20191221T040108.123Z_-5.mp4",
            "20191221T040108.123Z_+5.mp4",
            "notes.txt",
            "20191321T040108.123Z_30000.mp4",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
        assert!(matches!(
            parse("20190101T000000.000Z_3600000.mp4"),
            Some(Entry::Segment {
                duration: 3_600_000_000_000,
                ..
            })
        ));
        let id = media_id(t + 456_789, 30_000_999_999);
        assert_eq!(of_media_id(id), Some((t, 30_000_000_000)));
        assert_eq!(of_media_id(0), None);
    }
}
