#!/bin/bash
# Cloud playback benchmark: one camera-month of PT30S segments in a local moto S3 server;
# `edgerec serve` answering availableMedia (31 days at day precision, 25 h at full precision) and
# a 24 h HLS manifest, next to plain listings of the same key ranges (object_store and awscli),
# p50 and p99; media fragments through `serve` next to presigned S3 URLs of the same bytes (a
# real segment, recorded first by bench/segment.sh); and the gateway's storage transactions per
# camera-hour.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seg=$(bash bench/segment.sh "$work")
cargo build --release --example cloud-bench
BENCH_SEGMENT=$seg ./target/release/examples/cloud-bench
