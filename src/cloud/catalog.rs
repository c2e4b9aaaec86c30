//! The recordings of one camera of one device, read from the object store the gateways upload
//! to (docs/cloud.md): the cloud side's implementation of [`Recordings`], so that availableMedia
//! and the manifests come out of the same rules as on the gateway.
//!
//! Where the answers come from:
//! - which segments exist, and when: the listing of the camera's day folders (the names carry
//!   start and duration);
//! - fragment tables, runs and codecs: the hour index objects beside them (`index-HH.json`),
//!   one GET per hour needed, cached by `ETag`;
//! - a segment that no index object lists yet (the last few an uploader has not indexed, or
//!   uploads from before index objects): the object itself, read once and scanned, cached by
//!   key and size (objects do not change);
//! - year, month and day precision: the folder names alone (plus one listing per stretch of
//!   days, for a segment that runs past midnight).
//!
//! Times are UTC ns. Nothing here is state that matters: every cache can be dropped, and two
//! servers over one store give the same answers. HTTP is `super::serve`'s.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use super::cache::Bounded;
use super::keys::{self, Entry};
use crate::index::{continuous, ClipRow, SegmentRow, SegmentState};
use crate::playback::catalog::Recordings;
use crate::playback::time::{Unit, UnitIndex, NS_PER_S};
use crate::playback::ApiError;
use crate::store::layout::utc;
use crate::store::timebase::{ns_to_ticks, PlaybackView, RELATIVE_BELOW_S};
use crate::upload::hour_index::{hour_of, HourIndex, IndexEntry};

/// Longest segment a day folder can hold (PT5M) plus slack: a segment that starts this long
/// before a range can still reach into it.
const MAX_SEGMENT_NS: i64 = 301 * NS_PER_S;

/// A segment object from a listing: start (UTC ns), duration (ns), both from its name, and
/// the object.
type Listed = (i64, i64, ObjectMeta);

/// An hour index object from a listing: its hour ([`hour_of`]) and the object.
type HourObject = (i64, ObjectMeta);

/// The least time a listing of the root (devices) or of a device (cameras) is reused.
const FOLDER_TTL: Duration = Duration::from_secs(60);

/// Nanoseconds per day.
const DAY_NS: i64 = 86_400 * NS_PER_S;

/// Requests to the store at once for one answer.
const CONCURRENCY: usize = 16;

/// One folder's listing: its objects and its sub-folder names.
#[derive(Debug, Default)]
pub struct Listing {
    /// Objects directly in the folder.
    pub objects: Vec<ObjectMeta>,
    /// Names (last level only) of its sub-folders, sorted.
    pub folders: Vec<String>,
}

/// Store requests made, by kind (for `/metrics`).
#[derive(Debug, Default)]
pub struct StoreCounters {
    /// Listings (each may be several pages).
    pub lists: AtomicU64,
    /// Whole-object GETs (index objects, segments scanned).
    pub gets: AtomicU64,
    /// Ranged GETs (init segments, media bytes).
    pub range_gets: AtomicU64,
}

/// What is known of a segment object: what its index entry or a scan of it says.
#[derive(Debug, Clone)]
struct Described {
    entry: IndexEntry,
    /// From a scan: the first `tfdt` when it counts from 1970 (files from before 0.4).
    absolute_base: Option<u64>,
    /// From a scan: the run is unknown.
    scanned: bool,
}

/// The object store of a fleet, with the cloud side's caches.
pub struct CloudStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    rt: tokio::runtime::Handle,
    ttl: Duration,
    listings: Bounded<String, Arc<Listing>>,
    indexes: Bounded<(String, String), Arc<HourIndex>>,
    scans: Bounded<(String, u64), Arc<Described>>,
    inits: Bounded<String, Arc<Vec<u8>>>,
    /// Rows handed out in manifests, by (device, camera, media id), for the media requests
    /// that follow.
    rows: Bounded<(String, String, i64), SegmentRow>,
    /// Segment objects opened for media requests, by key and length.
    views: Bounded<(String, u64), Arc<PlaybackView>>,
    /// Store requests made.
    pub counters: Arc<StoreCounters>,
}

