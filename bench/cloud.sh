#!/bin/bash
# Cloud playback benchmark: one camera-month of PT30S segments in a local moto S3 server;
# `edgerec serve` answering availableMedia (31 days at day precision, 25 h at full precision) and
# a 24 h HLS manifest, next to plain listings of the same key ranges (object_store and awscli),
# p50 and p99; and the gateway's storage transactions per camera-hour.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh >/dev/null
cargo build --release --example cloud-bench
exec ./target/release/examples/cloud-bench
