//! Reading our own fragmented-MP4 segment files (ISO/IEC 14496-12) just far enough to recover them.
//!
//! A segment file is `ftyp` + `moov` (the init segment) followed by fragments, each an optional
//! `styp`/`prft`/`sidx` prefix, one `moof` and one `mdat`. [`scan`] walks the top-level boxes and
//! reports the init segment size, the track timescale and codec, and every *complete* fragment
//! (offset, size, duration); a torn tail (a box cut short by a crash) ends the scan and is reported
//! as the valid length, so that recovery can truncate to it. The scan's timescale, codec and
//! durations are the first track's (the video: the muxer orders video before audio); the audio
//! track's codec is reported beside it, and [`tracks`] describes every track of an init segment.
//! Writing MP4 is the muxer's job, not this module's.

use std::io::{Read, Seek, SeekFrom};

pub mod tracks;
pub use tracks::{audio_codecs, moov_tracks, tracks, Track, TrackKind, TrackScales};

/// One complete fragment inside a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Byte offset of the fragment's first box in the file.
    pub offset: u64,
    /// Bytes from `offset` to the end of its `mdat`.
    pub size: u64,
    /// Sum of the sample durations of the first track, in `timescale` units.
    pub duration_ticks: u64,
    /// Base media decode time (`tfdt`, ISO/IEC 14496-12 section 8.8.12) of the first track, in
    /// `timescale` units; 0 if the fragment has none.
    pub decode_time: u64,
}

/// What [`scan`] found in a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// Bytes of `ftyp` + `moov` (the init segment), 0 if there is none.
    pub init_size: u64,
    /// Media timescale (ticks per second) of the first track, from `mdhd`.
    pub timescale: u32,
    /// Sample entry of the first track (`avc1`, `avc3`, `hvc1`, `hev1`, ...).
    pub codec: String,
    /// RFC 6381 `codecs` of the audio track (`mp4a.40.2`), if there is one.
    pub audio_codec: Option<String>,
    /// Complete fragments in file order.
    pub fragments: Vec<FragmentInfo>,
    /// Bytes up to the end of the last complete fragment (or of the init segment).
    pub valid_len: u64,
    /// File length in bytes as read.
    pub file_len: u64,
}

impl SegmentScan {
    /// Total duration of the complete fragments in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        let ticks: u64 = self.fragments.iter().map(|f| f.duration_ticks).sum();
        ticks_to_ns(ticks, self.timescale)
    }
}

/// Converts `ticks` of a `timescale` clock to nanoseconds (0 if the timescale is 0).
pub fn ticks_to_ns(ticks: u64, timescale: u32) -> u64 {
    if timescale == 0 {
        return 0;
    }
    (u128::from(ticks) * 1_000_000_000 / u128::from(timescale)) as u64
}

/// Error reading a segment file.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// I/O error.
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with a usable init segment.
    #[error("no init segment: {0}")]
    NoInit(&'static str),
}

/// Big-endian u32 at `at`, if in bounds.
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes(s.try_into().unwrap()))
}
/// Big-endian u64 at `at`, if in bounds.
pub(crate) fn be64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_be_bytes(s.try_into().unwrap()))
}

/// Iterates the child boxes of `buf`: yields (type, body).
fn children(buf: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let size = be32(buf, pos)? as u64;
        let typ: [u8; 4] = buf.get(pos + 4..pos + 8)?.try_into().ok()?;
        let (hdr, size) = match size {
            1 => (16u64, be64(buf, pos + 8)?),
            0 => (8, (buf.len() - pos) as u64),
            s => (8, s),
        };
        if size < hdr || pos as u64 + size > buf.len() as u64 {
            return None;
        }
        let body = &buf[pos + hdr as usize..pos + size as usize];
        pos += size as usize;
        Some((typ, body))
    })
}

/// The child boxes of a box body (or of a whole file): (type, body). Stops at the first box
/// that is cut short. Shared with MP4 export (`crate::export`).
pub fn child_boxes(buf: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    children(buf)
}

