#!/usr/bin/env bash
# Supply-chain checks of the firmware's crate graph (issue "Firmware an integrator can trust"):
#  1. the locked crates need no newer Rust than the Yocto layer stack the layer claims;
#  2. the recipe's LICENSE (edgerec-licenses.inc) is the one generated from the crates;
#  3. cargo deny: licences against deny.toml's allow-list, RustSec advisories, banned sources.
# The advisory database is the snapshot committed as .ci/rustsec-advisory-db.tar.gz (CI reaches
# crates.io but not GitHub); EDGEREC_ADVISORY_DB=/path/to/advisory-db (a git clone) uses a newer
# one. Fails loudly when a tool is missing (install with `make deps`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null || { echo "cargo-deny missing (make deps installs it)" >&2; exit 1; }
cargo fetch --locked -q

echo "== Rust version of the claimed Yocto layer stack"
python3 .ci/check-rust-version.py

echo "== yocto: edgerec-licenses.inc matches the crates"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 yocto/gen-license-inc.py "$tmp/licenses.inc" >/dev/null
diff -u yocto/meta-edgerec/recipes-multimedia/edgerec/edgerec-licenses.inc "$tmp/licenses.inc" \
  || { echo "run: python3 yocto/gen-license-inc.py" >&2; exit 1; }

echo "== cargo deny (licences, advisories, sources, bans)"
# cargo-deny keeps the database for its URL in <db-path>/advisory-db-<hash of the URL>, a git
# checkout whose HEAD date it reads.
db=target/advisory-dbs/advisory-db-3157b0e258782691
rm -rf "$db"; mkdir -p "$db"
if [ -n "${EDGEREC_ADVISORY_DB:-}" ]; then
  git clone -q "$EDGEREC_ADVISORY_DB" "$db"
else
  tar -xzf .ci/rustsec-advisory-db.tar.gz -C "$db"
  date=$(sed -n 's/^Snapshot date: //p' .ci/rustsec-advisory-db.md)
  (cd "$db" && git init -q && git add -A \
    && GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" git -c user.name=snapshot -c user.email=snapshot@localhost \
       commit -q -m "RustSec advisory-db snapshot $date")
fi
echo "advisory database: $(git -C "$db" log -1 --format=%cI) ($(find "$db/crates" -name 'RUSTSEC-*.md' | wc -l) advisories)"
cargo deny --offline --log-level warn check --hide-inclusion-graph licenses advisories sources bans
echo "supply-chain checks passed"