impl std::fmt::Debug for CloudStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn store_err(e: object_store::Error) -> ApiError {
    ApiError {
        status: 502,
        code: "StoreUnavailable",
        message: format!("the object store could not be read: {e}"),
    }
}

impl CloudStore {
    /// A store rooted at `prefix` (the fleet root; may be empty), whose requests run on `rt`.
    /// `ttl`: how long a listing is reused; `cache_bytes`: the memory all caches share.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        rt: tokio::runtime::Handle,
        ttl: Duration,
        cache_bytes: u64,
    ) -> CloudStore {
        let part = cache_bytes / 4;
        CloudStore {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            rt,
            ttl,
            listings: Bounded::new(part),
            indexes: Bounded::new(part),
            scans: Bounded::new(part / 2),
            inits: Bounded::new(part / 2),
            rows: Bounded::new(part / 2),
            views: Bounded::new(part / 2),
            counters: Arc::default(),
        }
    }

    /// The full key prefix of `rel` (a folder below the fleet root).
    pub fn folder(&self, rel: &str) -> String {
        self.under(rel)
    }

    /// The runtime store requests run on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt
    }

    /// The store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Entries and bytes held by all caches.
    pub fn cache_usage(&self) -> (usize, u64) {
        [
            self.listings.usage(),
            self.indexes.usage(),
            self.scans.usage(),
            self.inits.usage(),
            self.rows.usage(),
            self.views.usage(),
        ]
        .iter()
        .fold((0, 0), |a, u| (a.0 + u.0, a.1 + u.1))
    }

    /// `prefix/rel` (or `rel` when the prefix is empty).
    fn under(&self, rel: &str) -> String {
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        }
    }

    /// The listing of `folder` (a full key prefix without the trailing `/`), reused for the
    /// listing TTL.
    pub fn listing(&self, folder: &str) -> Result<Arc<Listing>, ApiError> {
        self.rt.block_on(self.listing_async(folder, self.ttl))
    }

    /// The device and camera folders of `folder` (`<root>` or `<root>/<device>`): reused for at
    /// least [`FOLDER_TTL`], since cameras come and go far more rarely than segments.
    fn folders_of(&self, folder: &str) -> Result<Arc<Listing>, ApiError> {
        self.rt
            .block_on(self.listing_async(folder, self.ttl.max(FOLDER_TTL)))
    }

    /// [`Self::listing`], reused for `ttl`.
    async fn listing_async(&self, folder: &str, ttl: Duration) -> Result<Arc<Listing>, ApiError> {
        let key = folder.to_owned();
        if let Some(l) = self.listings.get(&key, Some(ttl)) {
            return Ok(l);
        }
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        let p = (!folder.is_empty()).then(|| ObjectPath::from(folder));
        let (prefixes, objects) = match self.store.list_with_delimiter(p.as_ref()).await {
            Ok(r) => (r.common_prefixes, r.objects),
            // A folder that is not there (a local directory) holds nothing.
            Err(object_store::Error::NotFound { .. }) => (Vec::new(), Vec::new()),
            Err(e) => return Err(store_err(e)),
        };
        let mut folders: Vec<String> = prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        folders.sort();
        let mut objects = objects;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        let bytes = 64 + objects.len() as u64 * 160 + folders.len() as u64 * 32;
        let l = Arc::new(Listing { objects, folders });
        self.listings.put(key, l.clone(), bytes);
        Ok(l)
    }

    /// The objects of `folder` whose names sort after `after` (S3 `start-after`), reused for the
    /// listing TTL.
    pub fn listing_after(&self, folder: &str, after: &str) -> Result<Arc<Listing>, ApiError> {
        self.rt.block_on(self.listing_after_async(folder, after))
    }

    /// [`Self::listing_after`] as a future.
    async fn listing_after_async(
        &self,
        folder: &str,
        after: &str,
    ) -> Result<Arc<Listing>, ApiError> {
        let key = format!("{folder}\0{after}");
        if let Some(l) = self.listings.get(&key, Some(self.ttl)) {
            return Ok(l);
        }
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        let prefix = ObjectPath::from(folder);
        let offset = ObjectPath::from(format!("{folder}/{after}"));
        let objects: Vec<ObjectMeta> = self
            .store
            .list_with_offset(Some(&prefix), &offset)
            .try_collect::<Vec<_>>()
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(Vec::new()),
                e => Err(store_err(e)),
            })?;
        // Only the folder's own objects (day folders have no sub-folders).
        let mut objects: Vec<ObjectMeta> = objects
            .into_iter()
            .filter(|o| {
                o.location
                    .prefix_match(&prefix)
                    .is_some_and(|mut p| p.nth(1).is_none())
            })
            .collect();
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        let bytes = 64 + objects.len() as u64 * 160;
        let l = Arc::new(Listing {
            objects,
            folders: Vec::new(),
        });
        self.listings.put(key, l.clone(), bytes);
        Ok(l)
    }

    /// The devices: folders at the fleet root.
    pub fn devices(&self) -> Result<Vec<String>, ApiError> {
        Ok(self
            .folders_of(&self.under(""))?
            .folders
            .iter()
            .filter(|d| super::valid_device_id(d))
            .cloned()
            .collect())
    }

    /// The cameras of `device`: its folders with a valid camera id.
    pub fn cameras(&self, device: &str) -> Result<Vec<String>, ApiError> {
        Ok(self
            .folders_of(&self.under(device))?
            .folders
            .iter()
            .filter(|c| crate::config::valid_camera_id(c))
            .cloned()
            .collect())
    }

    /// Objects and bytes under `device/camera` (every object: one full listing).
    pub fn stored(&self, device: &str, camera: &str) -> Result<(u64, u64), ApiError> {
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        let p = ObjectPath::from(self.under(&format!("{device}/{camera}")));
        let metas: Vec<ObjectMeta> = self
            .rt
            .block_on(self.store.list(Some(&p)).try_collect())
            .map_err(store_err)?;
        Ok((metas.len() as u64, metas.iter().map(|m| m.size).sum()))
    }

    /// One camera of one device.
    pub fn camera<'a>(&'a self, device: &'a str, camera: &'a str) -> CameraView<'a> {
        CameraView {
            st: self,
            device,
            camera,
            base: self.under(&format!("{device}/{camera}")),
        }
    }

    /// The parsed index object `meta`, cached by key and `ETag` (or size and time).
    fn hour_index(
        &self,
        meta: &ObjectMeta,
    ) -> impl std::future::Future<Output = Option<Arc<HourIndex>>> + '_ {
        let tag = meta
            .e_tag
            .clone()
            .unwrap_or_else(|| format!("{}-{}", meta.size, meta.last_modified.timestamp_micros()));
        let key = (meta.location.to_string(), tag);
        let loc = meta.location.clone();
        async move {
            if let Some(h) = self.indexes.get(&key, None) {
                return Some(h);
            }
            self.counters.gets.fetch_add(1, Ordering::Relaxed);
            let bytes = match self.store.get(&loc).await {
                Ok(r) => r.bytes().await.ok()?,
                Err(e) => {
                    tracing::warn!(key = %loc, "index object unreadable: {e}");
                    return None;
                }
            };
            match HourIndex::parse(&bytes) {
                Ok(h) => {
                    let h = Arc::new(h);
                    self.indexes.put(key, h.clone(), bytes.len() as u64 * 2);
                    Some(h)
                }
                Err(e) => {
                    // Its segments are read one by one instead.
                    tracing::warn!(key = %loc, "index object ignored: {e}");
                    None
                }
            }
        }
    }

    /// A segment object no index lists: read whole and scanned once (objects do not change;
    /// the key and size identify the bytes).
    fn scan(
        &self,
        meta: &ObjectMeta,
        name: &str,
    ) -> impl std::future::Future<Output = Option<Arc<Described>>> + '_ {
        let key = (meta.location.to_string(), meta.size);
        let loc = meta.location.clone();
        let name = name.to_owned();
        async move {
            if let Some(d) = self.scans.get(&key, None) {
                return Some(d);
            }
            let Some(Entry::Segment { start, .. }) = keys::parse(&name) else {
                return None;
            };
            self.counters.gets.fetch_add(1, Ordering::Relaxed);
            let bytes = self.store.get(&loc).await.ok()?.bytes().await.ok()?;
            let scan = match crate::mp4::scan(&mut Cursor::new(&bytes[..])) {
                Ok(s) if !s.fragments.is_empty() => s,
                _ => {
                    tracing::warn!(key = %loc, "segment object holds no complete fragment: left out");
                    return None;
                }
            };
            let ts = scan.timescale.max(1);
            let absolute_base = scan
                .fragments
                .first()
                .map(|f| f.decode_time)
                .filter(|t| *t >= RELATIVE_BELOW_S * u64::from(ts));
            let d = Arc::new(Described {
                entry: IndexEntry {
                    name,
                    start,
                    duration_ns: scan.duration_ns() as i64,
                    size: scan.valid_len as i64,
                    init_size: scan.init_size as i64,
                    timescale: scan.timescale,
                    codec: scan.codec.clone(),
                    audio_codec: scan.audio_codec.clone(),
                    run: -1,
                    fragments: crate::store::recover::fragment_entries(&scan)
                        .iter()
                        .map(|f| [f.size_bytes, f.duration_us])
                        .collect(),
                },
                absolute_base,
                scanned: true,
            });
            self.scans
                .put(key, d.clone(), 256 + d.entry.fragments.len() as u64 * 8);
            Some(d)
        }
    }

    /// [`Self::hour_index`] for other modules of the cloud side.
    pub(crate) async fn hour_index_of(&self, meta: &ObjectMeta) -> Option<Arc<HourIndex>> {
        self.hour_index(meta).await
    }

    /// The index entry of segment object `meta`, from reading it (run unknown: -1). `None`:
    /// unreadable, or no complete fragment.
    pub(crate) fn scan_entry(&self, meta: &ObjectMeta) -> Option<IndexEntry> {
        let name = meta.location.filename()?.to_owned();
        self.rt
            .block_on(self.scan(meta, &name))
            .map(|d| d.entry.clone())
    }

    /// The first `init_size` bytes of object `key` (its init segment), cached.
    pub fn init_bytes(&self, key: &str, init_size: u64) -> Option<Arc<Vec<u8>>> {
        if let Some(b) = self.inits.get(&key.to_owned(), None) {
            return Some(b);
        }
        self.counters.range_gets.fetch_add(1, Ordering::Relaxed);
        let b = self
            .rt
            .block_on(self.store.get_range(&ObjectPath::from(key), 0..init_size))
            .ok()?;
        let b = Arc::new(b.to_vec());
        self.inits.put(key.to_owned(), b.clone(), b.len() as u64);
        Some(b)
    }

    /// Segment object `row.path` as playback serves it (ranged GETs, the row's base added to
    /// its times), kept for the next requests of the same object.
    ///
    /// Errors: the object cannot be read (deleted meanwhile).
    pub fn view(&self, row: &SegmentRow) -> std::io::Result<Arc<PlaybackView>> {
        let key = (row.path.clone(), row.size_bytes.max(0) as u64);
        if let Some(v) = self.views.get(&key, None) {
            return Ok(v);
        }
        let v = Arc::new(PlaybackView::over(self.reader(&row.path, key.1), row)?);
        self.views
            .put(key, v.clone(), 256 + row.fragments.len() as u64 * 8);
        Ok(v)
    }

    /// The object `key` as bytes readable at any offset (ranged GETs), `len` bytes long.
    pub fn reader(&self, key: &str, len: u64) -> Arc<ObjectReader> {
        Arc::new(ObjectReader {
            store: self.store.clone(),
            key: ObjectPath::from(key),
            rt: self.rt.clone(),
            len,
            counters: self.counters.clone(),
        })
    }
}

