//! Manifest URLs and their time-range filters (seed `004_*` "Time range filters"; DESIGN
//! section 6).
//!
//! `manifest(format=m3u8-aapl[,startTime=..][,endTime=..]).m3u8` and
//! `manifest(format=mpd-time-cmaf[,...]).mpd`. At most 24 hours per manifest.
//!
//! | startTime | endTime | result |
//! |---|---|---|
//! | absent | absent | the latest media, up to 4 hours; live if the camera is recording now, else VoD |
//! | present | absent | media from startTime on, if that is under 24 hours (else 400); live or VoD as above |
//! | absent | present | 400: endTime needs startTime |
//! | present | present | VoD of the media between them; over 24 hours is 400 |
//!
//! A start or end inside a gap moves to the nearest media in range (fragments are selected by
//! overlap); a range wholly inside a gap is 404 with a JSON message.

use super::catalog::Recordings;
use super::time::{format_full, parse_datetime, NS_PER_S};
use super::timeline::{periods, Period};
use super::ApiError;

/// Longest manifest, ns (24 hours).
pub const MAX_MANIFEST_NS: i64 = 24 * 3600 * NS_PER_S;
/// The window of a manifest without filters, ns (4 hours).
pub const DEFAULT_WINDOW_NS: i64 = 4 * 3600 * NS_PER_S;

/// Manifest protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// HLS, `format=m3u8-aapl`, `.m3u8` (RFC 8216).
    Hls,
    /// MPEG-DASH, `format=mpd-time-cmaf`, `.mpd` (ISO/IEC 23009-1).
    Dash,
}

/// A parsed manifest request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRequest {
    /// Protocol.
    pub format: Format,
    /// `startTime`, UTC ns.
    pub start: Option<i64>,
    /// `endTime`, UTC ns.
    pub end: Option<i64>,
}

/// Parses the last path segment of a manifest URL. `Ok(None)`: not a manifest name at all.
pub fn parse_manifest_name(name: &str) -> Result<Option<ManifestRequest>, ApiError> {
    let Some(rest) = name.strip_prefix("manifest(") else {
        return Ok(None);
    };
    let (inner, ext) = match rest.rsplit_once(")") {
        Some((i, e)) => (i, e),
        None => return Ok(None),
    };
    let mut format = None;
    let (mut start, mut end) = (None, None);
    for kv in inner.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            ApiError::bad(
                "InvalidManifestFilter",
                format!("manifest filter {kv:?} is not key=value"),
            )
        })?;
        match k.to_ascii_lowercase().as_str() {
            "format" => format = Some(v),
            "starttime" => {
                start =
                    Some(parse_datetime(v).map_err(|m| {
                        ApiError::bad("InvalidTimeFormat", format!("startTime: {m}"))
                    })?)
            }
            "endtime" => {
                end = Some(
                    parse_datetime(v)
                        .map_err(|m| ApiError::bad("InvalidTimeFormat", format!("endTime: {m}")))?,
                )
            }
            other => {
                return Err(ApiError::bad(
                    "InvalidManifestFilter",
                    format!("unknown manifest filter {other:?}: use format, startTime, endTime"),
                ))
            }
        }
    }
    let format = match (format, ext) {
        (Some("m3u8-aapl"), ".m3u8") => Format::Hls,
        (Some("mpd-time-cmaf"), ".mpd") => Format::Dash,
        (Some(f), _) => {
            return Err(ApiError::bad(
                "InvalidManifestFormat",
                format!(
                    "format {f:?} with extension {ext:?}: use format=m3u8-aapl with .m3u8 or \
                     format=mpd-time-cmaf with .mpd"
                ),
            ))
        }
        (None, _) => {
            return Err(ApiError::bad(
                "InvalidManifestFormat",
                "format is required: m3u8-aapl or mpd-time-cmaf",
            ))
        }
    };
    Ok(Some(ManifestRequest { format, start, end }))
}

/// What a manifest covers.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Live (the camera is recording and the window reaches now) or VoD.
    pub live: bool,
    /// The periods, oldest first; never empty.
    pub periods: Vec<Period>,
}

/// Applies the filter rules for `camera` and selects the fragments. `clips_only`: an EVR
/// camera, whose VoD manifests hold only what its clips keep ([`super::kept`]; a live manifest
/// still reaches the live edge).
pub fn select(
    cat: &dyn Recordings,
    camera: &str,
    req: &ManifestRequest,
    clips_only: bool,
) -> Result<Selection, ApiError> {
    let recording = cat.open_segment(camera).is_some();
    let no_media = || {
        ApiError::not_found(
            "NoMediaInRange",
            "no media in the requested time range (it lies wholly in a gap or outside the recording)",
        )
    };
    let (from, to, live) = match (req.start, req.end) {
        (None, Some(_)) => {
            return Err(ApiError::bad(
                "MissingStartTime",
                "endTime needs startTime in a manifest filter",
            ))
        }
        (Some(s), Some(e)) => {
            if s >= e {
                return Err(ApiError::bad(
                    "InvalidTimeRange",
                    "startTime must be before endTime",
                ));
            }
            if e - s > MAX_MANIFEST_NS {
                return Err(ApiError::bad(
                    "TimeRangeTooLong",
                    "a manifest may cover at most 24 hours (endTime - startTime)",
                ));
            }
            (s, e, false)
        }
        (None, None) => {
            let (_, last) = cat.bounds(camera)?.ok_or_else(no_media)?;
            (last - DEFAULT_WINDOW_NS, i64::MAX, recording)
        }
        (Some(s), None) => {
            let (_, last) = cat.bounds(camera)?.ok_or_else(no_media)?;
            if last - s > MAX_MANIFEST_NS {
                return Err(ApiError::bad(
                    "TimeRangeTooLong",
                    format!(
                        "media after startTime spans more than 24 hours (up to {}): add an endTime at most 24 hours after startTime",
                        format_full(last)
                    ),
                ));
            }
            (s, i64::MAX, recording)
        }
    };
    let segs = cat.segments(camera, from, to)?;
    let periods = if clips_only && !live {
        let clips = cat.clips(camera, from, to)?;
        super::kept::windows(&segs, &clips)
            .into_iter()
            .flat_map(|(a, b)| periods(&segs, a.max(from), b.min(to)))
            .collect()
    } else {
        periods(&segs, from, to)
    };
    if periods.is_empty() {
        return Err(no_media());
    }
    Ok(Selection { live, periods })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let r = parse_manifest_name("manifest(format=m3u8-aapl).m3u8")
            .unwrap()
            .unwrap();
        assert_eq!((r.format, r.start, r.end), (Format::Hls, None, None));
        let r = parse_manifest_name(
            "manifest(format=mpd-time-cmaf,startTime=2019-12-21T08:00:00.000Z,endTime=2019-12-21T10:00:00Z).mpd",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.format, Format::Dash);
        assert_eq!(r.end.unwrap() - r.start.unwrap(), 2 * 3600 * NS_PER_S);
        assert!(parse_manifest_name("availableMedia").unwrap().is_none());
        for bad in [
            "manifest(format=m3u8-aapl).mpd",
            "manifest(format=smooth).m3u8",
            "manifest().m3u8",
            "manifest(format=m3u8-aapl,startTime=noon).m3u8",
            "manifest(format=m3u8-aapl,foo=1).m3u8",
        ] {
            assert_eq!(parse_manifest_name(bad).unwrap_err().status, 400, "{bad}");
        }
    }
}