/// Like [`child_boxes`], but yields each whole box, header included.
pub fn child_boxes_whole(buf: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0usize;
    children(buf).map(move |(t, body)| {
        // `children` walks the boxes back to back from 0: a box ends where its body ends.
        let end = body.as_ptr() as usize - buf.as_ptr() as usize + body.len();
        let whole = &buf[pos..end];
        pos = end;
        (t, whole)
    })
}

/// The body of the box at `path` (a chain of types, first match at each level) in `buf`.
pub fn find_path<'a>(buf: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
    find(buf, path)
}

fn find<'a>(buf: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
    let (first, rest) = path.split_first()?;
    let (_, body) = children(buf).find(|(t, _)| t == *first)?;
    if rest.is_empty() {
        Some(body)
    } else {
        find(body, rest)
    }
}

/// Parses `moov`: (timescale of the first track, codec four-cc).
fn parse_moov(moov: &[u8]) -> Option<(u32, String)> {
    let trak = find(moov, &[b"trak"])?;
    let mdhd = find(trak, &[b"mdia", b"mdhd"])?;
    let timescale = if mdhd.first()? == &1 {
        be32(mdhd, 20)?
    } else {
        be32(mdhd, 12)?
    };
    let stsd = find(trak, &[b"mdia", b"minf", b"stbl", b"stsd"])?;
    let codec = stsd
        .get(12..16)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default();
    Some((timescale, codec))
}

/// The `tfdt` base media decode time of the first `traf` of a `moof` body (version 0: 32 bit,
/// version 1: 64 bit), in track timescale units.
fn moof_decode_time(moof: &[u8]) -> Option<u64> {
    let tfdt = find(moof, &[b"traf", b"tfdt"])?;
    if *tfdt.first()? == 1 {
        be64(tfdt, 4)
    } else {
        be32(tfdt, 4).map(u64::from)
    }
}

/// The `tfdt` base media decode time of a fragment from its header (the boxes up to and including
/// `moof`, as the muxer hands them over), in track timescale units; `None` without a `moof`/`tfdt`.
pub fn fragment_decode_time(header: &[u8]) -> Option<u64> {
    let (_, moof) = children(header).find(|(t, _)| t == b"moof")?;
    moof_decode_time(moof)
}

/// The first track's duration in a fragment with more than one track (video beside audio), in
/// its timescale ticks: the sum of its `trun` sample durations (`trex_default`: the init
/// segment's default for it). `None` when the fragment has one `traf` (the muxer's buffer
/// duration is then exactly the video's) or no `moof`.
pub fn fragment_first_track_ticks(header: &[u8], trex_default: u32) -> Option<u64> {
    let (_, moof) = children(header).find(|(t, _)| t == b"moof")?;
    let trafs = children(moof).filter(|(t, _)| t == b"traf").count();
    (trafs > 1).then(|| moof_duration(moof, trex_default))
}

/// The first `trex` default sample duration of an init segment (0 if none).
pub fn trex_default_duration(init: &[u8]) -> u32 {
    children(init)
        .find(|(t, _)| t == b"moov")
        .and_then(|(_, moov)| find(moov, &[b"mvex", b"trex"]))
        .and_then(|trex| be32(trex, 12))
        .unwrap_or(0)
}

/// The layout of a `trun` body's sample entries (ISO/IEC 14496-12 section 8.8.8) for its
/// `flags`: where the first entry starts (bytes from the body's start: version and flags,
/// sample_count, then data_offset and first_sample_flags when present) and the bytes of each
/// entry (4 per field present: duration 0x100, size 0x200, flags 0x400, composition offset
/// 0x800).
pub fn trun_entries(flags: u32) -> (usize, usize) {
    let mut at = 8;
    if flags & 0x1 != 0 {
        at += 4;
    }
    if flags & 0x4 != 0 {
        at += 4;
    }
    let per = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|f| flags & **f != 0)
        .count()
        * 4;
    (at, per)
}

