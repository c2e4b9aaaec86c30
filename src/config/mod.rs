//! The configuration file (TOML): parsing and every validation rule.
//!
//! A raw, serde-shaped form (`Raw*`, unknown keys rejected) is turned into the validated
//! [`Config`] that the rest of edgerec uses; every rule failure names the key and the rule.
//! Rules that come from the seeds cite them (`segment_length`: seeds `000_*`, `004_*`).
//! Runtime behaviour does not belong here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration::parse_iso8601;

#[cfg(feature = "cloud")]
pub mod cloud;
pub mod evr;
pub mod motion;
pub mod secrets;

pub use evr::{Mode, SignalGateConfig};
pub use secrets::Secrets;

/// 1 MiB = 1024 * 1024 bytes (seed `000_*`, `localMediaCacheMaximumSizeMiB`).
pub const MIB: u64 = 1024 * 1024;

/// A configuration error: which key broke which rule.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error, wrong type or unknown key (the message names the key and line).
    #[error("config syntax: {0}")]
    Syntax(String),
    /// A value broke a rule.
    #[error("config key `{key}`: {rule}")]
    Rule {
        /// Dotted key, e.g. `camera[0].segment_length`.
        key: String,
        /// The rule, in words, with the offending value.
        rule: String,
    },
}

pub(crate) fn rule(key: impl Into<String>, rule: impl Into<String>) -> ConfigError {
    ConfigError::Rule {
        key: key.into(),
        rule: rule.into(),
    }
}

/// A table this build cannot act on: the cargo feature of the same name was left out (a
/// record-only firmware image). Refused rather than ignored, so nobody believes footage goes to
/// the cloud when it cannot.
fn left_out(table: &str) -> ConfigError {
    rule(
        table,
        format!(
            "this build of edgerec has no {table} support (cargo feature `{table}` left out): \
             remove [{table}] or install a build with it"
        ),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    device_id: Option<String>,
    storage: RawStorage,
    #[serde(default)]
    pipeline: RawPipeline,
    #[serde(default)]
    camera: Vec<RawCamera>,
    #[serde(default)]
    http: RawHttp,
    mqtt: Option<RawMqtt>,
    upload: Option<RawUpload>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpload {
    url: String,
    endpoint: Option<String>,
    region: Option<String>,
    #[serde(default)]
    path_style: bool,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    account: Option<String>,
    access_key: Option<String>,
    access_key_file: Option<PathBuf>,
    #[serde(default)]
    max_rate_kbps: u64,
    #[serde(default = "default_multipart_mib")]
    multipart_threshold_mib: u64,
}

fn default_multipart_mib() -> u64 {
    16
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    url: String,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default = "default_topic_prefix")]
    topic_prefix: String,
    #[serde(default = "default_state_interval")]
    state_interval: String,
    #[serde(default = "default_keep_alive")]
    keep_alive: String,
    #[serde(default)]
    home_assistant_discovery: bool,
    client_id: Option<String>,
}

fn default_topic_prefix() -> String {
    "edgerec".into()
}
fn default_state_interval() -> String {
    "PT30S".into()
}
fn default_keep_alive() -> String {
    "PT30S".into()
}

/// CA bundle used for `mqtts://` when `ca_file` is not given (Debian's and Yocto's
/// `ca-certificates`).
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHttp {
    listen: String,
    token_file: Option<PathBuf>,
    max_export: Option<String>,
    public_url: Option<String>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: DEFAULT_HTTP_LISTEN.into(),
            token_file: None,
            max_export: None,
            public_url: None,
        }
    }
}

/// Default `[http] listen`: loopback only (DESIGN section 6).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: PathBuf,
    index_path: Option<PathBuf>,
    max_size_mib: u64,
    #[serde(default = "default_min_free")]
    min_free_mib: u64,
    #[serde(default = "default_segment_length")]
    segment_length: String,
    #[serde(default = "default_sync_interval")]
    sync_interval: String,
}

fn default_min_free() -> u64 {
    256
}
fn default_segment_length() -> String {
    "PT30S".into()
}
fn default_sync_interval() -> String {
    "PT0S".into()
}

/// GStreamer element factory names; a board's hardware-accelerated elements can take over here.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RawPipeline {
    /// RTP depayloader for H.264 (default `rtph264depay`).
    pub h264_depay: String,
    /// RTP depayloader for H.265 (default `rtph265depay`).
    pub h265_depay: String,
    /// H.264 parser (default `h264parse`).
    pub h264_parse: String,
    /// H.265 parser (default `h265parse`).
    pub h265_parse: String,
    /// Element that computes DTS for H.264 (default `h264timestamper`); the muxer needs DTS.
    pub h264_timestamper: String,
    /// Element that computes DTS for H.265 (default `h265timestamper`).
    pub h265_timestamper: String,
    /// Fragmented-MP4 muxer (default `isofmp4mux`).
    pub muxer: String,
    /// G.711 µ-law decoder (default `mulawdec`), for `audio = "auto"` cameras that send PCMU.
    pub mulaw_decoder: String,
    /// G.711 A-law decoder (default `alawdec`), for PCMA.
    pub alaw_decoder: String,
    /// AAC-LC encoder that G.711 is re-encoded with (default `voaacenc`, from gst-plugins-bad:
    /// about 18 times less CPU than `avenc_aac` for 8 kHz speech, `bench/record.sh audio`;
    /// `avenc_aac`, `fdkaacenc` or a board's hardware encoder can take over). It must accept raw audio through
    /// `audioconvert` at the camera's sample rate and give `audio/mpeg, mpegversion=4,
    /// stream-format=raw`.
    pub aac_encoder: String,
}

