//! MQTT control and status (DESIGN section 7): one thread that owns a rumqttc (MQTT 5) event loop,
//! publishes availability (retained, with the last will), state (retained, every
//! `state_interval` and on change), per-camera recording state and events, and executes
//! commands with a reply to each.
//!
//! Nothing here can hold up recording: the thread reads shared counters and flags, talks to the
//! storage writer only through its non-blocking queue, and never blocks on the broker (every
//! publish is `try_publish`). rumqttc retries a lost connection at once on the next poll
//! (bytebeamio/rumqtt issues 703 and 918), so the loop waits 1 s to 60 s with jitter between
//! attempts itself. While the broker is away: state is coalesced (only the latest is sent), events
//! queue up to [`MAX_QUEUED_EVENTS`] and the overflow is counted; on reconnect `available`,
//! `state` and every `recording/state` are published again. Topic names are in [`topics`], the
//! documents in [`status`], command rules in [`commands`].

pub mod commands;
pub mod discovery;
pub mod motion;
pub mod status;
pub mod tls;
pub mod topics;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Connection, Event, MqttOptions};
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::clock::now_utc_ns;
use crate::config::MqttConfig;
use crate::control::Switches;
use crate::ingest::CameraStatus;
use crate::playback::time::format_full;
use crate::store::stats::ClipChange;
use crate::store::writer::WriterHandle;
use commands::Reply;
use topics::{Incoming, Topics};

/// Events kept while the broker is unreachable; older ones are dropped and counted.
pub const MAX_QUEUED_EVENTS: usize = 1000;
/// Largest MQTT packet edgerec accepts (MQTT 5 Maximum Packet Size: the broker drops larger
/// messages for us instead of sending them), bytes.
pub const MAX_PACKET_BYTES: u32 = 64 * 1024;

/// One camera as the MQTT side sees it.
#[derive(Debug, Clone)]
pub struct CameraHandle {
    /// Camera id (validated by the config: `[a-z0-9_-]`, so it cannot inject topic levels).
    pub id: String,
    /// `enabled` in the configuration.
    pub enabled: bool,
    /// Its live status and recording switch (a default, never-recording status when disabled).
    pub status: Arc<CameraStatus>,
    /// With motion detection: how long `R/<camera>/motion` stays `ON` after the last motion.
    pub motion_off_delay: Option<Duration>,
}

/// Everything the MQTT thread reads or steers.
pub struct Context {
    /// Device id, the second topic level.
    pub device_id: String,
    /// Every configured camera.
    pub cameras: Vec<CameraHandle>,
    /// Persisted recording switches.
    pub switches: Arc<Switches>,
    /// The storage writer (event markers).
    pub writer: WriterHandle,
    /// `storage.max_size_mib` in bytes.
    pub max_bytes: u64,
    /// Process start, for `uptime_s`.
    pub started: Instant,
    /// The uploader's status (absent without `[upload]`: `state.uplink` is then left out).
    pub upload: Option<Arc<crate::upload::UploadShared>>,
    /// The storage directory (where the announced discovery topics are remembered).
    pub storage_path: std::path::PathBuf,
    /// The browser page's URL (`http.public_url`), Home Assistant's `configuration_url` of the
    /// device; `None` in a build without the page or when it is not known.
    pub configuration_url: Option<String>,
}

/// Builds the rumqttc options: MQTT 5, stable client id, persistent session (`clean_start =
/// false`, 1 h session expiry) so QoS 1 commands sent during a short outage arrive, last will
/// `offline` (retained), TLS from the CA file and optional client certificate.
///
/// Errors: a TLS file cannot be read.
pub fn options(cfg: &MqttConfig, t: &Topics) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    o.set_keep_alive(cfg.keep_alive);
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(3600));
    o.set_max_packet_size(Some(MAX_PACKET_BYTES));
    o.set_connection_timeout(10);
    o.set_last_will(LastWill::new(
        t.available(),
        "offline",
        QoS::AtLeastOnce,
        true,
        None,
    ));
    if let Some(u) = &cfg.username {
        o.set_credentials(u.clone(), cfg.password.clone().unwrap_or_default());
    }
    if cfg.tls {
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls::client_config(cfg)?),
        ));
    }
    Ok(o)
}

