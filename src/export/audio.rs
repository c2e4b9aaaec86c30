//! The audio track of an MP4 export (cameras recorded with `audio = "auto"`): which samples go in
//! which chunk, and how long each lasts so that the sound stays where it was against the
//! picture. Pure; the boxes are written by `builder.rs`.
//!
//! The export closes gaps between spans (the video's samples keep their own durations); the
//! audio follows the video fragment by fragment: each fragment's audio starts, in the output,
//! as far from that fragment's first video sample as it did in the recording (both `tfdt`s of
//! one fragment are on one clock). Where the recording had no audio (a microphone that went
//! quiet), the last audio sample before the silence lasts until the next one is due; audio that
//! starts after the video opens the track with an empty edit (ISO/IEC 14496-12 section 8.6.6).

use super::builder::SourceFragment;
use super::samples::Sample;

/// The audio track's samples in output order, and their chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPlan {
    /// Every audio sample, durations adjusted for silences.
    pub samples: Vec<Sample>,
    /// One chunk per fragment with audio: (index into the fragments, samples, sample
    /// description index, 1-based).
    pub chunks: Vec<(usize, u32, u32)>,
    /// Audio timescale (its sample rate), ticks per second.
    pub timescale: u32,
    /// Time before the first audio sample, audio ticks (an empty edit when not 0).
    pub lead: u64,
    /// Sum of the sample durations, audio ticks.
    pub duration: u64,
}

/// `t` ticks of a `from` clock in ticks of a `to` clock, rounded down.
fn convert(t: u64, from: u32, to: u32) -> i128 {
    if from == 0 {
        return 0;
    }
    i128::from(t) * i128::from(to) / i128::from(from)
}

/// Plans the audio of `frags` (video timescale `video_ts`, audio timescale `audio_ts`);
/// `sdi(init)` is the audio sample description index of an init segment. `None` when no
/// fragment has audio.
pub fn plan(
    frags: &[&SourceFragment],
    video_ts: u32,
    audio_ts: u32,
    sdi: impl Fn(usize) -> u32,
) -> Option<AudioPlan> {
    let mut out = AudioPlan {
        samples: Vec::new(),
        chunks: Vec::new(),
        timescale: audio_ts,
        lead: 0,
        duration: 0,
    };
    let mut video_out = 0u64; // video ticks before this fragment, in the output
    let mut audio_out = 0u64; // audio ticks from the movie's start to the next audio sample
    for (k, f) in frags.iter().enumerate() {
        if let Some(a) = f.audio.as_ref().filter(|a| !a.samples.is_empty()) {
            let offset =
                i128::from(a.decode_time) - convert(f.samples.decode_time, video_ts, audio_ts);
            let target = (convert(video_out, video_ts, audio_ts) + offset).max(0) as u64;
            if out.samples.is_empty() {
                out.lead = target;
                audio_out = target;
            } else if target > audio_out {
                let gap = target - audio_out;
                if let Some(last) = out.samples.last_mut() {
                    last.duration = last
                        .duration
                        .saturating_add(u32::try_from(gap).unwrap_or(u32::MAX));
                }
                audio_out = target;
            }
            out.samples.extend_from_slice(&a.samples);
            audio_out += a.duration();
            out.chunks.push((k, a.samples.len() as u32, sdi(f.init)));
        }
        video_out += f.samples.duration();
    }
    if out.samples.is_empty() {
        return None;
    }
    out.duration = out.samples.iter().map(|s| u64::from(s.duration)).sum();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::samples::FragmentSamples;

    fn frag(v_t: u64, v_n: usize, a: Option<(u64, usize)>) -> SourceFragment {
        let s = |d: u32| Sample {
            size: 10,
            duration: d,
            sync: true,
            cto: 0,
        };
        SourceFragment {
            file: 0,
            init: 0,
            samples: FragmentSamples {
                decode_time: v_t,
                data_offset: 0,
                samples: (0..v_n).map(|_| s(3600)).collect(),
            },
            audio: a.map(|(t, n)| FragmentSamples {
                decode_time: t,
                data_offset: 0,
                samples: (0..n).map(|_| s(1024)).collect(),
            }),
        }
    }

    #[test]
    fn audio_keeps_its_place_against_the_video_across_a_silence() {
        // 90 kHz video, 25 fps (3600 ticks), 1 s fragments; 48 kHz audio, 1024-sample frames.
        // Fragment 0: audio starts 0.1 s after the video. Fragment 1: no audio (quiet).
        // Fragment 2: audio starts with the video again.
        let f = [
            frag(0, 25, Some((4800, 42))),
            frag(90_000, 25, None),
            frag(180_000, 25, Some((96_000, 47))),
        ];
        let refs: Vec<&SourceFragment> = f.iter().collect();
        let p = plan(&refs, 90_000, 48_000, |_| 1).unwrap();
        assert_eq!(p.lead, 4800);
        assert_eq!(p.samples.len(), 89);
        assert_eq!(p.chunks, [(0, 42, 1), (2, 47, 1)]);
        // The last sample before the silence lasts until the audio of fragment 2 is due (2 s).
        let before: u64 = p.samples[..42].iter().map(|s| u64::from(s.duration)).sum();
        assert_eq!(p.lead + before, 96_000);
        assert_eq!(p.samples[41].duration, 96_000 - 4800 - 41 * 1024);
        assert!(plan(&[&frag(0, 25, None)], 90_000, 48_000, |_| 1).is_none());
    }
}
