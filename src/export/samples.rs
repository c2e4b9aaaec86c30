//! The sample table of one of our fragments: sizes, durations, sync flags and composition
//! offsets of the first track, from its `moof` (`tfhd` and `trun`, ISO/IEC 14496-12 sections
//! 8.8.7 and 8.8.8, with the `trex` defaults of the init segment, 8.8.3), and where the samples'
//! bytes lie in the file. Pure: bytes in, table out. Building the exported file is `builder.rs`.

/// One sample (a video frame): what a progressive MP4's sample table needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Bytes of the sample in `mdat`.
    pub size: u32,
    /// Decode duration, track timescale ticks.
    pub duration: u32,
    /// A sync sample (key frame, IDR): `sample_is_non_sync_sample` clear.
    pub sync: bool,
    /// Composition time offset (PTS − DTS), ticks; non-zero with B-frames.
    pub cto: i32,
}

/// The samples of one fragment and where their bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentSamples {
    /// `tfdt` base media decode time, ticks (0 without a `tfdt`).
    pub decode_time: u64,
    /// Absolute file offset of the first sample's bytes; the samples follow back to back.
    pub data_offset: u64,
    /// The samples in decode order.
    pub samples: Vec<Sample>,
}

impl FragmentSamples {
    /// Bytes of all samples.
    pub fn data_len(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.size)).sum()
    }

    /// Sum of the sample durations, ticks.
    pub fn duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }
}

/// Defaults from the init segment's `mvex/trex` for the first track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrexDefaults {
    /// default_sample_duration.
    pub duration: u32,
    /// default_sample_size.
    pub size: u32,
    /// default_sample_flags.
    pub flags: u32,
}

use crate::mp4::{be32, be64};

/// The `trex` defaults of track `id` of an init segment; zeros when it has none.
pub fn trex_defaults_of(init: &[u8], id: u32) -> TrexDefaults {
    crate::mp4::find_path(init, &[b"moov", b"mvex"])
        .and_then(|mvex| {
            crate::mp4::child_boxes(mvex)
                .filter(|(t, _)| t == b"trex")
                .map(|(_, b)| b)
                .find(|t| be32(t, 4) == Some(id))
        })
        .map(|t| TrexDefaults {
            duration: be32(t, 12).unwrap_or(0),
            size: be32(t, 16).unwrap_or(0),
            flags: be32(t, 20).unwrap_or(0),
        })
        .unwrap_or_default()
}

/// The `trex` defaults of an init segment (`ftyp` + `moov`); zeros when it has none.
pub fn trex_defaults(init: &[u8]) -> TrexDefaults {
    crate::mp4::find_path(init, &[b"moov", b"mvex", b"trex"])
        .map(|t| TrexDefaults {
            duration: be32(t, 12).unwrap_or(0),
            size: be32(t, 16).unwrap_or(0),
            flags: be32(t, 20).unwrap_or(0),
        })
        .unwrap_or_default()
}

/// `sample_is_non_sync_sample` of the sample flags (ISO/IEC 14496-12 section 8.8.3.1).
const NON_SYNC: u32 = 0x0001_0000;

/// Parses the first `traf` of `moof` (the whole box, header included) that starts at file
/// offset `moof_offset`. `None` when the box is not a `moof` with a `traf` and a `trun`, or a
/// table is cut short.
pub fn parse_fragment(
    moof: &[u8],
    moof_offset: u64,
    trex: TrexDefaults,
) -> Option<FragmentSamples> {
    parse_track(moof, moof_offset, trex, None)
}

