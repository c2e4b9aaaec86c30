//! HLS media playlists (RFC 8216, version 7, fragmented MP4) for a [`Selection`].
//!
//! Every fragment is one HLS media segment: an `EXT-X-BYTERANGE` of its segment file (section
//! 4.3.2.2). Each period opens with `EXT-X-MAP` (the init segment as a byte range of the period's
//! first file, 4.3.2.5) and `EXT-X-PROGRAM-DATE-TIME` (4.3.2.6); periods after the first are
//! preceded by `EXT-X-DISCONTINUITY` (4.3.2.3). `EXT-X-TARGETDURATION` is the longest fragment
//! rounded to the nearest second (4.3.3.1). The media and discontinuity sequence numbers come from
//! the index, so a live playlist keeps its numbering as its window slides (4.3.3.2, 4.3.3.3).
//! VoD playlists carry `EXT-X-PLAYLIST-TYPE:VOD` and `EXT-X-ENDLIST`; live ones neither.
//!
//! A camera with audio gets a multivariant playlist first ([`multivariant`]): its one variant
//! names both codecs in `CODECS` (section 4.3.4.2) and points at the media playlist (the same
//! URL with `?variant=media`), whose fragments carry both tracks.

use std::fmt::Write;

use crate::mp4::InitInfo;

use super::filter::Selection;
use super::time::format_full;

/// Builds the URL of a segment file relative to the manifest (`media/<id>.mp4`), with the access
/// token appended when the request carried one.
#[derive(Debug, Clone, Default)]
pub struct MediaUrls {
    /// Access token to carry into media URLs (already validated).
    pub token: Option<String>,
}

impl MediaUrls {
    /// The URL of one track of segment `id` (`track`: `video` or `audio`): its init segment
    /// (`at`: `None`) or the fragment at byte offset `at` of the file.
    pub fn track_part(&self, id: i64, track: &str, at: Option<u64>) -> String {
        let at = at.map_or_else(|| "init".to_string(), |a| a.to_string());
        match &self.token {
            Some(t) => format!(
                "media/{id}.mp4?track={track}&at={at}&token={}",
                percent_encode(t)
            ),
            None => format!("media/{id}.mp4?track={track}&at={at}"),
        }
    }