/// Starts the MQTT thread; it runs until `stop`, then publishes `offline` and disconnects.
///
/// Errors: TLS files cannot be read, or the thread cannot be spawned.
pub fn spawn(
    cfg: MqttConfig,
    ctx: Context,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let t = Topics::new(&cfg.topic_prefix, &ctx.device_id);
    let opts = options(&cfg, &t)?;
    let (client, conn) = Client::new(opts, 256);
    let mut m = Mqtt::new(cfg, ctx, t, client);
    Ok(std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || m.run(conn, &stop))?)
}

struct Mqtt {
    cfg: MqttConfig,
    ctx: Context,
    t: Topics,
    client: Client,
    connected: bool,
    /// Events waiting for the broker, and how many were dropped.
    queue: VecDeque<Value>,
    dropped_events: u64,
    /// What was last seen per camera: (recording, connected).
    seen: HashMap<String, (bool, bool)>,
    evictions_seen: u64,
    /// Clip notices handled (the writer's clip log starts empty with the process).
    clips_seen: u64,
    /// The last `R/<camera>/clip` published per camera.
    clip_on: HashMap<String, bool>,
    motion: motion::MotionTracker,
    storage_errors_seen: u64,
    uplink_seen: Option<crate::upload::Uplink>,
    last_state: Option<Instant>,
    state_dirty: bool,
    rates: HashMap<String, u64>,
    rate_base: (Instant, HashMap<String, u64>),
}

impl Mqtt {
    fn new(cfg: MqttConfig, ctx: Context, t: Topics, client: Client) -> Mqtt {
        let seen = ctx
            .cameras
            .iter()
            .map(|c| (c.id.clone(), (false, false)))
            .collect();
        let evictions_seen = ctx
            .writer
            .stats()
            .evictions_since(0)
            .0
            .last()
            .map_or(0, |r| r.seq);
        let storage_errors_seen = ctx.writer.stats().storage_errors.load(Ordering::Relaxed);
        Mqtt {
            cfg,
            ctx,
            t,
            client,
            connected: false,
            queue: VecDeque::new(),
            dropped_events: 0,
            seen,
            evictions_seen,
            clips_seen: 0,
            clip_on: HashMap::new(),
            motion: motion::MotionTracker::default(),
            storage_errors_seen,
            uplink_seen: None,
            last_state: None,
            state_dirty: true,
            rates: HashMap::new(),
            rate_base: (Instant::now(), HashMap::new()),
        }
    }

