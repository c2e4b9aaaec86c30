//! Box writing for MP4 export: from the sample tables of our fragments to one ordinary,
//! non-fragmented MP4 with `moov` before `mdat` (ISO/IEC 14496-12 section 6.2.3 order), whose
//! `mdat` is the fragments' sample bytes back to back. Pure: the result says which bytes it
//! writes itself (`head`: `ftyp`, `moov`, the `mdat` header) and which byte ranges of which
//! source files follow; `vfile.rs` serves that without staging a copy.
//!
//! Boxes written (section numbers of ISO/IEC 14496-12): `ftyp` (4.3); `moov` (8.2.1) with `mvhd`
//! (8.2.2, creation time = the first frame's UTC second), one video `trak` with `tkhd` (8.3.2),
//! `edts/elst` (8.6.6, presentation starts at the first frame), `mdia` with `mdhd` (8.4.2),
//! `hdlr` and `minf`'s `vmhd`/`dinf` copied from the source init segment, and a new `stbl`:
//! `stsd` (every distinct sample entry of the sources), `stts`, `ctts` (version 1, signed; only
//! with B-frames), `stss` (only when not every sample is a key frame), `stsz`, `stsc` (one chunk
//! per source fragment), `co64`. With audio (cameras recorded with `audio = "auto"`) a second
//! `trak` follows with the audio sample table (`audio.rs` plans it), and each fragment's video
//! chunk is followed by its audio chunk in `mdat`. `moov/udta/chpl` (the Nero chapter list that ffmpeg, mpv and
//! VLC read) holds one chapter per continuous span, titled with its UTC start. Gaps between spans
//! are closed up: the samples keep their own durations.

use super::samples::FragmentSamples;

/// One source fragment: which source file and init segment (indexes into the caller's lists)
/// and its samples.
#[derive(Debug, Clone)]
pub struct SourceFragment {
    /// Index of the file holding the sample bytes.
    pub file: usize,
    /// Index of the init segment (`ftyp` + `moov`) describing the samples.
    pub init: usize,
    /// Sample table and data offset of the video track.
    pub samples: FragmentSamples,
    /// The same of the audio track, if the fragment has one.
    pub audio: Option<FragmentSamples>,
}

/// A run of fragments with no gap between them: one chapter.
#[derive(Debug, Clone)]
pub struct Span {
    /// UTC of the span's first frame, ns since 1970.
    pub utc_start_ns: i64,
    /// The fragments in decode order.
    pub fragments: Vec<SourceFragment>,
}

/// A byte range of a source file that follows `head` in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRange {
    /// Index of the source file.
    pub file: usize,
    /// Offset in the source file.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}

/// The exported file as a plan: `head`, then each of `body` in order.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `ftyp`, `moov` and the `mdat` header.
    pub head: Vec<u8>,
    /// The `mdat` payload: source ranges in order.
    pub body: Vec<FileRange>,
    /// Total length, bytes.
    pub len: u64,
    /// Media timescale, ticks per second.
    pub timescale: u32,
    /// Duration, ticks.
    pub duration_ticks: u64,
    /// Samples (frames).
    pub samples: u64,
    /// Chapter starts, ns from the file's start, with their UTC (ns since 1970).
    pub chapters: Vec<(u64, i64)>,
}

/// Why no file could be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// No span has a sample.
    #[error("nothing to export: no samples in the range")]
    Empty,
    /// An init segment lacks a box the output copies.
    #[error("init segment {0} has no {1}")]
    BadInit(usize, &'static str),
    /// The sources do not share one timescale.
    #[error("the range mixes media timescales ({0} and {1}): export the parts separately")]
    MixedTimescales(u32, u32),
}

/// Nero `chpl` holds at most this many chapters (an 8-bit count).
pub const MAX_CHAPTERS: usize = 255;
/// Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01.
const MP4_EPOCH_OFFSET_S: i64 = 2_082_844_800;

