//! MQTT control and status against a real mosquitto (started here on a free loopback port), a
//! real test camera and the recorder: availability and its last will, state, the recording
//! switch and its persistence, commands with replies (MQTT 5 and 3.1.1), event markers, Home
//! Assistant discovery, username/password and TLS, a broker outage, and a flood of bad input.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::broker::{Broker, Kind, Peer};
use common::*;

const T: Duration = Duration::from_secs(20);
/// A small picture (1 s GOP): these tests are about control, not video.
const SMALL: &[&str] = &["--width", "320", "--height", "240", "--bitrate", "300"];

fn mqtt_site(cam: &TestCam, broker_url: &str, extra: &str) -> Site {
    let site = Site::new(
        "max_size_mib = 200\nmin_free_mib = 0",
        &[
            ("a", cam.url(), "fragment_duration = \"PT1S\""),
            ("b", cam.url(), "fragment_duration = \"PT1S\""),
        ],
    );
    let mut text = std::fs::read_to_string(&site.config).unwrap();
    // `[http]` is the last table Site writes: the browser page's public URL goes there.
    text += "public_url = \"http://gw.test:8080/\"\n";
    text += &format!(
        "[mqtt]\nurl = \"{broker_url}\"\nkeep_alive = \"PT5S\"\nstate_interval = \"PT2S\"\n{extra}\n"
    );
    std::fs::write(&site.config, text).unwrap();
    site
}

