#!/usr/bin/env bash
# bench/segment.sh WORK: records one whole PT30S segment of a 720p25 test camera at 4 Mbit/s (2 s
# GOP) with the release `edgerec` into WORK/store (a card of its own), stops, and prints the
# segment file's path. The first segment of a recording ends on a 30 s boundary of the clock and
# is shorter, so the second one is taken. For the benchmarks that need real media (export.sh,
# cloud.sh); takes about a minute of real time. Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?usage: bench/segment.sh WORK}
bin=target/release
if [ ! -x "$bin/edgerec" ] || [ ! -x "$bin/edgerec-testcam" ]; then cargo build --release >&2; fi
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cport=$(freeport); hport=$(freeport)
"$bin/edgerec-testcam" --port "$cport" --width 1280 --height 720 --bitrate 4000 --gop 50 > "$work/cam.log" 2>&1 &
for _ in $(seq 50); do grep -q READY "$work/cam.log" && break; sleep 0.1; done
printf 'device_id = "bench"\n[storage]\npath = "%s/store"\nmax_size_mib = 4096\nmin_free_mib = 0\nsegment_length = "PT30S"\n[[camera]]\nid = "cam"\nurl = "rtsp://127.0.0.1:%s/stream"\n[http]\nlisten = "127.0.0.1:%s"\n' \
  "$work" "$cport" "$hport" > "$work/segment.toml"
"$bin/edgerec" run --config "$work/segment.toml" 2> "$work/segment.log" &
rec=$!
for _ in $(seq 900); do
  [ -n "$(find "$work/store/media" -name '*.mp4' 2>/dev/null | sed -n 3p)" ] && break
  sleep 0.1
done
kill -INT "$rec"; wait "$rec" || true
seg=$(find "$work/store/media" -name '*.mp4' | sort | sed -n 2p)
[ -n "$seg" ] || { cat "$work/segment.log" >&2; echo "no segment recorded" >&2; exit 1; }
echo "$seg"