/// Sum of sample durations of the first `traf` of a `moof` body, in track timescale units.
fn moof_duration(moof: &[u8], trex_default: u32) -> u64 {
    let Some(traf) = find(moof, &[b"traf"]) else {
        return 0;
    };
    let mut default_dur = trex_default;
    let mut total = 0u64;
    for (typ, body) in children(traf) {
        match &typ {
            b"tfhd" => {
                let flags = be32(body, 0).unwrap_or(0) & 0xff_ffff;
                let mut at = 8; // version/flags + track_ID
                if flags & 0x1 != 0 {
                    at += 8;
                }
                if flags & 0x2 != 0 {
                    at += 4;
                }
                if flags & 0x8 != 0 {
                    default_dur = be32(body, at).unwrap_or(default_dur);
                }
            }
            b"trun" => {
                let flags = be32(body, 0).unwrap_or(0) & 0xff_ffff;
                let count = be32(body, 4).unwrap_or(0) as usize;
                let (at, per) = trun_entries(flags);
                for i in 0..count {
                    let d = if flags & 0x100 != 0 {
                        be32(body, at + i * per).unwrap_or(0)
                    } else {
                        default_dur
                    };
                    total += u64::from(d);
                }
            }
            _ => {}
        }
    }
    total
}

/// What a manifest needs to know about an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitInfo {
    /// RFC 6381 `codecs` value, e.g. `avc1.64001f` or `hvc1.1.6.L93.B0` (ISO/IEC 14496-15
    /// annex E).
    pub codecs: String,
    /// Coded width in pixels, from the visual sample entry.
    pub width: u16,
    /// Coded height in pixels.
    pub height: u16,
    /// RFC 6381 `codecs` of the audio track (`mp4a.40.2`), if the init segment has one.
    pub audio_codecs: Option<String>,
}

/// Reads the first track's sample entry from an init segment (`ftyp` + `moov`). `None` if it
/// is not a visual sample entry with an `avcC` or `hvcC` box.
pub fn init_info(init: &[u8]) -> Option<InitInfo> {
    let (_, moov) = children(init).find(|(t, _)| t == b"moov")?;
    let stsd = find(moov, &[b"trak", b"mdia", b"minf", b"stbl", b"stsd"])?;
    let entries = stsd.get(8..)?;
    let (fourcc, entry) = children(entries).next()?;
    let width = u16::from_be_bytes(entry.get(24..26)?.try_into().ok()?);
    let height = u16::from_be_bytes(entry.get(26..28)?.try_into().ok()?);
    let four = String::from_utf8_lossy(&fourcc).into_owned();
    let boxes = entry.get(78..)?;
    let codecs = if let Some((_, avcc)) = children(boxes).find(|(t, _)| t == b"avcC") {
        // AVCDecoderConfigurationRecord: profile, constraint flags, level (RFC 6381 section 3.3).
        format!(
            "{four}.{:02x}{:02x}{:02x}",
            avcc.get(1)?,
            avcc.get(2)?,
            avcc.get(3)?
        )
    } else if let Some((_, hvcc)) = children(boxes).find(|(t, _)| t == b"hvcC") {
        // HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 annex E.3).
        let b1 = *hvcc.get(1)?;
        let space = ["", "A", "B", "C"][usize::from(b1 >> 6)];
        let tier = if b1 & 0x20 != 0 { 'H' } else { 'L' };
        let profile = b1 & 0x1f;
        let compat = u32::from_be_bytes(hvcc.get(2..6)?.try_into().ok()?).reverse_bits();
        let level = *hvcc.get(12)?;
        let mut cons: Vec<u8> = hvcc.get(6..12)?.to_vec();
        while cons.last() == Some(&0) {
            cons.pop();
        }
        let mut s = format!("{four}.{space}{profile}.{compat:x}.{tier}{level}");
        for c in cons {
            s.push_str(&format!(".{c:x}"));
        }
        s
    } else {
        return None;
    };
    let audio_codecs = audio_codecs(tracks(init));
    Some(InitInfo {
        codecs,
        width,
        height,
        audio_codecs,
    })
}

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01), RFC 5905.
const NTP_UNIX_OFFSET_S: i128 = 2_208_988_800;

