//! The storage writer's side of event-based recording (DESIGN section 9): one signal gate per
//! camera, fed with stored events and the clock, whose decisions become clip rows, event links
//! and keep classes in the index, and clip notices for status reporting.
//!
//! The gate's rules are [`crate::evr::gate`]; deleting transient media past the pre-roll horizon
//! is [`super::reclaim`]. Nothing here writes media or copies it: a clip only marks what it
//! covers.

use std::collections::HashMap;

use tracing::{info, warn};

use super::stats::{ClipChange, ClipNotice, WriterStats};
use super::Store;
use crate::config::Mode;
use crate::evr::gate::{Change, ClipWindow, CloseReason, Gate, GateConfig, GateEvent};
use crate::index::{ClipRow, EventRow, IndexError, Keep};

/// How long a clip of a connected camera may wait past its end for the fragment that holds its
/// end (a long GOP, muxer latency), ns.
pub const MEDIA_WAIT_NS: i64 = 10_000_000_000;

/// One camera's gate and its open clip's row.
struct CamGate {
    mode: Mode,
    gate: Gate,
    open_id: Option<i64>,
    /// Whether `RecordingAvailable` was reported for the open clip.
    available: bool,
}

/// The gates of every camera.
pub struct Clips {
    cams: HashMap<String, CamGate>,
}

fn row_of(camera: &str, w: &ClipWindow, open: bool) -> ClipRow {
    ClipRow {
        id: 0,
        camera: camera.to_owned(),
        open,
        first_event_utc_ns: w.first_event_ns,
        first_arrival_utc_ns: w.first_arrival_ns,
        requested_start_utc_ns: w.requested_start_ns,
        end_utc_ns: w.end_ns,
        max_end_utc_ns: w.max_end_ns,
        held_until_utc_ns: w.held_until_ns,
        close_reason: None,
        closed_utc_ns: None,
        uploaded_utc_ns: None,
    }
}

fn window_of(r: &ClipRow) -> ClipWindow {
    ClipWindow {
        first_event_ns: r.first_event_utc_ns,
        first_arrival_ns: r.first_arrival_utc_ns,
        requested_start_ns: r.requested_start_utc_ns,
        end_ns: r.end_utc_ns,
        max_end_ns: r.max_end_utc_ns,
        held_until_ns: r.held_until_utc_ns,
        wanted_end_ns: r.end_utc_ns,
    }
}

impl Clips {
    /// Gates for `cameras` (id, mode, gate settings), resuming the clips that were open when
    /// edgerec stopped. A resumed clip whose end (plus the evaluation window) passed while
    /// edgerec was stopped is closed with reason `shutdown`.
    ///
    /// Errors: the index cannot be read or written.
    pub fn restore(
        store: &mut Store,
        cameras: &[(String, Mode, GateConfig)],
        stats: &WriterStats,
        now_utc_ns: i64,
    ) -> Result<Clips, IndexError> {
        let open = store.index().open_clips()?;
        let mut cams = HashMap::new();
        for (id, mode, cfg) in cameras {
            let n = store.index().align_keep_with_mode(id, *mode == Mode::Evr)?;
            if n > 0 {
                info!(camera = %id, segments = n, mode = ?mode, "keep classes aligned with the camera's mode");
            }
            let row = open.iter().find(|r| &r.camera == id);
            cams.insert(
                id.clone(),
                CamGate {
                    mode: *mode,
                    gate: Gate::resume(*cfg, row.map(window_of)),
                    open_id: row.map(|r| r.id),
                    available: true,
                },
            );
        }
        let mut clips = Clips { cams };
        for r in &open {
            let Some(c) = clips.cams.get_mut(&r.camera) else {
                // A camera no longer configured: nothing will extend its clip.
                store
                    .index()
                    .close_clip(r.id, CloseReason::Shutdown.as_str(), now_utc_ns)?;
                continue;
            };
            if now_utc_ns >= r.end_utc_ns + c.gate.config().evaluation_window_ns {
                c.gate.close(CloseReason::Shutdown);
                c.open_id = None;
                store
                    .index()
                    .close_clip(r.id, CloseReason::Shutdown.as_str(), now_utc_ns)?;
                info!(camera = %r.camera, clip = r.id, "clip ended while edgerec was stopped: closed (shutdown)");
                notice(stats, ClipChange::Stopped, r, Some(CloseReason::Shutdown));
            } else {
                // Files that recovery adopted after a crash came back with the default keep class.
                store
                    .index()
                    .mark_clip_media(&r.camera, r.requested_start_utc_ns, r.end_utc_ns)?;
                info!(camera = %r.camera, clip = r.id, "open clip resumed after a restart");
                stats
                    .open_clips
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(r.camera.clone(), r.id);
            }
        }
        Ok(clips)
    }

