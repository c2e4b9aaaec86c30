//! The appsink end of a camera's pipeline: tells the init segment from fragments, stamps each
//! fragment with its UTC time (the system clock, or the camera's RTCP sender-report clock through
//! the muxer's `prft`), starts a new run on a clock step, and hands fragments to the storage
//! writer. No I/O here.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use tracing::{debug, info, warn};

use super::CameraStatus;
use crate::clock::{mono_ns, now_utc_ns};
use crate::config::TimeSource;
use crate::store::segfile::Payload;
use crate::store::segmenter::RunReason;
use crate::store::writer::{Fragment, WriterHandle, WriterMsg};

/// A fragment as the muxer produced it: a buffer list written with one `writev` where possible.
struct BufferListPayload(gst::BufferList);

impl Payload for BufferListPayload {
    fn len(&self) -> usize {
        self.0.iter().map(|b| b.size()).sum()
    }
    fn write_to(&self, f: &mut std::fs::File) -> std::io::Result<()> {
        use std::io::Write;
        let maps: Vec<gst::BufferMap<'_, gst::buffer::Readable>> = self
            .0
            .iter()
            .map(|b| b.map_readable())
            .collect::<Result<_, _>>()
            .map_err(|_| std::io::Error::other("buffer not readable"))?;
        let mut slices: Vec<std::io::IoSlice<'_>> = maps
            .iter()
            .map(|m| std::io::IoSlice::new(m.as_slice()))
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = f.write_vectored(rest)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            std::io::IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }
    fn edit_head(&mut self, edit: &mut dyn FnMut(&mut [u8]) -> bool) -> bool {
        // The muxer hands the fragment header (styp, prft, moof, mdat header) over as the first
        // buffer; making it writable copies those few hundred bytes at most.
        let Some(b) = self.0.make_mut().get_mut(0) else {
            return false;
        };
        let Ok(mut m) = b.map_writable() else {
            return false;
        };
        edit(m.as_mut_slice())
    }
}

/// Maps a run's media timeline onto UTC.
struct Timeline {
    base_utc_ns: i64,
    base_running_ns: u64,
    wall_minus_mono_ns: i64,
    /// Anchored on the camera's RTCP sender-report clock rather than the system clock.
    from_camera: bool,
}

/// How long fragments are held waiting for the first RTCP sender report.
const RTCP_WAIT: Duration = Duration::from_secs(5);

/// A fragment waiting for its time.
struct Held {
    payload: BufferListPayload,
    decode_time: u64,
    running_ns: u64,
    duration_ns: u64,
    new_run: Option<RunReason>,
    /// Its time by the system clock if it arrived while no timeline existed; used if no sender
    /// report ever comes.
    system_utc_ns: Option<i64>,
}

/// The appsink callback's state for one pipeline run.
pub(super) struct SinkState {
    camera: Arc<str>,
    writer: WriterHandle,
    status: Arc<CameraStatus>,
    time_source: TimeSource,
    timeline: Option<Timeline>,
    next_new_run: Option<RunReason>,
    pending: Vec<Held>,
    pending_since: Option<Instant>,
    rtcp_missing: bool,
    /// The video track's timescale and `trex` default sample duration, from the init segment,
    /// when it also has audio (a fragment then takes its duration from the video's samples);
    /// (0, 0) for video only.
    video_clock: (u32, u32),
}

impl SinkState {
    /// The sink state of a new pipeline run of `camera`; its first fragment starts a run with
    /// `reason`.
    pub(super) fn new(
        camera: Arc<str>,
        writer: WriterHandle,
        status: Arc<CameraStatus>,
        time_source: TimeSource,
        reason: RunReason,
    ) -> SinkState {
        SinkState {
            camera,
            writer,
            status,
            time_source,
            timeline: None,
            next_new_run: Some(reason),
            pending: Vec::new(),
            pending_since: None,
            rtcp_missing: false,
            video_clock: (0, 0),
        }
    }

