//! Startup recovery: bring files and index back to the invariants of DESIGN section 4 after a
//! crash or power cut.
//!
//! 1. Rows left `deleting`: finish the deletion.
//! 2. Rows left `open`: keep every complete fragment of the file, truncate the torn tail, and mark
//!    the row complete (a file with no complete fragment is removed).
//! 3. Files without a row (created just before the crash): adopted the same way. Only the newest
//!    day directories of each camera are walked (files are created in time order); `fsck` walks all.

use std::path::Path;

use super::fsutil::{allocated_bytes, fsync_dir};
use super::layout::{self, parse_segment_name};
use super::segmenter::RunReason;
use super::timebase::base_of_scan;
use super::{io_at, Store, StoreError};
use crate::index::{FragmentEntry, SegmentRow, SegmentState};
use crate::mp4::{self, SegmentScan};

/// What recovery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Half-done deletions finished.
    pub deletions_finished: u64,
    /// Open segments closed (torn tails truncated).
    pub open_recovered: u64,
    /// Bytes cut from torn tails.
    pub bytes_truncated: u64,
    /// Files without a row that were adopted.
    pub orphans_adopted: u64,
    /// Files or rows removed because they held no complete fragment.
    pub empty_removed: u64,
}

/// Converts a scan into fragment entries (microsecond durations).
pub fn fragment_entries(scan: &SegmentScan) -> Vec<FragmentEntry> {
    scan.fragments
        .iter()
        .map(|f| FragmentEntry {
            size_bytes: f.size as u32,
            duration_us: (mp4::ticks_to_ns(f.duration_ticks, scan.timescale) / 1000) as u32,
        })
        .collect()
}

/// Truncates a file to its scan's valid length and syncs it; returns the bytes cut.
pub(crate) fn truncate_to_valid(path: &Path, scan: &SegmentScan) -> Result<u64, StoreError> {
    if scan.valid_len == scan.file_len {
        return Ok(0);
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_at(path))?;
    f.set_len(scan.valid_len).map_err(io_at(path))?;
    f.sync_data().map_err(io_at(path))?;
    Ok(scan.file_len - scan.valid_len)
}

/// Fills a row's file-derived fields from a scan of its (already truncated) file. `prev` is the
/// camera's segment before it, for a row whose absolute media time base is not known
/// ([`super::timebase::base_of_scan`]).
pub(crate) fn fill_from_scan(
    row: &mut SegmentRow,
    path: &Path,
    scan: &SegmentScan,
    prev: Option<&SegmentRow>,
) -> Result<(), StoreError> {
    let meta = std::fs::metadata(path).map_err(io_at(path))?;
    row.fragments = fragment_entries(scan);
    row.duration_ns = row
        .fragments
        .iter()
        .map(|f| i64::from(f.duration_us) * 1000)
        .sum();
    row.size_bytes = scan.valid_len as i64;
    row.alloc_bytes = allocated_bytes(&meta) as i64;
    row.init_size_bytes = scan.init_size as i64;
    row.codec = scan.codec.clone();
    row.audio_codec = scan.audio_codec.clone();
    row.timescale = scan.timescale;
    row.decode_time = base_of_scan(scan, row.decode_time, row.start_utc_ns, prev);
    Ok(())
}

fn remove_file_synced(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_at(path)(e)),
    }
    if let Some(d) = path.parent() {
        fsync_dir(d).map_err(io_at(d))?;
    }
    Ok(())
}

