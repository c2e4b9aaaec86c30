//! One track of a two-track segment file, rewritten on the fly for DASH: dash.js (and the DASH
//! guidelines) want audio and video in separate adaptation sets, each with its own init segment
//! and fragments (Dash-Industry-Forum/dash.js issue 1385), while the card keeps one file with
//! both. Nothing is stored twice: a request for one track's init segment or fragment reads the
//! muxed bytes and returns them with the other track taken out.
//!
//! - init segment: `ftyp` as it is; `moov` with `mvhd`, the one `trak`, and `mvex` with that
//!   track's `trex` only (ISO/IEC 14496-12 sections 8.2, 8.3, 8.8.1);
//! - fragment: `styp` as it is (`prft` only for the first track, whose media time it gives);
//!   `moof` with `mfhd` and that track's `traf`, whose `trun` `data_offset` is set for the new
//!   layout; one `mdat` with that track's sample bytes. A fragment without the track (audio
//!   while the microphone was quiet) gets a `traf` with no samples, so the numbering of
//!   fragments stays the same in both adaptation sets.
//!
//! Only what our muxer writes is handled: `traf`s with `default-base-is-moof` (no explicit base
//! data offset), one `trun` each, sample sizes in the `trun` or in `tfhd`. Not here: which
//! fragment a URL names (`crate::http::media`), the MPD (`super::dash`).

use crate::mp4::{be32, child_boxes_whole};

/// Why a track could not be cut out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SplitError {
    /// The init segment has no `trak` with this id.
    #[error("no track {0} in the init segment")]
    NoTrack(u32),
    /// A box the rewrite needs is missing or cut short.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A layout the muxer does not write (explicit base data offsets, several `trun`s).
    #[error("unsupported fragment layout: {0}")]
    Unsupported(&'static str),
}

fn bx(typ: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 8);
    v.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    v.extend_from_slice(typ);
    v.extend_from_slice(body);
    v
}

/// The body of a whole box (header of 8 or 16 bytes).
fn body_of(whole: &[u8]) -> &[u8] {
    if be32(whole, 0) == Some(1) {
        &whole[16..]
    } else {
        &whole[8..]
    }
}

/// `track_ID` of a `trak` body (from `tkhd`).
fn trak_id(trak: &[u8]) -> Option<u32> {
    let (_, tkhd) = child_boxes_whole(trak).find(|(t, _)| t == b"tkhd")?;
    let b = body_of(tkhd);
    if b.first()? == &1 {
        be32(b, 20)
    } else {
        be32(b, 12)
    }
}

/// The init segment (`ftyp` + `moov`) with only track `id`.
///
/// Errors: no `moov`, or no such track.
pub fn init_for_track(init: &[u8], id: u32) -> Result<Vec<u8>, SplitError> {
    let mut out = Vec::with_capacity(init.len());
    let mut found = false;
    for (typ, whole) in child_boxes_whole(init) {
        if &typ != b"moov" {
            out.extend_from_slice(whole);
            continue;
        }
        let mut moov = Vec::with_capacity(whole.len());
        for (t, child) in child_boxes_whole(body_of(whole)) {
            match &t {
                b"trak" => {
                    if trak_id(body_of(child)) == Some(id) {
                        found = true;
                        moov.extend_from_slice(child);
                    }
                }
                b"mvex" => {
                    let mut mvex = Vec::new();
                    for (tt, c) in child_boxes_whole(body_of(child)) {
                        // trex: version/flags, track_ID, ...
                        if &tt != b"trex" || be32(body_of(c), 4) == Some(id) {
                            mvex.extend_from_slice(c);
                        }
                    }
                    moov.extend(bx(b"mvex", &mvex));
                }
                _ => moov.extend_from_slice(child),
            }
        }
        out.extend(bx(b"moov", &moov));
    }
    if !found {
        return Err(SplitError::NoTrack(id));
    }
    Ok(out)
}

