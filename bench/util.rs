//! What the benchmarks that start local servers share: the CI virtualenv's tools, free ports,
//! sizes from the environment. Included by `#[path]`, not a crate of its own.

use std::path::PathBuf;

/// A tool of the CI virtualenv (`target/ci-venv/bin`, made by `.ci/deps.sh`); panics naming the
/// command to run when it is missing.
pub fn venv(bin: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/ci-venv/bin")
        .join(bin);
    assert!(p.exists(), "{} missing: run bash .ci/deps.sh", p.display());
    p
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The environment variable `name` as a number, or `d`.
pub fn env_or(name: &str, d: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}
