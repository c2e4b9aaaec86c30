//! The tracks of an init segment (ISO/IEC 14496-12 `moov` > `trak`): id, kind, timescale and
//! RFC 6381 codec, as manifests, the time rebase and per-track serving need them. A segment
//! file has a video track (always the first: the muxer orders video before audio) and, from a
//! camera recorded with `audio = "auto"`, an AAC audio track.
//!
//! Not here: walking fragments ([`super::scan`]), changing bytes ([`crate::store::timebase`],
//! [`crate::playback::split`]).

use super::{be32, child_boxes, find_path};

/// What a track carries, from its `hdlr` handler type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// `vide`.
    Video,
    /// `soun`.
    Audio,
    /// Anything else (metadata).
    Other,
}

/// One `trak` of an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// `tkhd` `track_ID` (fragments name it in `tfhd`).
    pub id: u32,
    /// From `hdlr`.
    pub kind: TrackKind,
    /// `mdhd` timescale, ticks per second (an audio track's is its sample rate).
    pub timescale: u32,
    /// Sample entry four-cc: `avc1`, `hvc1`, `mp4a`, ...
    pub sample_entry: String,
    /// RFC 6381 `codecs` value where this module knows how to make it: `mp4a.40.2` for AAC-LC
    /// (ISO/IEC 14496-3 audio object type from the `esds` AudioSpecificConfig); video codecs
    /// come from [`super::init_info`].
    pub codecs: Option<String>,
    /// Audio sample rate in Hz (from the audio sample entry); 0 for video.
    pub sample_rate: u32,
    /// Audio channels; 0 for video.
    pub channels: u16,
}

/// The tracks of an init segment (`ftyp` + `moov`), in `moov` order; empty if there is no
/// readable `moov`.
pub fn tracks(init: &[u8]) -> Vec<Track> {
    let Some((_, moov)) = child_boxes(init).find(|(t, _)| t == b"moov") else {
        return Vec::new();
    };
    moov_tracks(moov)
}

/// What the index and manifests call the audio of `tracks`: the RFC 6381 `codecs` of the first
/// audio track (`mp4a.40.2`), or its sample entry four-cc where no `codecs` can be made; `None`
/// without an audio track.
pub fn audio_codecs(tracks: Vec<Track>) -> Option<String> {
    tracks
        .into_iter()
        .find(|t| t.kind == TrackKind::Audio)
        .map(|t| t.codecs.unwrap_or(t.sample_entry))
}

/// The tracks of a `moov` body, in order.
pub fn moov_tracks(moov: &[u8]) -> Vec<Track> {
    child_boxes(moov)
        .filter(|(t, _)| t == b"trak")
        .filter_map(|(_, trak)| track(trak))
        .collect()
}

fn track(trak: &[u8]) -> Option<Track> {
    let tkhd = find_path(trak, &[b"tkhd"])?;
    let id = if tkhd.first()? == &1 {
        be32(tkhd, 20)?
    } else {
        be32(tkhd, 12)?
    };
    let mdhd = find_path(trak, &[b"mdia", b"mdhd"])?;
    let timescale = if mdhd.first()? == &1 {
        be32(mdhd, 20)?
    } else {
        be32(mdhd, 12)?
    };
    let hdlr = find_path(trak, &[b"mdia", b"hdlr"])?;
    let kind = match hdlr.get(8..12)? {
        b"vide" => TrackKind::Video,
        b"soun" => TrackKind::Audio,
        _ => TrackKind::Other,
    };
    let stsd = find_path(trak, &[b"mdia", b"minf", b"stbl", b"stsd"])?;
    let (fourcc, entry) = child_boxes(stsd.get(8..)?).next()?;
    let sample_entry = String::from_utf8_lossy(&fourcc).into_owned();
    let (mut codecs, mut sample_rate, mut channels) = (None, 0, 0);
    if kind == TrackKind::Audio {
        // AudioSampleEntry (section 12.2.3): 8 bytes SampleEntry, 8 reserved, channelcount,
        // samplesize, 4 reserved, samplerate 16.16; then its boxes.
        channels = u16::from_be_bytes(entry.get(16..18)?.try_into().ok()?);
        sample_rate = be32(entry, 24)? >> 16;
        if &fourcc == b"mp4a" {
            codecs = child_boxes(entry.get(28..)?)
                .find(|(t, _)| t == b"esds")
                .and_then(|(_, esds)| mp4a_codecs(esds));
        }
    }
    Some(Track {
        id,
        kind,
        timescale,
        sample_entry,
        codecs,
        sample_rate,
        channels,
    })
}

