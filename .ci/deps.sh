#!/usr/bin/env bash
# Installs the Debian 12 packages edgerec needs to build, run its demo and pass its tests.
# Idempotent: installs only what is missing. Used by `make demo`, `make test` and `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(
  pkg-config libsqlite3-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  ffmpeg sqlite3 procps time python3 python3-venv
  systemd systemd-container debootstrap e2fsprogs util-linux mount file
  chromium curl mosquitto mosquitto-clients openssl
)
# Node.js for the browser players: Debian's nodejs and npm, unless a node with npm is already
# installed (e.g. from NodeSource, whose nodejs conflicts with Debian's npm package).
command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# oelint-adv (PyPI) for the Yocto recipe check, in a venv of the project's own.
# moto (S3 server), awscli (the upload benchmark's peer) and azure-storage-blob (the Azurite test's
# own client) for the upload tests, in the same venv.
if [ ! -x target/ci-venv/bin/oelint-adv ] || [ ! -x target/ci-venv/bin/moto_server ] \
   || [ ! -x target/ci-venv/bin/aws ] || ! target/ci-venv/bin/python -c 'import azure.storage.blob' 2>/dev/null; then
  mkdir -p target
  [ -x target/ci-venv/bin/pip ] || python3 -m venv target/ci-venv
  target/ci-venv/bin/pip install -q oelint-adv 'moto[server]' awscli azure-storage-blob
fi
# Browser players for the playback tests (playwright-core drives Debian's chromium; the
# browsers playwright would download are never used).
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/dashjs ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
# Azurite (Azure Blob Storage emulator) for the upload tests.
if [ ! -x tests/servers/node_modules/.bin/azurite-blob ]; then
  npm ci --prefix tests/servers --no-audit --no-fund --loglevel=error
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
# `make lint` needs rustfmt and clippy.
if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed | grep -q "^$c" || rustup component add "$c"
  done
fi
# cargo-deny for the supply-chain check (licences, advisories), pinned: .ci/check-supply-chain.sh
# lays out the advisory database the way this version reads it. About 3 min to build once.
deny_version=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $deny_version" ]; then
  cargo install -q cargo-deny --version "$deny_version" --locked
fi
