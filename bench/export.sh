#!/usr/bin/env bash
# bench/export.sh [MINUTES]: MP4 export of MINUTES (default 60) of a 4 Mbit/s 720p camera.
# A 30 s segment is recorded from the test camera, copied into a card of MINUTES of media (file
# names 30 s apart; `edgerec fsck --rebuild` indexes them), and the recorder serves it. In the
# same run, on the same files:
#   E  curl of /cam/content.ism/export.mp4 for the whole range: time to first byte, total time,
#      bytes; the recorder's RSS before and its peak (VmHWM) after;
#   F  ffmpeg -f concat -c copy -movflags +faststart of the same segment files into one MP4 (a
#      peer that stages a copy; what one would script without edgerec);
#   M  every fragment of the hour as an HLS player asks for it (the playlist's byte ranges of
#      media/<id>.mp4, which adds each segment's media-time base back to the fragments' tfdt,
#      docs/storage.md), one curl for all; peer: the same byte ranges read from the files with
#      curl file://.
# Figures, not pass/fail (the issue's target: RSS growth under 16 MiB). Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:-60}
bin=target/release
if [ ! -x "$bin/edgerec" ] || [ ! -x "$bin/edgerec-testcam" ]; then cargo build --release; fi
command -v ffmpeg >/dev/null || { echo "ffmpeg missing (make deps)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl missing (make deps)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cport=$(freeport); hport=$(freeport)
conf() { # $1: enabled
  printf 'device_id = "bench"\n[storage]\npath = "%s/store"\nmax_size_mib = 4096\nmin_free_mib = 0\nsegment_length = "PT30S"\n[[camera]]\nid = "cam"\nurl = "rtsp://127.0.0.1:%s/stream"\nenabled = %s\n[http]\nlisten = "127.0.0.1:%s"\nmax_export = "P1D"\n' \
    "$work" "$cport" "$1" "$hport" > "$work/edgerec.toml"
}
seg=$(bash bench/segment.sh "$work")
conf false
dir=$(dirname "$seg")
rm -f "$work"/store/index.sqlite3*
find "$work/store/media" -name '*.mp4' ! -path "$seg" -delete
t0=$(python3 -c "import datetime as d; print(int(d.datetime.strptime('$(basename "$seg" .mp4)','%Y%m%dT%H%M%S.%fZ').replace(tzinfo=d.timezone.utc).timestamp()))")
for i in $(seq 1 $((MIN * 2 - 1))); do
  name=$(date -u -d "@$((t0 + 30 * i))" +%Y%m%dT%H%M%S.000Z)
  d=$work/store/media/cam/$(date -u -d "@$((t0 + 30 * i))" +%Y/%m/%d)
  mkdir -p "$d"; cp "$seg" "$d/$name.mp4"
done
"$bin/edgerec" fsck --config "$work/edgerec.toml" --rebuild > "$work/fsck.log" 2>&1 || { cat "$work/fsck.log"; exit 1; }
"$bin/edgerec" run --config "$work/edgerec.toml" 2> "$work/serve.log" &
srv=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$hport/healthz" >/dev/null && break; sleep 0.1; done
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
url="http://127.0.0.1:$hport/cam/content.ism/export.mp4?startTime=$(iso "$t0")&endTime=$(iso $((t0 + MIN * 60 + 30)))"
rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
before=$(rss_kib "$srv" VmRSS)
read -r ttfb total bytes < <(curl -s -o "$work/out.mp4" -w '%{time_starttransfer} %{time_total} %{size_download}\n' "$url")
peak=$(rss_kib "$srv" VmHWM)
frames=$(ffprobe -v error -select_streams v:0 -show_entries stream=nb_frames -of csv=p=0 "$work/out.mp4")
m3u8="http://127.0.0.1:$hport/cam/content.ism/manifest(format=m3u8-aapl,startTime=$(iso "$t0"),endTime=$(iso $((t0 + MIN * 60 + 30)))).m3u8"
curl -sf -g "$m3u8" > "$work/hls.m3u8"
# One curl config per side: the playlist's byte ranges over HTTP, and the same ranges of the files.
python3 - "$work" "$hport" <<'PY'
import re, sqlite3, sys
work, port = sys.argv[1], sys.argv[2]
paths = dict(sqlite3.connect(f"{work}/store/index.sqlite3").execute("SELECT id, path FROM segment"))
http, files, n, rng = [], [], 0, None
for line in open(f"{work}/hls.m3u8"):
    line = line.strip()
    m = re.match(r"#EXT-X-BYTERANGE:(\d+)@(\d+)", line)
    if m:
        rng = (int(m[2]), int(m[2]) + int(m[1]) - 1)
    elif line.startswith("media/") and rng:
        sid = int(line[6:].split(".")[0])
        http.append(f'url = "http://127.0.0.1:{port}/cam/content.ism/{line}"\nrange = "{rng[0]}-{rng[1]}"\noutput = "/dev/null"')
        files.append(f'url = "file://{work}/store/{paths[sid]}"\nrange = "{rng[0]}-{rng[1]}"\noutput = "/dev/null"')
        n, rng = n + 1, None
open(f"{work}/http.curl", "w").write("\n".join(http) + "\n")
open(f"{work}/files.curl", "w").write("\n".join(files) + "\n")
open(f"{work}/nfrag", "w").write(str(n))
PY
nfrag=$(cat "$work/nfrag")
t=$(date +%s.%N); curl -s -K "$work/http.curl"; media_http=$(python3 -c "import time; print(time.time() - $t)")
t=$(date +%s.%N); curl -s -K "$work/files.curl"; media_files=$(python3 -c "import time; print(time.time() - $t)")
kill -INT "$srv"; wait "$srv" || true

find "$work/store/media" -name '*.mp4' | sort | sed "s|^|file '|; s|$|'|" > "$work/list.txt"
start=$(date +%s.%N)
ffmpeg -nostdin -v error -f concat -safe 0 -i "$work/list.txt" -c copy -movflags +faststart -y "$work/peer.mp4"
peer=$(python3 -c "import time; print(time.time() - $start)")

segs=$(wc -l < "$work/list.txt")
printf 'export of %d min (%d segments, %d MB): %s frames\n' "$MIN" "$segs" "$((bytes / 1000000))" "$frames"
printf '  edgerec export.mp4: first byte %.3f s, total %.2f s; RSS %d KiB before, peak %d KiB (growth %d KiB)\n' \
  "$ttfb" "$total" "$before" "$peak" "$((peak - before))"
printf '  ffmpeg concat + faststart (staged copy): total %.2f s; edgerec/ffmpeg total %.2f\n' \
  "$peer" "$(python3 -c "print($total / $peer)")"
printf '  %d fragments as HLS byte ranges of media/<id>.mp4: %.2f s; the same ranges from the files (curl file://): %.2f s; ratio %.2f\n' \
  "$nfrag" "$media_http" "$media_files" "$(python3 -c "print($media_http / $media_files)")"