/// A box of type `typ` around `body` (32-bit size).
pub(crate) fn bx(typ: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 8);
    v.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    v.extend_from_slice(typ);
    v.extend_from_slice(body);
    v
}

fn full(typ: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&flags.to_be_bytes()[1..]);
    b.extend_from_slice(body);
    bx(typ, &b)
}

/// A whole box (header included) found at `path` below `moov`'s body.
fn whole<'a>(moov: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
    let (last, parents) = path.split_last()?;
    let parent = if parents.is_empty() {
        moov
    } else {
        crate::mp4::find_path(moov, parents)?
    };
    crate::mp4::child_boxes_whole(parent)
        .find(|(t, _)| t == *last)
        .map(|(_, b)| b)
}

/// What the output copies from one init segment.
struct InitParts<'a> {
    timescale: u32,
    tkhd: &'a [u8],
    hdlr: &'a [u8],
    minf_extra: Vec<&'a [u8]>,
    entry: &'a [u8],
}

fn init_parts(init: &[u8], i: usize) -> Result<InitParts<'_>, BuildError> {
    let moov = crate::mp4::find_path(init, &[b"moov"]).ok_or(BuildError::BadInit(i, "moov"))?;
    let trak = crate::mp4::find_path(moov, &[b"trak"]).ok_or(BuildError::BadInit(i, "trak"))?;
    trak_parts(trak, i)
}

/// The parts of init segment `i`'s audio track (`hdlr` `soun`), if it has one.
fn audio_init_parts(init: &[u8], i: usize) -> Option<Result<InitParts<'_>, BuildError>> {
    let moov = crate::mp4::find_path(init, &[b"moov"])?;
    let trak = crate::mp4::child_boxes(moov)
        .filter(|(t, _)| t == b"trak")
        .map(|(_, b)| b)
        .find(|t| {
            crate::mp4::find_path(t, &[b"mdia", b"hdlr"])
                .and_then(|h| h.get(8..12))
                .is_some_and(|h| h == b"soun")
        })?;
    Some(trak_parts(trak, i))
}

fn trak_parts(trak: &[u8], i: usize) -> Result<InitParts<'_>, BuildError> {
    let mdhd =
        crate::mp4::find_path(trak, &[b"mdia", b"mdhd"]).ok_or(BuildError::BadInit(i, "mdhd"))?;
    let ts_at = if mdhd.first() == Some(&1) { 20 } else { 12 };
    let timescale = mdhd
        .get(ts_at..ts_at + 4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
        .ok_or(BuildError::BadInit(i, "mdhd timescale"))?;
    let tkhd = crate::mp4::find_path(trak, &[b"tkhd"]).ok_or(BuildError::BadInit(i, "tkhd"))?;
    let hdlr = whole(trak, &[b"mdia", b"hdlr"]).ok_or(BuildError::BadInit(i, "hdlr"))?;
    let minf =
        crate::mp4::find_path(trak, &[b"mdia", b"minf"]).ok_or(BuildError::BadInit(i, "minf"))?;
    let minf_extra = crate::mp4::child_boxes_whole(minf)
        .filter(|(t, _)| t != b"stbl")
        .map(|(_, b)| b)
        .collect();
    let stsd =
        crate::mp4::find_path(minf, &[b"stbl", b"stsd"]).ok_or(BuildError::BadInit(i, "stsd"))?;
    let entry = crate::mp4::child_boxes_whole(stsd.get(8..).unwrap_or_default())
        .next()
        .map(|(_, b)| b)
        .ok_or(BuildError::BadInit(i, "sample entry"))?;
    Ok(InitParts {
        timescale,
        tkhd,
        hdlr,
        minf_extra,
        entry,
    })
}