/// Runs recovery (see the module docs).
pub fn recover(store: &mut Store) -> Result<RecoveryReport, StoreError> {
    let mut rep = RecoveryReport::default();

    let deleting = store.index().segments_in_state(SegmentState::Deleting)?;
    if !deleting.is_empty() {
        rep.deletions_finished = store.delete_segments(&deleting)?.segments;
    }

    for mut row in store.index().segments_in_state(SegmentState::Open)? {
        let path = store.abs(&row.path);
        let scan = match mp4::scan_file(&path) {
            Ok(s) if !s.fragments.is_empty() => s,
            _ => {
                remove_file_synced(&path)?;
                store.index().delete_rows(&[row.id])?;
                rep.empty_removed += 1;
                continue;
            }
        };
        rep.bytes_truncated += truncate_to_valid(&path, &scan)?;
        fill_from_scan(&mut row, &path, &scan, None)?;
        row.state = SegmentState::Complete;
        store.index().rewrite_segment(&row)?;
        rep.open_recovered += 1;
    }

    let media = store.root().join(layout::MEDIA_DIR);
    let cameras = match std::fs::read_dir(&media) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect::<Vec<_>>(),
        Err(e) => return Err(io_at(&media)(e)),
    };
    for camera in cameras {
        let newest = store.index().newest_segment(&camera)?;
        let from_day = newest.as_ref().map(|s| {
            let t = layout::utc(s.start_utc_ns);
            (t.year() as u32, u8::from(t.month()) as u32, t.day() as u32)
        });
        for rel in list_segment_files(store.root(), &camera, from_day)? {
            if store.index().has_path(&rel)? {
                continue;
            }
            if adopt(store, &camera, &rel, RunReason::Recovered)? {
                rep.orphans_adopted += 1;
            } else {
                rep.empty_removed += 1;
            }
        }
    }
    Ok(rep)
}

/// Adopts a file that has no row: scans it, truncates a torn tail and inserts a complete row in a
/// run of its own (`reason`: [`RunReason::Recovered`] after a crash, [`RunReason::Rebuild`] for
/// `fsck --rebuild`). Removes it if it holds no complete fragment or its name is
/// not a segment name. Returns whether it was adopted.
pub fn adopt(
    store: &mut Store,
    camera: &str,
    rel: &str,
    reason: RunReason,
) -> Result<bool, StoreError> {
    let path = store.abs(rel);
    let name = Path::new(rel)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let (Some(start), Ok(scan)) = (parse_segment_name(name), mp4::scan_file(&path)) else {
        remove_file_synced(&path)?;
        return Ok(false);
    };
    if scan.fragments.is_empty() {
        remove_file_synced(&path)?;
        return Ok(false);
    }
    truncate_to_valid(&path, &scan)?;
    let prev = store.index().segment_before(camera, start)?;
    let run_id = store.index().insert_run(camera, start, reason.as_str())?;
    let mut row = SegmentRow {
        id: 0,
        camera: camera.to_owned(),
        run_id,
        start_utc_ns: start,
        duration_ns: 0,
        size_bytes: 0,
        alloc_bytes: 0,
        init_size_bytes: 0,
        fragments: Vec::new(),
        codec: String::new(),
        audio_codec: None,
        path: rel.to_owned(),
        state: SegmentState::Complete,
        uploaded_utc_ns: None,
        timescale: 0,
        decode_time: 0,
        media_seq: 0,
        disc_seq: 0,
        disc_start: false,
    };
    fill_from_scan(&mut row, &path, &scan, prev.as_ref())?;
    store.index().insert_segment(&row)?;
    Ok(true)
}

fn sorted_numeric_dirs(dir: &Path) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            Some((n.parse().ok()?, n))
        })
        .collect();
    v.sort();
    v
}

/// Relative paths of the `.mp4` files of a camera, in time order; with `from_day` (y, m, d) only
/// those in day directories on or after it.
pub fn list_segment_files(
    root: &Path,
    camera: &str,
    from_day: Option<(u32, u32, u32)>,
) -> Result<Vec<String>, StoreError> {
    let cam_dir = root.join(layout::MEDIA_DIR).join(camera);
    let from = from_day.unwrap_or((0, 0, 0));
    let mut out = Vec::new();
    for (y, ys) in sorted_numeric_dirs(&cam_dir) {
        if y < from.0 {
            continue;
        }
        for (m, ms) in sorted_numeric_dirs(&cam_dir.join(&ys)) {
            if (y, m) < (from.0, from.1) {
                continue;
            }
            for (d, ds) in sorted_numeric_dirs(&cam_dir.join(&ys).join(&ms)) {
                if (y, m, d) < from {
                    continue;
                }
                let day = cam_dir.join(&ys).join(&ms).join(&ds);
                let mut names: Vec<String> = std::fs::read_dir(&day)
                    .map_err(io_at(&day))?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect();
                names.sort();
                for n in names {
                    out.push(format!("{}/{camera}/{ys}/{ms}/{ds}/{n}", layout::MEDIA_DIR));
                }
            }
        }
    }
    Ok(out)
}
