#!/usr/bin/env bash
# `make cross-aarch64`: builds edgerec for aarch64-unknown-linux-gnu without Docker, with Debian
# multiarch, as the firmware (`--features upload,mqtt,ui`) and as a record-only build (no optional
# features), prints both stripped sizes, then runs them under qemu-user: `--version`,
# `check-config` (the record-only build must refuse `[mqtt]` and `[upload]`), and (with
# `--record`) a short recording of the firmware build from a test camera on the host.
#
# Debian 12's libgstreamer-plugins-base1.0-dev is not Multi-Arch: same (installing its arm64 copy
# would remove the amd64 one), so it is unpacked into a private sysroot (target/sysroot-arm64) whose
# `.so` links point at the arm64 runtime libraries. With `cross` and Docker instead:
#   CROSS_CONFIG=cross.toml cross build --release --no-default-features --features upload,mqtt,ui --target aarch64-unknown-linux-gnu
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
multi=/usr/lib/aarch64-linux-gnu
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"

if ! dpkg --print-foreign-architectures | grep -qx arm64; then $sudo dpkg --add-architecture arm64; fi
pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
      libgstreamer1.0-dev:arm64 libsqlite3-dev:arm64 liborc-0.4-dev:arm64
      libgstreamer-plugins-base1.0-0:arm64 gstreamer1.0-plugins-base:arm64
      gstreamer1.0-plugins-good:arm64 gstreamer1.0-plugins-bad:arm64)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

