#!/usr/bin/env bash
# Packaging checks (issue "Ship it as firmware"): the systemd unit verifies and rates at most 2.0 in
# `systemd-analyze security --offline=yes`; the Yocto recipe passes oelint-adv for scarthgap and its
# crate list matches Cargo.lock. Fails loudly when a tool is missing (install with `make deps`).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$PWD/target/debug/edgerec}
[ -x "$bin" ] || { echo "build edgerec first ($bin missing)" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/bin/edgerec|$bin|g" systemd/edgerec.service > "$tmp/edgerec.service"
echo "== systemd-analyze verify"
out=$(systemd-analyze verify "$tmp/edgerec.service" 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify is not clean:"; echo "$out"; exit 1; }
echo "== systemd-analyze security --offline=yes"
level=$(systemd-analyze security --offline=yes "$tmp/edgerec.service" 2>&1 | sed -n 's/.*Overall exposure level for edgerec.service: \([0-9.]*\).*/\1/p')
[ -n "$level" ] || { echo "no exposure level printed" >&2; exit 1; }
echo "exposure level $level (at most 2.0)"
python3 -c "import sys; sys.exit(0 if float('$level') <= 2.0 else 1)" || { echo "exposure $level is over 2.0" >&2; exit 1; }

echo "== yocto: edgerec-crates.inc matches Cargo.lock"
python3 yocto/gen-crates-inc.py Cargo.lock "$tmp/crates.inc" >/dev/null
diff -u yocto/meta-edgerec/recipes-multimedia/edgerec/edgerec-crates.inc "$tmp/crates.inc" \
  || { echo "run: python3 yocto/gen-crates-inc.py" >&2; exit 1; }
echo "== oelint-adv --release scarthgap"
oelint=${OELINT:-$PWD/target/ci-venv/bin/oelint-adv}
[ -x "$oelint" ] || oelint=$(command -v oelint-adv || true)
[ -n "$oelint" ] || { echo "oelint-adv missing (make deps installs it into target/ci-venv)" >&2; exit 1; }
(cd yocto/meta-edgerec && "$oelint" --quiet --release scarthgap recipes-multimedia/edgerec/edgerec_git.bb)
echo "== vendored hls.js is npm's, at the pinned version"
want=$(python3 -c "import json; print(json.load(open('tests/browser/package.json'))['dependencies']['hls.js'])")
have=$(python3 -c "import json; print(json.load(open('tests/browser/node_modules/hls.js/package.json'))['version'])")
[ "$want" = "$have" ] || { echo "tests/browser has hls.js $have, package.json pins $want: npm ci --prefix tests/browser" >&2; exit 1; }
cmp src/ui/vendor/hls.light.min.js tests/browser/node_modules/hls.js/dist/hls.light.min.js \
  || { echo "src/ui/vendor/hls.light.min.js differs from hls.js $want (see src/ui/vendor/README.md)" >&2; exit 1; }
grep -q "| $want |" src/ui/vendor/README.md || { echo "src/ui/vendor/README.md does not name hls.js $want" >&2; exit 1; }
echo "packaging checks passed"
