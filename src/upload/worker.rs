//! The upload loop (cargo feature `upload`): one thread with its own single-threaded tokio
//! runtime for `object_store`, passes over the index oldest first, failures and their backoff.
//! What a key looks like is in `target.rs`; EVR clip pieces in `clips.rs`; what operators see in
//! `status.rs`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload, WriteMultipart,
};
use tracing::{error, info, warn};

use super::hour_index::{self, Batcher, HourIndex, IndexEntry};
use super::{clips, target, Uplink, UploadShared};
use crate::backoff::Backoff;
use crate::clock::now_utc_ns;
use crate::config::UploadConfig;
use crate::index::{Index, SegmentRow};
use crate::store::writer::{WriterHandle, WriterMsg};

/// Starts the uploader thread; it stops within about a second of `stop` (an upload in flight is
/// abandoned: it is done again next time). `evr_horizons`: the EVR cameras, each with its
/// pre-roll horizon in ns; their media goes up as clip pieces ([`clips`]).
///
/// Errors: the store cannot be configured, or the thread cannot start.
pub fn spawn(
    cfg: UploadConfig,
    storage_root: PathBuf,
    index_path: PathBuf,
    writer: WriterHandle,
    evr_horizons: HashMap<String, i64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Arc<UploadShared>, std::thread::JoinHandle<()>)> {
    let store = target::build(&cfg)?;
    let shared = Arc::new(UploadShared::default());
    let s = shared.clone();
    let jh = std::thread::Builder::new()
        .name("uploader".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    error!("uploader: no runtime: {e}");
                    return;
                }
            };
            let mut u = Uploader {
                cfg,
                store,
                storage_root,
                index_path,
                index: None,
                writer,
                shared: s,
                recent: VecDeque::new(),
                evr_horizons,
                batcher: Batcher::default(),
            };
            rt.block_on(u.run(&stop));
        })?;
    Ok((shared, jh))
}

struct Uploader {
    cfg: UploadConfig,
    store: Arc<dyn ObjectStore>,
    storage_root: PathBuf,
    index_path: PathBuf,
    index: Option<Index>,
    writer: WriterHandle,
    shared: Arc<UploadShared>,
    /// Ids uploaded but perhaps not yet recorded by the writer: not uploaded twice.
    recent: VecDeque<i64>,
    /// EVR cameras and their pre-roll horizons, ns.
    evr_horizons: HashMap<String, i64>,
    /// Uploaded segments waiting for their hour index object ([`hour_index`]).
    batcher: Batcher,
}

/// Why an upload failed.
enum Failure {
    /// Worth retrying soon.
    Retry(String),
    /// Needs an operator (auth, missing bucket): retried every 5 min.
    Fatal(String),
    /// Not ready: a clip may still change what an EVR segment covers; try again later.
    NotYet,
}