impl Default for RawPipeline {
    fn default() -> Self {
        Self {
            h264_depay: "rtph264depay".into(),
            h265_depay: "rtph265depay".into(),
            h264_parse: "h264parse".into(),
            h265_parse: "h265parse".into(),
            h264_timestamper: "h264timestamper".into(),
            h265_timestamper: "h265timestamper".into(),
            muxer: "isofmp4mux".into(),
            mulaw_decoder: "mulawdec".into(),
            alaw_decoder: "alawdec".into(),
            aac_encoder: "voaacenc".into(),
        }
    }
}

/// Element names used to build each camera's pipeline.
pub type PipelineElements = RawPipeline;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    id: String,
    url: String,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default = "default_transport")]
    transport: String,
    source: Option<String>,
    retention: Option<String>,
    segment_length: Option<String>,
    #[serde(default = "default_fragment_duration")]
    fragment_duration: String,
    latency_ms: Option<u32>,
    #[serde(default = "default_stall_timeout")]
    stall_timeout: String,
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default = "default_time_source")]
    time_source: String,
    #[serde(default = "default_mode")]
    mode: String,
    #[serde(default = "default_audio")]
    audio: String,
    signal_gate: Option<evr::RawSignalGate>,
    motion: Option<motion::RawMotion>,
}

fn default_mode() -> String {
    "cvr".into()
}

fn default_audio() -> String {
    "off".into()
}

/// Whether a camera's sound is recorded (`audio` in `[[camera]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audio {
    /// Video only (default: recording sound is a legal question in many places).
    Off,
    /// The camera's first audio stream, if it has one: AAC (RTP `MPEG4-GENERIC`) as it comes,
    /// G.711 (`PCMU`, `PCMA`) re-encoded to AAC-LC at its own sample rate; any other codec is
    /// left out with a warning per run. Needs `source = "retina"` (docs/recording.md).
    Auto,
}

impl Audio {
    /// The config word: `off` or `auto`.
    pub fn as_str(self) -> &'static str {
        match self {
            Audio::Off => "off",
            Audio::Auto => "auto",
        }
    }
}

fn default_time_source() -> String {
    "system".into()
}

/// Where a fragment's UTC time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// The gateway's system clock at the start of a run, plus media time (default).
    System,
    /// The camera's clock, from its RTCP sender reports (via the muxer's `prft` boxes), plus
    /// media time; falls back to the system clock if no sender report arrives within 5 s.
    Rtcp,
}

fn default_transport() -> String {
    "tcp".into()
}
fn default_fragment_duration() -> String {
    "PT1S".into()
}
fn default_stall_timeout() -> String {
    "PT10S".into()
}
fn default_true() -> bool {
    true
}

/// The RTSP client that reads a camera (`source` in `[[camera]]`); docs/recording.md says when
/// to pick which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The `retina` crate on the recorder's one RTSP thread, frames pushed straight into the
    /// camera's pipeline (default for `rtsp://` over TCP: about half the CPU of `rtspsrc`).
    Retina,
    /// GStreamer's `rtspsrc` (default for `rtsps://` and UDP, which retina does not do well).
    Rtspsrc,
}

impl Source {
    /// The config word: `retina` or `rtspsrc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Retina => "retina",
            Source::Rtspsrc => "rtspsrc",
        }
    }
}

/// RTP transport between camera and recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RTP interleaved in the RTSP TCP connection (default; survives NAT and lossy links).
    Tcp,
    /// RTP over UDP.
    Udp,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Device id used in MQTT topics and object keys (default: the host name).
    pub device_id: String,
    /// Storage settings.
    pub storage: StorageConfig,
    /// GStreamer element names.
    pub pipeline: PipelineElements,
    /// Cameras, in file order; ids are unique.
    pub cameras: Vec<CameraConfig>,
    /// The playback and status HTTP server.
    pub http: HttpConfig,
    /// MQTT control and status; `None` without an `[mqtt]` table.
    pub mqtt: Option<MqttConfig>,
    /// Upload to object storage; `None` without an `[upload]` table.
    pub upload: Option<UploadConfig>,
}

/// Where segments are uploaded (seed `000_*`; DESIGN section 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadTarget {
    /// S3 or an S3-compatible store (MinIO, Ceph, Garage, R2): `s3://bucket/prefix`.
    S3 {
        /// Bucket name.
        bucket: String,
    },
    /// Azure Blob Storage: `az://container/prefix`.
    Azure {
        /// Container name.
        container: String,
    },
    /// A mounted share: `file:///mnt/share/prefix` (the directory must exist).
    File {
        /// Root directory.
        root: PathBuf,
    },
}

/// `[upload]`. Credentials come from here or from the standard environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`;
/// `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`); they are never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadConfig {
    /// The store.
    pub target: UploadTarget,
    /// Key prefix inside the bucket or container (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// Endpoint of an S3-compatible store or of Azurite, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// S3 region (default `us-east-1`).
    pub region: Option<String>,
    /// S3 path-style requests (`endpoint/bucket/key`), as most S3-compatible stores need.
    pub path_style: bool,
    /// S3 access key id and secret.
    pub s3_credentials: Option<(String, String)>,
    /// Azure storage account and key.
    pub azure_account: Option<(String, Option<String>)>,
    /// Average upload rate cap, kbit/s (0: none), for cellular uplinks.
    pub max_rate_kbps: u64,
    /// Segments larger than this go up as multipart uploads, bytes.
    pub multipart_threshold_bytes: u64,
}

impl std::fmt::Debug for UploadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadConfig")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("credentials", &"<redacted>")
            .field("max_rate_kbps", &self.max_rate_kbps)
            .finish()
    }
}