/// The body of a run-length table (`stts`, `ctts`) after version and flags: entry count, then
/// (sample count, value) per run of equal 4-byte values.
fn run_table(values: impl Iterator<Item = [u8; 4]>) -> Vec<u8> {
    let mut runs: Vec<(u32, [u8; 4])> = Vec::new();
    for v in values {
        match runs.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => runs.push((1, v)),
        }
    }
    let mut out = (runs.len() as u32).to_be_bytes().to_vec();
    for (n, v) in runs {
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&v);
    }
    out
}

/// Builds the layout of the exported file. `inits`: the init segments the fragments refer to;
/// `spans`: the media in order, one chapter each (at most [`MAX_CHAPTERS`]; later spans join the
/// last chapter).
///
/// Errors: [`BuildError`].
pub fn build(inits: &[Vec<u8>], spans: &[Span]) -> Result<Layout, BuildError> {
    let frags: Vec<&SourceFragment> = spans
        .iter()
        .flat_map(|s| &s.fragments)
        .filter(|f| !f.samples.samples.is_empty())
        .collect();
    if frags.is_empty() {
        return Err(BuildError::Empty);
    }
    // Sample entries: one per init segment used, in order of first use.
    let mut used: Vec<usize> = Vec::new();
    for f in &frags {
        if !used.contains(&f.init) {
            used.push(f.init);
        }
    }
    let parts: Vec<InitParts> = used
        .iter()
        .map(|&i| init_parts(inits.get(i).map(Vec::as_slice).unwrap_or_default(), i))
        .collect::<Result<_, _>>()?;
    let timescale = parts[0].timescale;
    if let Some(p) = parts.iter().find(|p| p.timescale != timescale) {
        return Err(BuildError::MixedTimescales(timescale, p.timescale));
    }
    let samples: Vec<_> = frags.iter().flat_map(|f| &f.samples.samples).collect();
    let duration: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
    // The audio track: sample entries of the init segments used that have one.
    let mut audio_used: Vec<usize> = Vec::new();
    let mut audio_parts: Vec<InitParts> = Vec::new();
    for &i in &used {
        if let Some(p) = audio_init_parts(inits.get(i).map(Vec::as_slice).unwrap_or_default(), i) {
            audio_used.push(i);
            audio_parts.push(p?);
        }
    }
    let audio = audio_parts.first().and_then(|a0| {
        super::audio::plan(&frags, timescale, a0.timescale, |init| {
            audio_used.iter().position(|&u| u == init).unwrap_or(0) as u32 + 1
        })
    });
    let audio_len = |k: usize| -> u64 { frags[k].audio.as_ref().map_or(0, |a| a.data_len()) };
    let data_len: u64 = frags.iter().map(|f| f.samples.data_len()).sum::<u64>()
        + audio
            .as_ref()
            .map_or(0, |a| a.chunks.iter().map(|c| audio_len(c.0)).sum());
    // Chunk offsets from `base` (the first sample byte): each fragment's video, then its audio.
    let offsets = |base: u64| -> (Vec<u64>, Vec<u64>) {
        let (mut v, mut a) = (Vec::with_capacity(frags.len()), Vec::new());
        let mut pos = base;
        let mut chunks = audio.as_ref().map(|p| p.chunks.iter().peekable());
        for (k, f) in frags.iter().enumerate() {
            v.push(pos);
            pos += f.samples.data_len();
            if let Some(c) = chunks.as_mut().and_then(|c| c.next_if(|c| c.0 == k)) {
                a.push(pos);
                pos += audio_len(c.0);
            }
        }
        (v, a)
    };
    let mut chapters = Vec::new();
    let mut at_ticks = 0u64;
    for s in spans {
        let d: u64 = s.fragments.iter().map(|f| f.samples.duration()).sum();
        if d > 0 && chapters.len() < MAX_CHAPTERS {
            chapters.push((crate::mp4::ticks_to_ns(at_ticks, timescale), s.utc_start_ns));
        }
        at_ticks += d;
    }
    let utc0 = chapters.first().map_or(0, |c| c.1);
    let created = (utc0.div_euclid(1_000_000_000) + MP4_EPOCH_OFFSET_S).max(0) as u64;
    let movie_ms = crate::mp4::ticks_to_ns(duration, timescale) / 1_000_000;

    let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isomiso2mp41");
    let mdat_hdr = if data_len + 8 > u64::from(u32::MAX) {
        let mut h = 1u32.to_be_bytes().to_vec();
        h.extend_from_slice(b"mdat");
        h.extend_from_slice(&(data_len + 16).to_be_bytes());
        h
    } else {
        let mut h = ((data_len + 8) as u32).to_be_bytes().to_vec();
        h.extend_from_slice(b"mdat");
        h
    };
    let moov_with = |base: u64| -> Vec<u8> {
        // mvhd v1: times, timescale 1000 (ms), duration, rate 1.0, volume 1.0, matrix, next id.
        let mut mvhd = Vec::new();
        mvhd.extend_from_slice(&created.to_be_bytes());
        mvhd.extend_from_slice(&created.to_be_bytes());
        mvhd.extend_from_slice(&1000u32.to_be_bytes());
        mvhd.extend_from_slice(&movie_ms.to_be_bytes());
        mvhd.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        mvhd.extend_from_slice(&0x0100u16.to_be_bytes());
        mvhd.extend_from_slice(&[0; 10]);
        mvhd.extend_from_slice(&matrix());
        mvhd.extend_from_slice(&[0; 24]);
        mvhd.extend_from_slice(&(if audio.is_some() { 3u32 } else { 2 }).to_be_bytes());
        // tkhd v1 (enabled, in movie, in preview): width and height from the source.
        let mut tkhd = Vec::new();
        tkhd.extend_from_slice(&created.to_be_bytes());
        tkhd.extend_from_slice(&created.to_be_bytes());
        tkhd.extend_from_slice(&1u32.to_be_bytes());
        tkhd.extend_from_slice(&[0; 4]);
        tkhd.extend_from_slice(&movie_ms.to_be_bytes());
        tkhd.extend_from_slice(&[0; 16]); // reserved, layer, alternate group, volume, reserved
        tkhd.extend_from_slice(&matrix());
        let src = parts[0].tkhd;
        tkhd.extend_from_slice(src.get(src.len().saturating_sub(8)..).unwrap_or(&[0; 8]));
        // elst: the whole movie from the first frame's presentation time.
        let first_cto = i64::from(samples[0].cto.max(0));
        let mut elst = 1u32.to_be_bytes().to_vec();
        elst.extend_from_slice(&movie_ms.to_be_bytes());
        elst.extend_from_slice(&first_cto.to_be_bytes());
        elst.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        let edts = bx(b"edts", &full(b"elst", 1, 0, &elst));
        let mut mdhd = Vec::new();
        mdhd.extend_from_slice(&created.to_be_bytes());
        mdhd.extend_from_slice(&created.to_be_bytes());
        mdhd.extend_from_slice(&timescale.to_be_bytes());
        mdhd.extend_from_slice(&duration.to_be_bytes());
        mdhd.extend_from_slice(&0x55c4u16.to_be_bytes()); // "und"
        mdhd.extend_from_slice(&[0; 2]);
        let mut minf = Vec::new();
        for b in &parts[0].minf_extra {
            minf.extend_from_slice(b);
        }
        let (video_offsets, audio_offsets) = offsets(base);
        let chunks: Vec<(u32, u32)> = frags
            .iter()
            .map(|f| {
                let sdi = used.iter().position(|&u| u == f.init).unwrap_or(0) as u32 + 1;
                (f.samples.samples.len() as u32, sdi)
            })
            .collect();
        let entries: Vec<&[u8]> = parts.iter().map(|p| p.entry).collect();
        minf.extend_from_slice(&bx(
            b"stbl",
            &stbl(&entries, &samples, &chunks, &video_offsets),
        ));
        let mdia = [
            full(b"mdhd", 1, 0, &mdhd),
            parts[0].hdlr.to_vec(),
            bx(b"minf", &minf),
        ]
        .concat();
        let trak = bx(
            b"trak",
            &[full(b"tkhd", 1, 7, &tkhd), edts, bx(b"mdia", &mdia)].concat(),
        );
        let udta = bx(b"udta", &chpl(&chapters));
        let audio_trak = match (&audio, audio_parts.first()) {
            (Some(plan), Some(a0)) => audio_trak(plan, a0, &audio_parts, &audio_offsets, created),
            _ => Vec::new(),
        };
        bx(
            b"moov",
            &[full(b"mvhd", 1, 0, &mvhd), trak, audio_trak, udta].concat(),
        )
    };
    // co64 has fixed-width entries: the moov's length does not depend on the offsets in it.
    let probe_len = moov_with(0).len() as u64;
    let base = ftyp.len() as u64 + probe_len + mdat_hdr.len() as u64;
    let moov = moov_with(base);
    debug_assert_eq!(moov.len() as u64, probe_len);
    let head = [ftyp, moov, mdat_hdr].concat();
    let mut body = Vec::with_capacity(frags.len() * 2);
    let mut chunks = audio.as_ref().map(|p| p.chunks.iter().peekable());
    for (k, f) in frags.iter().enumerate() {
        body.push(FileRange {
            file: f.file,
            offset: f.samples.data_offset,
            len: f.samples.data_len(),
        });
        if let Some(c) = chunks.as_mut().and_then(|c| c.next_if(|c| c.0 == k)) {
            let a = f.audio.as_ref().expect("a planned audio chunk has samples");
            body.push(FileRange {
                file: f.file,
                offset: a.data_offset,
                len: audio_len(c.0),
            });
        }
    }
    Ok(Layout {
        len: head.len() as u64 + data_len,
        head,
        body,
        timescale,
        duration_ticks: duration,
        samples: samples.len() as u64,
        chapters,
    })
}