/// What one `traf` says about its samples' bytes.
struct TrafData {
    /// The `traf` box, whole.
    whole: Vec<u8>,
    /// Offset of the `trun` `data_offset` field inside `whole`.
    data_offset_at: usize,
    /// The track's bytes: offset from the `moof` start, and length.
    data: (usize, usize),
}

fn traf_data(traf_whole: &[u8], default_size: u32) -> Result<(u32, TrafData), SplitError> {
    let hdr = traf_whole.len() - body_of(traf_whole).len();
    let mut id = None;
    let mut size = default_size;
    let mut trun = None;
    let mut pos = hdr;
    for (t, child) in child_boxes_whole(body_of(traf_whole)) {
        let b = body_of(child);
        let child_hdr = child.len() - b.len();
        match &t {
            b"tfhd" => {
                let flags = be32(b, 0).ok_or(SplitError::Malformed("tfhd"))? & 0xff_ffff;
                id = be32(b, 4);
                if flags & 0x1 != 0 {
                    return Err(SplitError::Unsupported("explicit base data offset"));
                }
                let mut at = 8;
                if flags & 0x2 != 0 {
                    at += 4;
                }
                if flags & 0x8 != 0 {
                    at += 4;
                }
                if flags & 0x10 != 0 {
                    size = be32(b, at).ok_or(SplitError::Malformed("tfhd"))?;
                }
            }
            b"trun" => {
                if trun.is_some() {
                    return Err(SplitError::Unsupported("several trun boxes in a traf"));
                }
                trun = Some((pos + child_hdr, b.to_vec()));
            }
            _ => {}
        }
        pos += child.len();
    }
    let id = id.ok_or(SplitError::Malformed("traf without tfhd"))?;
    let (body_at, trun) = trun.ok_or(SplitError::Malformed("traf without trun"))?;
    let flags = be32(&trun, 0).ok_or(SplitError::Malformed("trun"))? & 0xff_ffff;
    let count = be32(&trun, 4).ok_or(SplitError::Malformed("trun"))? as usize;
    if flags & 0x1 == 0 {
        return Err(SplitError::Unsupported("trun without data_offset"));
    }
    let offset = be32(&trun, 8).ok_or(SplitError::Malformed("trun"))? as i32;
    let (at, per) = crate::mp4::trun_entries(flags);
    let size_at = if flags & 0x100 != 0 { 4 } else { 0 };
    let mut len = 0usize;
    for i in 0..count {
        let s = if flags & 0x200 != 0 {
            be32(&trun, at + i * per + size_at).ok_or(SplitError::Malformed("trun"))?
        } else {
            size
        };
        len += s as usize;
    }
    let start = usize::try_from(offset).map_err(|_| SplitError::Malformed("trun"))?;
    Ok((
        id,
        TrafData {
            whole: traf_whole.to_vec(),
            data_offset_at: body_at + 8,
            data: (start, len),
        },
    ))
}

/// A `traf` of track `id` with no samples, starting at `decode_time` (its own timescale).
fn empty_traf(id: u32, decode_time: u64) -> Vec<u8> {
    // tfhd: default-base-is-moof (0x020000), track_ID.
    let mut tfhd = 0x0002_0000u32.to_be_bytes().to_vec();
    tfhd.extend_from_slice(&id.to_be_bytes());
    let mut tfdt = vec![1, 0, 0, 0];
    tfdt.extend_from_slice(&decode_time.to_be_bytes());
    // trun: data_offset present, 0 samples.
    let mut trun = 0x0000_0001u32.to_be_bytes().to_vec();
    trun.extend_from_slice(&0u32.to_be_bytes());
    trun.extend_from_slice(&0u32.to_be_bytes());
    [bx(b"tfhd", &tfhd), bx(b"tfdt", &tfdt), bx(b"trun", &trun)].concat()
}