/// Validates `[upload]`.
pub(crate) fn upload_config(mut u: RawUpload, read: bool) -> Result<UploadConfig, ConfigError> {
    u.secret_access_key = secrets::secret(
        "upload.secret_access_key",
        u.secret_access_key.take(),
        u.secret_access_key_file.take(),
        read,
    )?;
    u.access_key = secrets::secret(
        "upload.access_key",
        u.access_key.take(),
        u.access_key_file.take(),
        read,
    )?;
    let bad = |why: &str| {
        rule(
            "upload.url",
            format!(
                "{why}: expected s3://bucket[/prefix], az://container[/prefix] or file:///dir[/prefix], got {:?}",
                u.url
            ),
        )
    };
    let (scheme, rest) = u.url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let rest = rest.trim_end_matches('/');
    let (target, prefix) = match scheme {
        "s3" | "az" => {
            let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let ok = !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.'
                });
            if !ok {
                return Err(bad("bucket or container names are 1 to 63 of [a-z0-9.-]"));
            }
            let t = if scheme == "s3" {
                UploadTarget::S3 {
                    bucket: name.into(),
                }
            } else {
                UploadTarget::Azure {
                    container: name.into(),
                }
            };
            (t, prefix.to_owned())
        }
        "file" => {
            if !rest.starts_with('/') {
                return Err(bad("a file URL needs an absolute path"));
            }
            (
                UploadTarget::File {
                    root: PathBuf::from(rest),
                },
                String::new(),
            )
        }
        _ => return Err(bad("unknown scheme")),
    };
    if prefix.split('/').any(|l| l == "." || l == "..")
        || prefix.contains("//")
        || prefix.contains(['\\', '\0'])
    {
        return Err(bad("the prefix may not contain empty, . or .. levels"));
    }
    if let Some(e) = &u.endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(rule(
                "upload.endpoint",
                format!("must be an http:// or https:// URL, got {e:?}"),
            ));
        }
    }
    let s3_credentials = match (u.access_key_id, u.secret_access_key) {
        (Some(a), Some(s)) => Some((a, s)),
        (None, None) => None,
        _ => {
            return Err(rule(
                "upload.access_key_id",
                "access_key_id and secret_access_key go together (or use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
            ))
        }
    };
    let is_s3 = matches!(target, UploadTarget::S3 { .. });
    let is_az = matches!(target, UploadTarget::Azure { .. });
    if !is_s3 && (s3_credentials.is_some() || u.region.is_some() || u.path_style) {
        return Err(rule(
            "upload.access_key_id",
            "access_key_id, secret_access_key, region and path_style are for s3:// URLs",
        ));
    }
    if !is_az && (u.account.is_some() || u.access_key.is_some()) {
        return Err(rule(
            "upload.account",
            "account and access_key are for az:// URLs",
        ));
    }
    if u.access_key.is_some() && u.account.is_none() {
        return Err(rule(
            "upload.account",
            "is required when upload.access_key is set",
        ));
    }
    if u.multipart_threshold_mib < 5 || u.multipart_threshold_mib > 1024 {
        return Err(rule(
            "upload.multipart_threshold_mib",
            "must be 5 to 1024 (S3 parts are at least 5 MiB)",
        ));
    }
    Ok(UploadConfig {
        target,
        prefix,
        endpoint: u.endpoint,
        region: u.region,
        path_style: u.path_style,
        s3_credentials,
        azure_account: u.account.map(|a| (a, u.access_key)),
        max_rate_kbps: u.max_rate_kbps,
        multipart_threshold_bytes: u.multipart_threshold_mib * MIB,
    })
}

/// `[mqtt]`: control and status over an MQTT broker (DESIGN section 7).
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Broker host name or IP.
    pub host: String,
    /// Broker port (default 1883 for `mqtt://`, 8883 for `mqtts://`).
    pub port: u16,
    /// TLS (`mqtts://`).
    pub tls: bool,
    /// CA certificates (PEM) that verify the broker; default [`DEFAULT_CA_FILE`].
    pub ca_file: PathBuf,
    /// Client certificate and key (PEM) for mutual TLS: both or neither.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// Password (never logged).
    pub password: Option<String>,
    /// First topic level; the root is `<topic_prefix>/<device_id>`.
    pub topic_prefix: String,
    /// How often `state` is published when nothing changed.
    pub state_interval: Duration,
    /// MQTT keep-alive; the broker publishes the last will after 1.5 of these without a packet.
    pub keep_alive: Duration,
    /// Publish Home Assistant MQTT discovery configs.
    pub home_assistant_discovery: bool,
    /// Stable client id (default `edgerec-<device_id>`), so the broker keeps the session.
    pub client_id: String,
}

/// Whether `s` can be used inside an MQTT topic without changing its levels: non-empty, no
/// wildcards (`+`, `#`), no NUL, and no empty level.
pub fn valid_topic_path(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(['+', '#', '\0'])
        && s.split('/').all(|l| !l.is_empty())
        && s.len() <= 128
}