    /// The UTC time (ns) of pipeline running time `running_ns`, once the run has a timeline.
    pub(super) fn utc_of(&self, running_ns: u64) -> Option<i64> {
        let t = self.timeline.as_ref()?;
        Some(t.base_utc_ns + running_ns as i64 - t.base_running_ns as i64)
    }

    pub(super) fn on_sample(
        &mut self,
        sink: &gst_app::AppSink,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
        let Some(mut list) = sample.buffer_list_owned() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        if list.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let first = list.get(0).expect("non-empty");
        if first
            .flags()
            .contains(gst::BufferFlags::DISCONT | gst::BufferFlags::HEADER)
        {
            let data = first
                .map_readable()
                .map_err(|_| gst::FlowError::Error)?
                .to_vec();
            // Only a file with more than one track needs the video's own duration: a video-only
            // fragment keeps the muxer's buffer duration and no `moof` is parsed per fragment.
            let scales = crate::mp4::TrackScales::of_init(&data);
            self.video_clock = if scales.others.is_empty() {
                (0, 0)
            } else {
                (scales.first, crate::mp4::trex_default_duration(&data))
            };
            self.writer.send(WriterMsg::Init {
                camera: self.camera.clone(),
                data,
            });
            list.make_mut().remove(0..1);
            if list.is_empty() {
                return Ok(gst::FlowSuccess::Ok);
            }
        }
        let first = list.get(0).expect("non-empty");
        // The muxer's duration spans every track; with audio beside the video, the index
        // counts the video's samples (the audio may run on past it at the end of a run).
        let video_ns = match self.video_clock {
            (ts, trex) if ts > 0 => first.map_readable().ok().and_then(|m| {
                crate::mp4::fragment_first_track_ticks(m.as_slice(), trex)
                    .map(|t| crate::mp4::ticks_to_ns(t, ts))
            }),
            _ => None,
        };
        let duration_ns = video_ns
            .or_else(|| first.duration().map(|d| d.nseconds()))
            .unwrap_or(0);
        let segment = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned());
        let running = first
            .pts()
            .and_then(|p| segment.as_ref().and_then(|s| s.to_running_time(p)))
            .map(|t| t.nseconds())
            .unwrap_or(0);
        let now_utc = now_utc_ns();
        let wall_minus_mono = now_utc - mono_ns();
        let prft = if self.time_source == TimeSource::Rtcp {
            first
                .map_readable()
                .ok()
                .and_then(|m| crate::mp4::prft_utc_ns(m.as_slice()))
        } else {
            None
        };
        debug!(camera = %self.camera, running_ms = running / 1_000_000, duration_ms = duration_ns / 1_000_000,
               prft = ?prft, "fragment");
        if let Some(t) = &self.timeline {
            let stepped = match (t.from_camera, prft) {
                // Camera time: a jump of the sender-report clock against media time.
                (true, Some(p)) => {
                    (p - (t.base_utc_ns + running as i64 - t.base_running_ns as i64)).abs()
                        > 1_000_000_000
                }
                // System time: a jump of the real-time clock against the monotonic clock.
                (false, _) => (wall_minus_mono - t.wall_minus_mono_ns).abs() > 1_000_000_000,
                (true, None) => false,
            };
            if stepped {
                warn!(camera = %self.camera, "clock stepped by more than 1 s: starting a new run");
                self.timeline = None;
                self.next_new_run.get_or_insert(RunReason::ClockStep);
            }
        }
        let decode_time = first
            .map_readable()
            .ok()
            .and_then(|m| crate::mp4::fragment_decode_time(m.as_slice()))
            .unwrap_or(0);
        let payload = BufferListPayload(list);
        // Only a fragment that starts a timeline, or waits for a sender report, needs its system
        // time; the others are stamped from the run's timeline.
        let sys = self
            .timeline
            .is_none()
            .then(|| self.system_timeline(sink, running, now_utc, wall_minus_mono));
        let held = Held {
            payload,
            decode_time,
            running_ns: running,
            duration_ns,
            new_run: self.next_new_run.take(),
            system_utc_ns: sys.as_ref().map(|t| t.base_utc_ns),
        };
        if let Some(sys) = sys {
            if let Some(p) = prft {
                self.timeline = Some(Timeline {
                    base_utc_ns: p,
                    base_running_ns: running,
                    wall_minus_mono_ns: wall_minus_mono,
                    from_camera: true,
                });
                info!(camera = %self.camera, held = self.pending.len(),
                      "timeline anchored to the camera's RTCP sender-report clock");
            } else if self.time_source == TimeSource::Rtcp && !self.rtcp_missing {
                // Hold fragments (bounded) until the first sender report says what time they are.
                let since = *self.pending_since.get_or_insert_with(Instant::now);
                self.pending.push(held);
                if since.elapsed() < RTCP_WAIT {
                    return Ok(gst::FlowSuccess::Ok);
                }
                warn!(camera = %self.camera, "no RTCP sender report within {RTCP_WAIT:?}: using the system clock");
                self.rtcp_missing = true;
                self.finish();
                return Ok(gst::FlowSuccess::Ok);
            } else {
                self.timeline = Some(sys);
            }
        }
        self.pending.push(held);
        self.flush_pending();
        Ok(gst::FlowSuccess::Ok)
    }

    /// A timeline from the system clock: the fragment starting at `running` was captured
    /// (pipeline clock now − its running time) ago.
    fn system_timeline(
        &self,
        sink: &gst_app::AppSink,
        running: u64,
        now_utc: i64,
        wall_minus_mono: i64,
    ) -> Timeline {
        let age = match (sink.clock(), sink.base_time()) {
            (Some(c), Some(b)) => c.time().nseconds().saturating_sub(b.nseconds() + running) as i64,
            _ => 0,
        };
        Timeline {
            base_utc_ns: now_utc - age,
            base_running_ns: running,
            wall_minus_mono_ns: wall_minus_mono,
            from_camera: false,
        }
    }

    /// Hands on fragments still held for a sender report, stamped by the system clock (the
    /// pipeline ended or no report came).
    pub(super) fn finish(&mut self) {
        if self.timeline.is_none() {
            if let Some((h, utc)) = self
                .pending
                .first()
                .and_then(|h| Some((h, h.system_utc_ns?)))
            {
                self.timeline = Some(Timeline {
                    base_utc_ns: utc,
                    base_running_ns: h.running_ns,
                    wall_minus_mono_ns: now_utc_ns() - mono_ns(),
                    from_camera: false,
                });
            }
        }
        self.flush_pending();
    }

    /// Stamps held fragments from the timeline and hands them to the writer, in order.
    fn flush_pending(&mut self) {
        let Some(t) = &self.timeline else { return };
        let (base_utc, base_running) = (t.base_utc_ns, t.base_running_ns as i64);
        self.pending_since = None;
        for h in std::mem::take(&mut self.pending) {
            let utc_ns = base_utc + (h.running_ns as i64 - base_running);
            let n = h.payload.len() as u64;
            let new_run = h.new_run.or(self.next_new_run.take());
            let f = Fragment {
                camera: self.camera.clone(),
                payload: Box::new(h.payload),
                utc_ns,
                duration_ns: h.duration_ns,
                decode_time: h.decode_time,
                new_run,
            };
            if self.writer.send_fragment(f) {
                self.status.bytes.fetch_add(n, Ordering::Relaxed);
                self.status
                    .last_fragment_utc_ns
                    .store(utc_ns, Ordering::Relaxed);
            } else {
                warn!(camera = %self.camera, "writer queue full: fragment dropped");
                self.next_new_run = Some(RunReason::Dropped);
            }
        }
    }
}