/// One fragment (its boxes from `styp` to the end of its `mdat`) with only track `id`.
/// `first` says whether `id` is the file's first track (its `prft` is kept); `empty_at` is the
/// decode time (in the track's timescale) of a fragment without the track.
///
/// Errors: no `moof`/`mdat`, or a layout the muxer does not write.
pub fn fragment_for_track(
    frag: &[u8],
    id: u32,
    first: bool,
    empty_at: u64,
) -> Result<Vec<u8>, SplitError> {
    let mut prefix = Vec::new();
    let mut moof = None;
    let mut mdat_at = None;
    let mut pos = 0usize;
    for (typ, whole) in child_boxes_whole(frag) {
        match &typ {
            b"moof" => moof = Some((pos, whole)),
            b"mdat" => {
                mdat_at = Some(pos);
                break;
            }
            b"prft" if !first => {}
            _ => prefix.extend_from_slice(whole),
        }
        pos += whole.len();
    }
    let (moof_at, moof) = moof.ok_or(SplitError::Malformed("fragment without moof"))?;
    mdat_at.ok_or(SplitError::Malformed("fragment without mdat"))?;
    let mut head = Vec::new();
    let mut traf = None;
    for (t, child) in child_boxes_whole(body_of(moof)) {
        match &t {
            b"traf" => {
                let (tid, d) = traf_data(child, 0)?;
                if tid == id {
                    traf = Some(d);
                }
            }
            _ => head.extend_from_slice(child),
        }
    }
    let (mut traf_bytes, data_offset_at, data) = match traf {
        Some(d) => (d.whole, Some(d.data_offset_at), Some(d.data)),
        None => (bx(b"traf", &empty_traf(id, empty_at)), None, None),
    };
    let moof_len = 8 + head.len() + traf_bytes.len();
    if let Some(at) = data_offset_at {
        let v = (moof_len + 8) as u32;
        traf_bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
    } else {
        // The empty trun's data_offset is the last 4 bytes of the traf.
        let at = traf_bytes.len() - 4;
        traf_bytes[at..].copy_from_slice(&((moof_len + 8) as u32).to_be_bytes());
    }
    let samples: &[u8] = match data {
        Some((start, len)) => frag
            .get(moof_at + start..moof_at + start + len)
            .ok_or(SplitError::Malformed("trun points past the fragment"))?,
        None => &[],
    };
    let mut out = prefix;
    out.extend(bx(b"moof", &[head, traf_bytes].concat()));
    out.extend(bx(b"mdat", samples));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(v: u8, flags: u32, rest: &[u8]) -> Vec<u8> {
        let mut b = ((u32::from(v) << 24) | flags).to_be_bytes().to_vec();
        b.extend_from_slice(rest);
        b
    }

    fn traf(id: u32, tfdt: u64, sizes: &[u32], data_offset: u32) -> Vec<u8> {
        let tfhd = full(0, 0x2_0000, &id.to_be_bytes());
        let mut trun = (sizes.len() as u32).to_be_bytes().to_vec();
        trun.extend_from_slice(&data_offset.to_be_bytes());
        for s in sizes {
            trun.extend_from_slice(&s.to_be_bytes());
        }
        bx(
            b"traf",
            &[
                bx(b"tfhd", &tfhd),
                bx(b"tfdt", &full(1, 0, &tfdt.to_be_bytes())),
                bx(b"trun", &full(0, 0x201, &trun)),
            ]
            .concat(),
        )
    }

    /// styp, moof (video 2 samples of 3 and 4 bytes, audio 3 samples of 1 byte), mdat.
    fn muxed() -> Vec<u8> {
        let mfhd = bx(b"mfhd", &full(0, 0, &7u32.to_be_bytes()));
        let len = |v: &[u8], a: &[u8]| 8 + mfhd.len() + v.len() + a.len();
        // data offsets: from the moof start to the samples in the mdat.
        let probe_v = traf(1, 9000, &[3, 4], 0);
        let probe_a = traf(2, 4800, &[1, 1, 1], 0);
        let moof_len = len(&probe_v, &probe_a);
        let v = traf(1, 9000, &[3, 4], (moof_len + 8) as u32);
        let a = traf(2, 4800, &[1, 1, 1], (moof_len + 8 + 7) as u32);
        let moof = bx(b"moof", &[mfhd.clone(), v, a].concat());
        [
            bx(b"styp", b"msdh\0\0\0\0"),
            bx(b"prft", &[0u8; 20]),
            moof,
            bx(b"mdat", b"VVVvvvvAAA"),
        ]
        .concat()
    }

    #[test]
    fn each_track_gets_its_own_bytes_and_offsets() {
        let f = muxed();
        let v = fragment_for_track(&f, 1, true, 0).unwrap();
        assert!(v.ends_with(b"mdat\x56\x56\x56vvvv"), "{v:?}");
        let a = fragment_for_track(&f, 2, false, 0).unwrap();
        assert!(a.ends_with(b"mdatAAA"));
        // No prft for the audio track; the styp stays.
        assert!(!a.windows(4).any(|w| w == b"prft"));
        assert!(a.starts_with(&bx(b"styp", b"msdh\0\0\0\0")));
        // The data offset points at the mdat payload of the new layout.
        for (out, id) in [(&v, 1u32), (&a, 2)] {
            let moof_at = out.windows(4).position(|w| w == b"moof").unwrap() - 4;
            let moof = &out[moof_at..];
            let body = body_of(&moof[..be32(moof, 0).unwrap() as usize]);
            let (_, traf) = child_boxes_whole(body).find(|(t, _)| t == b"traf").unwrap();
            let (tid, d) = traf_data(traf, 0).unwrap();
            assert_eq!(tid, id);
            let payload = &out[moof_at + d.data.0..moof_at + d.data.0 + d.data.1];
            assert_eq!(payload, if id == 1 { &b"VVVvvvv"[..] } else { b"AAA" });
        }
    }

    #[test]
    fn a_fragment_without_the_track_gets_an_empty_traf() {
        let f = muxed();
        let out = fragment_for_track(&f, 3, false, 12345).unwrap();
        assert!(out.ends_with(b"\0\0\0\x08mdat"));
        let tf = crate::store::timebase::time_fields(&out);
        assert_eq!(tf.tfdt.and_then(|t| t.get(&out)), Some(12345));
    }

    #[test]
    fn the_init_segment_keeps_one_trak_and_its_trex() {
        let trak = |id: u32| {
            let mut tkhd = vec![0u8; 12];
            tkhd.extend_from_slice(&id.to_be_bytes());
            tkhd.extend_from_slice(&[0u8; 64]);
            bx(b"trak", &bx(b"tkhd", &tkhd))
        };
        let trex = |id: u32| bx(b"trex", &full(0, 0, &[id.to_be_bytes(), [0; 4]].concat()));
        let init = [
            bx(b"ftyp", b"iso6"),
            bx(
                b"moov",
                &[
                    bx(b"mvhd", &[0u8; 100]),
                    trak(1),
                    trak(2),
                    bx(b"mvex", &[trex(1), trex(2)].concat()),
                ]
                .concat(),
            ),
        ]
        .concat();
        let a = init_for_track(&init, 2).unwrap();
        let tracks: Vec<u32> = child_boxes_whole(body_of(
            child_boxes_whole(&a).find(|(t, _)| t == b"moov").unwrap().1,
        ))
        .filter(|(t, _)| t == b"trak")
        .filter_map(|(_, w)| trak_id(body_of(w)))
        .collect();
        assert_eq!(tracks, [2]);
        assert_eq!(a.windows(4).filter(|w| w == b"trex").count(), 1);
        assert_eq!(init_for_track(&init, 5), Err(SplitError::NoTrack(5)));
    }
}