/// End (UTC ns) of the newest media of `camera`, the open segment included (`/api/cameras`).
fn media_end(site: &Site, camera: &str) -> i64 {
    if std::net::TcpStream::connect(("127.0.0.1", site.http_port)).is_err() {
        return 0; // not (yet) serving
    }
    let (code, _, body) = http_get(("127.0.0.1", site.http_port), "/api/cameras", &[]);
    if code != 200 {
        return 0;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    v["cameras"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == camera)
        .and_then(|c| c["lastMediaTime"].as_str())
        .and_then(|t| edgerec::playback::time::parse_datetime(t).ok())
        .unwrap_or(0)
}

/// Every key of an MQTT payload is camelCase (docs/mqtt.md, "JSON"): no `_` or `-` in any key,
/// except the camera ids that key `cameras`.
fn assert_camel_case(v: &serde_json::Value, path: &str) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let ids = path.ends_with(".cameras");
                assert!(
                    ids || (!k.contains('_') && !k.contains('-')),
                    "{path}.{k} is not camelCase"
                );
                assert_camel_case(x, &format!("{path}.{k}"));
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| assert_camel_case(x, path)),
        _ => {}
    }
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn state_switch_commands_events_discovery_and_last_will() {
    let broker = Broker::start(Kind::Plain);
    let cam = TestCam::start(SMALL);
    let site = mqtt_site(
        &cam,
        &format!("mqtt://127.0.0.1:{}", broker.port),
        "home_assistant_discovery = true",
    );
    let rec = Recorder::start(&site);
    let r = "edgerec/test-gw";
    let peer = Peer::connect(
        broker.port,
        "t-main",
        &[&format!("{r}/#"), "homeassistant/#", "replies/#"],
    );
    peer.wait(T, "available online", |m| {
        m.topic == format!("{r}/available") && m.text() == "online"
    });
    let st = peer.wait(T, "state with both cameras recording", |m| {
        m.topic == format!("{r}/state")
            && m.json()["cameras"]["a"]["connected"] == true
            && m.json()["cameras"]["b"]["connected"] == true
            && m.json()["storage"]["usedBytes"].as_u64() > Some(0)
            && m.json()["cameras"]["b"]["bitrateBps"].as_u64() > Some(0)
    });
    let s = st.json();
    assert!(
        s["storage"]["maxBytes"].as_u64() == Some(200 * 1024 * 1024),
        "{s}"
    );
    assert!(s["storage"]["usedBytes"].as_u64().unwrap() > 0, "{s}");
    assert!(
        s.get("uplink").is_none(),
        "no uploader yet: uplink must be absent: {s}"
    );
    assert_eq!(s["cameras"]["a"]["recording"], true);
    let last = s["cameras"]["a"]["lastFragmentAt"]
        .as_str()
        .unwrap_or_default();
    assert!(
        edgerec::playback::time::parse_datetime(last)
            .is_ok_and(|t| (now_utc_ns() - t).abs() < 10_000_000_000),
        "lastFragmentAt {last:?}"
    );
    assert!(s["uptimeSeconds"].is_u64() && s["version"].is_string());
    assert_camel_case(&s, "state");
    peer.wait(T, "recording/state ON", |m| {
        m.topic == format!("{r}/a/recording/state") && m.text() == "ON"
    });
    peer.wait(T, "CameraConnected event", |m| {
        m.topic == format!("{r}/events") && m.json()["eventType"] == "CameraConnected"
    });
    // Home Assistant discovery: a switch and a binary sensor per camera, storage sensor.
    let sw = peer.wait(T, "HA switch", |m| {
        m.topic == "homeassistant/switch/edgerec_test-gw_a_recording/config"
    });
    assert_eq!(sw.json()["command_topic"], format!("{r}/a/recording/set"));
    // The device's "Visit" link is the recorder's browser page.
    assert_eq!(
        sw.json()["device"]["configuration_url"],
        "http://gw.test:8080/"
    );
    peer.wait(T, "HA binary sensor", |m| {
        m.topic == "homeassistant/binary_sensor/edgerec_test-gw_b_connected/config"
    });
    peer.wait(T, "HA storage sensor", |m| {
        m.topic == "homeassistant/sensor/edgerec_test-gw_storage_used/config"
    });
    // Retained: a client that connects later gets available and state at once.
    let late = Peer::connect(
        broker.port,
        "t-late",
        &[
            &format!("{r}/available"),
            &format!("{r}/state"),
            &format!("{r}/+/recording/state"),
            "homeassistant/#",
        ],
    );
    let a = late.wait(T, "retained available", |m| m.topic.ends_with("/available"));
    assert!(a.retain && a.text() == "online");
    late.wait(T, "retained state", |m| {
        m.topic == format!("{r}/state") && m.retain
    });
    late.wait(T, "retained recording/state", |m| {
        m.topic == format!("{r}/b/recording/state") && m.retain && m.text() == "ON"
    });
    late.wait(T, "retained discovery", |m| {
        m.topic.starts_with("homeassistant/switch/") && m.retain
    });

    // recording/set OFF: no new media for `a` within one fragment (1 s), `b` goes on.
    wait_for(T, "media of a in the index", || media_end(&site, "a") > 0);
    peer.clear();
    let off_at = now_utc_ns();
    peer.publish(&format!("{r}/a/recording/set"), "OFF");
    peer.wait(T, "recording/state OFF", |m| {
        m.topic == format!("{r}/a/recording/state") && m.text() == "OFF"
    });
    let stopped = peer.wait(T, "RecordingStopped", |m| {
        m.json()["eventType"] == "RecordingStopped" && m.json()["body"]["camera"] == "a"
    });
    assert_camel_case(&stopped.json(), "event");
    std::thread::sleep(Duration::from_secs(4));
    let a_end = media_end(&site, "a");
    assert!(
        a_end - off_at <= 1_500_000_000,
        "a recorded {} ms past OFF",
        (a_end - off_at) / 1_000_000
    );
    assert!(
        media_end(&site, "b") > off_at + 2_000_000_000,
        "b must go on recording"
    );

    // cmd/setRecording over MQTT 5: the reply carries the correlation data; ON starts a new run.
    peer.request(
        &format!("{r}/cmd/setRecording"),
        r#"{"camera": "a", "on": true}"#,
        "replies/v5",
        b"corr-1",
    );
    let rep = peer.wait(T, "setRecording reply", |m| m.topic == "replies/v5");
    assert_eq!(rep.correlation.as_deref(), Some(&b"corr-1"[..]));
    assert_eq!(rep.json()["status"], 200, "{}", rep.text());
    peer.wait(T, "recording/state ON again", |m| {
        m.topic == format!("{r}/a/recording/state") && m.text() == "ON"
    });
    wait_for(T, "a records again", || {
        media_end(&site, "a") > a_end + 2_000_000_000
    });
    let runs: std::collections::HashSet<i64> = site
        .segments()
        .iter()
        .filter(|s| s.camera == "a")
        .map(|s| s.run_id)
        .collect();
    assert!(runs.len() >= 2, "ON must start a new run");

    // MQTT 3.1.1 clients: replyTo in the payload (getState), or its older spelling reply_to
    // (setRecording); getState over MQTT 5.
    let pub311 = |cmd: &str, body: &str| {
        let out = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
            .args([
                "-V",
                "mqttv311",
                "-q",
                "1",
                "-t",
                &format!("{r}/cmd/{cmd}"),
                "-m",
                body,
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    pub311("getState", r#"{"replyTo": "replies/v311"}"#);
    let rep = peer.wait(T, "getState reply via replyTo", |m| {
        m.topic == "replies/v311"
    });
    assert_eq!(rep.json()["status"], 200);
    assert!(
        rep.json()["payload"]["cameras"]["b"].is_object(),
        "{}",
        rep.text()
    );
    pub311(
        "setRecording",
        r#"{"camera": "b", "on": true, "reply_to": "replies/v311-set"}"#,
    );
    let rep = peer.wait(T, "setRecording reply via reply_to", |m| {
        m.topic == "replies/v311-set"
    });
    assert_eq!(rep.json()["status"], 200, "{}", rep.text());
    peer.request(&format!("{r}/cmd/getState"), "", "replies/v5-state", b"st");
    let rep = peer.wait(T, "getState reply over MQTT 5", |m| {
        m.topic == "replies/v5-state"
    });
    assert_eq!(rep.correlation.as_deref(), Some(&b"st"[..]));
    assert_eq!(rep.json()["payload"]["cameras"]["a"]["recording"], true);

    // Bad commands get error replies; nothing changes.
    peer.clear();
    for (i, (cmd, body, status)) in [
        ("setRecording", r#"{"camera": "zz", "on": true}"#, 404),
        ("setRecording", r#"{"camera": "a", "on": "yes"}"#, 400),
        ("setRecording", "{not json", 400),
        ("reboot", "{}", 404),
        ("triggerEvent", r#"{"camera": "a"}"#, 400),
        ("listCameras", "[1, 2]", 400),
    ]
    .into_iter()
    .enumerate()
    {
        let topic = format!("replies/bad{i}");
        peer.request(&format!("{r}/cmd/{cmd}"), body, &topic, b"x");
        let rep = peer.wait(T, &format!("reply to {cmd} {body}"), |m| m.topic == topic);
        assert_eq!(rep.json()["status"], status, "{cmd} {body}: {}", rep.text());
        assert!(rep.json()["error"].is_string());
    }
    peer.publish(&format!("{r}/a/recording/set"), "MAYBE");
    peer.wait(T, "CommandRejected event", |m| {
        m.json()["eventType"] == "CommandRejected" && m.json()["body"]["status"] == 400
    });
    assert_eq!(
        peer.got
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.topic == format!("{r}/a/recording/state") && m.text() == "OFF")
            .count(),
        0,
        "a bad set must not switch anything"
    );

    // Event markers: the plain topic and the command, listed by /api/events.
    peer.publish(
        &format!("{r}/b/event"),
        r#"{"id": "e1", "label": "person", "duration": "PT5S"}"#,
    );
    peer.request(
        &format!("{r}/cmd/triggerEvent"),
        r#"{"camera": "b", "label": "car"}"#,
        "replies/ev",
        b"ev",
    );
    let rep = peer.wait(T, "triggerEvent reply", |m| m.topic == "replies/ev");
    assert_eq!(rep.json()["status"], 200, "{}", rep.text());
    let (from, to) = (
        edgerec::playback::time::format_full(now_utc_ns() - 3_600_000_000_000),
        edgerec::playback::time::format_full(now_utc_ns() + 60_000_000_000),
    );
    let mut listed = serde_json::Value::Null;
    wait_for(T, "two events listed", || {
        let (code, _, body) = http_get(
            ("127.0.0.1", site.http_port),
            &format!("/api/events?camera=b&startTime={from}&endTime={to}"),
            &[],
        );
        listed = serde_json::from_slice(&body).unwrap_or_default();
        code == 200 && listed["events"].as_array().is_some_and(|a| a.len() == 2)
    });
    let labels: Vec<&str> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"person") && labels.contains(&"car"),
        "{listed}"
    );
    let (code, _, _) = http_get(("127.0.0.1", site.http_port), "/api/events?camera=b", &[]);
    assert_eq!(code, 400);

    // The switch survives a restart: a off, b on.
    peer.publish(&format!("{r}/a/recording/set"), "OFF");
    peer.wait(T, "a OFF before restart", |m| {
        m.topic == format!("{r}/a/recording/state") && m.text() == "OFF"
    });
    let (ok, _) = rec.terminate();
    assert!(ok);
    peer.wait(T, "offline on a clean stop", |m| {
        m.topic == format!("{r}/available") && m.text() == "offline"
    });
    // Stopped cleanly: every segment is complete, the index has the exact ends.
    let index_end = |c: &str| {
        site.segments()
            .iter()
            .filter(|s| s.camera == c)
            .map(|s| s.end_utc_ns())
            .max()
            .unwrap_or(0)
    };
    let a_before = index_end("a");
    let b_before = index_end("b");
    peer.clear();
    // A command sent while edgerec is away (QoS 1, persistent session) arrives when it returns.
    peer.request(
        &format!("{r}/cmd/triggerEvent"),
        r#"{"camera": "b", "label": "sent while away", "id": "away-1"}"#,
        "replies/away",
        b"away",
    );
    std::thread::sleep(Duration::from_millis(500));
    let rec = Recorder::start(&site);
    peer.wait(T, "online after restart", |m| {
        m.topic == format!("{r}/available") && m.text() == "online"
    });
    let rep = peer.wait(T, "the reply to the command sent while away", |m| {
        m.topic == "replies/away"
    });
    assert_eq!(rep.json()["status"], 200, "{}", rep.text());
    assert_eq!(rep.json()["payload"]["id"], "away-1");
    peer.wait(T, "a still OFF after restart", |m| {
        m.topic == format!("{r}/a/recording/state") && m.text() == "OFF"
    });
    wait_for(T, "b records after restart", || {
        media_end(&site, "b") > b_before + 3_000_000_000
    });
    // (/api/cameras gives milliseconds)
    assert!(
        (media_end(&site, "a") - a_before).abs() < 1_000_000,
        "a must stay off across the restart"
    );

    // kill -9: the broker publishes the last will within 1.5 keep-alive periods (5 s).
    peer.clear();
    let killed = Instant::now();
    rec.kill9();
    peer.wait(Duration::from_secs(15), "offline by last will", |m| {
        m.topic == format!("{r}/available") && m.text() == "offline"
    });
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_millis(3000 + 700),
        "last will after {took:?}"
    );
}

#[test]
fn username_password_and_tls() {
    let cam = TestCam::start(SMALL);
    // Username and password.
    let broker = Broker::start(Kind::UserPass("edge", "s3cret"));
    let site = mqtt_site(
        &cam,
        &format!("mqtt://127.0.0.1:{}", broker.port),
        "username = \"edge\"\npassword = \"s3cret\"",
    );
    let rec = Recorder::start(&site);
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-u",
            "edge",
            "-P",
            "s3cret",
        ])
        .args(["-t", "edgerec/test-gw/available", "-C", "1", "-W", "20"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "online",
        "{}",
        rec.log_text()
    );
    assert!(
        !rec.log_text().contains("s3cret"),
        "the password must never be logged"
    );
    drop(rec);

    // TLS with a CA made here.
    let tls = Broker::start(Kind::Tls);
    let ca = tls.ca.clone().unwrap();
    let site = mqtt_site(
        &cam,
        &format!("mqtts://127.0.0.1:{}", tls.port),
        &format!("ca_file = \"{}\"", ca.display()),
    );
    let rec = Recorder::start(&site);
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &tls.port.to_string(), "--cafile"])
        .arg(&ca)
        .args(["-t", "edgerec/test-gw/state", "-C", "1", "-W", "20"])
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        state["cameras"]["a"].is_object(),
        "TLS state: {state} {}",
        rec.log_text()
    );
    drop(rec);
}

