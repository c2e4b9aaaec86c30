//! MPEG-DASH MPDs (ISO/IEC 23009-1) for a [`Selection`].
//!
//! One Period per continuous stretch (a run; section 5.3.2), one video AdaptationSet with one
//! Representation whose `codecs` come from the init segment (RFC 6381). Fragments are addressed
//! by byte range: a `SegmentList` (5.3.9.3) with the init segment as `Initialization@range` of the
//! period's first file, a `SegmentTimeline` (5.3.9.6) whose `S@t` are the fragments' `tfdt`, and one
//! `SegmentURL@media`/`@mediaRange` per fragment.
//!
//! A period whose files also hold audio gets two AdaptationSets, video and audio (dash.js does
//! not play multiplexed representations: Dash-Industry-Forum/dash.js issue 1385). Each names
//! its init segment and fragments by URL (`media/<id>.mp4?track=audio&at=<offset>`); the server
//! cuts that track out of the muxed bytes ([`super::split`]), so nothing is stored twice.
//!
//! VoD (`type="static"`): periods follow each other with no time between them (the gaps are not
//! played), `presentationTimeOffset` is the first fragment's `tfdt`. Live (`type="dynamic"`,
//! `availabilityStartTime` = 1970-01-01T00:00:00Z): a period starts at the wall-clock time of
//! `tfdt` 0 of its run, so the mapping of media time to UTC does not change while the window
//! slides, and periods sit at their real times.

use std::fmt::Write;

use super::filter::Selection;
use super::hls::MediaUrls;
use super::time::format_full;
use crate::mp4::InitInfo;

/// An ISO 8601 duration with millisecond precision, e.g. `PT7.040S`.
pub fn iso_duration(ns: i64) -> String {
    let ms = ns.max(0) / 1_000_000;
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// `@bandwidth` of an audio Representation, bits per second (AAC from cameras is 16 to 128
/// kbit/s; players only compare it between representations, and there is one).
const AUDIO_BANDWIDTH: u64 = 64_000;

/// One track of a file with two, served on its own ([`super::split`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// The video track.
    Video,
    /// The audio track.
    Audio,
}

impl Track {
    /// The word in media URLs: `video` or `audio`.
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Video => "video",
            Track::Audio => "audio",
        }
    }
}

/// One AdaptationSet with one Representation and its SegmentList. `track: None`: the video of a
/// file without audio, addressed by byte range in the file itself; `Some(t)`: track `t` of a
/// file with both, one URL per fragment that the server cuts out ([`MediaUrls::track_part`]).
#[allow(clippy::too_many_arguments)]
fn adaptation_set(
    out: &mut String,
    p: &super::timeline::Period,
    urls: &MediaUrls,
    info: Option<&InitInfo>,
    codecs: &str,
    bandwidth: u64,
    ts: i64,
    pto: u64,
    track: Option<Track>,
) {
    let seg0 = &p.segments[0];
    if track == Some(Track::Audio) {
        let _ = write!(
            out,
            "    <AdaptationSet contentType=\"audio\" mimeType=\"audio/mp4\" segmentAlignment=\"true\" \
             startWithSAP=\"1\">\n      <Representation id=\"audio\" codecs=\"{codecs}\" bandwidth=\"{bandwidth}\""
        );
    } else {
        let _ = write!(
            out,
            "    <AdaptationSet contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" \
             startWithSAP=\"1\">\n      <Representation id=\"video\" codecs=\"{codecs}\" bandwidth=\"{bandwidth}\""
        );
        if let Some(i) = info {
            let _ = write!(out, " width=\"{}\" height=\"{}\"", i.width, i.height);
        }
    }
    let _ = write!(
        out,
        ">\n        <SegmentList timescale=\"{ts}\" presentationTimeOffset=\"{pto}\">\n          "
    );
    match track {
        None => {
            let init_url = urls.segment(seg0.id).replace('&', "&amp;");
            let _ = writeln!(
                out,
                "<Initialization sourceURL=\"{init_url}\" range=\"0-{}\"/>",
                seg0.init_size_bytes - 1
            );
        }
        Some(t) => {
            let init_url = urls
                .track_part(seg0.id, t.as_str(), None)
                .replace('&', "&amp;");
            let _ = writeln!(out, "<Initialization sourceURL=\"{init_url}\"/>");
        }
    }
    out.push_str("          <SegmentTimeline>\n");
    // One S element per fragment, never `@r`: with a SegmentList, players pair the n-th
    // SegmentURL with the n-th S element (dash.js 4 indexes SegmentURLs by S element), so
    // repeats would shift every later byte range. An audio track's fragments span the same
    // times as the video's (the muxer cuts both at the video's key frames), so both sets share
    // the video's timeline.
    for f in &p.frags {
        let _ = writeln!(
            out,
            "            <S t=\"{}\" d=\"{}\"/>",
            f.decode_time, f.duration_ticks
        );
    }
    out.push_str("          </SegmentTimeline>\n");
    let mut url_of = (usize::MAX, String::new());
    for f in &p.frags {
        let id = p.segments[f.seg].id;
        match track {
            None => {
                if url_of.0 != f.seg {
                    url_of = (f.seg, urls.segment(id).replace('&', "&amp;"));
                }
                let _ = writeln!(
                    out,
                    "          <SegmentURL media=\"{}\" mediaRange=\"{}-{}\"/>",
                    url_of.1,
                    f.offset,
                    f.offset + f.size - 1
                );
            }
            Some(t) => {
                let _ = writeln!(
                    out,
                    "          <SegmentURL media=\"{}\"/>",
                    urls.track_part(id, t.as_str(), Some(f.offset))
                        .replace('&', "&amp;")
                );
            }
        }
    }
    out.push_str("        </SegmentList>\n      </Representation>\n    </AdaptationSet>\n");
}