    fn run(&mut self, conn: Connection, stop: &AtomicBool) {
        info!(broker = %format!("{}:{}", self.cfg.host, self.cfg.port), root = %self.t.root(), "mqtt: connecting");
        let net_stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let net = {
            let net_stop = net_stop.clone();
            std::thread::Builder::new()
                .name("mqtt-net".into())
                .spawn(move || net_loop(conn, tx, &net_stop))
        };
        let net = match net {
            Ok(n) => n,
            Err(e) => {
                warn!("mqtt: cannot start the network thread: {e}");
                return;
            }
        };
        while !stop.load(Ordering::Relaxed) {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Net::Connected) => {
                    info!("mqtt: connected");
                    self.connected = true;
                    self.on_connect();
                }
                Ok(Net::Down) | Ok(Net::Disconnected) => self.connected = false,
                Ok(Net::Message(p)) => self.on_publish(&p),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.observe();
            if self.connected {
                self.flush_events();
                let due = self
                    .last_state
                    .is_none_or(|t| t.elapsed() >= self.cfg.state_interval);
                if due || self.state_dirty {
                    self.publish_state();
                }
            }
        }
        // Clean stop: `offline` (retained), then DISCONNECT; the network thread ends when the
        // disconnect is out, or after 2 s.
        let mut net_done = false;
        if self.connected {
            let _ = self
                .client
                .try_publish(self.t.available(), QoS::AtLeastOnce, true, "offline");
            let _ = self.client.try_disconnect();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && !net_done {
                net_done = matches!(
                    rx.recv_timeout(Duration::from_millis(50)),
                    Ok(Net::Disconnected) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
                );
            }
            info!("mqtt: offline published, disconnected");
        }
        net_stop.store(true, Ordering::Relaxed);
        drop(rx);
        // A network thread still inside a connection attempt is left to the process exit
        // rather than holding up the shutdown for its connect timeout.
        if net_done || net.is_finished() {
            let _ = net.join();
        }
    }

    fn publish(&mut self, topic: String, retain: bool, payload: impl Into<Vec<u8>>) {
        if let Err(e) =
            self.client
                .try_publish(topic.clone(), QoS::AtLeastOnce, retain, payload.into())
        {
            debug!(%topic, "mqtt: publish not queued: {e}");
        }
    }

    fn on_connect(&mut self) {
        for s in self.t.subscriptions() {
            if let Err(e) = self.client.try_subscribe(s.clone(), QoS::AtLeastOnce) {
                warn!(topic = %s, "mqtt: subscribe not queued: {e}");
            }
        }
        self.publish(self.t.available(), true, "online");
        self.announce();
        let states: Vec<(String, bool)> = self
            .ctx
            .cameras
            .iter()
            .map(|c| (c.id.clone(), c.status.recording.load(Ordering::Relaxed)))
            .collect();
        for (id, on) in states {
            self.publish(self.t.recording_state(&id), true, on_off(on));
        }
        self.clip_on.clear();
        self.publish_clip_states();
        self.motion.republish();
        self.motion_events();
        self.publish_state();
    }

    /// Home Assistant discovery: the configs of every entity, and an empty retained config for
    /// each one announced before that is gone (a camera taken out of the config, or discovery
    /// switched off), so that Home Assistant removes it.
    fn announce(&mut self) {
        let memory = discovery::memory_path(&self.ctx.storage_path);
        let docs = if self.cfg.home_assistant_discovery {
            discovery::discovery(&self.ctx, &self.t)
        } else {
            Vec::new()
        };
        let now: std::collections::BTreeSet<String> = docs.iter().map(|(t, _)| t.clone()).collect();
        let before = discovery::announced(&memory);
        for gone in before.difference(&now) {
            info!(topic = %gone, "mqtt: removing a Home Assistant entity no longer configured");
            self.publish(gone.clone(), true, Vec::new());
        }
        if before != now {
            if let Err(e) = discovery::remember(&memory, &now) {
                warn!(path = %memory.display(), "mqtt: cannot remember the announced entities: {e}");
            }
        }
        for (topic, doc) in docs {
            self.publish(topic, true, doc.to_string());
        }
    }

    /// LVA's operational events for clips (`RecordingStarted` when one opens,
    /// `RecordingAvailable` once its pre-roll is durable, `RecordingStopped` when it closes),
    /// each with the clip's subject and location, and the retained `R/<camera>/clip`.
    fn clip_events(&mut self) {
        let (notices, lost) = self.ctx.writer.stats().clip_log.since(self.clips_seen);
        self.dropped_events += lost;
        for n in notices {
            self.clips_seen = n.seq;
            let kind = match n.change {
                ClipChange::Started => "RecordingStarted",
                ClipChange::Available => "RecordingAvailable",
                ClipChange::Stopped => "RecordingStopped",
            };
            let (s, e) = (format_full(n.start_utc_ns), format_full(n.end_utc_ns));
            let mut body = json!({
                "camera": n.camera,
                "clipId": n.clip_id,
                "outputType": "clip",
                "outputLocation": format!(
                    "/{}/content.ism/manifest(format=m3u8-aapl,startTime={s},endTime={e}).m3u8",
                    n.camera
                ),
                "start": s,
                "end": e,
            });
            if let Some(r) = n.close_reason {
                body["closedBy"] = json!(r);
            }
            self.event(
                kind,
                format!("/cameras/{}/clips/{}", n.camera, n.clip_id),
                body,
            );
        }
        self.publish_clip_states();
    }

    /// Motion: `Inference` events and the retained `R/<camera>/motion`.
    fn motion_events(&mut self) {
        let news = self.motion.poll(&self.ctx.cameras, now_utc_ns());
        self.dropped_events += news.lost;
        for (subject, body) in news.events {
            self.event("Inference", subject, body);
        }
        if !self.connected {
            // Published again on the next connection.
            self.motion.republish();
            return;
        }
        for (camera, on) in news.states {
            self.publish(self.t.motion_state(&camera), true, on_off(on));
        }
    }

    /// Publishes `R/<camera>/clip` for every camera whose clip state changed.
    fn publish_clip_states(&mut self) {
        if !self.connected {
            return;
        }
        let ids: Vec<String> = self.ctx.cameras.iter().map(|c| c.id.clone()).collect();
        for id in ids {
            let on = self.ctx.writer.stats().clip_open(&id);
            if self.clip_on.get(&id) != Some(&on) {
                self.publish(self.t.clip_state(&id), true, on_off(on));
                self.clip_on.insert(id, on);
            }
        }
    }

    fn publish_state(&mut self) {
        self.update_rates();
        let doc = status::state_json(&self.ctx, &self.rates);
        self.publish(self.t.state(), true, doc.to_string());
        self.last_state = Some(Instant::now());
        self.state_dirty = false;
    }

    fn update_rates(&mut self) {
        let now = Instant::now();
        let secs = now.duration_since(self.rate_base.0).as_secs_f64();
        let bytes: HashMap<String, u64> = self
            .ctx
            .cameras
            .iter()
            .map(|c| (c.id.clone(), c.status.bytes.load(Ordering::Relaxed)))
            .collect();
        if secs >= 1.0 {
            for (id, b) in &bytes {
                let before = self.rate_base.1.get(id).copied().unwrap_or(*b);
                self.rates
                    .insert(id.clone(), ((b - before) as f64 * 8.0 / secs) as u64);
            }
            self.rate_base = (now, bytes);
        }
    }

    fn event(&mut self, kind: &str, subject: String, body: Value) {
        let doc = status::event_json(kind, &subject, body, now_utc_ns());
        if self.queue.len() >= MAX_QUEUED_EVENTS {
            self.queue.pop_front();
            self.dropped_events += 1;
        }
        self.queue.push_back(doc);
    }

    fn flush_events(&mut self) {
        if self.dropped_events > 0 {
            let n = std::mem::take(&mut self.dropped_events);
            warn!(
                dropped = n,
                "mqtt: events dropped while the broker was away"
            );
            self.queue.push_front(status::event_json(
                "EventsDropped",
                "/device",
                json!({"count": n}),
                now_utc_ns(),
            ));
        }
        while let Some(e) = self.queue.pop_front() {
            self.publish(self.t.events(), false, e.to_string());
        }
    }

    /// Compares shared status with what was last reported and queues events for changes.
    fn observe(&mut self) {
        // Flags only: strings are made (and the loss reason read) when something changed.
        for i in 0..self.ctx.cameras.len() {
            let c = &self.ctx.cameras[i];
            let rec = c.status.recording.load(Ordering::Relaxed);
            let conn = c.status.connected.load(Ordering::Relaxed);
            let (was_rec, was_conn) = self.seen.get(&c.id).copied().unwrap_or_default();
            if (rec, conn) == (was_rec, was_conn) {
                continue;
            }
            let id = c.id.clone();
            let loss = (!conn && was_conn).then(|| {
                let l = c.status.last_loss.lock().unwrap_or_else(|e| e.into_inner());
                if l.is_empty() {
                    "stopped".to_owned()
                } else {
                    l.clone()
                }
            });
            let subject = format!("/cameras/{id}");
            if rec != was_rec {
                let kind = if rec {
                    "RecordingStarted"
                } else {
                    "RecordingStopped"
                };
                self.event(kind, subject.clone(), json!({"camera": id}));
                if self.connected {
                    self.publish(self.t.recording_state(&id), true, on_off(rec));
                }
            }
            if conn != was_conn {
                match loss {
                    None => self.event("CameraConnected", subject, json!({"camera": id})),
                    Some(reason) => self.event(
                        "CameraDisconnected",
                        subject,
                        json!({"camera": id, "reason": reason}),
                    ),
                }
            }
            self.state_dirty = true;
            self.seen.insert(id, (rec, conn));
        }
        self.clip_events();
        self.motion_events();
        let (evicted, lost) = self.ctx.writer.stats().evictions_since(self.evictions_seen);
        if lost > 0 {
            self.dropped_events += lost;
        }
        for r in evicted {
            self.evictions_seen = r.seq;
            self.event(
                "MediaEvicted",
                format!("/cameras/{}", r.camera),
                json!({
                    "camera": r.camera,
                    "start": crate::playback::time::format_full(r.start_utc_ns),
                    "end": crate::playback::time::format_full(r.end_utc_ns),
                    "bytes": r.bytes,
                    "uploaded": r.uploaded,
                }),
            );
        }
        if let Some(u) = &self.ctx.upload {
            let st = u.snapshot();
            if self.uplink_seen != Some(st.state) {
                if self.uplink_seen.is_some() {
                    self.event(
                        "UplinkStateChanged",
                        "/device".into(),
                        json!({
                            "state": st.state,
                            "lastError": st.last_error.as_ref().map(|e| e.1.clone()),
                        }),
                    );
                }
                self.uplink_seen = Some(st.state);
                self.state_dirty = true;
            }
        }
        let errors = self
            .ctx
            .writer
            .stats()
            .storage_errors
            .load(Ordering::Relaxed);
        if errors != self.storage_errors_seen {
            self.event(
                "StorageError",
                "/device".into(),
                json!({"errors": errors - self.storage_errors_seen, "total": errors}),
            );
            self.storage_errors_seen = errors;
        }
    }

    fn on_publish(&mut self, p: &Publish) {
        let Ok(topic) = std::str::from_utf8(&p.topic) else {
            return;
        };
        let topic = topic.to_owned();
        match self.t.parse(&topic) {
            Some(Incoming::RecordingSet(cam)) => {
                let r = commands::parse_on_off(&p.payload)
                    .map(|on| commands::set_recording(&self.ctx, cam, on))
                    .unwrap_or_else(|r| r);
                if r.status != 200 {
                    self.reject(&topic, &r);
                }
            }
            Some(Incoming::Event(cam)) => {
                let r = match serde_json::from_slice::<Value>(&p.payload) {
                    Ok(v) => commands::parse_event(cam, v)
                        .map(|ev| commands::add_event(&self.ctx, ev))
                        .unwrap_or_else(|r| r),
                    Err(e) => Reply::err(400, format!("event: not JSON: {e}")),
                };
                if r.status != 200 {
                    self.reject(&topic, &r);
                }
            }
            Some(Incoming::Command(name)) => {
                let name = name.to_owned();
                let v = serde_json::from_slice::<Value>(&p.payload);
                let reply_to = v
                    .as_ref()
                    .ok()
                    .and_then(|v| v.get("replyTo").or_else(|| v.get("reply_to")))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let reply = match v {
                    Ok(v) if p.payload.is_empty() || v.is_object() => {
                        commands::execute(&self.ctx, &name, v, &self.rates)
                    }
                    Ok(_) => Reply::err(400, format!("{name}: payload must be a JSON object")),
                    Err(_) if p.payload.is_empty() => {
                        commands::execute(&self.ctx, &name, json!({}), &self.rates)
                    }
                    Err(e) => Reply::err(400, format!("{name}: payload is not JSON: {e}")),
                };
                self.reply(p.properties.as_ref(), reply_to, &name, &reply);
            }
            None => debug!(%topic, "mqtt: message on an unknown topic ignored"),
        }
    }

    /// A rejected plain-topic command: a log line and an `R/events` error event.
    fn reject(&mut self, topic: &str, r: &Reply) {
        let msg = r.body.as_ref().err().cloned().unwrap_or_default();
        warn!(%topic, status = r.status, "mqtt: command rejected: {msg}");
        self.event(
            "CommandRejected",
            "/device".into(),
            json!({"topic": topic, "status": r.status, "error": msg}),
        );
    }

    /// Sends `reply` to the MQTT 5 response topic (with the correlation data) or, for MQTT
    /// 3.1.1 clients, to `reply_to` from the payload; with neither it is only logged.
    fn reply(
        &mut self,
        props: Option<&PublishProperties>,
        reply_to: Option<String>,
        name: &str,
        reply: &Reply,
    ) {
        let response_topic = props.and_then(|p| p.response_topic.clone());
        let correlation = props.and_then(|p| p.correlation_data.clone());
        let Some(topic) = response_topic.or(reply_to) else {
            info!(
                command = name,
                status = reply.status,
                "mqtt: command without a reply topic"
            );
            return;
        };
        if !topics::valid_reply_topic(&topic) {
            warn!(
                command = name,
                "mqtt: reply topic is not a valid topic name: no reply"
            );
            return;
        }
        let body = reply.to_json().to_string();
        let props = PublishProperties {
            correlation_data: correlation,
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        if let Err(e) = self.client.try_publish_with_properties(
            topic,
            QoS::AtLeastOnce,
            false,
            body.into_bytes(),
            props,
        ) {
            warn!(command = name, "mqtt: reply not queued: {e}");
        }
    }
}