    /// The URL of segment `id`.
    pub fn segment(&self, id: i64) -> String {
        match &self.token {
            Some(t) => format!("media/{id}.mp4?token={}", percent_encode(t)),
            None => format!("media/{id}.mp4"),
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The target duration in seconds: every `EXTINF` rounded to the nearest integer is at most this.
pub fn target_duration_s(sel: &Selection) -> i64 {
    sel.periods
        .iter()
        .flat_map(|p| p.frags.iter())
        .map(|f| (f.duration_ns + 500_000_000) / 1_000_000_000)
        .max()
        .unwrap_or(1)
        .max(1)
}

/// A multivariant playlist (RFC 8216 section 4.3.4.2) with one variant, `media_uri` (the media
/// playlist, relative to this one): `BANDWIDTH` is the highest fragment bit rate of the
/// selection, `CODECS` every distinct video and audio codec of `inits` (RFC 6381), `RESOLUTION`
/// the first init segment's picture size. For cameras with audio: a media playlist cannot say
/// its codecs.
pub fn multivariant(sel: &Selection, inits: &[InitInfo], media_uri: &str) -> String {
    let peak = sel
        .periods
        .iter()
        .flat_map(|p| p.frags.iter())
        .filter(|f| f.duration_ns > 0)
        .map(|f| (f.size as i128 * 8 * 1_000_000_000 / i128::from(f.duration_ns)) as u64)
        .max()
        .unwrap_or(1);
    let mut codecs: Vec<&str> = Vec::new();
    for i in inits {
        for c in std::iter::once(i.codecs.as_str()).chain(i.audio_codecs.as_deref()) {
            if !codecs.contains(&c) {
                codecs.push(c);
            }
        }
    }
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH={peak}"
    );
    if !codecs.is_empty() {
        let _ = write!(out, ",CODECS=\"{}\"", codecs.join(","));
    }
    if let Some(i) = inits.first() {
        let _ = write!(out, ",RESOLUTION={}x{}", i.width, i.height);
    }
    let _ = write!(out, "\n{media_uri}\n");
    out
}

/// Renders the playlist.
pub fn render(sel: &Selection, urls: &MediaUrls) -> String {
    let frags: usize = sel.periods.iter().map(|p| p.frags.len()).sum();
    let mut out = String::with_capacity(256 + frags * 96);
    let first = &sel.periods[0];
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
         #EXT-X-DISCONTINUITY-SEQUENCE:{}\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        target_duration_s(sel),
        first.frags[0].media_seq,
        first.disc_seq,
    );
    if !sel.live {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    for (i, p) in sel.periods.iter().enumerate() {
        if i > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let init = &p.segments[0];
        let _ = writeln!(
            out,
            "#EXT-X-MAP:URI=\"{}\",BYTERANGE=\"{}@0\"",
            urls.segment(init.id),
            init.init_size_bytes
        );
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            format_full(p.start_ns())
        );
        let mut url_of = (usize::MAX, String::new());
        for f in &p.frags {
            if url_of.0 != f.seg {
                url_of = (f.seg, urls.segment(p.segments[f.seg].id));
            }
            let d_ms = f.duration_ns / 1_000_000;
            let _ = write!(
                out,
                "#EXTINF:{}.{:03},\n#EXT-X-BYTERANGE:{}@{}\n{}\n",
                d_ms / 1000,
                d_ms % 1000,
                f.size,
                f.offset,
                url_of.1
            );
        }
    }
    if !sel.live {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::timeline::{periods, tests::seg};

    const S: i64 = 1_000_000_000;

    #[test]
    fn the_multivariant_playlist_names_both_codecs() {
        let sel = Selection {
            live: false,
            periods: periods(&[seg(1, 1, 0, 3, 2)], 0, 1000 * S),
        };
        let info = InitInfo {
            codecs: "avc1.42c014".into(),
            width: 320,
            height: 240,
            audio_codecs: Some("mp4a.40.2".into()),
        };
        let m = multivariant(
            &sel,
            &[info.clone(), info],
            "./manifest(x).m3u8?variant=media",
        );
        // 1000-byte fragments of 2 s: 4000 bit/s.
        assert_eq!(
            m,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=4000,CODECS=\"avc1.42c014,mp4a.40.2\",RESOLUTION=320x240\n\
             ./manifest(x).m3u8?variant=media\n"
        );
    }

    #[test]
    fn vod_with_a_gap() {
        let a = seg(1, 1, 0, 3, 2);
        let mut b = seg(2, 2, 100 * S, 2, 2);
        b.media_seq = 3;
        b.disc_seq = 1;
        let sel = Selection {
            live: false,
            periods: periods(&[a, b], 0, 1000 * S),
        };
        let m = render(
            &sel,
            &MediaUrls {
                token: Some("a b".into()),
            },
        );
        let expected =
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-PLAYLIST-TYPE:VOD\n\
#EXT-X-MAP:URI=\"media/1.mp4?token=a%20b\",BYTERANGE=\"100@0\"\n\
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.000Z\n\
#EXTINF:2.000,\n#EXT-X-BYTERANGE:1000@100\nmedia/1.mp4?token=a%20b\n\
#EXTINF:2.000,\n#EXT-X-BYTERANGE:1000@1100\nmedia/1.mp4?token=a%20b\n\
#EXTINF:2.000,\n#EXT-X-BYTERANGE:1000@2100\nmedia/1.mp4?token=a%20b\n\
#EXT-X-DISCONTINUITY\n\
#EXT-X-MAP:URI=\"media/2.mp4?token=a%20b\",BYTERANGE=\"100@0\"\n\
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:01:40.000Z\n\
#EXTINF:2.000,\n#EXT-X-BYTERANGE:1000@100\nmedia/2.mp4?token=a%20b\n\
#EXTINF:2.000,\n#EXT-X-BYTERANGE:1000@1100\nmedia/2.mp4?token=a%20b\n\
#EXT-X-ENDLIST\n";
        assert_eq!(m, expected);
    }
}