    /// The keep class of a new segment of `camera` starting at `start_utc_ns`: covered by the
    /// open clip, else transient on an EVR camera, else kept by the mode.
    pub fn keep_for(&self, camera: &str, start_utc_ns: i64) -> Keep {
        match self.cams.get(camera) {
            Some(c) if c.gate.open_clip().is_some_and(|w| start_utc_ns < w.end_ns) => Keep::Clip,
            Some(c) if c.mode == Mode::Evr => Keep::Transient,
            _ => Keep::Mode,
        }
    }

    /// Feeds a newly stored event to its camera's gate and records what the gate decided.
    /// `connected`: whether the camera is delivering media (for the close reason).
    ///
    /// Errors: the index cannot be written (the event stays stored, unlinked).
    pub fn on_event(
        &mut self,
        store: &mut Store,
        stats: &WriterStats,
        e: &EventRow,
        connected: bool,
    ) -> Result<(), IndexError> {
        let Some(c) = self.cams.get_mut(&e.camera) else {
            return Ok(());
        };
        let changes = c.gate.on_event(GateEvent {
            time_ns: e.time_utc_ns,
            duration_ns: e.duration_ns.unwrap_or(0),
            arrival_ns: e.received_utc_ns,
        });
        for ch in changes {
            if let Some(id) = apply(store, stats, c, &e.camera, ch, e.received_utc_ns, connected)? {
                store
                    .index()
                    .link_event(&e.camera, &e.id, Some(id), false)?;
            }
            if ch == Change::Dropped {
                WriterStats::bump(&stats.late_events_dropped, &e.camera, 1);
                warn!(camera = %e.camera, event = %e.id,
                      late_ms = (e.received_utc_ns - e.time_utc_ns) / 1_000_000,
                      "event arrived too late for the signal gate: dropped");
                store.index().link_event(&e.camera, &e.id, None, true)?;
            }
        }
        Ok(())
    }

    /// Closes clips whose end (plus the evaluation window) has passed at `now_utc_ns`.
    /// `media(camera)` says whether a camera is delivering media and where its written media
    /// ends (UTC ns): a clip of a connected camera waits until the fragment holding its end is
    /// on the card (its last GOP may still be arriving), at most [`MEDIA_WAIT_NS`] longer.
    ///
    /// Errors: the index cannot be written.
    pub fn on_tick(
        &mut self,
        store: &mut Store,
        stats: &WriterStats,
        now_utc_ns: i64,
        media: impl Fn(&str) -> (bool, Option<i64>),
    ) -> Result<(), IndexError> {
        for (camera, c) in self.cams.iter_mut() {
            let (connected, media_end) = media(camera);
            let window = c.gate.config().evaluation_window_ns;
            // The gate's clock as far as media has arrived, never more than MEDIA_WAIT_NS behind.
            let gate_now = match media_end {
                Some(m) if connected => now_utc_ns.min(m + window).max(now_utc_ns - MEDIA_WAIT_NS),
                _ => now_utc_ns,
            };
            for ch in c.gate.on_tick(gate_now) {
                apply(store, stats, c, camera, ch, now_utc_ns, connected)?;
            }
        }
        Ok(())
    }

