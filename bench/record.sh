#!/usr/bin/env bash
# bench/record.sh N SECONDS [pattern|footage]: records N streams of one test camera side by side,
# in the same run, with edgerec reading them through retina (source = "retina"), edgerec reading
# them through rtspsrc (source = "rtspsrc"), and ffmpeg's segment muxer (how Frigate records, one
# process per stream). Prints, for each: CPU seconds per stream-minute and the ratio to ffmpeg,
# threads, context switches per second per stream, peak RSS, bytes written per media byte, and
# fragments dropped. `pattern` (default) is the 720p25 test pattern at about 2 Mbit/s with a 2 s GOP;
# `footage` is ../shared/testdata/vtest.avi (768x576, real people walking) re-encoded at 25 fps
# with irregular GOPs (7, 23, 12, 31 frames).
# bench/record.sh scale SECONDS: edgerec with the default source alone, at 4, 8 and 16 streams, to
# show whether CPU per stream stays flat and nothing is dropped.
# bench/record.sh audio SECONDS: what recording sound costs, 4 streams each, side by side: a
# camera with G.711 (PCMU) recorded with audio off and with audio = "auto" (decoded and
# re-encoded to AAC), and a camera with AAC recorded with audio = "auto" (passed through);
# 640x360 pictures, so that the test cameras' encoders leave the CPU to the recorders.
# TRANSPORT=udp compares over RTP/UDP (retina is then left out: it does not do UDP).
# KEEP=1 keeps the work directory (configs, logs, media). Figures, not pass/fail. Needs a release build (`make bench` does it).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release
[ -x "$bin/edgerec" ] || cargo build --release
command -v ffmpeg >/dev/null || { echo "ffmpeg missing (make deps)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing (apt-get install time)" >&2; exit 1; }
TRANSPORT=${TRANSPORT:-tcp}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_camera KIND: one test camera (shared media: it encodes once for every client).
start_camera() {
  local port; port=$(free_port)
  local args=(--port "$port" --fps 25 --bitrate 2000)
  [ -n "${CAM_AUDIO:-}" ] && args+=(--audio "$CAM_AUDIO")
  [ -n "${CAM_UNSHARED:-}" ] && args+=(--unshared)
  if [ "$1" = footage ]; then
    local clip=../shared/testdata/vtest.avi
    [ -f "$clip" ] || { echo "$clip missing" >&2; exit 1; }
    args+=(--file "$clip" --width 768 --height 576 --gop-pattern 7,23,12,31)
  elif [ -n "${CAM_AUDIO:-}" ]; then
    args+=(--width 640 --height 360 --gop 50)
  else
    args+=(--width 1280 --height 720 --gop 50)
  fi
  "$bin/edgerec-testcam" "${args[@]}" > "$work/cam-$1.log" 2>&1 &
  for _ in $(seq 100); do grep -q READY "$work/cam-$1.log" && break; sleep 0.1; done
  grep -q READY "$work/cam-$1.log" || { echo "test camera did not start" >&2; cat "$work/cam-$1.log" >&2; exit 1; }
  url="rtsp://127.0.0.1:$port/stream"
}

# edgerec_config NAME N SOURCE [EXTRA]: a config recording N streams of $url into $work/NAME,
# with EXTRA lines in each camera.
edgerec_config() {
  {
    printf 'device_id = "bench"\n[storage]\npath = "%s/%s"\nmax_size_mib = 8192\nmin_free_mib = 0\n' "$work" "$1"
    printf '[http]\nlisten = "127.0.0.1:%s"\n' "$(free_port)"
    for i in $(seq "$2"); do
      printf '[[camera]]\nid = "cam%d"\nurl = "%s"\nfragment_duration = "PT2S"\ntransport = "%s"\n' "$i" "$url" "$TRANSPORT"
      if [ -n "$3" ]; then printf 'source = "%s"\n' "$3"; fi
      if [ -n "${4:-}" ]; then printf '%s\n' "$4"; fi
    done
  } > "$work/$1.toml"
}

# start_edgerec NAME: runs it under /usr/bin/time (user, system, peak RSS KiB, voluntary and
# involuntary context switches of all its threads).
declare -A tpid started
start_edgerec() {
  started[$1]=$(date +%s.%N)
  /usr/bin/time -f '%U %S %M %w %c' -o "$work/$1.time" "$bin/edgerec" run --config "$work/$1.toml" 2> "$work/$1.log" &
  tpid[$1]=$!
}