/// An uploaded object read with ranged GETs, for [`crate::store::timebase::PlaybackView`].
#[derive(Debug)]
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    rt: tokio::runtime::Handle,
    len: u64,
    counters: Arc<StoreCounters>,
}

impl crate::store::timebase::ReadAt for ObjectReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "object: read past the end",
            ));
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.counters.range_gets.fetch_add(1, Ordering::Relaxed);
        let b = self
            .rt
            .block_on(self.store.get_range(&self.key, offset..end))
            .map_err(std::io::Error::other)?;
        if b.len() != buf.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "object shorter than its listing",
            ));
        }
        buf.copy_from_slice(&b);
        Ok(())
    }
}

/// One camera of one device: `<prefix>/<device>/<camera>/`.
pub struct CameraView<'a> {
    st: &'a CloudStore,
    device: &'a str,
    camera: &'a str,
    base: String,
}

/// The segment objects among `objects`.
fn segments_of(objects: &[ObjectMeta]) -> Vec<Listed> {
    objects
        .iter()
        .filter_map(|m| match keys::parse(m.location.filename()?) {
            Some(Entry::Segment { start, duration }) => Some((start, duration, m.clone())),
            _ => None,
        })
        .collect()
}

/// The day folder name parts of a day (Julian day number).
fn day_path(day: UnitIndex) -> String {
    let t = utc(Unit::Day.start_ns(day));
    format!("{:04}/{:02}/{:02}", t.year(), u8::from(t.month()), t.day())
}