fn matrix() -> [u8; 36] {
    let mut m = [0u8; 36];
    m[0..4].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    m[16..20].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    m[32..36].copy_from_slice(&0x4000_0000u32.to_be_bytes());
    m
}

/// The audio `trak` (track 2): `tkhd` with volume 1.0, an `edts` that starts it `plan.lead`
/// after the video (an empty edit) when it starts later, `mdhd` in the audio timescale, `hdlr`
/// and `minf`'s `smhd`/`dinf` from the source, and its sample table (every sample a sync
/// sample: no `stss`).
fn audio_trak(
    plan: &super::audio::AudioPlan,
    a0: &InitParts,
    parts: &[InitParts],
    offsets: &[u64],
    created: u64,
) -> Vec<u8> {
    let ms = |ticks: u64| crate::mp4::ticks_to_ns(ticks, plan.timescale) / 1_000_000;
    let (lead_ms, media_ms) = (ms(plan.lead), ms(plan.duration));
    let mut tkhd = Vec::new();
    tkhd.extend_from_slice(&created.to_be_bytes());
    tkhd.extend_from_slice(&created.to_be_bytes());
    tkhd.extend_from_slice(&2u32.to_be_bytes());
    tkhd.extend_from_slice(&[0; 4]);
    tkhd.extend_from_slice(&(lead_ms + media_ms).to_be_bytes());
    tkhd.extend_from_slice(&[0; 12]); // reserved, layer, alternate group
    tkhd.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    tkhd.extend_from_slice(&[0; 2]);
    tkhd.extend_from_slice(&matrix());
    tkhd.extend_from_slice(&[0; 8]); // no picture
    let mut entries: Vec<(u64, i64)> = Vec::new();
    if lead_ms > 0 {
        entries.push((lead_ms, -1));
    }
    entries.push((media_ms, 0));
    let mut elst = (entries.len() as u32).to_be_bytes().to_vec();
    for (d, t) in entries {
        elst.extend_from_slice(&d.to_be_bytes());
        elst.extend_from_slice(&t.to_be_bytes());
        elst.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    }
    let mut mdhd = Vec::new();
    mdhd.extend_from_slice(&created.to_be_bytes());
    mdhd.extend_from_slice(&created.to_be_bytes());
    mdhd.extend_from_slice(&plan.timescale.to_be_bytes());
    mdhd.extend_from_slice(&plan.duration.to_be_bytes());
    mdhd.extend_from_slice(&0x55c4u16.to_be_bytes()); // "und"
    mdhd.extend_from_slice(&[0; 2]);
    let samples: Vec<&super::samples::Sample> = plan.samples.iter().collect();
    let chunks: Vec<(u32, u32)> = plan.chunks.iter().map(|c| (c.1, c.2)).collect();
    let entries: Vec<&[u8]> = parts.iter().map(|p| p.entry).collect();
    let mut minf = Vec::new();
    for b in &a0.minf_extra {
        minf.extend_from_slice(b);
    }
    minf.extend_from_slice(&bx(b"stbl", &stbl(&entries, &samples, &chunks, offsets)));
    let mdia = [
        full(b"mdhd", 1, 0, &mdhd),
        a0.hdlr.to_vec(),
        bx(b"minf", &minf),
    ]
    .concat();
    bx(
        b"trak",
        &[
            full(b"tkhd", 1, 7, &tkhd),
            bx(b"edts", &full(b"elst", 1, 0, &elst)),
            bx(b"mdia", &mdia),
        ]
        .concat(),
    )
}