#[test]
fn broker_outage_loses_no_media_and_republishes() {
    let mut broker = Broker::start(Kind::Plain);
    let cam = TestCam::start(SMALL);
    let site = mqtt_site(&cam, &format!("mqtt://127.0.0.1:{}", broker.port), "");
    let rec = Recorder::start(&site);
    let r = "edgerec/test-gw";
    let peer = Peer::connect(broker.port, "t-out1", &[&format!("{r}/available")]);
    peer.wait(T, "online", |m| m.text() == "online");
    drop(peer);
    // Both cameras have media before the outage starts (the span checked below begins at t0).
    wait_for(T, "media of both cameras", || {
        let now = now_utc_ns();
        ["a", "b"]
            .iter()
            .all(|c| media_end(&site, c) > now - 3_000_000_000)
            && site.segments().len() >= 2
    });
    let t0 = now_utc_ns();
    broker.stop();
    std::thread::sleep(Duration::from_secs(60));
    broker.restart();
    // A fresh broker has no retained messages: what arrives was published again.
    let peer = Peer::connect(
        broker.port,
        "t-out2",
        &[
            &format!("{r}/available"),
            &format!("{r}/state"),
            &format!("{r}/+/recording/state"),
        ],
    );
    peer.wait(Duration::from_secs(90), "online again", |m| {
        m.text() == "online"
    });
    peer.wait(T, "state again", |m| m.topic.ends_with("/state"));
    peer.wait(T, "recording/state again", |m| {
        m.topic == format!("{r}/a/recording/state")
    });
    // No media lost: one continuous span per camera across the outage.
    let t1 = now_utc_ns() - 3_000_000_000;
    for c in ["a", "b"] {
        let (from, to) = (
            edgerec::playback::time::format_full(t0),
            edgerec::playback::time::format_full(t1),
        );
        let (code, _, body) = http_get(
            ("127.0.0.1", site.http_port),
            &format!(
                "/{c}/content.ism/availableMedia?precision=full&startTime={from}&endTime={to}"
            ),
            &[],
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(code, 200);
        assert_eq!(
            v["timeRanges"],
            serde_json::json!([{"start": from, "end": to}]),
            "camera {c}: media across the broker outage"
        );
    }
    let (ok, _) = rec.terminate();
    assert!(ok);
}

#[test]
fn a_thousand_malformed_messages_change_nothing() {
    let broker = Broker::start(Kind::Plain);
    let cam = TestCam::start(SMALL);
    let site = mqtt_site(&cam, &format!("mqtt://127.0.0.1:{}", broker.port), "");
    let rec = Recorder::start(&site);
    let r = "edgerec/test-gw";
    let peer = Peer::connect(
        broker.port,
        "t-flood",
        &[&format!("{r}/available"), "replies/#"],
    );
    peer.wait(T, "online", |m| m.text() == "online");
    std::thread::sleep(Duration::from_secs(3));
    let rss_before = rss_kib(rec.pid());
    let huge = vec![b'x'; 1024 * 1024];
    for i in 0..1000 {
        let (topic, payload): (String, Vec<u8>) = match i % 8 {
            0 => (format!("{r}/a/recording/set"), vec![0xff, 0xfe, 0x00, 0x80]),
            1 => (format!("{r}/a/event"), huge.clone()),
            2 => (
                format!("{r}/a/event"),
                br#"{"label": 42, "time": []}"#.to_vec(),
            ),
            3 => (
                format!("{r}/cmd/setRecording"),
                br#"{"camera": ["a"], "on": 1}"#.to_vec(),
            ),
            4 => (format!("{r}/zz/recording/set"), b"ON".to_vec()),
            5 => (format!("{r}/cmd/{}", "q".repeat(200)), b"{}".to_vec()),
            6 => (format!("{r}/a/b/c/d"), vec![0u8; 100]),
            _ => (format!("{r}/cmd/getState"), vec![0xc3, 0x28]),
        };
        peer.publish(&topic, payload);
    }
    // Every valid command after them still works.
    peer.request(
        &format!("{r}/cmd/listCameras"),
        "{}",
        "replies/after",
        b"after",
    );
    let rep = peer.wait(Duration::from_secs(60), "reply after the flood", |m| {
        m.topic == "replies/after"
    });
    assert_eq!(rep.json()["status"], 200, "{}", rep.text());
    assert_eq!(rep.json()["payload"].as_array().map(|a| a.len()), Some(2));
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = rss_kib(rec.pid());
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    let before = media_end(&site, "a");
    wait_for(T, "a still records", || {
        media_end(&site, "a") > before + 2_000_000_000
    });
    let (ok, _) = rec.terminate();
    assert!(ok, "{}", rec_log(&site));
}

fn rec_log(site: &Site) -> String {
    std::fs::read_dir(site.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("recorder-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

#[test]
fn uplink_state_with_an_uploader() {
    let broker = Broker::start(Kind::Plain);
    let cam = TestCam::start(SMALL);
    let share = tempfile::tempdir().unwrap();
    let site = mqtt_site(
        &cam,
        &format!("mqtt://127.0.0.1:{}", broker.port),
        &format!(
            "home_assistant_discovery = true\n[upload]\nurl = \"file://{}\"",
            share.path().display()
        ),
    );
    let r = "edgerec/test-gw";
    let peer = Peer::connect(
        broker.port,
        "t-uplink",
        &[
            &format!("{r}/state"),
            &format!("{r}/events"),
            "homeassistant/#",
        ],
    );
    let rec = Recorder::start(&site);
    peer.wait(T, "HA upload backlog sensor", |m| {
        m.topic == "homeassistant/sensor/edgerec_test-gw_upload_backlog/config"
    });
    let st = peer.wait(Duration::from_secs(90), "state.uplink online", |m| {
        m.topic == format!("{r}/state") && m.json()["uplink"]["state"] == "online"
    });
    let u = &st.json()["uplink"];
    assert_camel_case(&st.json(), "state");
    assert!(u["lastUploadAt"].is_string(), "{u}");
    assert_eq!(u["evictedUnuploadedBytes"], 0, "{u}");
    assert!(
        u["backlogSegments"].is_u64() && u["backlogBytes"].is_u64(),
        "{u}"
    );
    peer.wait(T, "UplinkStateChanged", |m| {
        m.json()["eventType"] == "UplinkStateChanged" && m.json()["body"]["state"] == "online"
    });
    let (ok, _) = rec.terminate();
    assert!(ok);
}

/// Home Assistant hygiene: cameras `a-b` and `a_b` get distinct unique ids and topics (`a_b`
/// keeps the id it always had), diagnostic entities say so, every config carries `origin`;
/// Frigate's `R/<camera>/recordings/set` switches recording; a camera taken out of the config has
/// its retained configs emptied at the next start, so Home Assistant removes its entities.
#[test]
fn discovery_ids_stay_apart_and_gone_cameras_are_removed() {
    let broker = Broker::start(Kind::Plain);
    let cam = TestCam::start(SMALL);
    let site = Site::new(
        "max_size_mib = 200\nmin_free_mib = 0",
        &[
            ("a-b", cam.url(), ""),
            ("a_b", cam.url(), ""),
            ("x", cam.url(), ""),
        ],
    );
    let text = std::fs::read_to_string(&site.config).unwrap()
        + &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nhome_assistant_discovery = true\n",
            broker.port
        );
    std::fs::write(&site.config, &text).unwrap();
    let r = "edgerec/test-gw";
    let peer = Peer::connect(
        broker.port,
        "t-ha",
        &["homeassistant/#", &format!("{r}/+/recording/state")],
    );
    let rec = Recorder::start(&site);
    let switch = |id: &str| format!("homeassistant/switch/edgerec_test-gw_{id}_recording/config");
    let dashed = peer.wait(T, "a-b switch", |m| m.topic == switch("a-b"));
    let plain = peer.wait(T, "a_b switch", |m| m.topic == switch("a_b"));
    assert_ne!(dashed.json()["unique_id"], plain.json()["unique_id"]);
    assert_eq!(
        dashed.json()["command_topic"],
        format!("{r}/a-b/recording/set")
    );
    assert_eq!(
        plain.json()["command_topic"],
        format!("{r}/a_b/recording/set")
    );
    assert_eq!(plain.json()["origin"]["name"], "edgerec");
    let storage = peer.wait(T, "storage sensor", |m| {
        m.topic == "homeassistant/sensor/edgerec_test-gw_storage_used/config"
    });
    assert_eq!(storage.json()["entity_category"], "diagnostic");
    let x_topics: Vec<String> = peer
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.topic.contains("_test-gw_x_"))
        .map(|m| m.topic.clone())
        .collect();
    assert!(x_topics.len() >= 2, "{x_topics:?}");
    // Frigate's spelling of the recording switch.
    peer.wait(T, "a_b recording ON", |m| {
        m.topic == format!("{r}/a_b/recording/state") && m.text() == "ON"
    });
    peer.publish(&format!("{r}/a_b/recordings/set"), "OFF");
    peer.wait(T, "a_b recording OFF", |m| {
        m.topic == format!("{r}/a_b/recording/state") && m.text() == "OFF"
    });
    let (ok, _) = rec.terminate();
    assert!(ok);
    // Camera x leaves the config: its entities are emptied at the next start.
    let x_block = common::camera_block("x", &cam.url(), "");
    assert!(text.contains(&x_block));
    std::fs::write(&site.config, text.replace(&x_block, "")).unwrap();
    peer.clear();
    let rec = Recorder::start(&site);
    for t in &x_topics {
        peer.wait(T, t, |m| &m.topic == t && m.payload.is_empty());
    }
    peer.wait(T, "a-b switch again", |m| {
        m.topic == switch("a-b") && !m.payload.is_empty()
    });
    // A client that subscribes now gets no retained config of x.
    let late = Peer::connect(broker.port, "t-ha-late", &["homeassistant/#"]);
    late.wait(T, "retained a-b switch", |m| m.topic == switch("a-b"));
    assert!(
        !late
            .got
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.topic.contains("_test-gw_x_")),
        "x is gone"
    );
    let (ok, _) = rec.terminate();
    assert!(ok);
}
