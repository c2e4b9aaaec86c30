#!/usr/bin/env bash
# The built-in demo: a test camera and the recorder on ./demo-data. Ctrl-C stops both cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release
port=${DEMO_PORT:-8554}
mkdir -p demo-data
cat > demo-data/edgerec.toml <<EOC
device_id = "demo-gw"
[storage]
path = "$PWD/demo-data"
max_size_mib = 1024
min_free_mib = 256
segment_length = "PT30S"
[[camera]]
id = "demo-cam"
url = "rtsp://127.0.0.1:$port/stream"
retention = "P1D"
# Event-based recording on the same stream: clips of 30 s before an event to 90 s after it.
[[camera]]
id = "demo-gate"
url = "rtsp://127.0.0.1:$port/stream"
mode = "evr"
[camera.signal_gate]
activation_signal_offset = "-PT30S"
minimum_activation_time = "PT1M30S"
maximum_activation_time = "PT1M30S"
[http]
listen = "127.0.0.1:${DEMO_HTTP_PORT:-8080}"
EOC
"$bin/edgerec" check-config --config demo-data/edgerec.toml
# Two recorder cameras on one test camera: one encoder per client (--unshared), since
# gst-rtsp-server 1.22's shared media can abort when both connect at the same instant.
"$bin/edgerec-testcam" --port "$port" --width 1280 --height 720 --bitrate 2000 --unshared > demo-data/testcam.log 2>&1 &
cam=$!
trap 'kill $cam 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q READY demo-data/testcam.log && break; sleep 0.1; done
cat <<MSG

  Open in a browser:  http://127.0.0.1:${DEMO_HTTP_PORT:-8080}/
                (the cameras, a timeline per day, playback from any moment, live, MP4 export)

  Test camera:  rtsp://127.0.0.1:$port/stream
  Recordings:   $PWD/demo-data/media/demo-cam/YYYY/MM/DD/<UTC start>.mp4  (30 s segments)
  Index:        $PWD/demo-data/index.sqlite3
  Playback:     http://127.0.0.1:${DEMO_HTTP_PORT:-8080}/demo-cam/content.ism/manifest(format=m3u8-aapl).m3u8  (HLS, live)
                http://127.0.0.1:${DEMO_HTTP_PORT:-8080}/demo-cam/content.ism/manifest(format=mpd-time-cmaf).mpd  (DASH)
                ffplay 'http://127.0.0.1:${DEMO_HTTP_PORT:-8080}/demo-cam/content.ism/manifest(format=m3u8-aapl).m3u8'
  What is held: curl 'http://127.0.0.1:${DEMO_HTTP_PORT:-8080}/demo-cam/content.ism/availableMedia?precision=day&startTime=$(date -u +%Y-%m-01)&endTime=$(date -u +%Y-%m-28)'
  Play a file:  ffplay \$(ls -t demo-data/media/demo-cam/*/*/*/*.mp4 | tail -1)
  Export:       curl -OJ "http://127.0.0.1:${DEMO_HTTP_PORT:-8080}/demo-cam/content.ism/export.mp4?startTime=\$(date -u -d '-2 min' +%FT%TZ)&endTime=\$(date -u +%FT%TZ)"
                (the last two minutes as one MP4; or, after stopping: $bin/edgerec export --config demo-data/edgerec.toml --camera demo-cam --start .. --end .. -o out.mp4)
  The camera:   $bin/edgerec probe --config demo-data/edgerec.toml --camera demo-cam
  EVR camera:   demo-gate keeps only clips around events (docs/evr.md). Trigger one:
                curl -X POST -H 'Content-Type: application/json' -d '{"label":"door"}' \\
                     http://127.0.0.1:${DEMO_HTTP_PORT:-8080}/api/cameras/demo-gate/events
                its clips, with HLS/DASH URLs (open until 90 s after the event):
                curl "http://127.0.0.1:${DEMO_HTTP_PORT:-8080}/api/cameras/demo-gate/clips?startTime=\$(date -u -d '-1 hour' +%FT%TZ)&endTime=\$(date -u -d '+1 hour' +%FT%TZ)"
  Check:        $bin/edgerec fsck --config demo-data/edgerec.toml   (after stopping)
  Stop:         Ctrl-C

MSG
"$bin/edgerec" run --config demo-data/edgerec.toml