/// A sample table: sample `entries` (`stsd`), `samples` in order, `chunks` as (samples,
/// 1-based sample description index) with their file `offsets`.
fn stbl(
    entries: &[&[u8]],
    samples: &[&super::samples::Sample],
    chunks: &[(u32, u32)],
    offsets: &[u64],
) -> Vec<u8> {
    let mut stsd = (entries.len() as u32).to_be_bytes().to_vec();
    for e in entries {
        stsd.extend_from_slice(e);
    }
    let mut out = full(b"stsd", 0, 0, &stsd);
    let stts = run_table(samples.iter().map(|s| s.duration.to_be_bytes()));
    out.extend_from_slice(&full(b"stts", 0, 0, &stts));
    if samples.iter().any(|s| s.cto != 0) {
        let ctts = run_table(samples.iter().map(|s| s.cto.to_be_bytes()));
        out.extend_from_slice(&full(b"ctts", 1, 0, &ctts));
    }
    if !samples.iter().all(|s| s.sync) {
        let sync: Vec<u32> = samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sync)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        let mut stss = (sync.len() as u32).to_be_bytes().to_vec();
        for n in sync {
            stss.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&full(b"stss", 0, 0, &stss));
    }
    let mut stsz = 0u32.to_be_bytes().to_vec();
    stsz.extend_from_slice(&(samples.len() as u32).to_be_bytes());
    for s in samples {
        stsz.extend_from_slice(&s.size.to_be_bytes());
    }
    out.extend_from_slice(&full(b"stsz", 0, 0, &stsz));
    // One chunk per fragment; stsc lists where samples-per-chunk or the entry changes.
    let mut stsc_entries: Vec<(u32, u32, u32)> = Vec::new();
    for (i, &(n, sdi)) in chunks.iter().enumerate() {
        if stsc_entries.last().is_none_or(|l| (l.1, l.2) != (n, sdi)) {
            stsc_entries.push((i as u32 + 1, n, sdi));
        }
    }
    let mut stsc = (stsc_entries.len() as u32).to_be_bytes().to_vec();
    for (first, n, sdi) in stsc_entries {
        stsc.extend_from_slice(&first.to_be_bytes());
        stsc.extend_from_slice(&n.to_be_bytes());
        stsc.extend_from_slice(&sdi.to_be_bytes());
    }
    out.extend_from_slice(&full(b"stsc", 0, 0, &stsc));
    let mut co64 = (offsets.len() as u32).to_be_bytes().to_vec();
    for at in offsets {
        co64.extend_from_slice(&at.to_be_bytes());
    }
    out.extend_from_slice(&full(b"co64", 0, 0, &co64));
    out
}

