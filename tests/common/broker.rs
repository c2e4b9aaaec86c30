//! A real mosquitto broker for the MQTT tests, on 127.0.0.1 and a free port: plain, with a
//! password file, or TLS with a CA made by openssl in the test. Files are made readable for the
//! `mosquitto` user, to which mosquitto drops when started as root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions};

use super::{free_port, require};

pub enum Kind {
    Plain,
    UserPass(&'static str, &'static str),
    Tls,
}

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    conf: PathBuf,
    /// CA certificate (TLS only).
    pub ca: Option<PathBuf>,
}

fn sh(cmd: &str, dir: &Path) {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Broker {
    pub fn start(kind: Kind) -> Broker {
        require("mosquitto");
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
        );
        let mut ca = None;
        match kind {
            Kind::Plain => conf += "allow_anonymous true\n",
            Kind::UserPass(u, p) => {
                require("mosquitto_passwd");
                sh(
                    &format!("mosquitto_passwd -b -c passwd {u} {p}"),
                    dir.path(),
                );
                conf += &format!(
                    "allow_anonymous false\npassword_file {}\n",
                    dir.path().join("passwd").display()
                );
            }
            Kind::Tls => {
                require("openssl");
                sh(
                    "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
                     -subj /CN=edgerec-test-ca 2>/dev/null && \
                     openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
                     -subj /CN=127.0.0.1 2>/dev/null && \
                     printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && \
                     openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                     -out server.crt -days 2 -extfile san.ext 2>/dev/null",
                    dir.path(),
                );
                let d = dir.path();
                conf += &format!(
                    "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\n",
                    d.join("ca.crt").display(),
                    d.join("server.crt").display(),
                    d.join("server.key").display()
                );
                ca = Some(d.join("ca.crt"));
            }
        }
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut b = Broker {
            child: None,
            port,
            dir,
            conf: conf_path,
            ca,
        };
        b.restart();
        b
    }

    /// Stops the broker (an outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port; waits until it accepts connections.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        super::wait_port(self.port, "mosquitto");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A message as a test client received it.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub correlation: Option<Vec<u8>>,
}

impl Msg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// An MQTT 5 test client that records every message on its subscriptions.
pub struct Peer {
    pub client: Client,
    pub got: Arc<Mutex<Vec<Msg>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl Peer {
    /// Connects to a plain listener with `subs` (QoS 1) and waits for the subscriptions.
    pub fn connect(port: u16, id: &str, subs: &[&str]) -> Peer {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut conn) = Client::new(o, 1000);
        let got: Arc<Mutex<Vec<Msg>>> = Arc::default();
        let g = got.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let n = subs.len();
        let thread = std::thread::spawn(move || {
            let mut acks = 0;
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        acks += 1;
                        if acks == n {
                            let _ = ready_tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => g.lock().unwrap().push(Msg {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                        correlation: p
                            .properties
                            .and_then(|pr| pr.correlation_data)
                            .map(|b| b.to_vec()),
                    }),
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        for s in subs {
            client.subscribe(*s, QoS::AtLeastOnce).unwrap();
        }
        if n > 0 {
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("subscriptions acknowledged");
        }
        Peer {
            client,
            got,
            _thread: thread,
        }
    }

    pub fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .unwrap();
    }

    /// MQTT 5 request: response topic and correlation data.
    pub fn request(&self, topic: &str, payload: &str, response_topic: &str, correlation: &[u8]) {
        let props = PublishProperties {
            response_topic: Some(response_topic.into()),
            correlation_data: Some(correlation.to_vec().into()),
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                topic,
                QoS::AtLeastOnce,
                false,
                payload.as_bytes().to_vec(),
                props,
            )
            .unwrap();
    }

    /// Waits up to `timeout` for a message matching `pred`; returns the first one.
    pub fn wait(&self, timeout: Duration, what: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.got.lock().unwrap().iter().find(|m| pred(m)) {
                return m.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got: {:?}",
                self.got
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|m| (
                        m.topic.clone(),
                        m.text().chars().take(120).collect::<String>()
                    ))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn clear(&self) {
        self.got.lock().unwrap().clear();
    }
}