/// Like [`parse_fragment`], for the `traf` of track `id` (`tfhd` track_ID; `None`: the first
/// `traf`). `None` also when the fragment has no `traf` of that track. Every `traf` of our
/// muxer's fragments counts its data offset from the `moof` (default-base-is-moof).
pub fn parse_track(
    moof: &[u8],
    moof_offset: u64,
    trex: TrexDefaults,
    id: Option<u32>,
) -> Option<FragmentSamples> {
    if moof.get(4..8)? != b"moof" {
        return None;
    }
    let traf = crate::mp4::child_boxes(moof.get(8..)?)
        .filter(|(t, _)| t == b"traf")
        .map(|(_, b)| b)
        .find(|traf| {
            id.is_none_or(|id| {
                crate::mp4::find_path(traf, &[b"tfhd"]).and_then(|h| be32(h, 4)) == Some(id)
            })
        })?;
    let mut base = moof_offset; // default-base-is-moof, and the first traf's default
    let (mut dur, mut size, mut flags) = (trex.duration, trex.size, trex.flags);
    let mut decode_time = 0u64;
    let mut out: Option<FragmentSamples> = None;
    for (typ, body) in crate::mp4::child_boxes(traf) {
        match &typ {
            b"tfhd" => {
                let f = be32(body, 0)? & 0xff_ffff;
                let mut at = 8;
                if f & 0x1 != 0 {
                    base = be64(body, at)?;
                    at += 8;
                }
                if f & 0x2 != 0 {
                    at += 4;
                }
                if f & 0x8 != 0 {
                    dur = be32(body, at)?;
                    at += 4;
                }
                if f & 0x10 != 0 {
                    size = be32(body, at)?;
                    at += 4;
                }
                if f & 0x20 != 0 {
                    flags = be32(body, at)?;
                }
            }
            b"tfdt" => {
                decode_time = if *body.first()? == 1 {
                    be64(body, 4)?
                } else {
                    u64::from(be32(body, 4)?)
                };
            }
            b"trun" => {
                if out.is_some() {
                    // edgerec's muxer writes one trun per traf; a second would need its own
                    // data offset bookkeeping.
                    return None;
                }
                let version = *body.first()?;
                let f = be32(body, 0)? & 0xff_ffff;
                let count = be32(body, 4)? as usize;
                let mut at = 8;
                let mut data_offset = base;
                if f & 0x1 != 0 {
                    let rel = be32(body, at)? as i32;
                    data_offset = base.checked_add_signed(i64::from(rel))?;
                    at += 4;
                }
                let first_flags = if f & 0x4 != 0 {
                    let v = be32(body, at)?;
                    at += 4;
                    Some(v)
                } else {
                    None
                };
                let mut samples = Vec::with_capacity(count.min(1 << 16));
                for i in 0..count {
                    let mut next = || {
                        let v = be32(body, at);
                        at += 4;
                        v
                    };
                    let d = if f & 0x100 != 0 { next()? } else { dur };
                    let s = if f & 0x200 != 0 { next()? } else { size };
                    let fl = if f & 0x400 != 0 {
                        next()?
                    } else if i == 0 {
                        first_flags.unwrap_or(flags)
                    } else {
                        flags
                    };
                    let cto = if f & 0x800 != 0 {
                        let v = next()?;
                        if version == 0 {
                            i32::try_from(v).unwrap_or(i32::MAX)
                        } else {
                            v as i32
                        }
                    } else {
                        0
                    };
                    samples.push(Sample {
                        size: s,
                        duration: d,
                        sync: fl & NON_SYNC == 0,
                        cto,
                    });
                }
                out = Some(FragmentSamples {
                    decode_time: 0,
                    data_offset,
                    samples,
                });
            }
            _ => {}
        }
    }
    let mut out = out?;
    out.decode_time = decode_time;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::builder::bx as boxed;

    #[test]
    fn a_trun_with_sizes_flags_and_offsets() {
        // tfhd: default-base-is-moof (0x20000) + default duration 3600 (0x8).
        let mut tfhd = (0x0002_0008u32).to_be_bytes().to_vec();
        tfhd.extend_from_slice(&1u32.to_be_bytes());
        tfhd.extend_from_slice(&3600u32.to_be_bytes());
        let mut tfdt = vec![1, 0, 0, 0];
        tfdt.extend_from_slice(&(90_000u64 * 100).to_be_bytes());
        // trun v1: data offset, first-sample flags, sizes, composition offsets (0x1|0x4|0x200|0x800).
        let mut trun = (0x0100_0a05u32).to_be_bytes().to_vec();
        trun.extend_from_slice(&3u32.to_be_bytes());
        trun.extend_from_slice(&200u32.to_be_bytes()); // data offset from moof start
        trun.extend_from_slice(&0u32.to_be_bytes()); // first sample: sync
        for (size, cto) in [(1000u32, 7200i32), (300, -3600), (400, 0)] {
            trun.extend_from_slice(&size.to_be_bytes());
            trun.extend_from_slice(&cto.to_be_bytes());
        }
        let traf = [
            boxed(b"tfhd", &tfhd),
            boxed(b"tfdt", &tfdt),
            boxed(b"trun", &trun),
        ]
        .concat();
        let moof = boxed(b"moof", &boxed(b"traf", &traf));
        let trex = TrexDefaults {
            duration: 1,
            size: 0,
            flags: NON_SYNC,
        };
        let f = parse_fragment(&moof, 5000, trex).unwrap();
        assert_eq!(f.decode_time, 9_000_000);
        assert_eq!(f.data_offset, 5200);
        assert_eq!(
            f.samples,
            [
                Sample {
                    size: 1000,
                    duration: 3600,
                    sync: true,
                    cto: 7200
                },
                Sample {
                    size: 300,
                    duration: 3600,
                    sync: false,
                    cto: -3600
                },
                Sample {
                    size: 400,
                    duration: 3600,
                    sync: false,
                    cto: 0
                },
            ]
        );
        assert_eq!((f.data_len(), f.duration()), (1700, 10_800));
        // Cut short: no table.
        assert!(parse_fragment(&moof[..moof.len() - 4], 0, trex).is_none());
        assert!(parse_fragment(b"\0\0\0\x08mdat", 0, trex).is_none());
    }
}