/// The UTC time (ns since 1970) of a fragment from its producer reference time box (`prft`,
/// ISO/IEC 14496-12 section 8.16.5), if `header` (the boxes before and including `moof`) has one.
/// The muxer writes it from the camera's RTCP sender-report clock; its NTP timestamp is a 32.32
/// fixed-point count of seconds since 1900.
pub fn prft_utc_ns(header: &[u8]) -> Option<i64> {
    let (_, body) = children(header).find(|(t, _)| t == b"prft")?;
    let ntp = be64(body, 8)?;
    let ns_since_1900 = (u128::from(ntp) * 1_000_000_000) >> 32;
    i64::try_from(ns_since_1900 as i128 - NTP_UNIX_OFFSET_S * 1_000_000_000).ok()
}

/// Reads a whole segment file and scans it (see the module docs).
pub fn scan_file(path: &std::path::Path) -> Result<SegmentScan, ScanError> {
    let mut f = std::fs::File::open(path)?;
    scan(&mut f)
}

/// Scans a segment: reads box headers, and the bodies of `moov` and `moof` only.
pub fn scan<R: Read + Seek>(r: &mut R) -> Result<SegmentScan, ScanError> {
    let file_len = r.seek(SeekFrom::End(0))?;
    r.seek(SeekFrom::Start(0))?;
    let mut pos = 0u64;
    let mut out = SegmentScan {
        init_size: 0,
        timescale: 0,
        codec: String::new(),
        audio_codec: None,
        fragments: Vec::new(),
        valid_len: 0,
        file_len,
    };
    let mut trex_default = 0u32;
    let mut frag_start: Option<u64> = None;
    let mut frag_ticks = 0u64;
    let mut frag_dts = 0u64;
    let mut seen_moof = false;
    let mut hdr = [0u8; 16];
    while pos + 8 <= file_len {
        r.seek(SeekFrom::Start(pos))?;
        r.read_exact(&mut hdr[..8])?;
        let mut size = u64::from(u32::from_be_bytes(hdr[0..4].try_into().unwrap()));
        let typ: [u8; 4] = hdr[4..8].try_into().unwrap();
        let mut hlen = 8u64;
        if size == 1 {
            if pos + 16 > file_len {
                break;
            }
            r.read_exact(&mut hdr[8..16])?;
            size = u64::from_be_bytes(hdr[8..16].try_into().unwrap());
            hlen = 16;
        }
        if size < hlen || pos + size > file_len {
            break; // torn or size 0: the tail is not a complete box
        }
        let body_len = (size - hlen) as usize;
        match &typ {
            b"ftyp" if out.init_size == 0 && pos == 0 => {}
            b"moov" if out.init_size == 0 => {
                let mut body = vec![0u8; body_len];
                r.read_exact(&mut body)?;
                let (ts, codec) =
                    parse_moov(&body).ok_or(ScanError::NoInit("moov has no track"))?;
                out.timescale = ts;
                out.codec = codec;
                out.audio_codec = audio_codecs(moov_tracks(&body));
                if let Some(trex) = find(&body, &[b"mvex", b"trex"]) {
                    trex_default = be32(trex, 12).unwrap_or(0);
                }
                out.init_size = pos + size;
                out.valid_len = out.init_size;
            }
            _ if out.init_size == 0 => {
                return Err(ScanError::NoInit("file does not start with ftyp+moov"))
            }
            b"moof" => {
                if seen_moof {
                    break; // moof without its mdat: corrupt from here on
                }
                let mut body = vec![0u8; body_len];
                r.read_exact(&mut body)?;
                frag_ticks = moof_duration(&body, trex_default);
                frag_dts = moof_decode_time(&body).unwrap_or(0);
                frag_start.get_or_insert(pos);
                seen_moof = true;
            }
            b"mdat" => {
                if !seen_moof {
                    break;
                }
                let start = frag_start.take().unwrap_or(pos);
                out.fragments.push(FragmentInfo {
                    offset: start,
                    size: pos + size - start,
                    duration_ticks: frag_ticks,
                    decode_time: frag_dts,
                });
                out.valid_len = pos + size;
                seen_moof = false;
            }
            b"styp" | b"prft" | b"sidx" | b"free" | b"emsg" => {
                if seen_moof {
                    break;
                }
                frag_start.get_or_insert(pos);
            }
            _ => break,
        }
        pos += size;
    }
    if out.init_size == 0 {
        return Err(ScanError::NoInit("no complete ftyp+moov"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    use crate::export::builder::bx;

    fn full(version_flags: u32, rest: &[u8]) -> Vec<u8> {
        let mut v = version_flags.to_be_bytes().to_vec();
        v.extend_from_slice(rest);
        v
    }

    /// A minimal init segment with timescale 90000 and an `avc1` sample entry.
    fn init() -> Vec<u8> {
        let mut mdhd = vec![0u8; 20];
        mdhd[12..16].copy_from_slice(&90_000u32.to_be_bytes());
        let mut stsd = full(0, &1u32.to_be_bytes());
        stsd.extend(bx(b"avc1", &[0u8; 8]));
        let stbl = bx(b"stbl", &bx(b"stsd", &stsd));
        let minf = bx(b"minf", &stbl);
        let mdia = bx(b"mdia", &[bx(b"mdhd", &mdhd), minf].concat());
        let trak = bx(b"trak", &mdia);
        let mut v = bx(b"ftyp", b"iso6mp41");
        v.extend(bx(b"moov", &trak));
        v
    }

    /// A fragment of `n` samples of 3600 ticks (40 ms at 90 kHz) with `payload` bytes of mdat.
    fn fragment(n: u32, payload: usize) -> Vec<u8> {
        let mut trun = n.to_be_bytes().to_vec();
        for _ in 0..n {
            trun.extend(3600u32.to_be_bytes());
        }
        let traf = bx(
            b"traf",
            &[
                bx(b"tfhd", &full(0, &1u32.to_be_bytes())),
                bx(b"trun", &full(0x100, &trun)),
            ]
            .concat(),
        );
        let mut v = bx(b"moof", &traf);
        v.extend(bx(b"mdat", &vec![0xAB; payload]));
        v
    }

    #[test]
    fn scans_complete_file() {
        let mut f = init();
        let init_len = f.len() as u64;
        f.extend(fragment(25, 1000));
        f.extend(fragment(50, 2000));
        let s = scan(&mut Cursor::new(&f)).unwrap();
        assert_eq!(s.init_size, init_len);
        assert_eq!(s.timescale, 90_000);
        assert_eq!(s.codec, "avc1");
        assert_eq!(s.fragments.len(), 2);
        assert_eq!(s.fragments[0].offset, init_len);
        assert_eq!(s.fragments[1].duration_ticks, 50 * 3600);
        assert_eq!(s.valid_len, f.len() as u64);
        assert_eq!(s.duration_ns(), 3_000_000_000);
    }

    #[test]
    fn prft_gives_utc() {
        // 2019-12-21T04:01:08.5Z = 3_785_889_668.5 s since 1900.
        let ntp: u64 = (3_785_889_668u64 << 32) | (1u64 << 31);
        let mut body = full(0x0100_0008, &1u32.to_be_bytes());
        body.extend(ntp.to_be_bytes());
        body.extend(0u64.to_be_bytes());
        let mut header = bx(b"prft", &body[..]);
        header.extend(bx(b"moof", &[]));
        assert_eq!(prft_utc_ns(&header), Some(1_576_900_868_500_000_000));
        assert_eq!(prft_utc_ns(&bx(b"moof", &[])), None);
    }

    #[test]
    fn torn_tail_is_cut_at_every_point() {
        let mut f = init();
        f.extend(fragment(25, 1000));
        let good = f.len();
        f.extend(fragment(25, 1000));
        for cut in good..f.len() {
            let s = scan(&mut Cursor::new(&f[..cut])).unwrap();
            assert_eq!(s.fragments.len(), 1, "cut at {cut}");
            assert_eq!(s.valid_len, good as u64);
        }
        assert!(scan(&mut Cursor::new(&f[..20])).is_err());
    }
}
