//! Per-camera recording switches (MQTT `<camera>/recording/set`, `cmd/setRecording`), persisted
//! so that a camera switched off stays off across restarts and power cuts.
//!
//! The file is `<storage>/control.json`, `{"recording": {"<camera>": false, ...}}`, replaced
//! atomically (write a temporary file, fsync, rename, fsync the directory). A camera not in it
//! records. A file that cannot be read or parsed is logged and ignored: losing a switch records
//! too much, which an operator can undo; refusing to start would record nothing. What the switch
//! does to a pipeline belongs to [`crate::ingest`]; who may flip it belongs to the MQTT module.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::warn;

/// File name under the storage path.
pub const FILE_NAME: &str = "control.json";

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Persisted {
    #[serde(default)]
    recording: BTreeMap<String, bool>,
}

/// The recording switches of every camera, backed by [`FILE_NAME`].
#[derive(Debug)]
pub struct Switches {
    path: PathBuf,
    state: Mutex<Persisted>,
}

impl Switches {
    /// Loads the switches from `<storage>/control.json` (missing or unreadable: every camera on).
    pub fn load(storage: &Path) -> Switches {
        let path = storage.join(FILE_NAME);
        let state = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                warn!(file = %path.display(), "recording switches unreadable, every camera records: {e}");
                Persisted::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(e) => {
                warn!(file = %path.display(), "recording switches unreadable, every camera records: {e}");
                Persisted::default()
            }
        };
        Switches {
            path,
            state: Mutex::new(state),
        }
    }

    /// Whether `camera` should record (true unless switched off).
    pub fn is_on(&self, camera: &str) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.recording.get(camera).copied().unwrap_or(true)
    }

    /// Sets `camera`'s switch and makes it durable before returning.
    ///
    /// Errors: the file cannot be written or synced (the switch is not changed in memory then).
    pub fn set(&self, camera: &str, on: bool) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Persisted {
            recording: st.recording.clone(),
        };
        if on {
            next.recording.remove(camera);
        } else {
            next.recording.insert(camera.to_owned(), false);
        }
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&next).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        *st = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_persist_and_default_on() {
        let dir = tempfile::tempdir().unwrap();
        let s = Switches::load(dir.path());
        assert!(s.is_on("a"));
        s.set("a", false).unwrap();
        s.set("b", false).unwrap();
        s.set("b", true).unwrap();
        let s = Switches::load(dir.path());
        assert!(!s.is_on("a") && s.is_on("b") && s.is_on("c"));
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(
            Switches::load(dir.path()).is_on("a"),
            "a broken file records"
        );
    }
}
