#!/usr/bin/env bash
# Set up, then run the default test suite (heavy tests are marked slow: add -m slow for them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -rs --durations=30 "$@"
