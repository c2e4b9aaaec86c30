//! Home Assistant MQTT discovery: the retained configs under `homeassistant/` (one device per
//! gateway, entities per camera), unique ids that never collide, and the memory of what was
//! announced, so that entities of cameras taken out of the config are removed (an empty retained
//! config deletes an entity). Publishing belongs to [`super`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::topics::Topics;
use super::Context;

/// The part of unique ids and topics that names camera `id`, given every configured id.
///
/// Ids are `[a-z0-9_-]`; `-` has always been written as `_`, and an id keeps that form unless
/// another camera's id gives the same one (`a-b` and `a_b`): then an id with a `-` keeps it as it
/// is (Home Assistant allows `-` in object ids), and the camera without one keeps its old id.
pub fn object_id(id: &str, ids: &[&str]) -> String {
    let folded = id.replace('-', "_");
    let clash = ids
        .iter()
        .any(|o| *o != id && o.replace('-', "_") == folded);
    if clash && id.contains('-') {
        id.to_owned()
    } else {
        folded
    }
}

/// Home Assistant MQTT discovery: (config topic, retained JSON) for a recording switch, a clip
/// binary sensor (EVR), a motion binary sensor (with motion detection) and a connected binary
/// sensor per camera, and a storage-used sensor. Every entity shares the
/// device's availability topic; an upload-backlog sensor with an uploader.
pub fn discovery(ctx: &Context, t: &Topics) -> Vec<(String, Value)> {
    let dev = &ctx.device_id;
    let node = dev.replace('.', "_");
    let mut device = json!({
        "identifiers": [format!("edgerec_{node}")],
        "name": format!("edgerec {dev}"),
        "manufacturer": "edgerec",
        "model": "edge video recorder",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    // Home Assistant's "Visit" link on the device page: the recorder's browser page.
    if let Some(u) = &ctx.configuration_url {
        device["configuration_url"] = json!(u);
    }
    let avail = t.available();
    let ids: Vec<&str> = ctx.cameras.iter().map(|c| c.id.as_str()).collect();
    let origin = json!({
        "name": "edgerec",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let mut out = Vec::new();
    for c in &ctx.cameras {
        let id = &c.id;
        let uid = format!("edgerec_{node}_{}", object_id(id, &ids));
        out.push((
            format!("homeassistant/switch/{uid}_recording/config"),
            json!({
                "name": format!("{id} recording"),
                "unique_id": format!("{uid}_recording"),
                "command_topic": t.recording_set(id),
                "state_topic": t.recording_state(id),
                "payload_on": "ON", "payload_off": "OFF",
                "availability_topic": avail,
                "device": device,
                "origin": origin,
            }),
        ));
        // An `ON`/`OFF` binary sensor on a retained topic of the camera.
        let on_off_sensor = |what: &str, class: &str, topic: String| {
            (
                format!("homeassistant/binary_sensor/{uid}_{what}/config"),
                json!({
                    "name": format!("{id} {what}"),
                    "unique_id": format!("{uid}_{what}"),
                    "device_class": class,
                    "state_topic": topic,
                    "payload_on": "ON", "payload_off": "OFF",
                    "availability_topic": avail,
                    "device": device,
                    "origin": origin,
                }),
            )
        };
        out.push(on_off_sensor("clip", "running", t.clip_state(id)));
        if c.motion_off_delay.is_some() {
            out.push(on_off_sensor("motion", "motion", t.motion_state(id)));
        }
        out.push((
            format!("homeassistant/binary_sensor/{uid}_connected/config"),
            json!({
                "name": format!("{id} connected"),
                "unique_id": format!("{uid}_connected"),
                "device_class": "connectivity",
                "state_topic": t.state(),
                "value_template": format!(
                    "{{{{ 'ON' if value_json.cameras['{id}'].connected else 'OFF' }}}}"
                ),
                "availability_topic": avail,
                "device": device,
                "origin": origin,
            }),
        ));
    }
    if ctx.upload.is_some() {
        out.push((
            format!("homeassistant/sensor/edgerec_{node}_upload_backlog/config"),
            json!({
                "name": "upload backlog",
                "unique_id": format!("edgerec_{node}_upload_backlog"),
                "device_class": "data_size",
                "unit_of_measurement": "B",
                "state_class": "measurement",
                "state_topic": t.state(),
                "value_template": "{{ value_json.uplink.backlogBytes }}",
                "entity_category": "diagnostic",
                "availability_topic": avail,
                "device": device,
                "origin": origin,
            }),
        ));
    }
    out.push((
        format!("homeassistant/sensor/edgerec_{node}_storage_used/config"),
        json!({
            "name": "storage used",
            "unique_id": format!("edgerec_{node}_storage_used"),
            "device_class": "data_size",
            "unit_of_measurement": "B",
            "state_class": "measurement",
            "state_topic": t.state(),
            "value_template": "{{ value_json.storage.usedBytes }}",
            "entity_category": "diagnostic",
            "availability_topic": avail,
            "device": device,
            "origin": origin,
        }),
    ));
    out
}

/// Where the topics announced last are remembered: `<storage>/mqtt-discovery.json`.
pub fn memory_path(storage: &Path) -> PathBuf {
    storage.join("mqtt-discovery.json")
}

/// The topics announced last (empty when none were, or the file is unreadable).
pub fn announced(path: &Path) -> BTreeSet<String> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Remembers `topics` as announced (replaced atomically; a failure is returned for the log).
pub fn remember(path: &Path, topics: &BTreeSet<String>) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(topics)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_fold_alike_stay_apart_and_others_keep_their_id() {
        let ids = ["a-b", "a_b", "front-door", "x"];
        assert_eq!(object_id("a-b", &ids), "a-b");
        assert_eq!(object_id("a_b", &ids), "a_b");
        // No clash: the id as it always was.
        assert_eq!(object_id("front-door", &ids), "front_door");
        assert_eq!(object_id("x", &ids), "x");
        // Two ids with dashes that fold alike keep their (distinct) dashes.
        let ids = ["a-b_c", "a_b-c"];
        assert_ne!(object_id("a-b_c", &ids), object_id("a_b-c", &ids));
    }

    #[test]
    fn the_memory_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = memory_path(dir.path());
        assert!(announced(&p).is_empty());
        let t: BTreeSet<String> = ["homeassistant/switch/x/config".to_string()].into();
        remember(&p, &t).unwrap();
        assert_eq!(announced(&p), t);
    }
}