sysroot=$PWD/target/sysroot-arm64
if [ ! -f "$sysroot/.done" ]; then
  rm -rf "$sysroot"; mkdir -p "$sysroot/debs"
  (cd "$sysroot/debs" && apt-get download libgstreamer-plugins-base1.0-dev:arm64)
  dpkg -x "$sysroot"/debs/*.deb "$sysroot"
  # Re-point the development links at the arm64 runtime libraries installed by multiarch.
  for l in "$sysroot$multi"/*.so; do
    [ -L "$l" ] && ln -sf "$multi/$(readlink "$l")" "$l"
  done
  touch "$sysroot/.done"
fi

export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR="$sysroot$multi/pkgconfig:$multi/pkgconfig:/usr/share/pkgconfig"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-L $sysroot$multi -C link-arg=-Wl,-rpath-link=$multi -C link-arg=-Wl,-rpath-link=/lib/aarch64-linux-gnu"
# The record-only build first, in its own target directory (the features differ, so it would
# otherwise rebuild edgerec each time), then the firmware.
cargo build --release --no-default-features --target "$target" --bin edgerec --target-dir target/record-only
minimal=target/record-only/$target/release/edgerec
cargo build --release --no-default-features --features upload,mqtt,ui --target "$target" --bin edgerec
bin=target/$target/release/edgerec
file "$bin" 2>/dev/null || true
echo "stripped size: x86_64 $(stat -c %s target/release/edgerec 2>/dev/null || echo '?') bytes," \
  "aarch64 firmware (upload,mqtt,ui) $(stat -c %s "$bin") bytes, aarch64 record-only $(stat -c %s "$minimal") bytes"

# Run it under qemu-user (no -L: with it every thread start hangs; no registry fork under qemu).
export GST_REGISTRY_FORK=no GST_REGISTRY=$PWD/target/gst-registry-arm64.bin
qemu-aarch64-static "$bin" --version
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
printf 'device_id = "arm"\n[storage]\npath = "%s/store"\nmax_size_mib = 64\nmin_free_mib = 0\n[http]\nlisten = "127.0.0.1:0"\n' "$tmp" > "$tmp/ok.toml"
qemu-aarch64-static "$bin" check-config --config "$tmp/ok.toml"
printf '[storage]\npath = "/x"\nmax_size_mib = 64\nsegment_length = "PT45S"\n' > "$tmp/bad.toml"
if qemu-aarch64-static "$bin" check-config --config "$tmp/bad.toml" 2> "$tmp/err"; then
  echo "check-config accepted PT45S" >&2; exit 1
fi
grep -q storage.segment_length "$tmp/err" || { cat "$tmp/err"; exit 1; }
echo "aarch64 check-config: ok (rejects PT45S naming storage.segment_length)"
qemu-aarch64-static "$bin" --version | grep -qx "edgerec .* (upload,mqtt,ui)" || { echo "firmware build lacks upload,mqtt,ui" >&2; exit 1; }
qemu-aarch64-static "$minimal" --version | grep -qx "edgerec .* (record only)" || { echo "record-only build has features" >&2; exit 1; }
qemu-aarch64-static "$minimal" check-config --config "$tmp/ok.toml"
for table in 'mqtt]\nurl = "mqtt://127.0.0.1"' 'upload]\nurl = "file:///tmp"'; do
  printf "[storage]\npath = \"/x\"\nmax_size_mib = 64\n[$table\n" > "$tmp/opt.toml"
  if qemu-aarch64-static "$minimal" check-config --config "$tmp/opt.toml" 2> "$tmp/err"; then
    echo "record-only build accepted [${table%%]*}]" >&2; exit 1
  fi
  grep -q "cargo feature .${table%%]*}. left out" "$tmp/err" || { cat "$tmp/err"; exit 1; }
done
echo "aarch64 record-only build: ok (refuses [mqtt] and [upload], naming the cargo feature)"

if [ "${1:-}" = "--record" ]; then
  # The test camera is a host (x86_64) program: built and run without the cross-compilation
  # pkg-config paths and without the arm64 GStreamer registry (a shared registry would make each
  # side rescan every plugin, under qemu a slow start).
  host=(env -u PKG_CONFIG_LIBDIR -u PKG_CONFIG_ALLOW_CROSS -u GST_REGISTRY -u GST_REGISTRY_FORK
        -u CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS)
  [ -x target/debug/edgerec-testcam ] || "${host[@]}" cargo build --bin edgerec-testcam
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${host[@]}" target/debug/edgerec-testcam --port "$port" --width 320 --height 240 > "$tmp/cam.log" 2>&1 &
  for _ in $(seq 50); do grep -q READY "$tmp/cam.log" && break; sleep 0.1; done
  record() {
    rm -rf "$tmp/store"
    printf 'device_id = "arm"\n[storage]\npath = "%s/store"\nmax_size_mib = 64\nmin_free_mib = 0\n[[camera]]\nid = "arm-cam"\nurl = "rtsp://127.0.0.1:%s/stream"\n[http]\nlisten = "127.0.0.1:0"\n' "$tmp" "$port" > "$tmp/ok.toml"
    local rc=0
    # timeout exits 124 once it had to send SIGINT; the recorder's own status is in the log.
    timeout -s INT 25 qemu-aarch64-static "$bin" run --config "$tmp/ok.toml" 2> "$tmp/rec.log" || rc=$?
    echo "aarch64 recorder under timeout: status $rc; $(tail -n 1 "$tmp/rec.log")"
    files=$(find "$tmp/store/media" -name '*.mp4' 2>/dev/null | wc -l)
    [ "$files" -ge 1 ] || { cat "$tmp/rec.log"; echo "aarch64 recorder wrote no segment" >&2; return 1; }
    for f in $(find "$tmp/store/media" -name '*.mp4'); do
      e=$(ffmpeg -nostdin -v error -i "$f" -f null - 2>&1); [ -z "$e" ] || { echo "$f: $e" >&2; return 1; }
    done
    qemu-aarch64-static "$bin" fsck --config "$tmp/ok.toml" || { tail -n 20 "$tmp/rec.log"; return 1; }
  }
  # Under qemu-user a thread start can hang or the emulation can fail (see above): one failed
  # attempt is shown with the recorder's log and tried once more; two in a row fail the check.
  if ! record; then
    echo "aarch64 recording under qemu: first attempt failed (log above); trying once more" >&2
    record
  fi
  echo "aarch64 recording under qemu: $files segment(s), decode clean, fsck clean"
fi