/// Validates `[mqtt]`.
fn mqtt_config(mut m: RawMqtt, device_id: &str, read: bool) -> Result<MqttConfig, ConfigError> {
    m.password = secrets::secret(
        "mqtt.password",
        m.password.take(),
        m.password_file.take(),
        read,
    )?;
    let (tls, rest) = if let Some(r) = m.url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = m.url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(rule(
            "mqtt.url",
            format!(
                "must be mqtt://host[:port] or mqtts://host[:port], got {:?}",
                m.url
            ),
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
            let port: u16 = p
                .parse()
                .map_err(|_| rule("mqtt.url", format!("port must be 1 to 65535, got {p:?}")))?;
            (
                h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                port,
            )
        }
        _ => (rest.to_owned(), if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) || port == 0 {
        return Err(rule(
            "mqtt.url",
            format!("must name a host and a port (1 to 65535), got {:?}", m.url),
        ));
    }
    let client_cert = match (m.cert_file, m.key_file) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(rule(
            "mqtt.cert_file",
            "cert_file and key_file go together: give both for a client certificate, or neither",
        )),
    };
    if !tls && (client_cert.is_some() || m.ca_file.is_some()) {
        return Err(rule(
            "mqtt.url",
            "ca_file, cert_file and key_file need TLS: use mqtts://",
        ));
    }
    if m.password.is_some() && m.username.is_none() {
        return Err(rule(
            "mqtt.username",
            "is required when mqtt.password is set",
        ));
    }
    if !valid_topic_path(&m.topic_prefix) {
        return Err(rule(
            "mqtt.topic_prefix",
            format!(
                "must be topic levels without wildcards (+, #), empty levels or NUL, at most 128 bytes, got {:?}",
                m.topic_prefix
            ),
        ));
    }
    let state_interval = duration_key("mqtt.state_interval", &m.state_interval)?;
    if state_interval < Duration::from_secs(1) {
        return Err(rule("mqtt.state_interval", "must be at least PT1S"));
    }
    let keep_alive = duration_key("mqtt.keep_alive", &m.keep_alive)?;
    if keep_alive < Duration::from_secs(5) || keep_alive > Duration::from_secs(3600) {
        return Err(rule("mqtt.keep_alive", "must be from PT5S to PT1H"));
    }
    let client_id = m
        .client_id
        .unwrap_or_else(|| format!("edgerec-{device_id}"));
    if client_id.is_empty() || client_id.len() > 64 || !client_id.is_ascii() {
        return Err(rule("mqtt.client_id", "must be 1 to 64 ASCII characters"));
    }
    Ok(MqttConfig {
        host,
        port,
        tls,
        ca_file: m.ca_file.unwrap_or_else(|| PathBuf::from(DEFAULT_CA_FILE)),
        client_cert,
        username: m.username,
        password: m.password,
        topic_prefix: m.topic_prefix,
        state_interval,
        keep_alive,
        home_assistant_discovery: m.home_assistant_discovery,
        client_id,
    })
}

/// `[http]`: the playback and status server (DESIGN section 6).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address and port to listen on; `None` when `listen = "off"`.
    pub listen: Option<std::net::SocketAddr>,
    /// File of access tokens, one per line (blank lines and `#` comments ignored). Required when
    /// `listen` is not a loopback address; when set, every route but `/healthz` needs a token.
    pub token_file: Option<PathBuf>,
    /// Longest time range one MP4 export may span (`max_export`, default [`DEFAULT_MAX_EXPORT`],
    /// PT1M to P1D); longer requests get 400.
    pub max_export: Duration,
    /// Where people reach this recorder's browser page (`public_url`, an `http://` or
    /// `https://` URL), announced to Home Assistant as the device's `configuration_url`. `None`
    /// when not set and `listen` is loopback, unspecified (`0.0.0.0`) or `off`; a specific
    /// address gives `http://<listen>/`.
    pub public_url: Option<String>,
}

/// Default of `http.max_export`: 6 hours.
pub const DEFAULT_MAX_EXPORT: Duration = Duration::from_secs(6 * 3600);

/// `[storage]`: the local media cache (seed `000_*`: `localMediaCachePath`, `localMediaCacheMaximumSizeMiB`).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Root of the media tree and (by default) of the index.
    pub path: PathBuf,
    /// The SQLite index file (default `<path>/index.sqlite3`).
    pub index_path: PathBuf,
    /// Upper bound for all media plus the index, in bytes (allocated, not file lengths).
    pub max_size_bytes: u64,
    /// Free space to keep on the filesystem, in bytes.
    pub min_free_bytes: u64,
    /// Default segment length (PT30S..PT5M in 30 s steps).
    pub segment_length: Duration,
    /// How often the open segment is `fdatasync`ed: zero means after every fragment.
    pub sync_interval: Duration,
}

/// One `[[camera]]`.
#[derive(Clone)]
pub struct CameraConfig {
    /// Camera id, `[a-z0-9][a-z0-9_-]{0,63}` (DESIGN section 2).
    pub id: String,
    /// RTSP URL; may hold credentials, so it is never logged (see [`CameraConfig::redacted_url`]).
    pub url: String,
    /// RTSP user name, if not in the URL.
    pub username: Option<String>,
    /// RTSP password, if not in the URL.
    pub password: Option<String>,
    /// RTP transport.
    pub transport: Transport,
    /// The RTSP client.
    pub source: Source,
    /// Delete media older than this (optional).
    pub retention: Option<Duration>,
    /// Segment length for this camera.
    pub segment_length: Duration,
    /// Target fragment duration given to the muxer; a fragment always ends at a keyframe, so with
    /// a value at or below the camera's GOP every fragment is exactly one GOP.
    pub fragment_duration: Duration,
    /// rtspsrc jitter-buffer latency in milliseconds (default 0 over TCP, 200 over UDP).
    pub latency_ms: u32,
    /// No data for this long on a connected camera counts as a loss and the pipeline is rebuilt.
    pub stall_timeout: Duration,
    /// Whether recording is on at start.
    pub enabled: bool,
    /// Where fragment times come from.
    pub time_source: TimeSource,
    /// Whether the camera's sound is recorded.
    pub audio: Audio,
    /// CVR (keep everything) or EVR (keep clips around events); seed `001_*`.
    pub mode: Mode,
    /// The signal gate: how events make clips (EVR cameras; clips on CVR cameras too).
    pub signal_gate: SignalGateConfig,
    /// Motion detection (`[camera.motion]`); `None` when off.
    pub motion: Option<motion::MotionConfig>,
}