# stop_edgerec NAME: reads threads and bytes written, then stops it cleanly.
declare -A threads writes
stop_edgerec() {
  local p; p=$(pgrep -P "${tpid[$1]}" edgerec || true)
  threads[$1]=$(awk '/^Threads/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
  writes[$1]=$(awk '/^write_bytes/ {print $2}' "/proc/$p/io" 2>/dev/null || echo 0)
  kill -INT "$p" 2>/dev/null || true
  started[$1]=$(python3 -c "import time; print(time.time() - ${started[$1]})")
}

# report NAME N [FFMPEG_CPU_PER_STREAM_MINUTE]: one line of figures, per second it ran.
report() {
  local name=$1 n=$2 secs=${started[$1]} ref=${3:-}
  wait "${tpid[$name]}" || true
  read -r u s m w c < <(tail -n 1 "$work/$name.time")
  local media; media=$(find "$work/$name/media" -name '*.mp4' -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {print s+0}')
  local dropped; dropped=$(grep -c "fragment dropped" "$work/$name.log" || true)
  python3 - "$name" "$n" "$secs" "$u" "$s" "$m" "$w" "$c" "${threads[$name]}" "${writes[$name]}" "$media" "$dropped" "$ref" <<'PY'
import sys
name, n, secs, u, s, m, w, c, th, wr, media, dropped, ref = sys.argv[1:]
n, secs = int(n), float(secs)
cpu = float(u) + float(s)
per = cpu / n / (secs / 60)
ratio = f"{per / float(ref):.2f}x ffmpeg" if ref else "-"
cs = (int(w) + int(c)) / n / secs
wpm = int(wr) / int(media) if int(media) else float("nan")
print(f"{name:<16} CPU s/stream-min {per:6.3f}  {ratio:<12} threads {th:>3}  ctx switches/s/stream {cs:7.1f}  "
      f"peak RSS {int(m)/1024:6.1f} MiB  bytes written/media byte {wpm:.3f}  fragments dropped {dropped}")
PY
}

# recorded_seconds NAME: the shortest recorded span of any camera, from the index.
recorded_seconds() {
  python3 - "$work/$1/index.sqlite3" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = db.execute("select camera, sum(duration_ns) from segment group by camera").fetchall()
print(f"{min(r[1] for r in rows) / 1e9:.1f} s (fewest of {len(rows)} cameras)" if rows else "nothing")
PY
}

if [ "${1:-}" = scale ]; then
  SECS=${2:-60}
  echo "edgerec, default source, ${SECS} s per step (720p25 ~2 Mbit/s, $TRANSPORT)"
  for n in 4 8 16; do
    # A fresh camera per step: gst-rtsp-server's shared media has aborted when a set of
    # clients left and the next one joined.
    [ -n "${campid:-}" ] && { kill "$campid" 2>/dev/null || true; wait "$campid" 2>/dev/null || true; }
    start_camera pattern
    campid=$!
    edgerec_config "scale$n" "$n" ""
    start_edgerec "scale$n"
    sleep "$SECS"
    stop_edgerec "scale$n"
    report "scale$n" "$n"
    echo "  recorded per camera: $(recorded_seconds "scale$n")"
  done
  exit 0
fi

if [ "${1:-}" = audio ]; then
  SECS=${2:-60}
  # G.711: one encoder per client (see edgerec-testcam --unshared).
  CAM_AUDIO=pcmu CAM_UNSHARED=1 start_camera pattern
  g711=$url
  mv "$work/cam-pattern.log" "$work/cam-pcmu.log"
  CAM_AUDIO=aac start_camera pattern
  aac=$url
  url=$g711; edgerec_config g711-off 4 "" 'audio = "off"'
  url=$g711; edgerec_config g711-aac 4 "" 'audio = "auto"'
  url=$aac; edgerec_config aac-pass 4 "" 'audio = "auto"'
  for name in g711-off g711-aac aac-pass; do start_edgerec "$name"; sleep 2; done
  sleep "$SECS"
  for name in g711-off g711-aac aac-pass; do stop_edgerec "$name"; done
  echo "audio: 4 streams each of 640x360 at 25 fps ~2 Mbit/s, $SECS s, side by side"
  for name in g711-off g711-aac aac-pass; do report "$name" 4; done
  python3 - "$work" "${started[g711-off]}" "${started[g711-aac]}" "${started[aac-pass]}" <<'PY'
import sys
w = sys.argv[1]
secs = dict(zip(["g711-off", "g711-aac", "aac-pass"], map(float, sys.argv[2:5])))
def per(name):
    u, s, *_ = open(f"{w}/{name}.time").read().strip().split("\n")[-1].split()
    return (float(u) + float(s)) / 4 / (secs[name] / 60)
off, g711, aac = per("g711-off"), per("g711-aac"), per("aac-pass")
print(f"per camera: G.711 re-encoded to AAC costs {g711 - off:.3f} CPU s/min more than video only "
      f"({g711 / off:.2f}x); AAC passed through {aac - off:.3f} more ({aac / off:.2f}x)")
PY
  for name in g711-off g711-aac aac-pass; do echo "recorded by $name: $(recorded_seconds "$name")"; done
  exit 0
fi

N=${1:-4}
SECS=${2:-60}
KIND=${3:-pattern}
start_camera "$KIND"
sources=(retina rtspsrc)
[ "$TRANSPORT" = udp ] && sources=(rtspsrc)
# Staggered starts: a test camera whose shared media is being prepared for a dozen clients at
# once made rtspsrc's jitter buffers spin for their first seconds. Each recorder's figures are
# per second it ran.
for src in "${sources[@]}"; do
  edgerec_config "$src" "$N" "$src"
  start_edgerec "$src"
  sleep 2
done
mkdir -p "$work/ffmpeg"
fpids=()
fstart=$(date +%s.%N)
for i in $(seq "$N"); do
  /usr/bin/time -f '%U %S %M %w %c' -o "$work/ffmpeg$i.time" ffmpeg -nostdin -v error -rtsp_transport "$TRANSPORT" -i "$url" -c copy \
    -f segment -segment_time 30 -segment_format mp4 -reset_timestamps 1 "$work/ffmpeg/cam${i}_%03d.mp4" &
  fpids+=($!)
done
sleep "$SECS"
fwrite=0; fthreads=0
for p in "${fpids[@]}"; do
  c=$(pgrep -P "$p" ffmpeg || true)
  fwrite=$((fwrite + $(awk '/^write_bytes/ {print $2}' "/proc/$c/io" 2>/dev/null || echo 0)))
  fthreads=$((fthreads + $(awk '/^Threads/ {print $2}' "/proc/$c/status" 2>/dev/null || echo 0)))
done
for src in "${sources[@]}"; do stop_edgerec "$src"; done
for p in "${fpids[@]}"; do kill -INT "$(pgrep -P "$p" ffmpeg)" 2>/dev/null || true; done
fsecs=$(python3 -c "import time; print(time.time() - $fstart)")
for p in "${fpids[@]}"; do wait "$p" || true; done
fcpu=0; frss=0; fcs=0
for i in $(seq "$N"); do
  read -r u s m w c < <(tail -n 1 "$work/ffmpeg$i.time")
  fcpu=$(python3 -c "print($fcpu + $u + $s)")
  frss=$((frss + m)); fcs=$((fcs + w + c))
done
fmedia=$(find "$work/ffmpeg" -name '*.mp4' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
fper=$(python3 -c "print($fcpu / $N / ($fsecs / 60))")
echo "streams: $N x $KIND over $TRANSPORT for $SECS s; edgerec with each source and ffmpeg side by side"
for src in "${sources[@]}"; do report "$src" "$N" "$fper"; done
python3 - "$N" "$fsecs" "$fcpu" "$frss" "$fcs" "$fthreads" "$fwrite" "$fmedia" <<'PY'
import sys
n, secs, cpu, rss, cs, th, wr, media = sys.argv[1:]
n, secs = int(n), float(secs)
print(f"{'ffmpeg':<16} CPU s/stream-min {float(cpu)/n/(secs/60):6.3f}  {'1.00x':<12} threads {th:>3}  ctx switches/s/stream "
      f"{int(cs)/n/secs:7.1f}  peak RSS {int(rss)/1024:6.1f} MiB  bytes written/media byte {int(wr)/max(int(media),1):.3f}  ({n} processes)")
PY
for src in "${sources[@]}"; do echo "recorded by $src: $(recorded_seconds "$src")"; done
