#!/usr/bin/env bash
# bench/record.sh N SECONDS: records N test-camera streams (720p25, about 2 Mbit/s) with edgerec and,
# side by side in the same run, with ffmpeg's segment muxer (how Frigate records). Prints CPU seconds
# per stream-minute for both and their ratio, edgerec's peak RSS, and bytes written to disk per byte
# of media. Figures, not pass/fail. Needs a release build (`make bench` does it).
# TRANSPORT=udp compares both over RTP/UDP instead of RTP interleaved in RTSP/TCP (the default).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4}
SECS=${2:-60}
TRANSPORT=${TRANSPORT:-tcp}
bin=target/release
[ -x "$bin/edgerec" ] || cargo build --release
command -v ffmpeg >/dev/null || { echo "ffmpeg missing (make deps)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing (apt-get install time)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/edgerec-testcam" --port "$port" --width 1280 --height 720 --fps 25 --gop 50 --bitrate 2000 > "$work/cam.log" 2>&1 &
for _ in $(seq 100); do grep -q READY "$work/cam.log" && break; sleep 0.1; done
url="rtsp://127.0.0.1:$port/stream"

{
  printf 'device_id = "bench"\n[storage]\npath = "%s/edgerec"\nmax_size_mib = 8192\nmin_free_mib = 0\n' "$work"
  for i in $(seq "$N"); do printf '[[camera]]\nid = "cam%d"\nurl = "%s"\nfragment_duration = "PT2S"\ntransport = "%s"\n' "$i" "$url" "$TRANSPORT"; done
} > "$work/edgerec.toml"

# edgerec, one process for N cameras.
/usr/bin/time -f '%U %S %M' -o "$work/edgerec.time" "$bin/edgerec" run --config "$work/edgerec.toml" 2> "$work/edgerec.log" &
etime=$!
# ffmpeg, one process per camera (as Frigate runs it).
mkdir -p "$work/ffmpeg"
fpids=()
for i in $(seq "$N"); do
  /usr/bin/time -f '%U %S %M' -o "$work/ffmpeg$i.time" ffmpeg -nostdin -v error -rtsp_transport "$TRANSPORT" -i "$url" -c copy \
    -f segment -segment_time 30 -segment_format mp4 -reset_timestamps 1 "$work/ffmpeg/cam${i}_%03d.mp4" &
  fpids+=($!)
done
sleep "$SECS"
epid=$(pgrep -P "$etime" edgerec || true)
ewrite=$(awk '/^write_bytes/ {print $2}' "/proc/$epid/io" 2>/dev/null || echo 0)
fwrite=0
for p in "${fpids[@]}"; do
  c=$(pgrep -P "$p" ffmpeg || true)
  w=$(awk '/^write_bytes/ {print $2}' "/proc/$c/io" 2>/dev/null || echo 0)
  fwrite=$((fwrite + w))
done
emedia=$(find "$work/edgerec/media" -name '*.mp4' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
fmedia=$(find "$work/ffmpeg" -name '*.mp4' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
kill -INT "$epid" 2>/dev/null || true
for p in "${fpids[@]}"; do kill -INT "$(pgrep -P "$p" ffmpeg)" 2>/dev/null || true; done
wait "$etime" || true
for p in "${fpids[@]}"; do wait "$p" || true; done

read -r eu es erss < <(tail -n 1 "$work/edgerec.time")
fcpu=0; frss=0
for i in $(seq "$N"); do
  read -r u s m < <(tail -n 1 "$work/ffmpeg$i.time")
  fcpu=$(python3 -c "print($fcpu + $u + $s)")
  frss=$((frss + m))
done
python3 - "$N" "$SECS" "$eu" "$es" "$erss" "$fcpu" "$frss" "$ewrite" "$emedia" "$fwrite" "$fmedia" <<'PY'
import sys
n, secs, eu, es, erss, fcpu, frss, ew, em, fw, fm = sys.argv[1:]
n, secs = int(n), float(secs)
ecpu = float(eu) + float(es)
per = lambda cpu: cpu / n / (secs / 60)
import os
print(f"streams: {n} x 720p25 ~2 Mbit/s over {os.environ.get('TRANSPORT', 'tcp')} for {secs:.0f} s (edgerec and ffmpeg side by side)")
print(f"CPU s per stream-minute: edgerec {per(ecpu):.3f}  ffmpeg -c copy -f segment {per(float(fcpu)):.3f}  ratio {ecpu/max(float(fcpu),1e-9):.2f}")
print(f"peak RSS: edgerec {int(erss)/1024:.1f} MiB (one process, {n} cameras); ffmpeg {int(frss)/1024:.1f} MiB ({n} processes)")
wa = lambda w, m: (int(w) / int(m)) if int(m) else float('nan')
print(f"bytes written per media byte: edgerec {wa(ew, em):.3f} ({int(ew)} / {int(em)}); ffmpeg {wa(fw, fm):.3f}")
PY
