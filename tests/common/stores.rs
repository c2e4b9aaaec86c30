//! Real object stores for the upload tests, on 127.0.0.1 and free ports: moto's S3 server behind
//! a small throttling proxy (`tests/upload/s3proxy.py`) that can be stopped and started again
//! (an uplink outage that keeps the store's contents), and Azurite. Both are read back with
//! their own clients (plain HTTP for moto, azure-storage-blob for Azurite), never with ours.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{free_port, wait_port};

/// `curl` (installed by .ci/deps.sh): (body, response headers lower-cased).
pub fn curl(args: &[&str]) -> (Vec<u8>, String) {
    let hdr = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-D"])
        .arg(hdr.path())
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {} {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.stdout,
        std::fs::read_to_string(hdr.path())
            .unwrap()
            .to_ascii_lowercase(),
    )
}

pub fn venv_bin(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/ci-venv/bin")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: run `bash .ci/deps.sh` (make deps) to install moto, awscli and azure-storage-blob",
        p.display()
    );
    p
}

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts moto's server with `bucket` created.
    pub fn start(bucket: &str) -> Moto {
        let port = free_port();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_port(port, "moto_server");
        curl(&["-X", "PUT", &format!("http://127.0.0.1:{port}/{bucket}")]);
        Moto { child, port }
    }

    /// Every key in `bucket` (moto accepts unsigned reads).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let (body, _) = curl(&[&format!(
            "http://127.0.0.1:{}/{bucket}?list-type=2&max-keys=1000",
            self.port
        )]);
        let text = String::from_utf8_lossy(&body);
        text.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    /// An object's bytes and its `head-object` JSON, read with awscli (signed requests).
    pub fn get(&self, bucket: &str, key: &str) -> (Vec<u8>, serde_json::Value) {
        let out = tempfile::NamedTempFile::new().unwrap();
        let endpoint = format!("http://127.0.0.1:{}", self.port);
        let aws = |args: &[&str]| {
            let o = Command::new(venv_bin("aws"))
                .args(["--endpoint-url", &endpoint, "s3api"])
                .args(args)
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .output()
                .expect("run aws");
            assert!(
                o.status.success(),
                "aws {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            o.stdout
        };
        aws(&[
            "get-object",
            "--bucket",
            bucket,
            "--key",
            key,
            &out.path().display().to_string(),
        ]);
        let head = aws(&["head-object", "--bucket", bucket, "--key", key]);
        (
            std::fs::read(out.path()).unwrap(),
            serde_json::from_slice(&head).unwrap(),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The throttling proxy in front of moto.
pub struct Proxy {
    child: Option<Child>,
    pub port: u16,
    upstream: u16,
    every: u32,
    pub dir: tempfile::TempDir,
}

impl Proxy {
    /// A proxy that answers every `every`-th PUT with 503 SlowDown (0: never).
    pub fn start(upstream: u16, every: u32) -> Proxy {
        let mut p = Proxy {
            child: None,
            port: free_port(),
            upstream,
            every,
            dir: tempfile::tempdir().unwrap(),
        };
        p.restart();
        p
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/upload/s3proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([
                self.port.to_string(),
                self.upstream.to_string(),
                self.every.to_string(),
            ])
            .arg(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3proxy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("READY"), "s3proxy: {line:?}");
        self.child = Some(child);
    }

    /// How many PUTs it throttled so far.
    pub fn slowdowns(&self) -> u32 {
        std::fs::read_to_string(self.dir.path().join("slowdowns"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The well-known Azurite development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Azurite {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/servers/node_modules/.bin/azurite-blob");
        assert!(
            bin.exists(),
            "azurite is missing: run `bash .ci/deps.sh` (npm ci --prefix tests/servers)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args([
                "--loose",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--location",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-blob");
        wait_port(port, "azurite-blob");
        Azurite {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port)
    }

    /// Runs Python with azure-storage-blob against this Azurite; `code` sees `svc` (a
    /// BlobServiceClient) and prints its answer.
    pub fn python(&self, code: &str) -> String {
        let conn = format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={};",
            self.endpoint()
        );
        let script = format!(
            "import sys, hashlib\nfrom azure.storage.blob import BlobServiceClient\nsvc = BlobServiceClient.from_connection_string({conn:?})\n{code}\n"
        );
        let out = Command::new(venv_bin("python"))
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "azure python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
