//! `edgerec cloud-index`: writes the hour index objects that segment objects in the store lack,
//! so that `edgerec serve` answers for them from one index object per hour instead of reading
//! every segment (docs/cloud.md, "Uploads from before 0.6"). For uploads from gateways before
//! index objects existed, and for the last few segments an uploader had not indexed when it
//! stopped. Idempotent: an hour whose index object already lists every segment is not touched.
//!
//! What an index entry holds and how objects are named is [`crate::upload::hour_index`]'s; the
//! reading is [`super::catalog`]'s.

use std::collections::BTreeMap;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStoreExt, PutPayload};

use super::catalog::CloudStore;
use super::keys::{self, Entry};
use crate::playback::ApiError;
use crate::upload::hour_index::{self, HourIndex, IndexEntry};

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Day folders looked at.
    pub days: u64,
    /// Segment objects read and added to an index object.
    pub indexed: u64,
    /// Index objects written.
    pub written: u64,
    /// Segment objects that could not be read or hold no complete fragment (left out).
    pub unreadable: u64,
}

/// [`run`] over the store of `cfg` (a runtime of its own).
///
/// Errors: the store settings are rejected, or the store cannot be listed or written.
pub fn run_with(
    cfg: &crate::config::cloud::CloudConfig,
    device: Option<&str>,
) -> anyhow::Result<Report> {
    if let Some(d) = device.filter(|d| !super::valid_device_id(d)) {
        anyhow::bail!("--device {d:?}: device ids are 1 to 64 of [A-Za-z0-9._-]");
    }
    let store = crate::upload::target::build(&cfg.store)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let st = CloudStore::new(
        store,
        &cfg.store.prefix,
        rt.handle().clone(),
        std::time::Duration::ZERO,
        cfg.cache_bytes,
    );
    run(&st, device).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Indexes every camera of `device` (every device when `None`).
///
/// Errors: the store cannot be listed or written.
pub fn run(st: &CloudStore, device: Option<&str>) -> Result<Report, ApiError> {
    let devices = match device {
        Some(d) => vec![d.to_owned()],
        None => st.devices()?,
    };
    let mut r = Report::default();
    for d in &devices {
        for c in st.cameras(d)? {
            let base = st.folder(&format!("{d}/{c}"));
            for y in st.listing(&base)?.folders.clone() {
                let yb = format!("{base}/{y}");
                for m in st.listing(&yb)?.folders.clone() {
                    let mb = format!("{yb}/{m}");
                    for day in st.listing(&mb)?.folders.clone() {
                        r.days += 1;
                        index_day(st, &c, &format!("{mb}/{day}"), &mut r)?;
                    }
                }
            }
        }
    }
    Ok(r)
}

fn index_day(st: &CloudStore, camera: &str, folder: &str, r: &mut Report) -> Result<(), ApiError> {
    let l = st.listing(folder)?;
    let mut by_hour: BTreeMap<i64, (Vec<ObjectMeta>, Option<ObjectMeta>)> = BTreeMap::new();
    for o in &l.objects {
        match o.location.filename().and_then(keys::parse) {
            Some(Entry::Segment { start, .. }) => by_hour
                .entry(hour_index::hour_of(start))
                .or_default()
                .0
                .push(o.clone()),
            Some(Entry::Index { hour }) => {
                if let Some(h0) = day_hour0(folder) {
                    by_hour.entry(h0 + i64::from(hour)).or_default().1 = Some(o.clone());
                }
            }
            _ => {}
        }
    }
    for (hour, (segs, index)) in by_hour {
        let existing: Vec<IndexEntry> = match &index {
            Some(m) => st
                .runtime()
                .block_on(st.hour_index_of(m))
                .map(|h| h.segments.clone())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let missing: Vec<&ObjectMeta> = segs
            .iter()
            .filter(|m| {
                let name = m.location.filename().unwrap_or_default();
                !existing
                    .iter()
                    .any(|e| e.name == name && e.size as u64 == m.size)
            })
            .collect();
        if missing.is_empty() {
            continue;
        }
        let mut new = Vec::new();
        for m in missing {
            match st.scan_entry(m) {
                Some(e) => new.push(e),
                None => r.unreadable += 1,
            }
        }
        if new.is_empty() {
            continue;
        }
        r.indexed += new.len() as u64;
        let doc = HourIndex {
            version: hour_index::VERSION,
            camera: camera.to_owned(),
            hour: hour_index::hour_label(hour),
            segments: HourIndex::merged(existing, &new),
        };
        let key = ObjectPath::from(format!("{folder}/{}", index_name(hour)));
        let body = serde_json::to_vec(&doc).expect("serializable");
        st.runtime()
            .block_on(st.object_store().put(&key, PutPayload::from(body)))
            .map_err(|e| ApiError {
                status: 502,
                code: "StoreUnavailable",
                message: format!("{key}: {e}"),
            })?;
        r.written += 1;
    }
    Ok(())
}

/// The first hour ([`hour_index::hour_of`]) of the day folder `.../<YYYY>/<MM>/<DD>`.
fn day_hour0(folder: &str) -> Option<i64> {
    let mut parts = folder.rsplit('/');
    let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
    let date = time::Date::from_calendar_date(
        y.parse().ok()?,
        time::Month::try_from(m.parse::<u8>().ok()?).ok()?,
        d.parse().ok()?,
    )
    .ok()?;
    let ns = date.midnight().assume_utc().unix_timestamp_nanos();
    Some(hour_index::hour_of(i64::try_from(ns).ok()?))
}

/// `index-HH.json` of an hour.
fn index_name(hour: i64) -> String {
    let key = hour_index::index_key("", "x", hour);
    key.filename().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn day_folders_give_their_first_hour() {
        let h = super::day_hour0("fleet/gw/cam/2019/12/21").unwrap();
        assert_eq!(h * 3600, 1_576_886_400);
        assert_eq!(super::index_name(h + 4), "index-04.json");
        assert_eq!(super::day_hour0("cam/2019/13/21"), None);
    }
}