/// `chpl` (Nero chapters, version 1): start in 100 ns units from the file's start, title = UTC
/// start of the span (RFC 3339, ms).
fn chpl(chapters: &[(u64, i64)]) -> Vec<u8> {
    let mut b = 0u32.to_be_bytes().to_vec(); // reserved
    b.push(chapters.len().min(MAX_CHAPTERS) as u8);
    for (at_ns, utc) in chapters.iter().take(MAX_CHAPTERS) {
        b.extend_from_slice(&(at_ns / 100).to_be_bytes());
        let title = crate::playback::time::format_full(*utc);
        let t = &title.as_bytes()[..title.len().min(255)];
        b.push(t.len() as u8);
        b.extend_from_slice(t);
    }
    full(b"chpl", 1, 0, &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::samples::{FragmentSamples, Sample};

    /// A minimal init segment: a 90 kHz video track with one `avc1` entry of 8 bytes of body.
    fn init() -> Vec<u8> {
        let mut mdhd = vec![0u8; 8];
        mdhd.extend_from_slice(&90_000u32.to_be_bytes());
        mdhd.extend_from_slice(&[0; 8]);
        let mut tkhd = vec![0u8; 76];
        tkhd.extend_from_slice(&(320u32 << 16).to_be_bytes());
        tkhd.extend_from_slice(&(240u32 << 16).to_be_bytes());
        let entry = bx(b"avc1", &[7; 8]);
        let stsd = full(
            b"stsd",
            0,
            0,
            &[1u32.to_be_bytes().as_slice(), &entry].concat(),
        );
        let minf = bx(
            b"minf",
            &[
                full(b"vmhd", 0, 1, &[0; 8]),
                bx(b"dinf", &[]),
                bx(b"stbl", &stsd),
            ]
            .concat(),
        );
        let mdia = bx(
            b"mdia",
            &[
                full(b"mdhd", 0, 0, &mdhd),
                full(b"hdlr", 0, 0, b"\0\0\0\0vide"),
                minf,
            ]
            .concat(),
        );
        let trak = bx(b"trak", &[full(b"tkhd", 0, 3, &tkhd), mdia].concat());
        [bx(b"ftyp", b"iso6"), bx(b"moov", &trak)].concat()
    }

    fn frag(file: usize, offset: u64, sizes: &[u32]) -> SourceFragment {
        SourceFragment {
            file,
            init: 0,
            audio: None,
            samples: FragmentSamples {
                decode_time: 0,
                data_offset: offset,
                samples: sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &size)| Sample {
                        size,
                        duration: 3600,
                        sync: i == 0,
                        cto: 0,
                    })
                    .collect(),
            },
        }
    }

    /// The body of the box at `path` in the head.
    fn at<'a>(head: &'a [u8], path: &[&[u8; 4]]) -> &'a [u8] {
        crate::mp4::find_path(head, path).unwrap()
    }

    #[test]
    fn exact_sample_table_chapters_and_layout() {
        const S: i64 = 1_000_000_000;
        let spans = [
            Span {
                utc_start_ns: 1_700_000_000 * S,
                fragments: vec![frag(0, 1000, &[500, 100, 100]), frag(0, 2000, &[400, 50])],
            },
            Span {
                utc_start_ns: 1_700_000_060 * S,
                fragments: vec![frag(1, 300, &[600, 70, 80])],
            },
        ];
        let l = build(&[init()], &spans).unwrap();
        assert_eq!(
            (l.samples, l.duration_ticks, l.timescale),
            (8, 8 * 3600, 90_000)
        );
        let data = 500 + 100 + 100 + 400 + 50 + 600 + 70 + 80;
        assert_eq!(l.len, l.head.len() as u64 + data);
        // ftyp, moov, then the mdat header ends the head.
        assert_eq!(&l.head[4..8], b"ftyp");
        assert_eq!(&l.head[l.head.len() - 4..], b"mdat");
        let mdat_size = u32::from_be_bytes(
            l.head[l.head.len() - 8..l.head.len() - 4]
                .try_into()
                .unwrap(),
        );
        assert_eq!(u64::from(mdat_size), data + 8);
        let stbl = at(&l.head, &[b"moov", b"trak", b"mdia", b"minf", b"stbl"]);
        let word = |b: &[u8]| -> Vec<u32> {
            b.chunks(4)
                .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
                .collect()
        };
        // stts: one run of 8 × 3600.
        assert_eq!(word(at(stbl, &[b"stts"])), [0, 1, 8, 3600]);
        // stss: samples 1, 4 and 6 (1-based) are key frames.
        assert_eq!(word(at(stbl, &[b"stss"])), [0, 3, 1, 4, 6]);
        // No B-frames: no ctts.
        assert!(crate::mp4::find_path(stbl, &[b"ctts"]).is_none());
        assert_eq!(
            word(at(stbl, &[b"stsz"])),
            [0, 0, 8, 500, 100, 100, 400, 50, 600, 70, 80]
        );
        // stsc: chunks of 3, 2, 3 samples, all with entry 1.
        assert_eq!(
            word(at(stbl, &[b"stsc"])),
            [0, 3, 1, 3, 1, 2, 2, 1, 3, 3, 1]
        );
        // co64: each chunk where the previous one ends, from the end of the head.
        let co64 = at(stbl, &[b"co64"]);
        let h = l.head.len() as u64;
        let offs: Vec<u64> = co64[8..]
            .chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(offs, [h, h + 700, h + 1150]);
        assert_eq!(at(stbl, &[b"stsd"])[8..], bx(b"avc1", &[7; 8])[..]);
        // The body: the sample bytes of each fragment, in order.
        assert_eq!(
            l.body,
            [
                FileRange {
                    file: 0,
                    offset: 1000,
                    len: 700
                },
                FileRange {
                    file: 0,
                    offset: 2000,
                    len: 450
                },
                FileRange {
                    file: 1,
                    offset: 300,
                    len: 750
                },
            ]
        );
        // Two chapters: at 0 and after the first span's 5 frames (0.2 s), titled with UTC.
        assert_eq!(
            l.chapters,
            [(0, 1_700_000_000 * S), (200_000_000, 1_700_000_060 * S)]
        );
        let chpl = at(&l.head, &[b"moov", b"udta", b"chpl"]);
        assert_eq!(&chpl[..9], &[1, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(&chpl[9..17], &0u64.to_be_bytes());
        assert_eq!(chpl[17] as usize, "2023-11-14T22:13:20.000Z".len());
        assert_eq!(&chpl[18..42], b"2023-11-14T22:13:20.000Z");
        assert_eq!(&chpl[42..50], &2_000_000u64.to_be_bytes()); // 0.2 s in 100 ns
                                                                // mvhd: creation time is the first frame's UTC second, from 1904.
        let mvhd = at(&l.head, &[b"moov", b"mvhd"]);
        assert_eq!(
            mvhd[4..12],
            (1_700_000_000u64 + 2_082_844_800).to_be_bytes()
        );
        // tkhd keeps the source's picture size.
        let tkhd = at(&l.head, &[b"moov", b"trak", b"tkhd"]);
        assert_eq!(tkhd[tkhd.len() - 8..], [0x01, 0x40, 0, 0, 0, 0xf0, 0, 0]);
        assert_eq!(build(&[init()], &[]).unwrap_err(), BuildError::Empty);
    }
}
