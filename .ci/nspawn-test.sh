#!/usr/bin/env bash
# The unit under a real systemd as PID 1 (issue "Ship it as firmware"): a Debian 12 minbase root,
# booted read-only with systemd-nspawn (only the card is writable), runs edgerec.service as shipped (plus a drop-in that shortens the
# watchdog to 6 s and passes the camera's password as a systemd credential) and a test camera
# that requires it. Checks: active only after READY (recovery logged before
# systemd reports the start), segments recorded, a frozen card (fsfreeze of the storage
# filesystem: the writer blocks, so it stops making progress) gets the service killed by the
# watchdog and restarted, and `systemctl stop` ends cleanly with an fsck-clean store whose files
# all decode. Needs root. Usage: nspawn-test.sh [path to edgerec] [path to edgerec-testcam]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$PWD/target/debug/edgerec}
cam=${2:-$PWD/target/debug/edgerec-testcam}
for t in debootstrap systemd-nspawn nsenter fsfreeze mkfs.ext4 ffmpeg; do
  command -v "$t" >/dev/null || { echo "$t missing (make deps)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "needs root (debootstrap, nspawn, loop mounts)" >&2; exit 1; }

root=$PWD/target/nspawn-root
if [ ! -f "$root/.edgerec-done" ]; then
  rm -rf "$root"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$root" http://deb.debian.org/debian
  # The runtime libraries through apt inside the root (debootstrap does not resolve alternatives).
  systemd-nspawn -q --register=no --keep-unit -D "$root" --pipe sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends libgstreamer1.0-0 gstreamer1.0-plugins-base \
    gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
    libgstrtspserver-1.0-0 libsqlite3-0 && apt-get clean'
  touch "$root/.edgerec-done"
fi

work=$(mktemp -d)
store=$work/store
nspawn_pid=""
cleanup() {
  fsfreeze -u "$store" 2>/dev/null || true
  if [ -n "$nspawn_pid" ]; then kill "$nspawn_pid" 2>/dev/null || true; wait "$nspawn_pid" 2>/dev/null || true; fi
  umount "$store" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Install what the Yocto recipe installs, plus the test camera and a test drop-in.
install -m 0755 "$bin" "$root/usr/bin/edgerec"
install -m 0755 "$cam" "$root/usr/bin/edgerec-testcam"
install -D -m 0644 systemd/edgerec.service "$root/etc/systemd/system/edgerec.service"
install -D -m 0644 systemd/edgerec.sysusers "$root/usr/lib/sysusers.d/edgerec.conf"
install -D -m 0644 systemd/edgerec.tmpfiles "$root/usr/lib/tmpfiles.d/edgerec.conf"
# /var/lib/edgerec is the data partition's mount point, part of the (read-only) image.
mkdir -p "$root/etc/edgerec" "$root/etc/systemd/system/edgerec.service.d" "$root/etc/systemd/system/multi-user.target.wants" \
  "$root/var/lib/edgerec"
cat > "$root/etc/edgerec/edgerec.toml" <<EOC
device_id = "nspawn"
[storage]
path = "/var/lib/edgerec"
max_size_mib = 64
min_free_mib = 0
[[camera]]
id = "yard"
url = "rtsp://127.0.0.1:8554/stream"
username = "viewer"
# The password is a systemd credential (LoadCredential= in the drop-in below), not in this file.
password_file = "cam-yard"
# Nobody answers here: the recorder warns about it (journal priorities are checked below).
[[camera]]
id = "gone"
url = "rtsp://127.0.0.1:9/stream"
EOC
printf 's3cret\n' > "$root/etc/edgerec/cam-yard"
chmod 0600 "$root/etc/edgerec/cam-yard"
printf '[Service]\nWatchdogSec=6s\nLoadCredential=cam-yard:/etc/edgerec/cam-yard\n' > "$root/etc/systemd/system/edgerec.service.d/test.conf"
cat > "$root/etc/systemd/system/edgerec-testcam.service" <<EOC
[Unit]
Description=edgerec test camera
Before=edgerec.service
[Service]
ExecStart=/usr/bin/edgerec-testcam --port 8554 --width 320 --height 240 --user viewer --password s3cret
[Install]
WantedBy=multi-user.target
EOC
ln -sf /etc/systemd/system/edgerec.service "$root/etc/systemd/system/multi-user.target.wants/edgerec.service"
ln -sf /etc/systemd/system/edgerec-testcam.service "$root/etc/systemd/system/multi-user.target.wants/edgerec-testcam.service"
# The user exists before boot, as with Yocto's useradd at image build time: the root is read-only.
systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/edgerec.conf"
grep -q '^edgerec:' "$root/etc/passwd" || { echo "sysusers did not create the edgerec user" >&2; exit 1; }

# The card: an ext4 loop mount, bound into the container as the storage path.
mkdir -p "$store"
truncate -s 128M "$work/card.img"
mkfs.ext4 -q "$work/card.img"
mount -o loop "$work/card.img" "$store"

systemd-nspawn --boot --register=no --keep-unit --private-network --console=passive --read-only \
  -D "$root" --bind="$store:/var/lib/edgerec" > "$work/boot.log" 2>&1 &
nspawn_pid=$!
leader=""
for _ in $(seq 100); do
  leader=$(pgrep -P "$nspawn_pid" -x systemd | head -1 || true)
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || { cat "$work/boot.log"; echo "container did not start" >&2; exit 1; }
in_ct() { nsenter -t "$leader" -a "$@"; }
prop() { in_ct systemctl show edgerec -p "$1" --value; }
wait_for() { # seconds, description, command...
  local n=$1 what=$2; shift 2
  for _ in $(seq $((n * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timed out after ${n}s waiting for $what" >&2
  in_ct journalctl -b -u edgerec --no-pager -n 50 >&2 || true
  exit 1
}
has_media() { [ "$(find "$store/media" -name '*.mp4' 2>/dev/null | wc -l)" -ge "$1" ]; }

wait_for 60 "edgerec.service active" in_ct systemctl is-active --quiet edgerec
in_ct findmnt -n -o OPTIONS / | grep -qE '(^|,)ro(,|$)' || { echo "the root is not read-only" >&2; exit 1; }
echo "root filesystem is read-only: $(in_ct findmnt -n -o OPTIONS / | cut -d, -f1)"
echo "unit: Type=$(prop Type) WatchdogUSec=$(prop WatchdogUSec) User=$(prop User)"
[ "$(prop Type)" = notify ] || { echo "not Type=notify" >&2; exit 1; }
# READY=1 comes after recovery: recovery is logged before systemd's "Started" line.
journal=$(in_ct journalctl -b -u edgerec -o short-monotonic --no-pager)
rec_line=$(echo "$journal" | grep -n 'storage recovered' | head -1 | cut -d: -f1)
started_line=$(echo "$journal" | grep -n 'Started edgerec' | head -1 | cut -d: -f1)
[ -n "$rec_line" ] && [ -n "$started_line" ] && [ "$rec_line" -lt "$started_line" ] \
  || { echo "$journal"; echo "the service became active before storage recovery" >&2; exit 1; }
echo "active only after READY: recovery at journal line $rec_line, Started at $started_line"

wait_for 60 "a recorded segment" has_media 1
echo "recording inside the container: $(find "$store/media" -name '*.mp4' | wc -l) segment file(s)"

# Journal priorities: warnings carry priority 4, info lines 6 (`journalctl -p warning` shows the
# lost camera and not the start-up lines).
wait_for 30 "a warning in the journal" sh -c "nsenter -t $leader -a journalctl -b -u edgerec -p warning --no-pager | grep -q 'camera lost'"
warnings=$(in_ct journalctl -b -u edgerec -p warning --no-pager)
if echo "$warnings" | grep -q 'storage recovered'; then
  echo "$warnings"; echo "info lines are logged at warning priority or above" >&2; exit 1
fi
in_ct journalctl -b -u edgerec -p info --no-pager | grep -q 'storage recovered' \
  || { echo "info lines missing at priority info" >&2; exit 1; }
echo "journal priorities: 'camera lost' at warning, 'storage recovered' at info only"

# A frozen card: the writer blocks, the pings stop, systemd's watchdog kills the service; it dies
# once the card answers again and is restarted.
restarts_before=$(prop NRestarts)
fsfreeze -f "$store"
wait_for 30 "the watchdog timeout" sh -c "nsenter -t $leader -a journalctl -b -u edgerec --no-pager | grep -q 'Watchdog timeout'"
fsfreeze -u "$store"
wait_for 60 "a restart by the watchdog" sh -c "[ \$(nsenter -t $leader -a systemctl show edgerec -p NRestarts --value) -gt $restarts_before ]"
wait_for 60 "edgerec.service active again" in_ct systemctl is-active --quiet edgerec
n_before=$(find "$store/media" -name '*.mp4' | wc -l)
wait_for 60 "recording after the restart" has_media $((n_before + 1))
echo "watchdog: timeout logged, NRestarts $restarts_before -> $(prop NRestarts), recording again"

in_ct systemctl stop edgerec
[ "$(prop Result)" = success ] || { echo "stop result: $(prop Result)" >&2; exit 1; }
[ "$(prop ExecMainStatus)" = 0 ] || { echo "exit status $(prop ExecMainStatus)" >&2; exit 1; }
in_ct /usr/bin/edgerec fsck --config /etc/edgerec/edgerec.toml
for f in $(find "$store/media" -name '*.mp4'); do
  e=$(ffmpeg -nostdin -v error -i "$f" -f null - 2>&1); [ -z "$e" ] || { echo "$f: $e" >&2; exit 1; }
done
echo "clean stop: exit 0, fsck clean, every segment decodes"