/// What the network thread reports.
enum Net {
    Connected,
    Down,
    Message(Box<Publish>),
    Disconnected,
}

/// Owns the rumqttc event loop: blocks in `recv` (a poll that is never cancelled, so buffered
/// packets are always flushed), forwards what matters, and waits 1 s to 60 s with jitter after
/// a failed attempt, since rumqttc itself would retry at once.
fn net_loop(mut conn: Connection, tx: std::sync::mpsc::Sender<Net>, stop: &AtomicBool) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 2.0, 0.2);
    let mut up = false;
    let mut down_logged = false;
    loop {
        let Ok(ev) = conn.recv() else {
            break; // every client handle is gone
        };
        let sent = match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                up = true;
                down_logged = false;
                backoff.reset();
                tx.send(Net::Connected)
            }
            Ok(Event::Incoming(Packet::Publish(p))) => tx.send(Net::Message(Box::new(p))),
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                let _ = tx.send(Net::Disconnected);
                break;
            }
            Ok(_) => Ok(()),
            Err(e) => {
                let delay = backoff.next_delay();
                if up || !down_logged {
                    warn!(
                        retry_in_s = delay.as_secs_f32(),
                        "mqtt: broker unreachable: {e}"
                    );
                    down_logged = true;
                } else {
                    debug!(
                        retry_in_s = delay.as_secs_f32(),
                        "mqtt: still unreachable: {e}"
                    );
                }
                up = false;
                let r = tx.send(Net::Down);
                let until = Instant::now() + delay;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                r
            }
        };
        if sent.is_err() || stop.load(Ordering::Relaxed) {
            break;
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "ON"
    } else {
        "OFF"
    }
}
