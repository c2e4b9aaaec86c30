#!/usr/bin/env bash
# bench/motion.sh [SECONDS]: the CPU cost of motion detection. For 720p and 1080p at a GOP of 1 s
# and 2 s, the test camera plays real footage (../shared/testdata/vtest.avi, people walking,
# scaled up, 25 fps); side by side in the same run, on the same stream:
#   A  edgerec recording one camera with motion detection on (key frames),
#   B  edgerec recording the same camera with motion off,
#   F  ffmpeg -skip_frame nokey -i URL -f null -  (the same key frames decoded by ffmpeg).
# Prints CPU seconds per camera-minute of the analysis (edgerec's own counter
# edgerec_camera_motion_cpu_seconds_total: decoding and detection), of F, their ratio (target at
# most 1.2), and the whole recorder's CPU per camera-minute with motion on (A) and off (B).
# Figures, not pass/fail. Needs a release build (`make bench` does it).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
bin=target/release
[ -x "$bin/edgerec" ] || cargo build --release
command -v ffmpeg >/dev/null || { echo "ffmpeg missing (make deps)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing (apt-get install time)" >&2; exit 1; }
footage=../shared/testdata/vtest.avi
[ -f "$footage" ] || { echo "$footage missing" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_of() { tail -n 1 "$1" | awk '{print $1 + $2}'; }

printf '%-6s %-4s %9s %8s %6s %11s %9s %7s %6s %7s\n' size gop analysis ffmpeg ratio "rec+motion" "rec only" "added" ratio frames
for cfg in "1280 720 1 2000" "1280 720 2 2000" "1920 1080 1 4000" "1920 1080 2 4000"; do
  read -r w h gop kbps <<< "$cfg"
  run="$work/$w-$gop"; mkdir -p "$run"
  port=$(freeport)
  "$bin/edgerec-testcam" --port "$port" --file "$footage" --width "$w" --height "$h" --fps 25 \
    --gop $((25 * gop)) --bitrate "$kbps" > "$run/cam.log" 2>&1 &
  cam=$!
  for _ in $(seq 100); do grep -q READY "$run/cam.log" && break; sleep 0.1; done
  url="rtsp://127.0.0.1:$port/stream"
  pids=()
  for side in A B; do
    hp=$(freeport)
    motion=""
    [ "$side" = A ] && motion=$'[camera.motion]\nenabled = true'
    printf 'device_id = "bench"\n[storage]\npath = "%s/%s"\nmax_size_mib = 4096\nmin_free_mib = 0\n[[camera]]\nid = "cam"\nurl = "%s"\n%s\n[http]\nlisten = "127.0.0.1:%s"\n' \
      "$run" "$side" "$url" "$motion" "$hp" > "$run/$side.toml"
    echo "$hp" > "$run/$side.port"
    /usr/bin/time -f '%U %S %M' -o "$run/$side.time" "$bin/edgerec" run --config "$run/$side.toml" 2> "$run/$side.log" &
    pids+=($!)
  done
  /usr/bin/time -f '%U %S %M' -o "$run/F.time" ffmpeg -nostdin -v fatal -rtsp_transport tcp -skip_frame nokey \
    -i "$url" -f null - &
  fpid=$!
  sleep "$SECS"
  metrics=$(curl -s "http://127.0.0.1:$(cat "$run/A.port")/metrics")
  analysis=$(awk '/^edgerec_camera_motion_cpu_seconds_total/ {print $2}' <<< "$metrics")
  frames=$(awk '/^edgerec_camera_motion_frames_analysed_total/ {print $2}' <<< "$metrics")
  for p in "${pids[@]}"; do kill -INT "$(pgrep -P "$p" edgerec)" 2>/dev/null || true; done
  kill -INT "$(pgrep -P "$fpid" ffmpeg)" 2>/dev/null || true
  for p in "${pids[@]}" "$fpid"; do wait "$p" || true; done
  kill "$cam" 2>/dev/null || true; wait "$cam" 2>/dev/null || true
  python3 - "$w" "$h" "$gop" "$SECS" "$analysis" "$(cpu_of "$run/F.time")" "$(cpu_of "$run/A.time")" "$(cpu_of "$run/B.time")" "$frames" <<'PY'
import sys
w, h, gop, secs, analysis, f, a, b, frames = sys.argv[1:]
m = float(secs) / 60
an, f, a, b = float(analysis) / m, float(f) / m, float(a) / m, float(b) / m
print(f"{h+'p':<6} {gop+'s':<4} {an:9.3f} {f:8.3f} {an / max(f, 1e-9):6.2f} {a:11.3f} {b:9.3f} {a - b:7.3f} {(a - b) / max(f, 1e-9):6.2f} {int(float(frames)):7d}")
PY
done
echo "CPU seconds per camera-minute. analysis: edgerec's motion branch thread (decode + detection);"
echo "ffmpeg: the same key frames decoded by ffmpeg (its RTSP reading included); rec+motion / rec only: the"
echo "whole recorder with motion on / off; added: their difference (the branch, the hand-off from the"
echo "recording thread, and storing motion events and clips), compared with ffmpeg in the second ratio."