    /// Reports `RecordingAvailable` for `camera`'s open clip once media up to its first event
    /// is written (`media_end_utc_ns`: end of the last fragment written).
    pub fn on_media(&mut self, stats: &WriterStats, camera: &str, media_end_utc_ns: i64) {
        let Some(c) = self.cams.get_mut(camera) else {
            return;
        };
        if c.available {
            return;
        }
        let (Some(w), Some(id)) = (c.gate.open_clip(), c.open_id) else {
            return;
        };
        if media_end_utc_ns >= w.first_event_ns {
            c.available = true;
            let mut row = row_of(camera, w, true);
            row.id = id;
            notice(stats, ClipChange::Available, &row, None);
        }
    }
}

/// Applies one gate change to the index; returns the clip an event belongs to (opened,
/// updated, joined).
fn apply(
    store: &mut Store,
    stats: &WriterStats,
    c: &mut CamGate,
    camera: &str,
    ch: Change,
    now_utc_ns: i64,
    connected: bool,
) -> Result<Option<i64>, IndexError> {
    let ix = store.index();
    Ok(match ch {
        Change::Opened(w) => {
            let mut row = row_of(camera, &w, true);
            row.id = ix.insert_clip(&row)?;
            ix.mark_clip_media(camera, w.requested_start_ns, w.end_ns)?;
            c.open_id = Some(row.id);
            c.available = false;
            WriterStats::bump(&stats.clips_opened, camera, 1);
            info!(
                camera,
                clip = row.id,
                pre_roll_ms = (w.first_event_ns - w.requested_start_ns) / 1_000_000,
                "clip opened"
            );
            notice(stats, ClipChange::Started, &row, None);
            Some(row.id)
        }
        Change::Updated(w) => {
            let id = c.open_id.expect("an updated clip is open");
            ix.update_clip_window(id, w.requested_start_ns, w.end_ns, w.held_until_ns)?;
            ix.mark_clip_media(camera, w.requested_start_ns, w.end_ns)?;
            Some(id)
        }
        Change::Joined => c.open_id,
        Change::Closed(w, reason) => {
            // A clip that ends while its camera delivers nothing was cut short by the loss.
            let reason = match reason {
                CloseReason::Minimum | CloseReason::Maximum if !connected => {
                    CloseReason::CameraLost
                }
                r => r,
            };
            let Some(id) = c.open_id.take() else {
                return Ok(None);
            };
            ix.close_clip(id, reason.as_str(), now_utc_ns)?;
            let mut row = row_of(camera, &w, false);
            row.id = id;
            let secs = (w.end_ns - w.requested_start_ns) as f64 / 1e9;
            *stats
                .clip_seconds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(camera.to_owned())
                .or_default() += secs;
            info!(
                camera,
                clip = id,
                reason = reason.as_str(),
                seconds = secs,
                "clip closed"
            );
            notice(stats, ClipChange::Stopped, &row, Some(reason));
            None
        }
        Change::Retro(w) => {
            let mut row = row_of(camera, &w, false);
            row.close_reason = Some(CloseReason::Minimum.as_str().to_owned());
            row.closed_utc_ns = Some(now_utc_ns);
            row.id = ix.insert_clip(&row)?;
            ix.mark_clip_media(camera, w.requested_start_ns, w.end_ns)?;
            WriterStats::bump(&stats.clips_opened, camera, 1);
            info!(camera, clip = row.id, "retroactive clip for a late event");
            notice(stats, ClipChange::Started, &row, None);
            notice(stats, ClipChange::Stopped, &row, Some(CloseReason::Minimum));
            Some(row.id)
        }
        Change::Dropped => None,
    })
}

fn notice(stats: &WriterStats, change: ClipChange, r: &ClipRow, reason: Option<CloseReason>) {
    {
        let mut open = stats.open_clips.lock().unwrap_or_else(|e| e.into_inner());
        match change {
            ClipChange::Started if r.open => {
                open.insert(r.camera.clone(), r.id);
            }
            ClipChange::Stopped if open.get(&r.camera) == Some(&r.id) => {
                open.remove(&r.camera);
            }
            _ => {}
        }
    }
    stats.clip_log.push_with(|seq| ClipNotice {
        seq,
        change,
        camera: r.camera.clone(),
        clip_id: r.id,
        start_utc_ns: r.requested_start_utc_ns,
        end_utc_ns: r.end_utc_ns,
        close_reason: reason.map(CloseReason::as_str),
    });
}
