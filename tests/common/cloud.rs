//! `edgerec serve` started for a test: a config over a store, a free port, the process killed on
//! drop; and gateway sites that upload to one store under their own device folder.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{free_port, http_get, wait_port, Site, EDGEREC};

/// A running `edgerec serve`.
pub struct Serve {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts `edgerec serve` with `[store]` lines `store` (and `[cache]` lines `cache`).
    pub fn start(store: &str, cache: &str) -> Serve {
        Self::start_with(store, cache, None)
    }

    /// [`Serve::start`] with an access token file holding `token`.
    pub fn start_with(store: &str, cache: &str, token: Option<&str>) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let http = match token {
            Some(t) => {
                let f = dir.path().join("tokens");
                std::fs::write(&f, format!("{t}\n")).unwrap();
                format!("token_file = \"{}\"\n", f.display())
            }
            None => String::new(),
        };
        let port = free_port();
        let config = dir.path().join("cloud.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\n{store}\n[http]\nlisten = \"127.0.0.1:{port}\"\n{http}[cache]\n{cache}\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("serve.log");
        let child = Command::new(EDGEREC)
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start edgerec serve");
        wait_port(port, "edgerec serve");
        Serve {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// `GET path`: (status, body as text).
    pub fn get(&self, path: &str) -> (u16, String) {
        let (st, _, body) = http_get(("127.0.0.1", self.port), path, &[]);
        (st, String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET path` as JSON; panics on a status other than 200.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (st, body) = self.get(path);
        assert_eq!(st, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Store requests made so far (lists, whole GETs).
    pub fn store_requests(&self) -> (f64, f64) {
        Self::store_requests_with(self, "")
    }

    /// [`Serve::store_requests`] presenting access token `token` (empty: none).
    pub fn store_requests_with(&self, token: &str) -> (f64, f64) {
        let path = if token.is_empty() {
            "/metrics".to_owned()
        } else {
            format!("/metrics?token={token}")
        };
        let (_, text) = self.get(&path);
        let m = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing: {text}"))
                .parse()
                .unwrap()
        };
        (
            m("edgerec_cloud_store_requests_total{kind=\"list\"}"),
            m("edgerec_cloud_store_requests_total{kind=\"get\"}"),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway site with device id `device` whose `[upload]` section is `upload`.
pub fn gateway(
    device: &str,
    storage: &str,
    cameras: &[(&str, String, &str)],
    upload: &str,
) -> Site {
    let site = Site::new(storage, cameras);
    let text = std::fs::read_to_string(&site.config).unwrap().replace(
        "device_id = \"test-gw\"",
        &format!("device_id = \"{device}\""),
    );
    std::fs::write(&site.config, format!("{text}[upload]\n{upload}\n")).unwrap();
    site
}

/// `s3://` upload or store lines for moto on `port` (bucket and prefix in `url`).
pub fn s3_lines(url: &str, port: u16) -> String {
    format!(
        "url = \"{url}\"\nendpoint = \"http://127.0.0.1:{port}\"\npath_style = true\n\
         access_key_id = \"testing\"\nsecret_access_key = \"testing\""
    )
}