impl Uploader {
    async fn run(&mut self, stop: &AtomicBool) {
        info!(target_store = ?self.cfg.target, prefix = %self.cfg.prefix, "uploader started");
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300), 2.0, 0.2);
        while !stop.load(Ordering::Relaxed) {
            let candidates = match self.candidates() {
                Ok(c) => c,
                Err(e) => {
                    warn!("uploader: index: {e}");
                    Vec::new()
                }
            };
            let described = match self.describe_clips(stop).await {
                Ok(n) => n,
                Err(f) => {
                    if let Some(wait) = self.failed("-", f, &mut backoff) {
                        sleep_unless(stop, wait).await;
                    }
                    continue;
                }
            };
            if candidates.is_empty() {
                if described == 0 {
                    sleep_unless(stop, Duration::from_secs(1)).await;
                }
                continue;
            }
            let mut waiting = 0;
            for seg in candidates {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let result = match self.evr_horizons.get(&seg.camera).copied() {
                    None => self.upload(&seg, stop).await,
                    Some(h) => self.upload_pieces(&seg, h, stop).await,
                };
                match result {
                    Ok(None) => {} // gone from the card since it was listed
                    Ok(Some(bytes)) => {
                        backoff.reset();
                        let now = now_utc_ns();
                        self.recent.push_back(seg.id);
                        if self.recent.len() > 4096 {
                            self.recent.pop_front();
                        }
                        if !self.writer.try_send(WriterMsg::Uploaded {
                            id: seg.id,
                            at_utc_ns: now,
                        }) {
                            warn!(
                                segment = seg.id,
                                "uploader: writer queue full; will upload again"
                            );
                        }
                        self.shared.update(|s| {
                            if s.state != Uplink::Online {
                                info!("uplink online");
                            }
                            s.state = Uplink::Online;
                            s.last_success_utc_ns = Some(now);
                            s.uploaded_segments += 1;
                            s.uploaded_bytes += bytes;
                        });
                        // Its hour index object, when the batch is due. A failure here leaves
                        // the entries pending (the segment itself is up) and ends the pass.
                        if !self.evr_horizons.contains_key(&seg.camera) {
                            self.batcher.add(&seg.camera, IndexEntry::of(&seg));
                            if let Err(f) = self.write_index(&seg.camera).await {
                                if let Some(wait) = self.failed(&seg.camera, f, &mut backoff) {
                                    sleep_unless(stop, wait).await;
                                    break;
                                }
                            }
                        }
                    }
                    Err(f) => match self.failed(&seg.camera, f, &mut backoff) {
                        None => waiting += 1,
                        Some(wait) => {
                            sleep_unless(stop, wait).await;
                            break; // start again from the oldest segment still there
                        }
                    },
                }
            }
            if waiting > 0 {
                sleep_unless(stop, Duration::from_secs(1)).await;
            }
        }
        info!("uploader stopped");
    }

    /// Reports a failed upload to operators (log, uplink state, last error) and returns how long
    /// to wait before the next try; `None` for [`Failure::NotYet`], which is no failure.
    fn failed(&self, camera: &str, f: Failure, backoff: &mut Backoff) -> Option<Duration> {
        let (msg, wait) = match f {
            Failure::NotYet => return None,
            Failure::Retry(m) => {
                let d = backoff.next_delay();
                warn!(camera, retry_in_s = d.as_secs_f32(), "upload failed: {m}");
                (m, d)
            }
            Failure::Fatal(m) => {
                error!(camera, "upload failed and needs attention (auth, permission or missing bucket); retrying every 5 min: {m}");
                (m, Duration::from_secs(300))
            }
        };
        self.shared.update(|s| {
            if s.state == Uplink::Online {
                warn!("uplink offline");
            }
            s.state = Uplink::Offline;
            s.failures += 1;
            s.last_error = Some((now_utc_ns(), msg));
        });
        Some(wait)
    }

    /// Uploads the clip pieces of an EVR camera's segment ([`clips::pieces`]). `Ok(None)`: the
    /// file is gone; `Err(NotYet)`: not final yet.
    async fn upload_pieces(
        &self,
        seg: &SegmentRow,
        horizon_ns: i64,
        stop: &AtomicBool,
    ) -> Result<Option<u64>, Failure> {
        let ix = self.index.as_ref().expect("index opened by candidates");
        let pieces = match clips::pieces(ix, seg, horizon_ns, now_utc_ns()) {
            Ok(Some(p)) => p,
            Ok(None) => return Err(Failure::NotYet),
            Err(e) => return Err(Failure::Retry(format!("index: {e}"))),
        };
        let path = self.storage_root.join(&seg.path);
        let mut total = 0;
        for p in &pieces {
            let data = match clips::read_piece(&path, seg, p) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Failure::Retry(format!("reading {}: {e}", path.display()))),
            };
            let key = clips::piece_key(&self.cfg.prefix, &seg.camera, p);
            let started = Instant::now();
            let n = data.len() as u64;
            self.put(&key, data, "video/mp4", &seg.camera).await?;
            self.pace(n, started, stop).await;
            total += n;
        }
        Ok(Some(total))
    }

    /// Uploads the description objects of closed clips not described yet; returns how many.
    async fn describe_clips(&mut self, stop: &AtomicBool) -> Result<usize, Failure> {
        let Some(ix) = self.index.as_ref() else {
            return Ok(0);
        };
        let todo = ix
            .clips_to_upload(8)
            .map_err(|e| Failure::Retry(format!("index: {e}")))?;
        let mut n = 0;
        for c in todo {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let doc = clips::describe(ix, &c).map_err(|e| Failure::Retry(format!("index: {e}")))?;
            let key = clips::clip_key(&self.cfg.prefix, &c);
            self.put(
                &key,
                doc.to_string().into_bytes(),
                "application/json",
                &c.camera,
            )
            .await?;
            if !self.writer.try_send(WriterMsg::ClipUploaded {
                id: c.id,
                at_utc_ns: now_utc_ns(),
            }) {
                warn!(
                    clip = c.id,
                    "uploader: writer queue full; will describe again"
                );
            }
            n += 1;
        }
        Ok(n)
    }

    /// Writes `camera`'s hour index objects when its batch is due ([`Batcher::due`]). An object
    /// this process did not write since it started is read first and merged into. On failure
    /// the entries stay pending (the segment itself is uploaded: the next pass goes on).
    async fn write_index(&mut self, camera: &str) -> Result<(), Failure> {
        if !self.batcher.due(camera) {
            return Ok(());
        }
        let writes = self.batcher.take(camera);
        let mut left: Vec<IndexEntry> = Vec::new();
        let mut failure = None;
        for w in writes {
            if failure.is_some() {
                left.extend(w.new);
                continue;
            }
            let key = hour_index::index_key(&self.cfg.prefix, camera, w.hour);
            let base = match w.base {
                Some(b) => Ok(b),
                None => self.read_index(&key).await,
            };
            let result = match base {
                Ok(base) => {
                    let doc = HourIndex {
                        version: hour_index::VERSION,
                        camera: camera.to_owned(),
                        hour: hour_index::hour_label(w.hour),
                        segments: HourIndex::merged(base, &w.new),
                    };
                    let body = serde_json::to_vec(&doc).expect("serializable");
                    self.put(&key, body, "application/json", camera)
                        .await
                        .map(|()| doc.segments)
                }
                Err(f) => Err(f),
            };
            match result {
                Ok(entries) => {
                    self.batcher.written(camera, w.hour, entries);
                    self.shared.update(|s| s.index_objects += 1);
                }
                Err(f) => {
                    left.extend(w.new);
                    failure = Some(f);
                }
            }
        }
        if !left.is_empty() {
            self.batcher.put_back(camera, left);
        }
        failure.map_or(Ok(()), Err)
    }

    /// The entries of an index object already in the store (none when there is none; a
    /// damaged or newer one is logged and rewritten from what this gateway uploads next).
    async fn read_index(&self, key: &object_store::path::Path) -> Result<Vec<IndexEntry>, Failure> {
        match self.store.get(key).await {
            Ok(r) => {
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| Failure::Retry(format!("{key}: {e}")))?;
                match HourIndex::parse(&bytes) {
                    Ok(h) => Ok(h.segments),
                    Err(e) => {
                        warn!(%key, "index object unreadable, rewriting it: {e}");
                        Ok(Vec::new())
                    }
                }
            }
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) if target::retryable(&e) => Err(Failure::Retry(format!("{key}: {e}"))),
            Err(e) => Err(Failure::Fatal(format!("{key}: {e}"))),
        }
    }

    /// One small object in one request.
    async fn put(
        &self,
        key: &object_store::path::Path,
        data: Vec<u8>,
        content_type: &'static str,
        camera: &str,
    ) -> Result<(), Failure> {
        let mut attrs = Attributes::new();
        if !matches!(self.cfg.target, crate::config::UploadTarget::File { .. }) {
            attrs.insert(Attribute::ContentType, content_type.into());
            attrs.insert(
                Attribute::Metadata("camera".into()),
                camera.to_owned().into(),
            );
        }
        self.store
            .put_opts(
                key,
                PutPayload::from(data),
                PutOptions {
                    attributes: attrs,
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
            .map_err(|e| {
                let m = format!("{key}: {e}");
                if target::retryable(&e) {
                    Failure::Retry(m)
                } else {
                    Failure::Fatal(m)
                }
            })
    }

    /// The oldest segments waiting, and refreshes the backlog figures.
    fn candidates(&mut self) -> Result<Vec<SegmentRow>, crate::index::IndexError> {
        if self.index.is_none() {
            self.index = Some(Index::open_read_only(&self.index_path)?);
        }
        let ix = self.index.as_ref().expect("index");
        let (n, bytes, oldest) = ix.upload_backlog()?;
        self.shared.update(|s| {
            s.backlog_segments = n;
            s.backlog_bytes = bytes;
            s.oldest_pending_utc_ns = oldest;
        });
        // An EVR camera's segments wait while a clip may still change them: after the pre-roll
        // horizon, and from the start of its open clip on ([`clips::pieces`] checks again).
        let now = now_utc_ns();
        let open = ix.open_clips()?;
        let holds: Vec<(String, i64)> = self
            .evr_horizons
            .iter()
            .map(|(camera, h)| {
                let clip = open
                    .iter()
                    .filter(|c| &c.camera == camera)
                    .map(|c| c.requested_start_utc_ns)
                    .min();
                (camera.clone(), clip.map_or(now - h, |c| c.min(now - h)))
            })
            .collect();
        let mut v = ix.upload_candidates(64, &holds)?;
        v.retain(|s| !self.recent.contains(&s.id));
        Ok(v)
    }

    /// Uploads one segment; `Ok(None)` if its file is gone (evicted meanwhile), else the bytes.
    async fn upload(&self, seg: &SegmentRow, stop: &AtomicBool) -> Result<Option<u64>, Failure> {
        let path = self.storage_root.join(&seg.path);
        let read_err =
            |e: std::io::Error| Failure::Retry(format!("reading {}: {e}", path.display()));
        // Opened once: an eviction that unlinks it meanwhile does not cut the upload short.
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(read_err(e)),
        };
        let n = file.metadata().map_err(read_err)?.len();
        let key = target::object_key(&self.cfg.prefix, seg);
        let started = Instant::now();
        // A mounted share keeps bytes only; object stores get the type and metadata (names that
        // are valid for S3 and Azure alike: letters only).
        let mut attrs = Attributes::new();
        if !matches!(self.cfg.target, crate::config::UploadTarget::File { .. }) {
            attrs.insert(Attribute::ContentType, "video/mp4".into());
            attrs.insert(
                Attribute::Metadata("camera".into()),
                seg.camera.clone().into(),
            );
            attrs.insert(
                Attribute::Metadata("start".into()),
                crate::playback::time::format_full(seg.start_utc_ns).into(),
            );
            attrs.insert(
                Attribute::Metadata("durationms".into()),
                (seg.duration_ns / 1_000_000).to_string().into(),
            );
            attrs.insert(
                Attribute::Metadata("codec".into()),
                seg.codec.clone().into(),
            );
        }
        let classify = |e: object_store::Error| {
            let m = format!("{key}: {e}");
            if target::retryable(&e) {
                Failure::Retry(m)
            } else {
                Failure::Fatal(m)
            }
        };
        if n > self.cfg.multipart_threshold_bytes {
            let up = self
                .store
                .put_multipart_opts(
                    &key,
                    object_store::PutMultipartOptions {
                        attributes: attrs,
                        ..Default::default()
                    },
                )
                .await
                .map_err(classify)?;
            let part = 8 * 1024 * 1024;
            // Streamed from the file: at most two parts in memory, whatever the segment size.
            let mut w = WriteMultipart::new_with_chunk_size(up, part);
            let mut sent = 0u64;
            let mut buf = vec![0u8; part];
            loop {
                let got = read_full(&mut file, &mut buf).map_err(read_err)?;
                if got == 0 {
                    break;
                }
                w.wait_for_capacity(2).await.map_err(classify)?;
                w.write(&buf[..got]);
                sent += got as u64;
                self.pace(sent, started, stop).await;
            }
            w.finish().await.map_err(classify)?;
        } else {
            let mut data = Vec::with_capacity(n as usize);
            std::io::Read::read_to_end(&mut file, &mut data).map_err(read_err)?;
            let n = data.len() as u64;
            let payload = PutPayload::from(data);
            self.store
                .put_opts(
                    &key,
                    payload,
                    PutOptions {
                        attributes: attrs,
                        ..Default::default()
                    },
                )
                .await
                .map_err(classify)?;
            self.pace(n, started, stop).await;
        }
        Ok(Some(n))
    }

    /// `max_rate_kbps`: waits until `sent` bytes since `started` are within the average rate.
    async fn pace(&self, sent: u64, started: Instant, stop: &AtomicBool) {
        if self.cfg.max_rate_kbps == 0 {
            return;
        }
        let due =
            Duration::from_secs_f64(sent as f64 * 8.0 / (self.cfg.max_rate_kbps as f64 * 1000.0));
        let spent = started.elapsed();
        if due > spent {
            sleep_unless(stop, due - spent).await;
        }
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match std::io::Read::read(f, &mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

async fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100).min(until - Instant::now())).await;
    }
}