/// `mp4a.OTI.AOT` (RFC 6381 section 3.3) from an `esds` body: the DecoderConfigDescriptor's
/// objectTypeIndication in hex, and for MPEG-4 audio (0x40) the AudioSpecificConfig's audio
/// object type in decimal (ISO/IEC 14496-1 section 7.2.6, ISO/IEC 14496-3 section 1.6.2.1).
fn mp4a_codecs(esds: &[u8]) -> Option<String> {
    // Descriptors: tag, then a size in 1 to 4 bytes of 7 bits each.
    fn descriptor(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *b.first()?;
        let mut size = 0usize;
        let mut i = 1;
        loop {
            let c = *b.get(i)?;
            size = (size << 7) | usize::from(c & 0x7f);
            i += 1;
            if c & 0x80 == 0 || i == 5 {
                break;
            }
        }
        let body = b.get(i..i + size)?;
        Some((tag, body, &b[i + size..]))
    }
    let (tag, es, _) = descriptor(esds.get(4..)?)?;
    if tag != 0x03 {
        return None;
    }
    let flags = *es.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at)?); // URL
    }
    if flags & 0x20 != 0 {
        at += 2; // OCR_ES_Id
    }
    let (tag, dc, _) = descriptor(es.get(at..)?)?;
    if tag != 0x04 {
        return None;
    }
    let oti = *dc.first()?;
    if oti != 0x40 {
        return Some(format!("mp4a.{oti:02x}"));
    }
    let (tag, asc, _) = descriptor(dc.get(13..)?)?;
    if tag != 0x05 {
        return Some("mp4a.40".into());
    }
    let aot = asc.first()? >> 3;
    Some(format!("mp4a.40.{aot}"))
}

/// The first track's timescale and every other track's (id, timescale): what the time rebase
/// needs to move all tracks of a fragment by the same time ([`crate::store::timebase`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackScales {
    /// Timescale of the first track (the video track; `segment.decode_time` is in its ticks).
    pub first: u32,
    /// (track_ID, timescale) of the other tracks.
    pub others: Vec<(u32, u32)>,
}

impl TrackScales {
    /// The scales of an init segment's tracks (the first track's alone when there is one).
    pub fn of_init(init: &[u8]) -> TrackScales {
        Self::of_tracks(&tracks(init))
    }

    /// The scales of `t`, the tracks of one init segment in order.
    pub fn of_tracks(t: &[Track]) -> TrackScales {
        TrackScales {
            first: t.first().map_or(0, |t| t.timescale),
            others: t.iter().skip(1).map(|t| (t.id, t.timescale)).collect(),
        }
    }

    /// `ticks` of the first track's clock in ticks of `timescale`, rounded half away from zero
    /// (the same shift, in either direction, gives the same magnitude).
    pub fn convert(&self, ticks: i128, timescale: u32) -> i128 {
        if self.first == 0 || timescale == self.first {
            return ticks;
        }
        let (num, den) = (i128::from(timescale), i128::from(self.first));
        let mag = (ticks.abs() * num + den / 2) / den;
        if ticks < 0 {
            -mag
        } else {
            mag
        }
    }

    /// The timescale of track `id` among the others.
    pub fn of(&self, id: u32) -> Option<u32> {
        self.others.iter().find(|(i, _)| *i == id).map(|(_, t)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aac_lc_esds_gives_mp4a_40_2() {
        // esds v0: ES_Descriptor(ES_ID 1, flags 0) > DecoderConfigDescriptor(0x40, audio) >
        // DecoderSpecificInfo(AAC-LC 48 kHz mono: 0x11 0x88), then SLConfig.
        let esds = [
            0, 0, 0, 0, 0x03, 0x19, 0, 1, 0, 0x04, 0x11, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0x05, 0x02, 0x11, 0x88, 0x06, 0x01, 0x02,
        ];
        assert_eq!(mp4a_codecs(&esds).as_deref(), Some("mp4a.40.2"));
        // Sizes in the 4-byte form (0x80 0x80 0x80 n), as some muxers write them.
        let long = [
            0, 0, 0, 0, 0x03, 0x80, 0x80, 0x80, 0x1c, 0, 1, 0, 0x04, 0x80, 0x80, 0x80, 0x14, 0x40,
            0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x80, 0x80, 0x80, 0x02, 0x11, 0x88,
        ];
        assert_eq!(mp4a_codecs(&long).as_deref(), Some("mp4a.40.2"));
        assert_eq!(mp4a_codecs(&[0, 0, 0, 0, 0x07]), None);
    }

    #[test]
    fn one_shift_converts_the_same_both_ways() {
        let s = TrackScales {
            first: 90_000,
            others: vec![(2, 48_000), (3, 8_000)],
        };
        for t in [0i128, 1, 7, 89_999, 160_000_000_000_017] {
            assert_eq!(s.convert(-t, 48_000), -s.convert(t, 48_000));
        }
        assert_eq!(s.convert(90_000, 48_000), 48_000);
        assert_eq!(s.convert(90_000, 90_000), 90_000);
        assert_eq!(s.of(3), Some(8_000));
        assert_eq!(s.of(9), None);
    }
}
