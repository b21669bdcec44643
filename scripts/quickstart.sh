#!/usr/bin/env bash
# The main job, end to end: set up, then run edgekit's quick start on real data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/edgekit quickstart "$@"
