//! `edgerec fsck`: check the index against the files, repair what can be repaired, or rebuild the
//! index from the files alone (DESIGN section 4).
//!
//! A check reads every row and walks the whole media tree; it needs the store lock, so it never
//! runs beside a recorder. Reporting formats belong to the CLI, not here.

use std::collections::HashSet;
use std::path::Path;

use super::recover::{adopt, fill_from_scan, list_segment_files, recover, truncate_to_valid};
use super::segmenter::RunReason;
use super::{layout, Store, StoreError};
use crate::index::SegmentState;
use crate::mp4;

/// One inconsistency between index and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A row whose file does not exist.
    MissingFile(String),
    /// A complete row whose file length differs from `size_bytes` (path, indexed, actual).
    SizeMismatch(String, i64, u64),
    /// A row whose fragment list does not add up to its size (path).
    FragmentsMismatch(String),
    /// A row left `open` or `deleting` by a crash (path); the recorder recovers it at start.
    NeedsRecovery(String),
    /// A media file with no row (path).
    Orphan(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::MissingFile(p) => write!(f, "indexed segment has no file: {p}"),
            Problem::SizeMismatch(p, i, a) => {
                write!(f, "size mismatch: {p}: index says {i} bytes, file has {a}")
            }
            Problem::FragmentsMismatch(p) => {
                write!(f, "fragment list does not add up to the size: {p}")
            }
            Problem::NeedsRecovery(p) => {
                write!(f, "segment left open or half-deleted by a crash: {p}")
            }
            Problem::Orphan(p) => write!(f, "media file without an index row: {p}"),
        }
    }
}

fn camera_dirs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join(layout::MEDIA_DIR))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// Told how far a long pass is: `(done, total)` items (rows or files). Called for every item;
/// the caller decides how often to show it.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Checks every row against its file and every file against the index; `progress` counts rows.
pub fn check(store: &mut Store, progress: Progress) -> Result<Vec<Problem>, StoreError> {
    let mut problems = Vec::new();
    let rows = store.index().all_segments()?;
    let mut indexed = HashSet::new();
    let total = rows.len() as u64;
    for (i, r) in rows.iter().enumerate() {
        progress(i as u64 + 1, total);
        indexed.insert(r.path.clone());
        if r.state != SegmentState::Complete {
            problems.push(Problem::NeedsRecovery(r.path.clone()));
            continue;
        }
        match std::fs::metadata(store.abs(&r.path)) {
            Err(_) => problems.push(Problem::MissingFile(r.path.clone())),
            Ok(m) if m.len() != r.size_bytes as u64 => {
                problems.push(Problem::SizeMismatch(r.path.clone(), r.size_bytes, m.len()))
            }
            Ok(_) => {
                let sum: i64 = r.fragments.iter().map(|f| i64::from(f.size_bytes)).sum();
                if r.init_size_bytes + sum != r.size_bytes || r.fragments.is_empty() {
                    problems.push(Problem::FragmentsMismatch(r.path.clone()));
                }
            }
        }
    }
    for cam in camera_dirs(store.root()) {
        for rel in list_segment_files(store.root(), &cam, None)? {
            if !indexed.contains(&rel) {
                problems.push(Problem::Orphan(rel));
            }
        }
    }
    Ok(problems)
}

/// Repairs what can be repaired: runs crash recovery, drops rows whose file is gone, re-reads
/// files whose size or fragment list disagrees (truncating torn tails), adopts orphans. Returns
/// the problems found before repairing.
pub fn repair(store: &mut Store, progress: Progress) -> Result<Vec<Problem>, StoreError> {
    let problems = check(store, progress)?;
    recover(store)?;
    // Rows by path, read once after recovery (each row is repaired at most once).
    let mut rows: std::collections::HashMap<String, crate::index::SegmentRow> = store
        .index()
        .all_segments()?
        .into_iter()
        .map(|r| (r.path.clone(), r))
        .collect();
    for p in &problems {
        match p {
            Problem::MissingFile(rel) => {
                if let Some(r) = rows.remove(rel) {
                    store.index().delete_rows(&[r.id])?;
                }
            }
            Problem::SizeMismatch(rel, ..) | Problem::FragmentsMismatch(rel) => {
                let Some(mut r) = rows.remove(rel) else {
                    continue;
                };
                let path = store.abs(rel);
                match mp4::scan_file(&path) {
                    Ok(scan) if !scan.fragments.is_empty() => {
                        truncate_to_valid(&path, &scan)?;
                        fill_from_scan(&mut r, &path, &scan, None)?;
                        store.index().rewrite_segment(&r)?;
                    }
                    _ => {
                        store.delete_segments(&[r])?;
                    }
                }
            }
            Problem::Orphan(rel) => {
                let camera = rel.split('/').nth(1).unwrap_or_default().to_owned();
                if store.abs(rel).exists() && !store.index().has_path(rel)? {
                    adopt(store, &camera, rel, RunReason::Recovered)?;
                }
            }
            Problem::NeedsRecovery(_) => {}
        }
    }
    Ok(problems)
}

/// Recreates the index from the media files alone: start times from the file names, durations and
/// sizes from the fragments. Consecutive files of a camera whose times meet (within 50 ms) share
/// a run. Returns the number of segments indexed; `progress` counts files read.
pub fn rebuild(store: &mut Store, progress: Progress) -> Result<u64, StoreError> {
    store.index().clear()?;
    let mut n = 0;
    let mut files = Vec::new();
    for cam in camera_dirs(store.root()) {
        let list = list_segment_files(store.root(), &cam, None)?;
        files.push((cam, list));
    }
    let total: u64 = files.iter().map(|(_, l)| l.len() as u64).sum();
    let mut done = 0;
    for (cam, list) in files {
        let mut prev_end: Option<i64> = None;
        let mut run_id = 0;
        for rel in list {
            done += 1;
            progress(done, total);
            if !adopt(store, &cam, &rel, RunReason::Rebuild)? {
                continue;
            }
            n += 1;
            let rows = store.index().newest_segment(&cam)?;
            let Some(row) = rows else { continue };
            let contiguous = prev_end.is_some_and(|e| (row.start_utc_ns - e).abs() <= 50_000_000);
            if contiguous {
                store.index().set_run(row.id, run_id)?;
            } else {
                run_id = row.run_id;
            }
            prev_end = Some(row.end_utc_ns());
        }
    }
    store.index().drop_empty_runs()?;
    // Clips are not in the files: their rows survived; their media is marked again. An EVR
    // camera's other media becomes transient when `edgerec run` starts (it knows the modes).
    store.index().remark_clip_media()?;
    Ok(n)
}