fn two_digits(s: &str, max: u32) -> Option<u32> {
    (s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
        .filter(|v| (1..=max).contains(v))
}

impl CameraView<'_> {
    /// The objects of day `day` that name segments.
    fn day_segments(&self, day: UnitIndex) -> Result<Vec<Listed>, ApiError> {
        let l = self
            .st
            .listing(&format!("{}/{}", self.base, day_path(day)))?;
        Ok(segments_of(&l.objects))
    }

    /// The segment objects overlapping `[from, to)` (from their names), by start, and the
    /// hour index objects of the days listed.
    fn listed_with_indexes(
        &self,
        from: i64,
        to: i64,
    ) -> Result<(Vec<Listed>, Vec<HourObject>), ApiError> {
        // An open-ended range (a manifest with a start only) or a long one: only the days
        // between the camera's first and last media can hold any.
        let (from, to) = if to.saturating_sub(from) > 2 * DAY_NS {
            match Recordings::bounds(self, self.camera)? {
                Some((first, last)) => (from.max(first), to.min(last.saturating_add(1))),
                None => return Ok(Default::default()),
            }
        } else {
            (from, to)
        };
        if from >= to {
            return Ok(Default::default());
        }
        let (d0, d1) = (Unit::Day.of(from - MAX_SEGMENT_NS), Unit::Day.of(to - 1));
        // The days' listings at once. The day before the range only for segments that start
        // late enough to reach into it: its last few minutes (S3 `start-after`).
        let first_day = Unit::Day.of(from);
        let after = crate::upload::hour_index::segment_name(from - MAX_SEGMENT_NS, 0);
        let folders: Vec<(UnitIndex, String)> = (d0..=d1)
            .map(|d| (d, format!("{}/{}", self.base, day_path(d))))
            .collect();
        let st = self.st;
        let listings = st
            .rt
            .block_on(futures_util::future::try_join_all(folders.iter().map(
                |(day, folder)| {
                    let after = &after;
                    async move {
                        if *day < first_day {
                            st.listing_after_async(folder, after).await
                        } else {
                            st.listing_async(folder, st.ttl).await
                        }
                    }
                },
            )))?;
        let mut out = Vec::new();
        let mut indexes = Vec::new();
        for ((day, _), l) in folders.iter().zip(listings) {
            let day = *day;
            out.extend(
                segments_of(&l.objects)
                    .into_iter()
                    .filter(|(s, d, _)| *s < to && s + (*d).max(1) > from),
            );
            let hour0 = hour_of(Unit::Day.start_ns(day));
            for m in &l.objects {
                if let Some(Entry::Index { hour }) = m.location.filename().and_then(keys::parse) {
                    indexes.push((hour0 + i64::from(hour), m.clone()));
                }
            }
        }
        out.sort_by_key(|(s, d, _)| (*s, *d));
        Ok((out, indexes))
    }

    /// The segment objects overlapping `[from, to)` (from their names), by start.
    fn listed(&self, from: i64, to: i64) -> Result<Vec<Listed>, ApiError> {
        Ok(self.listed_with_indexes(from, to)?.0)
    }

    /// Full rows of the segments overlapping `[from, to)`: described by their hour index
    /// objects, or scanned; with ids, discontinuities and sequence numbers.
    fn rows(&self, from: i64, to: i64) -> Result<Vec<SegmentRow>, ApiError> {
        let (listed, all_indexes) = self.listed_with_indexes(from, to)?;
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        // The index objects of the hours the segments start in.
        let hours: BTreeSet<i64> = listed.iter().map(|(s, _, _)| hour_of(*s)).collect();
        let index_metas: Vec<ObjectMeta> = all_indexes
            .into_iter()
            .filter(|(h, _)| hours.contains(h))
            .map(|(_, m)| m)
            .collect();
        let st = self.st;
        let indexes: Vec<Arc<HourIndex>> = st.rt.block_on(
            stream::iter(index_metas.iter().map(|m| st.hour_index(m)))
                .buffer_unordered(CONCURRENCY)
                .filter_map(|h| async move { h })
                .collect(),
        );
        let mut described: Vec<Option<Described>> = listed
            .iter()
            .map(|(_, _, m)| {
                let name = m.location.filename().unwrap_or_default();
                indexes
                    .iter()
                    .flat_map(|h| h.segments.iter())
                    .find(|e| e.name == name && e.size as u64 == m.size)
                    .map(|e| Described {
                        entry: e.clone(),
                        absolute_base: None,
                        scanned: false,
                    })
            })
            .collect();
        let missing: Vec<usize> = (0..listed.len())
            .filter(|&i| described[i].is_none())
            .collect();
        let scanned: Vec<(usize, Option<Arc<Described>>)> = st.rt.block_on(
            stream::iter(missing.into_iter().map(|i| {
                let m = &listed[i].2;
                let name = m.location.filename().unwrap_or_default().to_owned();
                async move { (i, st.scan(m, &name).await) }
            }))
            .buffer_unordered(CONCURRENCY)
            .collect(),
        );
        for (i, d) in scanned {
            described[i] = d.map(|d| (*d).clone());
        }
        let mut rows: Vec<SegmentRow> = listed
            .iter()
            .zip(described)
            .filter_map(|((start, dur, m), d)| Some(self.row(*start, *dur, m, d?)))
            .collect();
        rows.sort_by_key(|r| (r.start_utc_ns, r.id));
        rows.dedup_by_key(|r| r.id);
        let mut disc_seq = 0;
        for i in 0..rows.len() {
            let disc = i == 0 || !joins(&rows[i - 1], &rows[i]);
            if disc && i > 0 {
                disc_seq += 1;
            }
            rows[i].disc_start = disc;
            rows[i].disc_seq = disc_seq;
            // A segment whose run is unknown (scanned) takes the run it continues, or one of
            // its own (negative, so that it matches no gateway run): the timeline code checks
            // the run again.
            if rows[i].run_id < 0 {
                rows[i].run_id = if disc {
                    -1 - disc_seq
                } else {
                    rows[i - 1].run_id
                };
            }
        }
        rows.retain(|r| r.start_utc_ns < to && r.end_utc_ns() > from);
        for r in &rows {
            self.st.rows.put(
                (self.device.to_owned(), self.camera.to_owned(), r.id),
                r.clone(),
                256 + r.fragments.len() as u64 * 8,
            );
        }
        Ok(rows)
    }

    fn row(&self, key_start: i64, key_dur: i64, m: &ObjectMeta, d: Described) -> SegmentRow {
        let e = d.entry;
        let ts = e.timescale.max(1);
        // Every server derives a segment's media time from what the store holds, the same
        // way: from 1970 at its start (or the file's own, for files from before 0.4).
        let decode_time = d.absolute_base.unwrap_or_else(|| ns_to_ticks(e.start, ts));
        SegmentRow {
            id: keys::media_id(key_start, key_dur),
            camera: self.camera.to_owned(),
            run_id: if d.scanned { -1 } else { e.run },
            start_utc_ns: e.start,
            duration_ns: e.duration_ns,
            size_bytes: e.size,
            alloc_bytes: m.size as i64,
            init_size_bytes: e.init_size,
            fragments: e.fragment_entries(),
            codec: e.codec,
            audio_codec: e.audio_codec,
            path: m.location.to_string(),
            state: SegmentState::Complete,
            uploaded_utc_ns: Some(m.last_modified.timestamp_nanos_opt().unwrap_or(0)),
            timescale: e.timescale,
            decode_time,
            media_seq: e.start.div_euclid(NS_PER_S),
            disc_seq: 0,
            disc_start: false,
        }
    }

    /// The row of media id `id`: the one a manifest handed out, else read again.
    pub fn segment(&self, id: i64) -> Result<Option<SegmentRow>, ApiError> {
        let k = (self.device.to_owned(), self.camera.to_owned(), id);
        if let Some(r) = self.st.rows.get(&k, None) {
            return Ok(Some(r));
        }
        let Some((start, _)) = keys::of_media_id(id) else {
            return Ok(None);
        };
        Ok(self
            .rows(start, start + 1_000_000)?
            .into_iter()
            .find(|r| r.id == id))
    }

    /// Days (Julian day numbers) with a day folder within `[lo, hi]`, by walking the year and
    /// month folders.
    fn days_with_folders(&self, lo: UnitIndex, hi: UnitIndex) -> Result<Vec<UnitIndex>, ApiError> {
        let (y0, y1) = (
            Unit::Year.of(Unit::Day.start_ns(lo)),
            Unit::Year.of(Unit::Day.start_ns(hi)),
        );
        let mut out = Vec::new();
        for y in &self.st.listing(&self.base)?.folders {
            let Some(yv) = (y.len() == 4).then(|| y.parse::<i64>().ok()).flatten() else {
                continue;
            };
            if yv < y0 || yv > y1 {
                continue;
            }
            for m in &self.st.listing(&format!("{}/{y}", self.base))?.folders {
                let Some(mv) = two_digits(m, 12) else {
                    continue;
                };
                let month = yv * 12 + i64::from(mv) - 1;
                let (ms, me) = (Unit::Month.start_ns(month), Unit::Month.start_ns(month + 1));
                if Unit::Day.of(me - 1) < lo || Unit::Day.of(ms) > hi {
                    continue;
                }
                for d in &self.st.listing(&format!("{}/{y}/{m}", self.base))?.folders {
                    let Some(dv) = two_digits(d, 31) else {
                        continue;
                    };
                    let day = Unit::Day.of(ms) + i64::from(dv) - 1;
                    if (lo..=hi).contains(&day) {
                        out.push(day);
                    }
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The first or last folder name of `folder` that `ok` accepts.
    fn edge_folder(
        &self,
        folder: &str,
        last: bool,
        ok: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, ApiError> {
        let l = self.st.listing(folder)?;
        let mut v: Vec<String> = l.folders.iter().filter(|f| ok(f)).cloned().collect();
        if last {
            v.reverse();
        }
        Ok(v)
    }

    /// The first (or last) day with segment objects.
    fn edge_day(&self, last: bool) -> Result<Option<Vec<Listed>>, ApiError> {
        let year = |s: &str| s.len() == 4 && s.bytes().all(|c| c.is_ascii_digit());
        for y in self.edge_folder(&self.base, last, year)? {
            let yb = format!("{}/{y}", self.base);
            for m in self.edge_folder(&yb, last, |s| two_digits(s, 12).is_some())? {
                let mb = format!("{yb}/{m}");
                for d in self.edge_folder(&mb, last, |s| two_digits(s, 31).is_some())? {
                    let l = self.st.listing(&format!("{mb}/{d}"))?;
                    let segs: Vec<Listed> = l
                        .objects
                        .iter()
                        .filter_map(|o| match keys::parse(o.location.filename()?) {
                            Some(Entry::Segment { start, duration }) => {
                                Some((start, duration, o.clone()))
                            }
                            _ => None,
                        })
                        .collect();
                    if !segs.is_empty() {
                        return Ok(Some(segs));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Whether `b` continues `a` on one timeline: the gateway's rule when both runs are known
/// (from index objects); for a scanned segment, whose run is unknown, the same rule without
/// the run.
fn joins(a: &SegmentRow, b: &SegmentRow) -> bool {
    if a.run_id >= 0 && b.run_id >= 0 {
        return continuous(a, b);
    }
    let mut b2 = b.clone();
    b2.run_id = a.run_id;
    continuous(a, &b2)
}

impl Recordings for CameraView<'_> {
    fn open_segment(&self, _camera: &str) -> Option<SegmentRow> {
        None
    }

    fn bounds(&self, _camera: &str) -> Result<Option<(i64, i64)>, ApiError> {
        let Some(first) = self.edge_day(false)? else {
            return Ok(None);
        };
        let last = self.edge_day(true)?.unwrap_or_default();
        let s = first.iter().map(|(s, _, _)| *s).min().unwrap_or(0);
        let e = last
            .iter()
            .chain(first.iter())
            .map(|(s, d, _)| s + d)
            .max()
            .unwrap_or(s);
        Ok(Some((s, e)))
    }

    fn segments(&self, _camera: &str, from: i64, to: i64) -> Result<Vec<SegmentRow>, ApiError> {
        self.rows(from, to)
    }

    fn span_bounds(&self, _camera: &str, from: i64, to: i64) -> Result<Vec<SegmentRow>, ApiError> {
        self.rows(from, to)
    }

    fn has_media(&self, _camera: &str, from: i64, to: i64) -> Result<bool, ApiError> {
        Ok(!self.listed(from, to)?.is_empty())
    }

    fn units_with_media(
        &self,
        _camera: &str,
        unit: Unit,
        lo: UnitIndex,
        hi: UnitIndex,
    ) -> Result<Vec<bool>, ApiError> {
        let (first_day, last_day) = (
            Unit::Day.of(unit.start_ns(lo)) - 1,
            Unit::Day.of(unit.start_ns(hi + 1) - 1),
        );
        let mut days: BTreeSet<UnitIndex> = self
            .days_with_folders(first_day, last_day)?
            .into_iter()
            .collect();
        // A segment that starts before midnight puts media into the next day too.
        let spill: Vec<UnitIndex> = days
            .iter()
            .copied()
            .filter(|d| !days.contains(&(d + 1)))
            .collect();
        for d in spill {
            let next = Unit::Day.start_ns(d + 1);
            if self
                .day_segments(d)?
                .iter()
                .any(|(s, dur, _)| s + dur > next)
            {
                days.insert(d + 1);
            }
        }
        let mut avail = vec![false; (hi - lo + 1) as usize];
        for d in days {
            let u = unit.of(Unit::Day.start_ns(d));
            if (lo..=hi).contains(&u) {
                avail[(u - lo) as usize] = true;
            }
        }
        Ok(avail)
    }

    /// Always empty: `serve` answers for the media a gateway uploaded, which for an EVR camera
    /// is already only what its clips keep (`clips_only` is never set).
    fn clips(&self, _camera: &str, _from: i64, _to: i64) -> Result<Vec<ClipRow>, ApiError> {
        Ok(Vec::new())
    }
}