/// Renders the MPD. `inits[i]` describes period `i`'s init segment (`None`: codecs unknown, the
/// sample entry four-cc is used); `now_ns` is the publish time (UTC ns).
pub fn render(
    sel: &Selection,
    urls: &MediaUrls,
    inits: &[Option<InitInfo>],
    now_ns: i64,
) -> String {
    let frags: usize = sel.periods.iter().map(|p| p.frags.len()).sum();
    let mut out = String::with_capacity(1024 + frags * 80);
    let total: i64 = sel.periods.iter().map(|p| p.duration_ns()).sum();
    let longest = sel
        .periods
        .iter()
        .flat_map(|p| p.frags.iter())
        .map(|f| f.duration_ns)
        .max()
        .unwrap_or(2_000_000_000);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if sel.live {
        let _ = writeln!(
            out,
            "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:full:2011\" \
             type=\"dynamic\" availabilityStartTime=\"1970-01-01T00:00:00Z\" publishTime=\"{}\" \
             minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"PT4H\" suggestedPresentationDelay=\"{}\" \
             minBufferTime=\"{}\">",
            format_full(now_ns),
            iso_duration(longest),
            iso_duration(3 * longest),
            iso_duration(longest),
        );
    } else {
        let _ = writeln!(
            out,
            "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:full:2011\" \
             type=\"static\" mediaPresentationDuration=\"{}\" minBufferTime=\"{}\">",
            iso_duration(total),
            iso_duration(longest),
        );
    }
    let mut vod_start = 0i64;
    // Live periods never start before the availability start (1970) nor before the previous end.
    let mut prev_end_ns = 0i64;
    for (i, p) in sel.periods.iter().enumerate() {
        let ts = i64::from(p.timescale());
        let first = &p.frags[0];
        let (start_ns, pto) = if sel.live {
            // Wall-clock time of tfdt 0 of the run; never before the previous period's end.
            // tfdt is wall-clock based (about 1.7e14 ticks at 90 kHz): i128 for the product.
            let anchor = first.start_ns
                - (i128::from(first.decode_time) * 1_000_000_000 / i128::from(ts)) as i64;
            if anchor >= prev_end_ns {
                (anchor, 0u64)
            } else {
                let shift = prev_end_ns - anchor;
                (
                    prev_end_ns,
                    (shift as i128 * ts as i128 / 1_000_000_000) as u64,
                )
            }
        } else {
            (vod_start, first.decode_time)
        };
        let dur = p.duration_ns();
        let seg0 = &p.segments[0];
        let info = inits.get(i).cloned().flatten();
        let codecs = info
            .as_ref()
            .map_or_else(|| seg0.codec.clone(), |i| i.codecs.clone());
        let bytes: u64 = p.frags.iter().map(|f| f.size).sum();
        let bandwidth = (bytes as i128 * 8 * 1_000_000_000 / i128::from(dur.max(1))) as u64;
        let _ = write!(
            out,
            "  <Period id=\"r{}s{}\" start=\"{}\"",
            seg0.run_id,
            seg0.id,
            iso_duration(start_ns)
        );
        if !sel.live {
            let _ = write!(out, " duration=\"{}\"", iso_duration(dur));
        }
        out.push_str(">\n");
        // Without audio, the video set as it always was; with audio, one set per track.
        let sets: Vec<(&str, u64, Option<Track>)> =
            match info.as_ref().and_then(|i| i.audio_codecs.as_deref()) {
                None => vec![(&codecs, bandwidth, None)],
                Some(audio) => vec![
                    (&codecs, bandwidth, Some(Track::Video)),
                    (audio, AUDIO_BANDWIDTH, Some(Track::Audio)),
                ],
            };
        for (c, bw, track) in sets {
            adaptation_set(&mut out, p, urls, info.as_ref(), c, bw, ts, pto, track);
        }
        out.push_str("  </Period>\n");
        vod_start += dur;
        prev_end_ns = start_ns + dur;
    }
    if sel.live {
        out.push_str("  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"");
        out.push_str(&format_full(now_ns));
        out.push_str("\"/>\n");
    }
    out.push_str("</MPD>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::timeline::{periods, tests::seg};

    const S: i64 = 1_000_000_000;

    #[test]
    fn static_two_periods() {
        let a = seg(1, 1, 0, 3, 2);
        let mut b = seg(2, 2, 100 * S, 2, 2);
        b.decode_time = 90_000;
        let sel = Selection {
            live: false,
            periods: periods(&[a, b], 0, 1000 * S),
        };
        let m = render(&sel, &MediaUrls::default(), &[], 0);
        assert!(
            m.contains("type=\"static\" mediaPresentationDuration=\"PT10.000S\""),
            "{m}"
        );
        assert!(m.contains("<Period id=\"r1s1\" start=\"PT0.000S\" duration=\"PT6.000S\">"));
        assert!(m.contains("<Period id=\"r2s2\" start=\"PT6.000S\" duration=\"PT4.000S\">"));
        assert!(m.contains("<S t=\"0\" d=\"180000\"/>\n            <S t=\"180000\" d=\"180000\"/>"));
        assert!(!m.contains(" r=\""));
        assert!(m.contains("presentationTimeOffset=\"90000\""));
        assert!(m.contains("<S t=\"90000\" d=\"180000\"/>"));
        assert!(m.contains("<Initialization sourceURL=\"media/2.mp4\" range=\"0-99\"/>"));
        assert!(m.contains("<SegmentURL media=\"media/2.mp4\" mediaRange=\"1100-2099\"/>"));
        assert_eq!(m.matches("<SegmentURL").count(), 5);
    }

    #[test]
    fn a_period_with_audio_has_an_audio_and_a_video_set_of_track_parts() {
        let a = seg(7, 1, 0, 3, 2);
        let sel = Selection {
            live: false,
            periods: periods(&[a], 0, 1000 * S),
        };
        let info = InitInfo {
            codecs: "avc1.42c014".into(),
            width: 320,
            height: 240,
            audio_codecs: Some("mp4a.40.2".into()),
        };
        let m = render(&sel, &MediaUrls::default(), &[Some(info)], 0);
        assert_eq!(m.matches("<AdaptationSet").count(), 2, "{m}");
        assert!(
            m.contains("contentType=\"audio\" mimeType=\"audio/mp4\""),
            "{m}"
        );
        assert!(
            m.contains("<Representation id=\"audio\" codecs=\"mp4a.40.2\""),
            "{m}"
        );
        assert!(m.contains("<Initialization sourceURL=\"media/7.mp4?track=audio&amp;at=init\"/>"));
        assert!(m.contains("<Initialization sourceURL=\"media/7.mp4?track=video&amp;at=init\"/>"));
        // One part per fragment in each set, at the fragment's byte offset; no byte ranges.
        assert!(
            m.contains("<SegmentURL media=\"media/7.mp4?track=audio&amp;at=1100\"/>"),
            "{m}"
        );
        assert_eq!(m.matches("<SegmentURL").count(), 6);
        assert!(!m.contains("mediaRange"));
        assert_eq!(m.matches("<S t=").count(), 6);
    }

    #[test]
    fn dynamic_anchors_periods_at_their_wall_clock() {
        let mut a = seg(1, 1, 1000 * S, 3, 2);
        a.decode_time = 10 * 90_000; // tfdt 10 s at 1000 s: tfdt 0 was at 990 s
        let sel = Selection {
            live: true,
            periods: periods(&[a], 0, i64::MAX),
        };
        let m = render(&sel, &MediaUrls::default(), &[], 1006 * S);
        assert!(m.contains("type=\"dynamic\""));
        assert!(m.contains("start=\"PT990.000S\""), "{m}");
        assert!(m.contains("presentationTimeOffset=\"0\""));
        assert!(m.contains("<S t=\"900000\" d=\"180000\"/>"));
    }

    #[test]
    fn dynamic_with_a_wall_clock_tfdt_ahead_of_the_segment_time_starts_at_0() {
        // tfdt counts from 1970 (ingest) and runs 2 s ahead of the camera's clock: the period
        // cannot start before the availability start, so it starts at 0 and the offset moves
        // the media to its wall-clock time.
        let t = 1_790_000_000 * S;
        let mut a = seg(1, 1, t, 3, 2);
        a.decode_time = (t / S + 2) as u64 * 90_000;
        let sel = Selection {
            live: true,
            periods: periods(&[a.clone()], 0, i64::MAX),
        };
        let m = render(&sel, &MediaUrls::default(), &[], t + 6 * S);
        assert!(m.contains("start=\"PT0.000S\""), "{m}");
        assert!(
            m.contains(&format!("presentationTimeOffset=\"{}\"", 2 * 90_000)),
            "{m}"
        );
        assert!(m.contains(&format!("<S t=\"{}\" d=\"180000\"/>", a.decode_time)));
    }
}
