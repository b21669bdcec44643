#!/usr/bin/env bash
# The main job, end to end: set up, then run edgekit's quick start on real data (zoo counts,
# train, export fp32/int8 TFLite and ONNX, validate, benchmark); ends with the benchmark table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$SECONDS
.venv/bin/edgekit quickstart "$@"
printf 'quickstart: done in %d s (setup excluded)\n' "$((SECONDS - start))" >&2
