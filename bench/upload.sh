#!/bin/bash
# Upload benchmark: 200 segments to a local moto S3 server, edgerec's uploader next to
# `aws s3 cp --recursive` of the same files in the same run (throughput, CPU s/GB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh >/dev/null
cargo build --release --example upload-bench
exec ./target/release/examples/upload-bench