impl std::fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraConfig")
            .field("id", &self.id)
            .field("url", &self.redacted_url())
            .field("transport", &self.transport)
            .field("source", &self.source)
            .field("audio", &self.audio)
            .field("segment_length", &self.segment_length)
            .finish_non_exhaustive()
    }
}

impl CameraConfig {
    /// The URL with any `user:password@` part replaced by `***@`, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// Replaces the userinfo of a URL with `***`.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    url.to_owned()
}

/// The camera's RTSP client: `retina` or `rtspsrc` when `value` names one, otherwise `retina`
/// for an `rtsp://` URL over TCP and `rtspsrc` for `rtsps://` or UDP.
///
/// Errors: an unknown word, or `retina` asked for what it does not do (TLS, UDP), naming `key`.
pub fn camera_source(
    key: &str,
    value: Option<&str>,
    url: &str,
    transport: Transport,
) -> Result<Source, ConfigError> {
    let tls = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("rtsps://"));
    match value {
        None if tls || transport == Transport::Udp => Ok(Source::Rtspsrc),
        None | Some("retina") if tls => Err(rule(
            key.to_string(),
            "retina does not do rtsps:// (TLS): use source = \"rtspsrc\"",
        )),
        None | Some("retina") if transport == Transport::Udp => Err(rule(
            key.to_string(),
            "retina has no reorder buffer for UDP: use source = \"rtspsrc\" or transport = \"tcp\"",
        )),
        None | Some("retina") => Ok(Source::Retina),
        Some("rtspsrc") => Ok(Source::Rtspsrc),
        Some(other) => Err(rule(
            key.to_string(),
            format!("must be retina or rtspsrc, got {other:?}"),
        )),
    }
}

