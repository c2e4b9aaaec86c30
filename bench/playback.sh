#!/bin/bash
# Playback benchmark: availableMedia and 24-hour manifests over one camera-year of segments
# (about 1.05 million index rows). Prints p50/p99 latencies against the targets and peak RSS.
# BENCH_DAYS=30 bash bench/playback.sh for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example playback-bench
exec ./target/release/examples/playback-bench
