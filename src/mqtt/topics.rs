//! MQTT topic names under the root `R = <topic_prefix>/<device_id>` (DESIGN section 7) and the
//! parsing of incoming topics. Pure functions: no client, no I/O.

/// An incoming message's meaning, from its topic alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// `R/<camera>/recording/set` (or Frigate's `R/<camera>/recordings/set`).
    RecordingSet(&'a str),
    /// `R/<camera>/event`.
    Event(&'a str),
    /// `R/cmd/<name>`.
    Command(&'a str),
}

/// Topic names of one device.
#[derive(Debug, Clone)]
pub struct Topics {
    root: String,
}

impl Topics {
    /// Topics under `<prefix>/<device_id>`.
    pub fn new(prefix: &str, device_id: &str) -> Topics {
        Topics {
            root: format!("{prefix}/{device_id}"),
        }
    }

    /// The root, `R`.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `R/available`: `online` / `offline`, retained, also the last will.
    pub fn available(&self) -> String {
        format!("{}/available", self.root)
    }

    /// `R/state`: retained JSON.
    pub fn state(&self) -> String {
        format!("{}/state", self.root)
    }

    /// `R/events`: LVA-shaped event JSON.
    pub fn events(&self) -> String {
        format!("{}/events", self.root)
    }

    /// `R/<camera>/recording/state`: `ON` / `OFF`, retained.
    pub fn recording_state(&self, camera: &str) -> String {
        format!("{}/{camera}/recording/state", self.root)
    }

    /// `R/<camera>/clip`: `ON` while the camera's signal gate holds a clip open, retained.
    pub fn clip_state(&self, camera: &str) -> String {
        format!("{}/{camera}/clip", self.root)
    }

    /// `R/<camera>/motion`: `ON` while the camera's motion detection saw motion within its off
    /// delay, retained.
    pub fn motion_state(&self, camera: &str) -> String {
        format!("{}/{camera}/motion", self.root)
    }

    /// `R/<camera>/recording/set`.
    pub fn recording_set(&self, camera: &str) -> String {
        format!("{}/{camera}/recording/set", self.root)
    }

    /// The subscriptions: recording switches (also as Frigate spells them,
    /// `R/<camera>/recordings/set`, so automations copied from Frigate work), event markers and
    /// commands.
    pub fn subscriptions(&self) -> [String; 4] {
        [
            format!("{}/+/recording/set", self.root),
            format!("{}/+/recordings/set", self.root),
            format!("{}/+/event", self.root),
            format!("{}/cmd/+", self.root),
        ]
    }

    /// What an incoming topic asks for; `None` for anything else (logged and ignored).
    pub fn parse<'a>(&self, topic: &'a str) -> Option<Incoming<'a>> {
        let rest = topic.strip_prefix(self.root.as_str())?.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["cmd", name] if !name.is_empty() => Some(Incoming::Command(name)),
            [cam, "recording" | "recordings", "set"] if !cam.is_empty() => {
                Some(Incoming::RecordingSet(cam))
            }
            [cam, "event"] if !cam.is_empty() && *cam != "cmd" => Some(Incoming::Event(cam)),
            _ => None,
        }
    }
}

/// Whether `t` may be used as a reply topic: 1 to 256 bytes, no wildcards, no NUL.
pub fn valid_reply_topic(t: &str) -> bool {
    !t.is_empty() && t.len() <= 256 && !t.contains(['+', '#', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_our_topics() {
        let t = Topics::new("edgerec", "gw1");
        assert_eq!(
            t.parse("edgerec/gw1/lot/recording/set"),
            Some(Incoming::RecordingSet("lot"))
        );
        assert_eq!(
            t.parse("edgerec/gw1/lot/recordings/set"),
            Some(Incoming::RecordingSet("lot")),
            "Frigate's spelling"
        );
        assert_eq!(
            t.parse("edgerec/gw1/lot/event"),
            Some(Incoming::Event("lot"))
        );
        assert_eq!(
            t.parse("edgerec/gw1/cmd/getState"),
            Some(Incoming::Command("getState"))
        );
        for bad in [
            "edgerec/gw10/lot/event",
            "edgerec/gw1//event",
            "edgerec/gw1/a/b/event",
            "edgerec/gw1/cmd/",
            "edgerec/gw1/cmd/a/b",
            "other/gw1/lot/event",
            "edgerec/gw1",
        ] {
            assert_eq!(t.parse(bad), None, "{bad}");
        }
        assert!(
            valid_reply_topic("replies/x") && !valid_reply_topic("r/#") && !valid_reply_topic("")
        );
    }
}