/// Validates a camera id: `[a-z0-9][a-z0-9_-]{0,63}` (DESIGN section 2).
pub fn valid_camera_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// Checks an RTSP URL with the `url` crate (WHATWG URL parsing): `rtsp://` or `rtsps://`, a
/// host, and a port of 1 to 65535 if one is given (`rtsp://h:55x/s` is refused here, not at run
/// time). The message never shows credentials.
///
/// Errors: a [`ConfigError::Rule`] naming `key`.
pub fn check_rtsp_url(key: &str, v: &str) -> Result<(), ConfigError> {
    let u =
        url::Url::parse(v).map_err(|e| rule(key, format!("not a URL ({e}): {}", redact_url(v))))?;
    if !matches!(u.scheme(), "rtsp" | "rtsps") {
        return Err(rule(
            key,
            format!("must start with rtsp:// or rtsps://, got {}", redact_url(v)),
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(rule(key, format!("names no host: {}", redact_url(v))));
    }
    if u.port() == Some(0) {
        return Err(rule(
            key,
            format!("port must be 1 to 65535: {}", redact_url(v)),
        ));
    }
    Ok(())
}

/// Checks a segment length against the seeds' rule (`000_*` "segmented recording", `004_*`):
/// at least 30 s, at most 5 minutes, in steps of 30 s.
pub fn check_segment_length(d: Duration) -> Result<(), String> {
    if d < Duration::from_secs(30)
        || d > Duration::from_secs(300)
        || !d.as_nanos().is_multiple_of(30_000_000_000)
    {
        return Err(format!(
            "must be PT30S to PT5M in steps of 30 s (seed 000: segmentLength), got {}",
            crate::duration::format_iso8601(d)
        ));
    }
    Ok(())
}

pub(crate) fn duration_key(key: &str, value: &str) -> Result<Duration, ConfigError> {
    parse_iso8601(value).map_err(|e| rule(key, e.to_string()))
}

/// Validates `[http]`: `listen` is `host:port` with a literal IP (or `off`); a non-loopback
/// address needs a `token_file`, so that footage is never served to the network unauthenticated.
pub(crate) fn http_config(h: RawHttp) -> Result<HttpConfig, ConfigError> {
    let max_export = match &h.max_export {
        None => DEFAULT_MAX_EXPORT,
        Some(v) => {
            let d = duration_key("http.max_export", v)?;
            if d < Duration::from_secs(60) || d > Duration::from_secs(24 * 3600) {
                return Err(rule("http.max_export", "must be PT1M to P1D"));
            }
            d
        }
    };
    let public_url = match &h.public_url {
        None => None,
        Some(v) => match url::Url::parse(v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                Some(u.to_string())
            }
            _ => {
                return Err(rule(
                    "http.public_url",
                    format!("must be an http:// or https:// URL with a host, got {v:?}"),
                ))
            }
        },
    };
    if h.listen == "off" {
        return Ok(HttpConfig {
            listen: None,
            token_file: h.token_file,
            max_export,
            public_url,
        });
    }
    let addr: std::net::SocketAddr = h.listen.parse().map_err(|_| {
        rule(
            "http.listen",
            format!(
                "must be IP:port (e.g. 127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080) or \"off\", got {:?}",
                h.listen
            ),
        )
    })?;
    if !addr.ip().is_loopback() && h.token_file.is_none() {
        return Err(rule(
            "http.token_file",
            format!(
                "is required when http.listen ({addr}) is not a loopback address: playback outside \
                 the gateway needs access tokens"
            ),
        ));
    }
    let public_url = public_url.or_else(|| {
        (!addr.ip().is_loopback() && !addr.ip().is_unspecified()).then(|| format!("http://{addr}/"))
    });
    Ok(HttpConfig {
        listen: Some(addr),
        token_file: h.token_file,
        max_export,
        public_url,
    })
}

impl Config {
    /// Reads and validates a config file, secret files (`*_file`, [`secrets`]) included.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, Secrets::Read)
    }

    /// Reads and validates a config file; with [`Secrets::Skip`] the secret files are not read
    /// (their secrets stay unset), for commands that do not talk to cameras or servers (`fsck`,
    /// run by hand, where systemd credentials are not there).
    pub fn load_with(path: &Path, secrets: Secrets) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse_with(&text, secrets)
    }

    /// Parses and validates config text, secret files included.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(text, Secrets::Read)
    }

    /// Parses and validates config text; see [`Config::load_with`] for `secrets`.
    pub fn parse_with(text: &str, secrets: Secrets) -> Result<Config, ConfigError> {
        let read = secrets == Secrets::Read;
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let device_id = match raw.device_id {
            Some(d) => d,
            None => hostname(),
        };
        if device_id.is_empty()
            || device_id.len() > 64
            || !device_id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
        {
            return Err(rule(
                "device_id",
                format!("must be 1 to 64 of [A-Za-z0-9._-], got {device_id:?}"),
            ));
        }
        let s = raw.storage;
        if s.path.as_os_str().is_empty() {
            return Err(rule("storage.path", "must not be empty"));
        }
        if s.max_size_mib < 8 {
            return Err(rule(
                "storage.max_size_mib",
                format!("must be at least 8 (MiB), got {}", s.max_size_mib),
            ));
        }
        let segment_length = duration_key("storage.segment_length", &s.segment_length)?;
        check_segment_length(segment_length).map_err(|r| rule("storage.segment_length", r))?;
        let sync_interval = duration_key("storage.sync_interval", &s.sync_interval)?;
        if sync_interval > Duration::from_secs(60) {
            return Err(rule("storage.sync_interval", "must be at most PT60S"));
        }
        let storage = StorageConfig {
            index_path: s.index_path.unwrap_or_else(|| s.path.join("index.sqlite3")),
            path: s.path,
            max_size_bytes: s.max_size_mib * MIB,
            min_free_bytes: s.min_free_mib * MIB,
            segment_length,
            sync_interval,
        };
        let mut cameras: Vec<CameraConfig> = Vec::new();
        for (i, c) in raw.camera.into_iter().enumerate() {
            let k = |f: &str| format!("camera[{i}].{f}");
            if !valid_camera_id(&c.id) {
                return Err(rule(
                    k("id"),
                    format!("must match [a-z0-9][a-z0-9_-]{{0,63}}, got {:?}", c.id),
                ));
            }
            if cameras.iter().any(|o| o.id == c.id) {
                return Err(rule(k("id"), format!("duplicate camera id {:?}", c.id)));
            }
            check_rtsp_url(&k("url"), &c.url)?;
            let password = secrets::secret(&k("password"), c.password, c.password_file, read)?;
            if !(c.url.starts_with("rtsp://") || c.url.starts_with("rtsps://")) {
                return Err(rule(
                    k("url"),
                    format!(
                        "must start with rtsp:// or rtsps://, got {}",
                        redact_url(&c.url)
                    ),
                ));
            }
            let transport = match c.transport.as_str() {
                "tcp" => Transport::Tcp,
                "udp" => Transport::Udp,
                other => {
                    return Err(rule(
                        k("transport"),
                        format!("must be tcp or udp, got {other:?}"),
                    ))
                }
            };
            let retention = match c.retention {
                Some(r) => {
                    let d = duration_key(&k("retention"), &r)?;
                    if d < Duration::from_secs(60) {
                        return Err(rule(k("retention"), "must be at least PT1M"));
                    }
                    Some(d)
                }
                None => None,
            };
            let segment_length = match c.segment_length {
                Some(v) => {
                    let d = duration_key(&k("segment_length"), &v)?;
                    check_segment_length(d).map_err(|r| rule(k("segment_length"), r))?;
                    d
                }
                None => storage.segment_length,
            };
            let fragment_duration = duration_key(&k("fragment_duration"), &c.fragment_duration)?;
            if fragment_duration < Duration::from_millis(100)
                || fragment_duration > Duration::from_secs(10)
            {
                return Err(rule(k("fragment_duration"), "must be PT0.1S to PT10S"));
            }
            let stall_timeout = duration_key(&k("stall_timeout"), &c.stall_timeout)?;
            if stall_timeout < Duration::from_secs(2) || stall_timeout > Duration::from_secs(120) {
                return Err(rule(k("stall_timeout"), "must be PT2S to PT2M"));
            }
            // TCP delivers in order, so no reordering delay is needed; UDP gets 200 ms.
            let latency_ms = c.latency_ms.unwrap_or(match transport {
                Transport::Tcp => 0,
                Transport::Udp => 200,
            });
            let time_source = match c.time_source.as_str() {
                "system" => TimeSource::System,
                "rtcp" => TimeSource::Rtcp,
                other => {
                    return Err(rule(
                        k("time_source"),
                        format!("must be system or rtcp, got {other:?}"),
                    ))
                }
            };
            let source = camera_source(&k("source"), c.source.as_deref(), &c.url, transport)?;
            let audio = match c.audio.as_str() {
                "off" => Audio::Off,
                "auto" if source == Source::Rtspsrc => {
                    return Err(rule(
                        k("audio"),
                        "audio is recorded with source = \"retina\" only (rtsp:// over TCP); \
                         this camera uses rtspsrc",
                    ))
                }
                "auto" => Audio::Auto,
                other => {
                    return Err(rule(
                        k("audio"),
                        format!("must be off or auto, got {other:?}"),
                    ))
                }
            };
            if latency_ms > 10_000 {
                return Err(rule(k("latency_ms"), "must be at most 10000"));
            }
            let mode = evr::mode(&k("mode"), &c.mode)?;
            let signal_gate = evr::signal_gate(i, c.signal_gate, retention)?;
            let motion = motion::motion(i, c.motion)?;
            cameras.push(CameraConfig {
                id: c.id,
                url: c.url,
                username: c.username,
                password,
                transport,
                source,
                retention,
                segment_length,
                fragment_duration,
                latency_ms,
                stall_timeout,
                enabled: c.enabled,
                time_source,
                audio,
                mode,
                signal_gate,
                motion,
            });
        }
        let http = http_config(raw.http)?;
        let mqtt = raw
            .mqtt
            .map(|m| mqtt_config(m, &device_id, read))
            .transpose()?;
        // `{device_id}` in the URL: one config template for a fleet, each gateway under its own
        // folder (the layout `edgerec serve` reads, docs/cloud.md).
        let upload = raw
            .upload
            .map(|mut u| {
                u.url = u.url.replace("{device_id}", &device_id);
                upload_config(u, read)
            })
            .transpose()?;
        if mqtt.is_some() && !cfg!(feature = "mqtt") {
            return Err(left_out("mqtt"));
        }
        if upload.is_some() && !cfg!(feature = "upload") {
            return Err(left_out("upload"));
        }
        Ok(Config {
            device_id,
            storage,
            pipeline: raw.pipeline,
            cameras,
            http,
            mqtt,
            upload,
        })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "edgerec".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_segment(len: &str) -> String {
        format!(
            "device_id = \"gw-01\"\n[storage]\npath = \"/tmp/x\"\nmax_size_mib = 64\nsegment_length = \"{len}\"\n\
             [[camera]]\nid = \"front-door\"\nurl = \"rtsp://u:p@192.0.2.10/s\"\n"
        )
    }

    #[test]
    fn the_source_defaults_to_retina_where_retina_works_and_refuses_it_elsewhere() {
        let parse = |extra: &str| Config::parse(&(with_segment("PT30S") + extra));
        assert_eq!(parse("").unwrap().cameras[0].source, Source::Retina);
        let udp = parse("transport = \"udp\"\n").unwrap();
        assert_eq!(udp.cameras[0].source, Source::Rtspsrc);
        let explicit = parse("source = \"rtspsrc\"\n").unwrap();
        assert_eq!(explicit.cameras[0].source, Source::Rtspsrc);
        for bad in [
            "source = \"retina\"\ntransport = \"udp\"\n",
            "source = \"gstreamer\"\n",
        ] {
            assert_eq!(key_of(parse(bad).unwrap_err()), "camera[0].source", "{bad}");
        }
        let tls = |source: &str| {
            Config::parse(&(with_segment("PT30S").replace("rtsp://", "rtsps://") + source))
        };
        assert_eq!(tls("").unwrap().cameras[0].source, Source::Rtspsrc);
        let e = tls("source = \"retina\"\n").unwrap_err();
        assert!(e.to_string().contains("rtsps://"), "{e}");
        assert_eq!(key_of(e), "camera[0].source");
    }

    #[test]
    fn audio_is_off_unless_asked_for_and_needs_retina() {
        let parse = |extra: &str| Config::parse(&(with_segment("PT30S") + extra));
        assert_eq!(parse("").unwrap().cameras[0].audio, Audio::Off);
        assert_eq!(
            parse("audio = \"auto\"\n").unwrap().cameras[0].audio,
            Audio::Auto
        );
        for bad in [
            "audio = \"on\"\n",
            "audio = \"auto\"\nsource = \"rtspsrc\"\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(key_of(e), "camera[0].audio", "{bad}");
        }
    }

    #[test]
    fn rtsp_urls_are_checked_when_the_config_is_read() {
        let cam = |url: &str| {
            format!(
                "[storage]\npath = \"/tmp/x\"\nmax_size_mib = 64\n[[camera]]\nid = \"c\"\nurl = \"{url}\"\n"
            )
        };
        for (url, words) in [
            ("rtsp://h:55x/s", "invalid port"),
            ("rtsp://admin:pw@h:70000/s", "invalid port"),
            ("rtsp://admin:pw@h:0/s", "1 to 65535"),
            ("http://h/s", "rtsp://"),
            ("rtsp:///s", "host"),
        ] {
            match Config::parse(&cam(url)).unwrap_err() {
                ConfigError::Rule { key, rule } => {
                    assert_eq!(key, "camera[0].url", "{url}");
                    assert!(rule.contains(words), "{url}: {rule}");
                    assert!(!rule.contains("pw"), "credentials in {rule}");
                }
                e => panic!("{url}: {e}"),
            }
        }
        assert!(Config::parse(&cam("rtsp://u:p@[2001:db8::1]:8554/a?b=c")).is_ok());
        assert!(Config::parse(&cam("rtsps://cam.example/s")).is_ok());
    }

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Rule { key, .. } => key,
            other => panic!("expected a rule error, got {other}"),
        }
    }

    #[test]
    fn segment_length_rule_from_seed_000() {
        for ok in ["PT30S", "PT1M", "PT90S", "PT5M"] {
            Config::parse(&with_segment(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["PT45S", "PT5M30S", "PT0S", "PT29S", "PT6M", "P1D"] {
            let e = Config::parse(&with_segment(bad)).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("steps of 30 s"), "{bad}: {msg}");
            assert_eq!(key_of(e), "storage.segment_length");
        }
        let e = Config::parse(&with_segment("30 seconds")).unwrap_err();
        assert_eq!(key_of(e), "storage.segment_length");
    }

    #[test]
    fn per_camera_override_is_checked() {
        let t = with_segment("PT30S") + "segment_length = \"PT45S\"\n";
        assert_eq!(
            key_of(Config::parse(&t).unwrap_err()),
            "camera[0].segment_length"
        );
        let t = with_segment("PT30S") + "segment_length = \"PT1M\"\n";
        assert_eq!(
            Config::parse(&t).unwrap().cameras[0].segment_length,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let t = with_segment("PT30S") + "colour = \"red\"\n";
        let msg = Config::parse(&t).unwrap_err().to_string();
        assert!(msg.contains("colour"), "{msg}");
        let t = with_segment("PT30S").replace("max_size_mib", "max_size_mb");
        assert!(Config::parse(&t)
            .unwrap_err()
            .to_string()
            .contains("max_size_mb"));
    }

    #[test]
    fn camera_rules() {
        let bad_id = with_segment("PT30S").replace("front-door", "Front Door");
        assert_eq!(key_of(Config::parse(&bad_id).unwrap_err()), "camera[0].id");
        let dup = with_segment("PT30S") + "[[camera]]\nid = \"front-door\"\nurl = \"rtsp://h/s\"\n";
        assert_eq!(key_of(Config::parse(&dup).unwrap_err()), "camera[1].id");
        let http = with_segment("PT30S").replace("rtsp://u:p@", "http://u:p@");
        let e = Config::parse(&http).unwrap_err().to_string();
        assert!(e.contains("camera[0].url") && !e.contains("u:p"), "{e}");
        let udp = with_segment("PT30S") + "transport = \"sctp\"\n";
        assert_eq!(
            key_of(Config::parse(&udp).unwrap_err()),
            "camera[0].transport"
        );
        let ret = with_segment("PT30S") + "retention = \"P1M\"\n";
        assert_eq!(
            key_of(Config::parse(&ret).unwrap_err()),
            "camera[0].retention"
        );
        let ok = with_segment("PT30S") + "retention = \"P7D\"\n";
        let c = Config::parse(&ok).unwrap();
        assert_eq!(c.cameras[0].retention, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(c.storage.max_size_bytes, 64 * MIB);
        assert_eq!(c.storage.index_path, PathBuf::from("/tmp/x/index.sqlite3"));
    }

    #[test]
    fn storage_rules() {
        let t = with_segment("PT30S").replace("max_size_mib = 64", "max_size_mib = 2");
        assert_eq!(
            key_of(Config::parse(&t).unwrap_err()),
            "storage.max_size_mib"
        );
        let t = with_segment("PT30S").replace("device_id = \"gw-01\"", "device_id = \"gw/01\"");
        assert_eq!(key_of(Config::parse(&t).unwrap_err()), "device_id");
    }

    #[test]
    fn http_rules() {
        let base = with_segment("PT30S");
        let c = Config::parse(&base).unwrap();
        assert_eq!(c.http.listen, Some("127.0.0.1:8080".parse().unwrap()));
        let t = format!("{base}[http]\nlisten = \"0.0.0.0:8080\"\n");
        let e = Config::parse(&t).unwrap_err();
        assert_eq!(key_of(e), "http.token_file");
        let t = format!("{base}[http]\nlisten = \"0.0.0.0:8080\"\ntoken_file = \"/etc/t\"\n");
        assert!(Config::parse(&t).is_ok());
        let t = format!("{base}[http]\nlisten = \"localhost\"\n");
        let e = Config::parse(&t).unwrap_err();
        assert!(e.to_string().contains("IP:port"), "{e}");
        assert_eq!(key_of(e), "http.listen");
        let t = format!("{base}[http]\nlisten = \"off\"\n");
        assert_eq!(Config::parse(&t).unwrap().http.listen, None);
        // The page's public URL: set, derived from a specific address, or unknown.
        assert_eq!(c.http.public_url, None);
        let t = format!("{base}[http]\nlisten = \"0.0.0.0:8080\"\ntoken_file = \"/t\"\n");
        assert_eq!(Config::parse(&t).unwrap().http.public_url, None);
        let t = format!("{base}[http]\nlisten = \"10.0.0.5:8080\"\ntoken_file = \"/t\"\n");
        assert_eq!(
            Config::parse(&t).unwrap().http.public_url.as_deref(),
            Some("http://10.0.0.5:8080/")
        );
        let t = format!("{base}[http]\npublic_url = \"https://gw.example/\"\n");
        assert_eq!(
            Config::parse(&t).unwrap().http.public_url.as_deref(),
            Some("https://gw.example/")
        );
        for bad in ["gw.example:8080", "ftp://gw/", "http://"] {
            let t = format!("{base}[http]\npublic_url = \"{bad}\"\n");
            let e = Config::parse(&t).unwrap_err();
            assert!(e.to_string().contains("http:// or https://"), "{e}");
            assert_eq!(key_of(e), "http.public_url");
        }
    }

    /// The README's configuration reference is a valid config (docs stay in step with the parser),
    /// and so is the default config the packages install.
    #[test]
    fn documented_configs_parse() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("## Configuration reference")
            .expect("reference section");
        let block = &readme[start..];
        let body = block
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("toml block");
        let c = Config::parse(body).unwrap_or_else(|e| panic!("README config: {e}"));
        assert_eq!(c.cameras[0].time_source, TimeSource::System);
        assert_eq!(c.cameras[0].segment_length, Duration::from_secs(60));
        assert_eq!(
            c.cameras[0].signal_gate.clip_retention,
            Some(Duration::from_secs(30 * 86400))
        );
        Config::parse(include_str!("../../systemd/edgerec.toml"))
            .unwrap_or_else(|e| panic!("default config: {e}"));
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_url("rtsp://admin:secret@10.0.0.1:554/s"),
            "rtsp://***@10.0.0.1:554/s"
        );
        assert_eq!(redact_url("rtsp://10.0.0.1/a@b"), "rtsp://10.0.0.1/a@b");
        let c = Config::parse(&with_segment("PT30S")).unwrap();
        assert!(!format!("{:?}", c.cameras[0]).contains(":p@"));
    }
}
